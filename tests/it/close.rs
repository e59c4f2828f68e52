//! `close()`: prompt even when another task is busy on the connection, idempotent, and
//! every later call fails with `ErrorKind::Closed`; dropping the last handle never blocks.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{backend_state, wait_query_gone};
use futures::StreamExt;
use pgkeel::{Connection, ErrorKind};
use tokio::sync::oneshot;

/// Waits until backend `pid` is gone from `pg_stat_activity`.
async fn wait_gone(watcher: &Connection, pid: i32, within: Duration) {
    let deadline = Instant::now() + within;
    while let Some(state) = backend_state(watcher, pid).await {
        assert!(
            Instant::now() < deadline,
            "backend {pid} still there ({state:?})"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until some backend of the watcher's database runs a query containing `needle`.
async fn wait_running(watcher: &Connection, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
                 AND datname = current_database() AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()",
                &[&needle],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{needle} never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Asserts every kind of call fails with Closed at once.
async fn assert_closed(conn: &Connection) {
    let started = Instant::now();
    let errors = [
        conn.query("SELECT 1", &[]).await.unwrap_err(),
        conn.execute("SELECT 1", &[]).await.unwrap_err(),
        conn.simple_query("SELECT 1").await.unwrap_err(),
        conn.prepare("SELECT 1").await.unwrap_err(),
        conn.transaction().await.unwrap_err(),
        conn.query_raw("SELECT 1", &[] as pgkeel::Params)
            .await
            .unwrap_err(),
    ];
    for err in errors {
        assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    }
    assert!(started.elapsed() < Duration::from_millis(50));
    assert!(conn.is_closed());
}

#[tokio::test]
async fn close_on_a_connection_busy_in_another_task_returns_within_a_second() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let pid = conn.backend_pid();
    let busy = tokio::spawn({
        let conn = conn.clone();
        async move {
            let result = conn
                .query("SELECT pg_sleep(30) /* close_busy */", &[])
                .await;
            (result, Instant::now())
        }
    });
    wait_running(&watcher, "/* close_busy */").await;

    let started = Instant::now();
    conn.close().await.unwrap();
    let closed_at = Instant::now();
    assert!(
        closed_at - started < Duration::from_secs(1),
        "close took {:?}",
        closed_at - started
    );

    let (result, failed_at) = tokio::time::timeout(Duration::from_secs(1), busy)
        .await
        .expect("the busy call ended promptly")
        .unwrap();
    let err = result.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Closed | ErrorKind::Broken),
        "{err}"
    );
    assert!(failed_at.saturating_duration_since(closed_at) < Duration::from_millis(500));
    assert_closed(&conn).await;

    wait_query_gone(&watcher, "/* close_busy */", Duration::from_secs(1))
        .await
        .unwrap();
    wait_gone(&watcher, pid, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn close_is_idempotent() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let pid = conn.backend_pid();
    conn.close().await.unwrap();
    conn.close().await.unwrap();
    conn.clone().close().await.unwrap();
    assert_closed(&conn).await;
    wait_gone(&watcher, pid, Duration::from_secs(1)).await;
    conn.close().await.unwrap();
}

#[tokio::test]
async fn closing_an_idle_connection_ends_the_session() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let pid = conn.backend_pid();
    assert_eq!(backend_state(&watcher, pid).await.as_deref(), Some("idle"));
    let started = Instant::now();
    conn.close().await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_closed(&conn).await;
    wait_gone(&watcher, pid, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn close_while_another_task_holds_an_idle_transaction_ends_it_without_committing() {
    let (db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (id int4)")
        .await
        .unwrap();
    let watcher = common::connect(&db).await;
    let pid = conn.backend_pid();
    let (began_tx, began_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let holder = tokio::spawn({
        let conn = conn.clone();
        async move {
            let tx = conn.transaction().await.unwrap();
            tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
            began_tx.send(()).unwrap();
            go_rx.await.unwrap();
            let after = tx.execute("INSERT INTO t VALUES (2)", &[]).await;
            let commit = tx.commit().await;
            (after, commit)
        }
    });
    began_rx.await.unwrap();
    let started = Instant::now();
    conn.close().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    go_tx.send(()).unwrap();
    let (after, commit) = holder.await.unwrap();
    assert_eq!(after.unwrap_err().kind(), ErrorKind::Closed);
    let commit = commit.unwrap_err();
    assert!(commit.is_connection_fatal(), "{commit}");
    wait_gone(&watcher, pid, Duration::from_secs(1)).await;
    let n: i64 = watcher
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "nothing was committed");
}

#[tokio::test]
async fn close_from_the_task_holding_a_transaction_returns_at_once() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let pid = conn.backend_pid();
    tokio::spawn(async move {
        let tx = conn.transaction().await.unwrap();
        let started = Instant::now();
        conn.close().await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(100));
        let err = tx.query("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Closed);
        drop(tx);
        assert_closed(&conn).await;
    })
    .await
    .unwrap();
    wait_gone(&watcher, pid, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn close_from_the_task_holding_a_row_stream_ends_the_stream() {
    let (_db, conn) = common::db().await;
    tokio::spawn(async move {
        let mut stream = conn
            .query_raw_batched("SELECT g FROM generate_series(1, 10) g", &[], 2)
            .await
            .unwrap();
        stream.next().await.unwrap().unwrap();
        let started = Instant::now();
        conn.close().await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(100));
        // The buffered row may still come; the next batch cannot.
        let mut last = None;
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                last = Some(e);
                break;
            }
        }
        let err = last.expect("the stream ends with an error, not as if complete");
        assert!(
            matches!(err.kind(), ErrorKind::Closed | ErrorKind::Broken),
            "{err}"
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn dropping_the_last_handle_does_not_block_and_ends_the_session() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let pid = conn.backend_pid();
    conn.execute("SELECT 1", &[]).await.unwrap();
    let started = Instant::now();
    drop(conn);
    assert!(started.elapsed() < Duration::from_millis(50));
    wait_gone(&watcher, pid, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn dropping_the_last_handle_while_a_stream_holds_the_wire_does_not_block() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let pid = conn.backend_pid();
    let mut stream = conn
        .query_raw_batched("SELECT g FROM generate_series(1, 10) g", &[], 2)
        .await
        .unwrap();
    let started = Instant::now();
    drop(conn);
    assert!(started.elapsed() < Duration::from_millis(50));
    // The stream owns the wire and reads on to its end.
    let rows: Vec<i32> = (&mut stream)
        .map(|r| r.unwrap().get::<_, i32>(0))
        .collect()
        .await;
    assert_eq!(rows, (1..=10).collect::<Vec<_>>());
    drop(stream);
    wait_gone(&watcher, pid, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn dropping_the_last_handle_while_a_transaction_is_open_does_not_block_or_commit() {
    let (db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (id int4)")
        .await
        .unwrap();
    let watcher = common::connect(&db).await;
    let pid = conn.backend_pid();
    let tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    let started = Instant::now();
    drop(conn);
    assert!(started.elapsed() < Duration::from_millis(50));
    drop(tx);
    wait_gone(&watcher, pid, Duration::from_secs(1)).await;
    let n: i64 = watcher
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}
