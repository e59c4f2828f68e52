//! The wire lock: one exchange (or one transaction, or one open row stream) owns a
//! connection's socket at a time. Other tasks queue on the lock; the task that holds it
//! through a long-lived guard gets `ErrorKind::Misuse` at once instead of waiting for
//! itself forever.

use crate::common;

use std::time::Duration;

use crate::common::{assert_misuse, backend_state, misuse_at_once};
use futures::StreamExt;
use pgkeel::{Connection, Error};
use tokio::sync::oneshot;

async fn db_with_table() -> (pgkeel_testkit::TestDb, Connection) {
    let (db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (id int4 PRIMARY KEY)")
        .await
        .expect("create t");
    (db, conn)
}

async fn count(conn: &Connection) -> Result<i64, Error> {
    let row = conn.query_one("SELECT count(*) FROM t", &[]).await?;
    Ok(row.get(0))
}

#[tokio::test]
async fn query_from_another_task_waits_while_a_transaction_is_open_and_runs_after_commit() {
    let (db, conn) = db_with_table().await;
    let watcher = common::connect(&db).await;
    let (began_tx, began_rx) = oneshot::channel();
    let (commit_tx, commit_rx) = oneshot::channel::<()>();

    let a = tokio::spawn({
        let conn = conn.clone();
        async move {
            let tx = conn.transaction().await?;
            tx.execute("INSERT INTO t VALUES (1)", &[]).await?;
            began_tx.send(()).unwrap();
            commit_rx.await.unwrap();
            tx.commit().await
        }
    });
    began_rx.await.unwrap();

    let mut b = tokio::spawn({
        let conn = conn.clone();
        async move { count(&conn).await }
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut b)
            .await
            .is_err(),
        "B finished while A held the transaction"
    );
    assert!(!b.is_finished());
    // B waits on the lock, not on the server: the session is idle in A's transaction.
    assert_eq!(
        backend_state(&watcher, conn.backend_pid()).await.as_deref(),
        Some("idle in transaction")
    );

    commit_tx.send(()).unwrap();
    a.await.unwrap().unwrap();
    assert_eq!(b.await.unwrap().unwrap(), 1, "B ran after A's commit");
}

#[tokio::test]
async fn query_dropped_while_waiting_for_the_lock_leaves_nothing_behind() {
    let (_db, conn) = db_with_table().await;
    let (began_tx, began_rx) = oneshot::channel();
    let (commit_tx, commit_rx) = oneshot::channel::<()>();
    let a = tokio::spawn({
        let conn = conn.clone();
        async move {
            let tx = conn.transaction().await?;
            tx.execute("INSERT INTO t VALUES (1)", &[]).await?;
            began_tx.send(()).unwrap();
            commit_rx.await.unwrap();
            tx.commit().await
        }
    });
    began_rx.await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(50), count(&conn)).await;
    assert!(waited.is_err(), "the lock was held");
    assert!(!conn.is_broken(), "a lock wait is cancel safe");
    commit_tx.send(()).unwrap();
    a.await.unwrap().unwrap();
    assert_eq!(count(&conn).await.unwrap(), 1);
}

#[tokio::test]
async fn transaction_holder_calling_the_connection_directly_gets_misuse_at_once() {
    let (_db, conn) = db_with_table().await;
    let task = tokio::spawn(async move {
        let tx = conn.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
        let way_out = "run it through the transaction";
        misuse_at_once(conn.query("SELECT 1", &[]), way_out).await;
        misuse_at_once(conn.query_one("SELECT 1", &[]), way_out).await;
        misuse_at_once(conn.execute("SELECT 1", &[]), way_out).await;
        misuse_at_once(conn.simple_query("SELECT 1"), way_out).await;
        misuse_at_once(conn.batch_execute("SELECT 1"), way_out).await;
        misuse_at_once(conn.prepare("SELECT 1"), way_out).await;
        misuse_at_once(conn.query_raw("SELECT 1", &[] as pgkeel::Params), way_out).await;

        // The transaction itself is untouched and goes on.
        let rows = tx.query("SELECT count(*) FROM t", &[]).await.unwrap();
        assert_eq!(rows[0].get::<_, i64>(0), 1);
        tx.commit().await.unwrap();
        assert!(!conn.is_broken());
        // Once it ended, the same task uses the connection directly again.
        assert_eq!(count(&conn).await.unwrap(), 1);
    });
    task.await.unwrap();
}

#[tokio::test]

async fn transaction_holder_in_the_runtime_main_future_gets_misuse_too() {
    let (_db, conn) = db_with_table().await;
    let tx = conn.transaction().await.unwrap();
    misuse_at_once(
        conn.query("SELECT 1", &[]),
        "run it through the transaction",
    )
    .await;
    drop(tx);
}

#[tokio::test]
async fn row_stream_holder_calling_the_connection_directly_gets_misuse_at_once() {
    let (_db, conn) = db_with_table().await;
    let task = tokio::spawn(async move {
        let mut stream = conn
            .query_raw_batched("SELECT g FROM generate_series(1, 10) g", &[], 2)
            .await
            .unwrap();
        let first: i32 = stream.next().await.unwrap().unwrap().get(0);
        assert_eq!(first, 1);
        let way_out = "finish (or drop) the stream or COPY first";
        misuse_at_once(conn.query("SELECT 1", &[]), way_out).await;
        misuse_at_once(conn.execute("SELECT 1", &[]), way_out).await;
        misuse_at_once(conn.simple_query("SELECT 1"), way_out).await;
        misuse_at_once(conn.transaction(), way_out).await;
        misuse_at_once(conn.query_raw("SELECT 1", &[] as pgkeel::Params), way_out).await;

        // The stream goes on where it was.
        let rest: Vec<i32> = stream.map(|r| r.unwrap().get::<_, i32>(0)).collect().await;
        assert_eq!(rest, (2..=10).collect::<Vec<_>>());
        assert_eq!(count(&conn).await.unwrap(), 0);
        assert!(!conn.is_broken());
    });
    task.await.unwrap();
}

#[tokio::test]

async fn exhausted_row_stream_does_not_stop_its_task_from_using_the_connection() {
    let (_db, conn) = db_with_table().await;
    let task = tokio::spawn(async move {
        let mut stream = conn
            .query_raw_batched("SELECT g FROM generate_series(1, 3) g", &[], 2)
            .await
            .unwrap();
        let mut seen = Vec::new();
        while let Some(row) = stream.next().await {
            seen.push(row.unwrap().get::<_, i32>(0));
            // Once the last batch is in, the stream has released the wire.
        }
        assert_eq!(seen, vec![1, 2, 3]);
        // The stream is finished (and the wire free); the task still has it in scope.
        let got = tokio::time::timeout(Duration::from_secs(1), count(&conn))
            .await
            .expect("no lock is held, nothing to wait for");
        assert_eq!(got.unwrap(), 0);
        drop(stream);
    });
    task.await.unwrap();
}

#[tokio::test]
async fn second_transaction_from_the_same_task_is_misuse() {
    let (_db, conn) = db_with_table().await;
    let task = tokio::spawn(async move {
        let tx = conn.transaction().await.unwrap();
        misuse_at_once(conn.transaction(), "run it through the transaction").await;
        misuse_at_once(
            conn.build_transaction().read_only(true).start(),
            "run it through the transaction",
        )
        .await;
        tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
        tx.commit().await.unwrap();
        // After the first ended, a second one is fine.
        let tx = conn.transaction().await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(count(&conn).await.unwrap(), 1);
    });
    task.await.unwrap();
}

#[tokio::test]
async fn second_transaction_from_another_task_waits_for_the_first() {
    let (_db, conn) = db_with_table().await;
    let (began_tx, began_rx) = oneshot::channel();
    let (commit_tx, commit_rx) = oneshot::channel::<()>();
    let a = tokio::spawn({
        let conn = conn.clone();
        async move {
            let tx = conn.transaction().await?;
            tx.execute("INSERT INTO t VALUES (1)", &[]).await?;
            began_tx.send(()).unwrap();
            commit_rx.await.unwrap();
            tx.commit().await
        }
    });
    began_rx.await.unwrap();
    let mut b = tokio::spawn({
        let conn = conn.clone();
        async move {
            let tx = conn.transaction().await?;
            let n: i64 = tx.query_one("SELECT count(*) FROM t", &[]).await?.get(0);
            tx.execute("INSERT INTO t VALUES (2)", &[]).await?;
            tx.commit().await?;
            Ok::<_, Error>(n)
        }
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut b)
            .await
            .is_err(),
        "B's transaction began while A's was open"
    );
    commit_tx.send(()).unwrap();
    a.await.unwrap().unwrap();
    assert_eq!(b.await.unwrap().unwrap(), 1, "B began after A committed");
    assert_eq!(count(&conn).await.unwrap(), 2);
}

#[tokio::test]
async fn a_transaction_moved_to_another_task_moves_its_holder_mark() {
    let (_db, conn) = db_with_table().await;
    let (tx_send, tx_recv) = oneshot::channel();
    let (used_tx, used_rx) = oneshot::channel();
    let (commit_tx, commit_rx) = oneshot::channel::<()>();
    let opener = tokio::spawn({
        let conn = conn.clone();
        async move {
            let tx = conn.transaction().await.unwrap();
            tx_send.send(tx).unwrap();
            used_rx.await.unwrap();
            // The transaction now belongs to another task: this task waits like any other.
            count(&conn).await
        }
    });
    let user = tokio::spawn(async move {
        let tx = tx_recv.await.unwrap();
        tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
        used_tx.send(()).unwrap();
        commit_rx.await.unwrap();
        tx.commit().await.unwrap();
    });
    let mut opener = opener;
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut opener)
            .await
            .is_err(),
        "the opener waits for the lock like any other task"
    );
    commit_tx.send(()).unwrap();
    user.await.unwrap();
    assert_eq!(opener.await.unwrap().unwrap(), 1);
}

/// A row stream dropped between batches hands its lock to a cleanup task, then clears
/// the connection's holder mark. If the cleanup finishes and another task takes the lock
/// (and sets its own mark) before that clear, the other task's mark is wiped, and its
/// direct call deadlocks instead of failing with Misuse. A large buffered batch makes
/// the drop slow enough to lose that race every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]

async fn dropping_a_row_stream_does_not_clear_the_next_holders_mark() {
    let (_db, conn) = db_with_table().await;
    let mut stream = conn
        .query_raw_batched("SELECT g FROM generate_series(1, 400000) g", &[], 200_000)
        .await
        .unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap().get::<_, i32>(0), 1);

    let (dropped_tx, dropped_rx) = oneshot::channel::<()>();
    let b = tokio::spawn({
        let conn = conn.clone();
        async move {
            let tx = conn.transaction().await.unwrap();
            // Call directly only once the stream's drop has fully returned.
            dropped_rx.await.unwrap();
            let direct = tokio::time::timeout(Duration::from_secs(1), count(&conn)).await;
            drop(tx);
            direct
        }
    });
    // Let B queue on the lock (not a correctness wait: without it the race is just lost).
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Dropped here, off the worker threads, so the cleanup task starts on a worker at
    // once while this thread is still dropping the buffered rows.
    drop(stream);
    dropped_tx.send(()).unwrap();
    match b.await.unwrap() {
        Ok(Err(e)) => assert_misuse(&e, "run it through the transaction"),
        Ok(Ok(n)) => panic!("B's direct call ran inside its own transaction's lock: {n}"),
        Err(_) => panic!("B's direct call waited for B's own transaction (holder mark lost)"),
    }
}
