//! Behind a real PgBouncer (started by the test kit in front of the shared cluster):
//! pgkeel connects and runs simple-protocol queries, and transaction pooling really does
//! put several clients on one server backend. These are smoke tests of the setup; what
//! the driver does with prepared statements behind a pooler is tested elsewhere.
//!
//! They fail when PgBouncer is not installed; `PGKEEL_SKIP_PGBOUNCER=1` skips them.

use pgkeel::{Connection, SimpleQueryMessage};
use pgkeel_testkit::{Pgbouncer, PgbouncerBuilder, PoolMode, TestDb};

/// The first column of the first row `sql` returns, through the simple query protocol.
async fn simple_value(conn: &Connection, sql: &str) -> String {
    let messages = conn.simple_query(sql).await.expect(sql);
    let row = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    });
    let value = row.and_then(|row| row.get(0)).expect("one value");
    value.to_string()
}

/// A fresh database and a PgBouncer in front of its cluster (None when skipped).
fn bouncer(builder: PgbouncerBuilder) -> Option<(TestDb, Pgbouncer)> {
    let db = TestDb::new();
    let bouncer = builder.start_or_skip(db.cluster())?;
    Some((db, bouncer))
}

/// A pgkeel connection through `bouncer` to `db` as the superuser.
async fn connect(db: &TestDb, bouncer: &Pgbouncer, query: &str) -> Connection {
    let url = bouncer.url(db.cluster().superuser(), db.name()) + query;
    match Connection::connect(&url).await {
        Ok(conn) => conn,
        Err(err) => panic!("connect through PgBouncer: {err}\n{}", bouncer.log()),
    }
}

#[tokio::test]
async fn simple_queries_work_through_pgbouncer_in_transaction_mode() {
    let Some((db, bouncer)) = bouncer(Pgbouncer::builder()) else {
        return;
    };
    assert_eq!(bouncer.pool_mode(), PoolMode::Transaction);
    let conn = connect(&db, &bouncer, "?application_name=pgkeel_bouncer").await;
    assert_eq!(simple_value(&conn, "SELECT 1").await, "1");
    assert_eq!(
        simple_value(&conn, "SELECT current_database()").await,
        db.name()
    );
    let app = simple_value(&conn, "SHOW application_name").await;
    assert_eq!(
        app, "pgkeel_bouncer",
        "PgBouncer passes application_name on"
    );
    conn.close().await.expect("close");
}

#[tokio::test]
async fn transaction_pooling_puts_two_clients_on_one_server_backend() {
    let builder = Pgbouncer::builder()
        .pool_mode(PoolMode::Transaction)
        .default_pool_size(1);
    let Some((db, bouncer)) = bouncer(builder) else {
        return;
    };
    let (a, b) = (
        connect(&db, &bouncer, "").await,
        connect(&db, &bouncer, "").await,
    );
    let pid = "SELECT pg_backend_pid()";
    let (pid_a, pid_b) = (simple_value(&a, pid).await, simple_value(&b, pid).await);
    assert_eq!(
        pid_a, pid_b,
        "both clients ran on the one server connection"
    );
    assert_eq!(simple_value(&a, pid).await, pid_a);
}

#[tokio::test]
async fn session_pooling_gives_each_client_its_own_server_backend() {
    let builder = Pgbouncer::builder()
        .pool_mode(PoolMode::Session)
        .default_pool_size(2);
    let Some((db, bouncer)) = bouncer(builder) else {
        return;
    };
    let (a, b) = (
        connect(&db, &bouncer, "").await,
        connect(&db, &bouncer, "").await,
    );
    let pid = "SELECT pg_backend_pid()";
    assert_ne!(simple_value(&a, pid).await, simple_value(&b, pid).await);
}
