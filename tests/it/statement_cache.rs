//! The per-connection statement cache, seen from the server: `pg_prepared_statements`
//! on the same session shows what is prepared.

use crate::common;

use pgkeel::{Connection, ErrorKind, SimpleQueryMessage, Type};

/// Server-side prepared statements of this session, read through the simple protocol so
/// the look itself neither uses nor changes the cache: `(name, statement)`, by statement.
async fn prepared_on_server(conn: &Connection) -> Vec<(String, String)> {
    let messages = conn
        .simple_query("SELECT name, statement FROM pg_prepared_statements ORDER BY statement, name")
        .await
        .expect("read pg_prepared_statements");
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((r.get(0).unwrap().to_owned(), r.get(1).unwrap().to_owned()))
            }
            _ => None,
        })
        .collect()
}

/// The statement texts of [`prepared_on_server`].
async fn prepared_statements(conn: &Connection) -> Vec<String> {
    prepared_on_server(conn)
        .await
        .into_iter()
        .map(|(_, sql)| sql)
        .collect()
}

/// Connects to the test database with `?statement_cache_capacity=<n>`.
async fn connect_with_capacity(db: &pgkeel_testkit::TestDb, n: usize) -> Connection {
    let url = common::with_param(&db.url(), &format!("statement_cache_capacity={n}"));
    Connection::connect(url).await.expect("connect")
}

/// Runs `sql` (no parameters) and checks it returns the one int4 `expected`.
async fn assert_returns(conn: &Connection, sql: &str, expected: i32) {
    let got: i32 = conn.query_one(sql, &[]).await.unwrap().get(0);
    assert_eq!(got, expected, "{sql}");
}

#[tokio::test]
async fn repeated_sql_is_parsed_once_and_the_server_count_stays_flat() {
    // The default capacity, whatever the run sets (PGKEEL_TEST_STATEMENT_CACHE).
    let db = pgkeel_testkit::TestDb::new();
    let conn = connect_with_capacity(&db, 256).await;
    let target = "SELECT $1::int4 * 2";
    let count_sql = "SELECT count(*), count(*) FILTER (WHERE statement = $1) \
                     FROM pg_prepared_statements";
    let count = || async {
        let row = conn.query_one(count_sql, &[&target]).await.unwrap();
        (row.get::<_, i64>(0), row.get::<_, i64>(1))
    };
    let doubled: i32 = conn.query_one(target, &[&1i32]).await.unwrap().get(0);
    assert_eq!(doubled, 2);
    // The counting statement is cached too: it sees itself and the target.
    assert_eq!(count().await, (2, 1));
    let before = prepared_on_server(&conn).await;
    for i in 0..100i32 {
        let doubled: i32 = conn.query_one(target, &[&i]).await.unwrap().get(0);
        assert_eq!(doubled, i * 2);
        if i % 25 == 0 {
            assert_eq!(count().await, (2, 1), "after {i} repeats");
        }
    }
    assert_eq!(count().await, (2, 1));
    assert_eq!(
        prepared_on_server(&conn).await,
        before,
        "the very same server-side statements, under the same names"
    );
    // And the server ran that one statement 101 times.
    let executions: i64 = conn
        .query_one(
            "SELECT generic_plans + custom_plans FROM pg_prepared_statements WHERE statement = $1",
            &[&target],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(executions, 101);
}

#[tokio::test]
async fn with_capacity_two_at_most_two_statements_stay_prepared() {
    let (db, _conn) = common::db().await;
    let conn = connect_with_capacity(&db, 2).await;
    for n in 1..=5 {
        assert_returns(&conn, &format!("SELECT {n}::int4"), n).await;
    }
    // Evicted statements are closed on the next extended exchange; a cache hit is one.
    assert_returns(&conn, "SELECT 5::int4", 5).await;
    assert_eq!(
        prepared_statements(&conn).await,
        vec!["SELECT 4::int4", "SELECT 5::int4"]
    );
    // Counting through the cache itself: the count statement takes a slot, and once its
    // evictions are closed, two statements remain: it and the most recent other one.
    let count_sql = "SELECT count(*) FROM pg_prepared_statements";
    let mut seen = Vec::new();
    for _ in 0..4 {
        let n: i64 = conn.query_one(count_sql, &[]).await.unwrap().get(0);
        seen.push(n);
    }
    assert!(
        seen.iter().all(|&n| n <= 4),
        "never more than 2 + pending closes: {seen:?}"
    );
    assert_eq!(*seen.last().unwrap(), 2, "{seen:?}");
    assert_eq!(prepared_statements(&conn).await.len(), 2);
    assert!(!conn.is_broken());
}

#[tokio::test]
async fn the_least_recently_used_statement_is_the_one_evicted() {
    let (db, _conn) = common::db().await;
    let conn = connect_with_capacity(&db, 2).await;
    assert_returns(&conn, "SELECT 1::int4", 1).await;
    assert_returns(&conn, "SELECT 2::int4", 2).await;
    assert_returns(&conn, "SELECT 1::int4", 1).await; // 1 is now fresher than 2
    assert_returns(&conn, "SELECT 3::int4", 3).await; // evicts 2
    assert_returns(&conn, "SELECT 3::int4", 3).await; // carries the Close of 2
    assert_eq!(
        prepared_statements(&conn).await,
        vec!["SELECT 1::int4", "SELECT 3::int4"]
    );
}

#[tokio::test]
async fn with_capacity_zero_nothing_stays_prepared() {
    let (db, _conn) = common::db().await;
    let conn = connect_with_capacity(&db, 0).await;
    for round in 0..3 {
        for n in 1..=5 {
            assert_returns(&conn, &format!("SELECT {n}::int4"), n).await;
        }
        let doubled: i64 = conn
            .query_one("SELECT $1::int8 * 2", &[&round])
            .await
            .unwrap()
            .get(0);
        assert_eq!(doubled, round * 2);
    }
    let n: i64 = conn
        .query_one("SELECT count(*) FROM pg_prepared_statements", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    assert_eq!(prepared_statements(&conn).await, Vec::<String>::new());
}

#[tokio::test]
async fn capacity_zero_set_through_config_builder_prepares_nothing() {
    let (db, _conn) = common::db().await;
    let mut config: pgkeel::Config = db.url().parse().unwrap();
    config.statement_cache_capacity(0);
    assert_eq!(config.get_statement_cache_capacity(), 0);
    let conn = Connection::connect(config).await.unwrap();
    for _ in 0..3 {
        assert_returns(&conn, "SELECT 9::int4", 9).await;
    }
    assert_eq!(prepared_statements(&conn).await, Vec::<String>::new());
}

#[tokio::test]
async fn the_same_sql_with_different_parameter_rust_types_is_prepared_once_per_type() {
    // The default capacity, whatever the run sets (PGKEEL_TEST_STATEMENT_CACHE).
    let db = pgkeel_testkit::TestDb::new();
    let conn = connect_with_capacity(&db, 256).await;
    let sql = "SELECT $1 AS v";
    for _ in 0..3 {
        let row = conn.query_one(sql, &[&7i32]).await.unwrap();
        assert_eq!(row.columns()[0].type_(), Type::INT4);
        assert_eq!(row.get::<_, i32>("v"), 7);
        let row = conn.query_one(sql, &[&(1i64 << 40)]).await.unwrap();
        assert_eq!(row.columns()[0].type_(), Type::INT8);
        assert_eq!(row.get::<_, i64>("v"), 1 << 40);
        // &str and String are both sent as text: one statement for both.
        let row = conn.query_one(sql, &[&"s"]).await.unwrap();
        assert_eq!(row.get::<_, String>("v"), "s");
        let row = conn.query_one(sql, &[&"t".to_string()]).await.unwrap();
        assert_eq!(row.columns()[0].type_(), Type::TEXT);
        assert_eq!(row.get::<_, String>("v"), "t");
    }
    let same_sql = prepared_statements(&conn)
        .await
        .into_iter()
        .filter(|s| s == sql)
        .count();
    assert_eq!(same_sql, 3, "one statement each for int4, int8 and text");
}

/// PostgreSQL refuses to run a cached `SELECT *` whose result type changed ("cached plan
/// must not change result type", SQLSTATE 0A000) before running it. Outside a transaction
/// nothing happened, so pgkeel forgets the stale statement, prepares afresh and runs once
/// more: the caller never sees the error.
#[tokio::test]
async fn a_cached_select_star_after_alter_table_add_column_is_re_prepared_transparently() {
    // The default capacity, whatever the run sets (PGKEEL_TEST_STATEMENT_CACHE).
    let db = pgkeel_testkit::TestDb::new();
    let conn = connect_with_capacity(&db, 256).await;
    conn.batch_execute("CREATE TABLE t (a int4); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let sql = "SELECT * FROM t";
    let row = conn.query_one(sql, &[]).await.unwrap();
    assert_eq!(row.len(), 1);
    conn.batch_execute("ALTER TABLE t ADD COLUMN b int4 DEFAULT 2")
        .await
        .unwrap();

    let check = |row: &pgkeel::Row| {
        let names: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
        assert_eq!(names, vec!["a", "b"]);
        assert_eq!(row.get::<_, i32>("a"), 1);
        assert_eq!(row.get::<_, i32>("b"), 2);
    };
    check(
        &conn
            .query_one(sql, &[])
            .await
            .expect("re-prepared transparently"),
    );
    check(&conn.query_one(sql, &[]).await.unwrap());
    // The stale statement is closed; only the fresh one remains for this SQL.
    assert_returns(&conn, "SELECT 0::int4", 0).await;
    let for_sql = prepared_statements(&conn)
        .await
        .into_iter()
        .filter(|s| s == sql)
        .count();
    assert_eq!(for_sql, 1);
}

/// Inside a transaction the same refusal has already failed the transaction, so it is
/// not retried: the caller gets 0A000, and after the rollback the statement works.
#[tokio::test]
async fn a_stale_cached_statement_inside_a_transaction_is_the_callers_error() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (a int4); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let sql = "SELECT * FROM t";
    conn.query_one(sql, &[]).await.unwrap();
    conn.batch_execute("ALTER TABLE t ADD COLUMN b int4 DEFAULT 2")
        .await
        .unwrap();
    let tx = conn.transaction().await.unwrap();
    let err = tx.query_one(sql, &[]).await.unwrap_err();
    assert_eq!(err.code(), Some("0A000"), "{err}");
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "cached plan must not change result type"
    );
    assert_eq!(tx.transaction_status(), pgkeel::TransactionStatus::Failed);
    tx.rollback().await.unwrap();
    assert_eq!(conn.query_one(sql, &[]).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_cached_statement_after_a_column_type_change_decodes_the_new_type() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (a int4); INSERT INTO t VALUES (5)")
        .await
        .unwrap();
    let sql = "SELECT a FROM t";
    assert_eq!(conn.query_one(sql, &[]).await.unwrap().get::<_, i32>(0), 5);
    conn.batch_execute("ALTER TABLE t ALTER COLUMN a TYPE int8; UPDATE t SET a = 1::int8 << 40")
        .await
        .unwrap();
    let row = conn
        .query_one(sql, &[])
        .await
        .expect("re-prepared transparently");
    assert_eq!(row.columns()[0].type_(), Type::INT8);
    assert_eq!(row.get::<_, i64>(0), 1 << 40);
}

#[tokio::test]
async fn a_cached_statement_survives_its_table_being_dropped_and_recreated() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (a int4); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let sql = "SELECT a FROM t";
    assert_eq!(conn.query_one(sql, &[]).await.unwrap().get::<_, i32>(0), 1);
    conn.batch_execute("DROP TABLE t").await.unwrap();
    let err = conn.query_one(sql, &[]).await.unwrap_err();
    assert_eq!(err.code(), Some("42P01"));
    conn.batch_execute("CREATE TABLE t (a int4); INSERT INTO t VALUES (2)")
        .await
        .unwrap();
    assert_eq!(conn.query_one(sql, &[]).await.unwrap().get::<_, i32>(0), 2);
    assert!(!conn.is_broken());
}

/// Whether a statement named `name` is prepared in this session (extended protocol).
async fn is_prepared(conn: &Connection, name: &str) -> bool {
    conn.query_one(
        "SELECT count(*) FROM pg_prepared_statements WHERE name = $1",
        &[&name],
    )
    .await
    .unwrap()
    .get::<_, i64>(0)
        == 1
}

#[tokio::test]
async fn a_user_prepared_statement_is_closed_after_its_last_clone_is_dropped() {
    let (_db, conn) = common::db().await;
    let stmt = conn.prepare("SELECT 42::int4").await.unwrap();
    let name = stmt.name().to_owned();
    let clone = stmt.clone();
    assert!(is_prepared(&conn, &name).await);
    assert_eq!(
        conn.query_one(&clone, &[]).await.unwrap().get::<_, i32>(0),
        42
    );

    drop(stmt);
    assert_returns(&conn, "SELECT 1::int4", 1).await;
    assert!(is_prepared(&conn, &name).await, "a clone still holds it");
    assert_eq!(
        conn.query_one(&clone, &[]).await.unwrap().get::<_, i32>(0),
        42
    );

    drop(clone);
    assert_returns(&conn, "SELECT 1::int4", 1).await; // carries the Close
    assert!(
        !is_prepared(&conn, &name).await,
        "closed after the last clone went"
    );
    assert!(!conn.is_broken());
}

#[tokio::test]
async fn a_user_prepared_statement_dropped_before_any_exchange_is_closed_by_the_next() {
    let (_db, conn) = common::db().await;
    let names: Vec<String> = {
        let mut stmts = Vec::new();
        for i in 0..10 {
            stmts.push(conn.prepare(&format!("SELECT {i}::int4")).await.unwrap());
        }
        stmts.iter().map(|s| s.name().to_owned()).collect()
    };
    assert_returns(&conn, "SELECT 1::int4", 1).await;
    let left: Vec<String> = prepared_on_server(&conn)
        .await
        .into_iter()
        .map(|(name, _)| name)
        .filter(|n| names.contains(n))
        .collect();
    assert_eq!(left, Vec::<String>::new());
}

#[tokio::test]

async fn a_dropped_user_statement_is_closed_by_the_next_exchange_even_a_simple_query() {
    let (_db, conn) = common::db().await;
    let stmt = conn.prepare("SELECT 42::int4").await.unwrap();
    let name = stmt.name().to_owned();
    drop(stmt);
    // Statement's docs: "Dropping the last clone closes it on the server (on the next
    // exchange, with no extra round trip)". Here the next exchanges are simple queries.
    conn.batch_execute("SELECT 1").await.unwrap();
    let names: Vec<String> = prepared_on_server(&conn)
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, Vec::<String>::new(), "{name} is still prepared");
}

#[tokio::test]
async fn cached_statements_deallocated_behind_the_drivers_back_are_prepared_again() {
    let (_db, conn) = common::db().await;
    let sql = "SELECT $1::int4 + 1";
    let run = |n: i32| {
        let conn = conn.clone();
        async move { conn.query_one(sql, &[&n]).await }
    };
    assert_eq!(run(1).await.unwrap().get::<_, i32>(0), 2);
    conn.batch_execute("DEALLOCATE ALL").await.unwrap();
    assert_eq!(prepared_statements(&conn).await, Vec::<String>::new());
    // Either re-prepared transparently, or one 26000 error and then it works.
    match run(2).await {
        Ok(row) => assert_eq!(row.get::<_, i32>(0), 3),
        Err(e) => {
            assert_eq!(e.code(), Some("26000"), "{e}");
            assert!(!conn.is_broken());
        }
    }
    assert_eq!(run(3).await.unwrap().get::<_, i32>(0), 4);
    assert_eq!(run(4).await.unwrap().get::<_, i32>(0), 5);
    assert_eq!(prepared_statements(&conn).await, vec![sql]);
}

#[tokio::test]
async fn closes_skipped_because_of_a_server_error_are_sent_again_later() {
    let (db, _conn) = common::db().await;
    let conn = connect_with_capacity(&db, 1).await;
    assert_returns(&conn, "SELECT 1::int4", 1).await;
    assert_returns(&conn, "SELECT 2::int4", 2).await; // evicts 1: its Close is pending
    // This exchange fails at Execute, so the server skips the Close that rides with it.
    let err = conn
        .query_one("SELECT 1 / $1::int4", &[&0i32])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("22012"));
    // Two clean exchanges later, only the most recent statement is left.
    assert_returns(&conn, "SELECT 3::int4", 3).await;
    assert_returns(&conn, "SELECT 3::int4", 3).await;
    assert_eq!(prepared_statements(&conn).await, vec!["SELECT 3::int4"]);
}

#[tokio::test]
async fn a_statement_prepared_on_one_connection_is_refused_on_another() {
    let (db, conn) = common::db().await;
    let other = common::connect(&db).await;
    let stmt = conn.prepare("SELECT 1::int4").await.unwrap();
    let err = other.query(&stmt, &[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Misuse, "{err}");
    assert!(!other.is_broken());
    assert_eq!(
        conn.query_one(&stmt, &[]).await.unwrap().get::<_, i32>(0),
        1
    );
}
