//! A query future dropped mid-exchange breaks its connection at once, and the server is
//! sent a CancelRequest so the abandoned query stops; one dropped while still waiting
//! for the wire lock leaves nothing behind.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{Cancellable, Outcome};
use pgkeel::{Connection, ErrorKind};

/// How long the next call on a broken connection may take to say so.
const FAIL_FAST: Duration = Duration::from_millis(100);
/// How long the server may take to stop a query we abandoned.
const CANCEL_WITHIN: Duration = Duration::from_secs(1);

/// Every kind of call on `conn` fails fast with `ErrorKind::Broken`, and never with rows.
async fn assert_every_call_is_broken(conn: &Connection) {
    let started = Instant::now();
    let err = conn
        .query("SELECT 1", &[])
        .await
        .expect_err("a broken connection must not return rows");
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Broken, "{err}");
    assert!(took < FAIL_FAST, "the next call took {took:?} to fail");
    assert!(err.is_connection_fatal());

    let err = conn.query_one("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken, "{err}");
    let err = conn.execute("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken, "{err}");
    let err = conn.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken, "{err}");
    let err = conn.prepare("SELECT 1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken, "{err}");
    let err = conn.transaction().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken, "{err}");
    assert!(
        started.elapsed() < FAIL_FAST * 2,
        "calls on a broken connection took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_query_dropped_by_timeout_breaks_the_connection_and_is_cancelled_on_the_server() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let clone_before = conn.clone();
    let sql = "SELECT pg_sleep(5) /* dropped_by_timeout */";

    let result = tokio::time::timeout(Duration::from_millis(50), conn.query(sql, &[])).await;
    assert!(result.is_err(), "expected Elapsed, got {result:?}");

    assert!(conn.is_broken());
    assert!(!conn.is_closed());
    assert_every_call_is_broken(&conn).await;
    assert!(clone_before.is_broken(), "clones share the broken flag");
    assert_every_call_is_broken(&clone_before).await;
    let clone_after = conn.clone();
    assert!(clone_after.is_broken());
    assert_every_call_is_broken(&clone_after).await;

    common::wait_query_gone(&watcher, "dropped_by_timeout", CANCEL_WITHIN)
        .await
        .expect("the CancelRequest must stop the abandoned pg_sleep within 1 s");
    // The socket is closed too, so the session itself goes away.
    common::wait_quiet(&watcher, conn.backend_pid(), Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_query_dropped_by_select_breaks_the_connection_and_is_cancelled_on_the_server() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let sql = "SELECT pg_sleep(5) /* dropped_by_select */";
    tokio::select! {
        r = conn.query(sql, &[]) => panic!("pg_sleep(5) finished first: {r:?}"),
        () = tokio::time::sleep(Duration::from_millis(50)) => {}
    }
    assert!(conn.is_broken());
    assert_every_call_is_broken(&conn).await;
    common::wait_query_gone(&watcher, "dropped_by_select", CANCEL_WITHIN)
        .await
        .expect("the CancelRequest must stop the abandoned pg_sleep within 1 s");
}

#[tokio::test]
async fn a_query_in_an_aborted_task_breaks_the_connection_and_is_cancelled_on_the_server() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let task = {
        let conn = conn.clone();
        tokio::spawn(async move {
            conn.execute("SELECT pg_sleep(5) /* dropped_by_abort */", &[])
                .await
        })
    };
    // Abort only once the query runs on the server.
    wait_query_running(&watcher, "dropped_by_abort").await;
    task.abort();
    let joined = task.await;
    assert!(joined.unwrap_err().is_cancelled());
    assert!(conn.is_broken());
    assert_every_call_is_broken(&conn).await;
    common::wait_query_gone(&watcher, "dropped_by_abort", CANCEL_WITHIN)
        .await
        .expect("the CancelRequest must stop the abandoned pg_sleep within 1 s");
}

/// Waits (up to 5 s) until some backend of the watcher's database actively runs a
/// query containing `needle`.
async fn wait_query_running(watcher: &Connection, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let running: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
                 AND datname = current_database() AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()",
                &[&needle],
            )
            .await
            .unwrap()
            .get(0);
        if running > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{needle:?} never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_query_dropped_while_waiting_for_the_wire_lock_leaves_the_connection_healthy() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    conn.batch_execute("CREATE TABLE side_effects (n int4)")
        .await
        .unwrap();
    let holder = {
        let conn = conn.clone();
        tokio::spawn(async move {
            conn.query_one("SELECT pg_sleep(0.5) /* lock_holder */, 7::int4", &[])
                .await
        })
    };
    wait_query_running(&watcher, "lock_holder").await;

    // This one queues behind the holder and is dropped before it gets the lock.
    let waiter = tokio::time::timeout(
        Duration::from_millis(50),
        conn.execute("INSERT INTO side_effects VALUES (1)", &[]),
    )
    .await;
    assert!(waiter.is_err(), "expected Elapsed, got {waiter:?}");
    assert!(
        !conn.is_broken(),
        "nothing was written, so nothing is broken"
    );

    let row = holder
        .await
        .unwrap()
        .expect("the lock holder's query is undisturbed");
    assert_eq!(row.get::<_, i32>(1), 7);
    assert!(!conn.is_broken());
    let n: i64 = conn
        .query_one("SELECT count(*) FROM side_effects", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "the dropped INSERT never ran");
    let own: i32 = conn.query_one("SELECT 3::int4", &[]).await.unwrap().get(0);
    assert_eq!(own, 3, "the next call gets its own rows");
}

#[tokio::test]
async fn many_waiters_dropped_in_the_lock_queue_leave_the_connection_healthy() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let holder = {
        let conn = conn.clone();
        tokio::spawn(async move {
            conn.execute("SELECT pg_sleep(0.3) /* queue_holder */", &[])
                .await
        })
    };
    wait_query_running(&watcher, "queue_holder").await;
    let waiters: Vec<_> = (0..20i32)
        .map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move {
                // Odd waiters give up in the queue; even ones wait their turn.
                let limit = Duration::from_millis(if i % 2 == 1 { 20 } else { 10_000 });
                tokio::time::timeout(limit, conn.query_one("SELECT $1::int4", &[&i])).await
            })
        })
        .collect();
    for (i, w) in waiters.into_iter().enumerate() {
        match w.await.unwrap() {
            Ok(result) => {
                let got: i32 = result.expect("a queued query").get(0);
                assert_eq!(got, i as i32);
                assert_eq!(i % 2, 0, "waiter {i} should have given up");
            }
            Err(_) => assert_eq!(i % 2, 1, "waiter {i} should have finished"),
        }
    }
    holder.await.unwrap().unwrap();
    assert!(!conn.is_broken());
}

#[tokio::test]
async fn a_query_dropped_after_any_number_of_polls_leaves_the_connection_healthy_or_broken_never_confused()
 {
    let (db, _conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let (mut healthy_drops, mut broken_drops) = (0, 0);
    for polls in 0..20 {
        let conn = common::connect(&db).await;
        let sql = format!("SELECT pg_sleep(0.02) /* polls_{polls} */, $1::int8");
        let outcome = Cancellable::new(conn.query_one(sql.as_str(), &[&1i64]), polls).await;
        let done = match outcome {
            Outcome::Done(r) => {
                let v: i64 = r.expect("a finished query succeeds").get(1);
                assert_eq!(v, 1);
                true
            }
            Outcome::Dropped => false,
        };
        // Whatever happened, the next call gets its own answer or a Broken error.
        match conn
            .query_one("SELECT $1::int8 + 100", &[&(polls as i64)])
            .await
        {
            Ok(row) => {
                assert!(!conn.is_broken());
                assert_eq!(row.get::<_, i64>(0), polls as i64 + 100);
                healthy_drops += usize::from(!done);
            }
            Err(e) => {
                assert!(
                    !done,
                    "a finished query must leave the connection healthy: {e}"
                );
                assert_eq!(e.kind(), ErrorKind::Broken, "after {polls} polls: {e}");
                assert!(conn.is_broken());
                common::wait_query_gone(&watcher, &format!("polls_{polls} "), CANCEL_WITHIN)
                    .await
                    .unwrap();
                broken_drops += 1;
            }
        }
        if done {
            // Both paths were taken: dropped before the write, and mid-exchange.
            assert!(
                healthy_drops >= 1,
                "no drop happened before the request was written"
            );
            assert!(broken_drops >= 1, "no drop happened mid-exchange");
            return;
        }
    }
    panic!("the query never finished within 20 polls");
}

#[tokio::test]
async fn an_explicit_cancel_stops_the_running_query_with_57014_and_keeps_the_connection() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let runner = {
        let conn = conn.clone();
        tokio::spawn(async move {
            conn.query("SELECT pg_sleep(5) /* explicit_cancel */", &[])
                .await
        })
    };
    wait_query_running(&watcher, "explicit_cancel").await;
    let started = Instant::now();
    conn.cancel_token()
        .cancel_query()
        .await
        .expect("deliver the cancel");
    let err = runner.await.unwrap().unwrap_err();
    assert!(started.elapsed() < CANCEL_WITHIN, "{:?}", started.elapsed());
    assert_eq!(err.kind(), ErrorKind::Db, "{err}");
    assert_eq!(err.code(), Some("57014"), "{err}");
    // The exchange ran to its ReadyForQuery, so the session is still good.
    assert!(!conn.is_broken());
    let n: i32 = conn.query_one("SELECT 9::int4", &[]).await.unwrap().get(0);
    assert_eq!(n, 9);
}
