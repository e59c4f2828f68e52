//! Retryable errors: serialization failures (40001) and deadlocks (40P01), provoked for
//! real with two connections in lock step, say `is_retryable()`; other server errors
//! (a unique violation) do not.

use crate::common;

use std::sync::Arc;

use pgkeel::{Connection, Error, ErrorKind, IsolationLevel, TransactionStatus, sqlstate};
use tokio::sync::Barrier;

async fn setup(sql: &str) -> (pgkeel_testkit::TestDb, Connection, Connection) {
    let (db, a) = common::db().await;
    a.batch_execute(sql).await.unwrap();
    let b = common::connect(&db).await;
    (db, a, b)
}

/// Both outcomes of two racing transactions: exactly one must fail, with `code`.
fn the_one_failure(results: [Result<(), Error>; 2], code: &str) -> Error {
    let mut failures: Vec<Error> = results.into_iter().filter_map(Result::err).collect();
    assert_eq!(
        failures.len(),
        1,
        "exactly one transaction fails: {failures:?}"
    );
    let err = failures.pop().unwrap();
    assert_eq!(err.code(), Some(code), "{err}");
    err
}

/// Reads the sum of class `read`, waits for the other side to do the same, then inserts
/// that sum into class `write`: the classic write-skew shape SERIALIZABLE must refuse.
async fn write_skew(
    conn: Connection,
    barrier: Arc<Barrier>,
    read: i32,
    write: i32,
) -> Result<(), Error> {
    let tx = conn
        .build_transaction()
        .isolation_level(IsolationLevel::Serializable)
        .start()
        .await?;
    let sum: i64 = tx
        .query_one(
            "SELECT coalesce(sum(v), 0)::int8 FROM m WHERE class = $1",
            &[&read],
        )
        .await?
        .get(0);
    barrier.wait().await;
    let wrote = tx
        .execute("INSERT INTO m VALUES ($1, $2)", &[&write, &(sum as i32)])
        .await;
    // Both writes happen before either commits; a side whose write failed still meets
    // the other here, so neither waits forever.
    barrier.wait().await;
    wrote?;
    tx.commit().await
}

#[tokio::test]
async fn serialization_failure_is_retryable_with_code_40001() {
    let (_db, a, b) = setup(
        "CREATE TABLE m (class int4, v int4);
         INSERT INTO m VALUES (1, 10), (1, 20), (2, 100), (2, 200);",
    )
    .await;
    let barrier = Arc::new(Barrier::new(2));
    let ta = tokio::spawn(write_skew(a.clone(), barrier.clone(), 1, 2));
    let tb = tokio::spawn(write_skew(b.clone(), barrier.clone(), 2, 1));
    let results = [ta.await.unwrap(), tb.await.unwrap()];
    let err = the_one_failure(results, sqlstate::SERIALIZATION_FAILURE);
    assert_eq!(err.kind(), ErrorKind::Db);
    assert!(err.is_retryable());
    assert!(!err.is_connection_fatal());
    for conn in [&a, &b] {
        assert!(!conn.is_broken());
        conn.execute("SELECT 1", &[]).await.unwrap();
        assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
    }
    // The retry, alone, succeeds.
    write_skew(a.clone(), Arc::new(Barrier::new(1)), 1, 2)
        .await
        .unwrap();
}

/// Locks row `first`, waits for the other side to lock its row, then wants row `second`.
async fn lock_in_order(
    conn: Connection,
    barrier: Arc<Barrier>,
    first: i32,
    second: i32,
) -> Result<(), Error> {
    let tx = conn.transaction().await?;
    // Superuser-only setting; the test kit connects as the superuser. A short timeout
    // makes the deadlock detector run soon after both sides block.
    tx.batch_execute("SET LOCAL deadlock_timeout = '100ms'")
        .await?;
    tx.execute("UPDATE r SET v = v + 1 WHERE id = $1", &[&first])
        .await?;
    barrier.wait().await;
    tx.execute("UPDATE r SET v = v + 1 WHERE id = $1", &[&second])
        .await?;
    tx.commit().await
}

#[tokio::test]
async fn deadlock_is_retryable_with_code_40p01() {
    let (_db, a, b) = setup(
        "CREATE TABLE r (id int4 PRIMARY KEY, v int4);
         INSERT INTO r VALUES (1, 0), (2, 0);",
    )
    .await;
    let barrier = Arc::new(Barrier::new(2));
    let ta = tokio::spawn(lock_in_order(a.clone(), barrier.clone(), 1, 2));
    let tb = tokio::spawn(lock_in_order(b.clone(), barrier.clone(), 2, 1));
    let results = [ta.await.unwrap(), tb.await.unwrap()];
    let err = the_one_failure(results, sqlstate::DEADLOCK_DETECTED);
    assert_eq!(err.kind(), ErrorKind::Db);
    assert!(err.is_retryable());
    assert!(!err.is_connection_fatal());
    for conn in [&a, &b] {
        assert!(!conn.is_broken());
        // The failed side's rollback runs in a spawned task that holds the wire lock;
        // a round trip waits for it, after which the server says Idle.
        conn.execute("SELECT 1", &[]).await.unwrap();
        assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
    }
    // One side committed both increments.
    let rows = a.query("SELECT v FROM r ORDER BY id", &[]).await.unwrap();
    let v: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(v, vec![1, 1]);
}

#[tokio::test]
async fn unique_violation_is_not_retryable() {
    let (_db, a, _b) = setup("CREATE TABLE u (id int4 PRIMARY KEY)").await;
    a.execute("INSERT INTO u VALUES (1)", &[]).await.unwrap();
    let err = a
        .execute("INSERT INTO u VALUES (1)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Db);
    assert_eq!(err.code(), Some(sqlstate::UNIQUE_VIOLATION));
    assert!(!err.is_retryable());
    assert!(!err.is_connection_fatal());
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code(), "23505");

    // Inside a transaction, too, and the transaction reports the failure at commit.
    let tx = a.transaction().await.unwrap();
    let err = tx
        .execute("INSERT INTO u VALUES (1)", &[])
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(tx.commit().await.unwrap_err().kind(), ErrorKind::RolledBack);
}

#[tokio::test]
async fn non_retryable_errors_of_other_kinds_say_so() {
    let (_db, a, _b) = setup("SELECT 1").await;
    let err = a.execute("SELECT 1/0", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some("22012"));
    assert!(!err.is_retryable());
    let err = a.execute("SELECT * FROM nope", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(sqlstate::UNDEFINED_TABLE));
    assert!(!err.is_retryable());
}
