//! Transactions and savepoints as guards: a drop rolls back (before anyone else can see
//! the connection), commit and rollback do what they say, the builder's options reach the
//! server, the server's status byte (not a client flag) decides what cleanup runs, and a
//! transaction dropped mid-exchange breaks its connection instead of leaving a session
//! `idle in transaction`.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{backend_state, wait_query_gone, wait_quiet};
use pgkeel::{Connection, ErrorKind, IsolationLevel, SimpleQueryMessage, TransactionStatus};

/// The ids in table `t`, in order, as seen by `conn`.
async fn ids(conn: &Connection) -> Vec<i32> {
    let rows = conn
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .expect("read t");
    rows.iter().map(|r| r.get::<_, i32>(0)).collect()
}

/// The first value of the first row of a simple query.
fn first_value(messages: &[SimpleQueryMessage]) -> String {
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .expect("a row")
}

async fn db_with_table() -> (pgkeel_testkit::TestDb, Connection) {
    let (db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (id int4 PRIMARY KEY)")
        .await
        .expect("create t");
    (db, conn)
}

#[tokio::test]
async fn dropped_transaction_rolls_back_before_the_next_query_and_leaves_the_backend_idle() {
    let (db, conn) = db_with_table().await;
    let watcher = common::connect(&db).await;
    let pid = conn.backend_pid();

    let tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    assert_eq!(
        backend_state(&watcher, pid).await.as_deref(),
        Some("idle in transaction")
    );
    drop(tx);
    let dropped_at = Instant::now();

    // The rollback runs in a spawned task; awaiting here lets it run.
    wait_quiet(&watcher, pid, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(dropped_at.elapsed() < Duration::from_millis(100));
    assert_eq!(
        backend_state(&watcher, pid).await.as_deref(),
        Some("idle"),
        "the backend is still there and idle, not idle in transaction"
    );
    assert_eq!(ids(&conn).await, Vec::<i32>::new(), "this connection");
    assert_eq!(ids(&watcher).await, Vec::<i32>::new(), "another connection");
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
    assert!(!conn.is_broken());
}

#[tokio::test]
async fn next_query_after_a_dropped_transaction_waits_for_its_rollback() {
    let (_db, conn) = db_with_table().await;
    let tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    drop(tx);
    // No await in between: the cleanup task has not run yet, but it holds the wire lock,
    // so this query can only run after the ROLLBACK.
    let seen = conn
        .query("SELECT count(*)::int4 FROM t", &[])
        .await
        .unwrap();
    assert_eq!(seen[0].get::<_, i32>(0), 0);
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
}

#[tokio::test]
async fn commit_makes_rows_visible_and_rollback_discards_them() {
    let (db, conn) = db_with_table().await;
    let watcher = common::connect(&db).await;

    let tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (1), (2)", &[])
        .await
        .unwrap();
    assert_eq!(ids(&watcher).await, Vec::<i32>::new(), "not before commit");
    tx.commit().await.unwrap();
    assert_eq!(ids(&watcher).await, vec![1, 2]);
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);

    let tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (3)", &[]).await.unwrap();
    assert_eq!(
        tx.query("SELECT count(*)::int4 FROM t", &[]).await.unwrap()[0].get::<_, i32>(0),
        3,
        "the transaction sees its own row"
    );
    tx.rollback().await.unwrap();
    assert_eq!(ids(&conn).await, vec![1, 2]);
    assert_eq!(ids(&watcher).await, vec![1, 2]);
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
}

#[tokio::test]
async fn builder_options_reach_the_server_and_read_only_refuses_writes() {
    let (_db, conn) = db_with_table().await;
    let builder = conn
        .build_transaction()
        .isolation_level(IsolationLevel::Serializable)
        .read_only(true);
    assert_eq!(
        builder.begin_sql(),
        "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY"
    );
    let tx = builder.start().await.unwrap();
    let iso = tx.simple_query("SHOW transaction_isolation").await.unwrap();
    assert_eq!(first_value(&iso), "serializable");
    let ro = tx.simple_query("SHOW transaction_read_only").await.unwrap();
    assert_eq!(first_value(&ro), "on");

    let err = tx
        .execute("INSERT INTO t VALUES (1)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Db);
    assert_eq!(
        err.code(),
        Some("25006"),
        "read_only_sql_transaction: {err}"
    );
    assert_eq!(tx.transaction_status(), TransactionStatus::Failed);
    drop(tx);

    // Outside the transaction the session's defaults are back.
    let iso = conn
        .simple_query("SHOW transaction_isolation")
        .await
        .unwrap();
    assert_eq!(first_value(&iso), "read committed");
    conn.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
}

#[tokio::test]
async fn builder_read_write_and_repeatable_read_reach_the_server() {
    let (_db, conn) = db_with_table().await;
    let tx = conn
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(false)
        .start()
        .await
        .unwrap();
    let iso = tx.simple_query("SHOW transaction_isolation").await.unwrap();
    assert_eq!(first_value(&iso), "repeatable read");
    tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&conn).await, vec![1]);
}

#[tokio::test]
async fn dropped_savepoint_rolls_back_only_its_own_writes() {
    let (db, conn) = db_with_table().await;
    let mut tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    {
        let sp = tx.savepoint().await.unwrap();
        sp.execute("INSERT INTO t VALUES (2)", &[]).await.unwrap();
        let inside = sp.query("SELECT id FROM t ORDER BY id", &[]).await.unwrap();
        assert_eq!(inside.len(), 2);
    }
    tx.execute("INSERT INTO t VALUES (3)", &[]).await.unwrap();
    let seen: Vec<i32> = tx
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        seen,
        vec![1, 3],
        "the savepoint's row is gone inside the transaction"
    );
    tx.commit().await.unwrap();
    assert_eq!(ids(&common::connect(&db).await).await, vec![1, 3]);
}

#[tokio::test]
async fn savepoint_dropped_just_before_commit_is_rolled_back_first() {
    let (_db, conn) = db_with_table().await;
    let mut tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    let sp = tx.savepoint().await.unwrap();
    sp.execute("INSERT INTO t VALUES (2)", &[]).await.unwrap();
    drop(sp);
    tx.commit().await.unwrap();
    assert_eq!(ids(&conn).await, vec![1]);
}

#[tokio::test]
async fn nested_savepoints_roll_back_and_release_independently() {
    let (_db, conn) = db_with_table().await;
    let mut tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    {
        let mut sp1 = tx.savepoint().await.unwrap();
        sp1.execute("INSERT INTO t VALUES (10)", &[]).await.unwrap();
        {
            let sp2 = sp1.savepoint().await.unwrap();
            sp2.execute("INSERT INTO t VALUES (11)", &[]).await.unwrap();
            // sp2 dropped: 11 goes, 10 stays.
        }
        sp1.execute("INSERT INTO t VALUES (12)", &[]).await.unwrap();
        {
            let sp3 = sp1.savepoint().await.unwrap();
            sp3.execute("INSERT INTO t VALUES (13)", &[]).await.unwrap();
            sp3.commit().await.unwrap();
        }
        sp1.commit().await.unwrap();
    }
    {
        let mut sp4 = tx.savepoint().await.unwrap();
        sp4.execute("INSERT INTO t VALUES (20)", &[]).await.unwrap();
        {
            let sp5 = sp4.savepoint().await.unwrap();
            sp5.execute("INSERT INTO t VALUES (21)", &[]).await.unwrap();
            sp5.commit().await.unwrap();
        }
        // sp4 dropped: 20 and the released 21 go together.
    }
    {
        let sp6 = tx.savepoint().await.unwrap();
        sp6.execute("INSERT INTO t VALUES (30)", &[]).await.unwrap();
        sp6.rollback().await.unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(ids(&conn).await, vec![1, 10, 12, 13]);
}

#[tokio::test]
async fn committed_savepoint_keeps_its_writes() {
    let (_db, conn) = db_with_table().await;
    let mut tx = conn.transaction().await.unwrap();
    let sp = tx.savepoint().await.unwrap();
    sp.execute("INSERT INTO t VALUES (5)", &[]).await.unwrap();
    sp.commit().await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&conn).await, vec![5]);
}

#[tokio::test]
async fn savepoint_isolates_a_failed_statement() {
    let (_db, conn) = db_with_table().await;
    let mut tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    {
        let sp = tx.savepoint().await.unwrap();
        let err = sp.execute("SELECT 1/0", &[]).await.unwrap_err();
        assert_eq!(err.code(), Some("22012"));
        assert_eq!(sp.transaction_status(), TransactionStatus::Failed);
    }
    tx.execute("INSERT INTO t VALUES (2)", &[]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&conn).await, vec![1, 2]);
}

#[tokio::test]
async fn begin_sent_as_sql_shows_in_transaction_status() {
    let (_db, conn) = db_with_table().await;
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
    conn.batch_execute("BEGIN").await.unwrap();
    assert_eq!(conn.transaction_status(), TransactionStatus::InTransaction);
    conn.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    conn.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
    assert_eq!(ids(&conn).await, Vec::<i32>::new());
}

#[tokio::test]
async fn commit_sent_as_sql_inside_a_transaction_is_honoured_and_the_drop_does_no_harm() {
    let (db, conn) = db_with_table().await;
    let watcher = common::connect(&db).await;
    let tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    tx.batch_execute("COMMIT").await.unwrap();
    assert_eq!(tx.transaction_status(), TransactionStatus::Idle);
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
    drop(tx);
    assert_eq!(ids(&watcher).await, vec![1]);
    assert_eq!(ids(&conn).await, vec![1], "the drop rolled nothing back");
    assert!(!conn.is_broken());
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
}

#[tokio::test]
async fn begin_sent_as_sql_inside_a_transaction_after_commit_is_rolled_back_on_drop() {
    let (db, conn) = db_with_table().await;
    let watcher = common::connect(&db).await;
    let pid = conn.backend_pid();
    let tx = conn.transaction().await.unwrap();
    tx.batch_execute("INSERT INTO t VALUES (1); COMMIT; BEGIN; INSERT INTO t VALUES (2)")
        .await
        .unwrap();
    assert_eq!(tx.transaction_status(), TransactionStatus::InTransaction);
    drop(tx);
    wait_quiet(&watcher, pid, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(ids(&watcher).await, vec![1]);
    assert_eq!(ids(&conn).await, vec![1]);
}

#[tokio::test]
async fn commit_after_a_failed_statement_reports_rolled_back_and_commits_nothing() {
    let (db, conn) = db_with_table().await;
    let tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    let err = tx.execute("SELECT 1/0", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some("22012"));
    assert_eq!(tx.transaction_status(), TransactionStatus::Failed);
    let err = tx
        .execute("INSERT INTO t VALUES (2)", &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some("25P02"),
        "in_failed_sql_transaction: {err}"
    );

    let err = tx.commit().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RolledBack, "{err}");
    assert!(!err.is_connection_fatal());
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
    assert_eq!(ids(&conn).await, Vec::<i32>::new());
    assert_eq!(ids(&common::connect(&db).await).await, Vec::<i32>::new());
}

/// Opens a transaction on `conn`, inserts row 1, starts `SELECT pg_sleep(5)` tagged with
/// `tag`, drops the query after 50 ms and then the transaction.
async fn drop_transaction_mid_query(conn: &Connection, tag: &str) {
    let tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    let sql = format!("SELECT pg_sleep(5) /* {tag} */");
    let timed_out = tokio::time::timeout(Duration::from_millis(50), tx.query(&sql, &[])).await;
    assert!(timed_out.is_err(), "pg_sleep(5) cannot finish in 50 ms");
    drop(tx);
}

#[tokio::test]
async fn transaction_dropped_mid_query_breaks_the_connection_and_stops_the_query() {
    let (db, conn) = db_with_table().await;
    let watcher = common::connect(&db).await;
    drop_transaction_mid_query(&conn, "tx_mid_a").await;

    assert!(conn.is_broken());
    let started = Instant::now();
    let err = conn.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken);
    let err = conn.transaction().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken);
    let err = conn.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken);
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "fails at once"
    );

    // The CancelRequest stopped the sleep; the row was never committed.
    wait_query_gone(&watcher, "/* tx_mid_a */", Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(ids(&watcher).await, Vec::<i32>::new());
}

#[tokio::test]

async fn transaction_dropped_mid_query_ends_the_session_within_a_second() {
    let (db, conn) = db_with_table().await;
    let watcher = common::connect(&db).await;
    let pid = conn.backend_pid();
    drop_transaction_mid_query(&conn, "tx_mid_b").await;
    assert!(conn.is_broken());
    wait_query_gone(&watcher, "/* tx_mid_b */", Duration::from_secs(1))
        .await
        .unwrap();
    // Gone, or at least not holding a transaction open; `conn` is still in scope, as
    // it would be in a pool slot or a struct field.
    wait_quiet(&watcher, pid, Duration::from_secs(1))
        .await
        .unwrap();
    drop(conn);
}

#[tokio::test]

async fn transaction_methods_fail_with_broken_after_the_connection_broke() {
    let (_db, conn) = db_with_table().await;
    let tx = conn.transaction().await.unwrap();
    let _ = tokio::time::timeout(
        Duration::from_millis(20),
        tx.query("SELECT pg_sleep(1)", &[]),
    )
    .await;
    let err = tx
        .execute("INSERT INTO t VALUES (1)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken);
    let err = tx.commit().await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Broken,
        "not CommitOutcomeUnknown: COMMIT was never sent"
    );
}
