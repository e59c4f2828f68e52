//! The server restarted under a pool in use: calls during the outage fail with
//! connection errors (never hang, never a wrong result), and once the server is back the
//! very first call succeeds with no manual action, because idle connections the restart
//! killed are found dead on checkout and replaced.
//!
//! These tests restart the server, so each starts its own cluster instead of the shared one.

use crate::common;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgkeel::{Error, ErrorKind, Pool};
use pgkeel_testkit::Cluster;

const APP: &str = "pool_restart";

/// A cluster of its own, or None (with a message) when `PGKEEL_TEST_URL` names an
/// external server, which cannot be stopped from here.
async fn own_cluster() -> Option<Arc<Cluster>> {
    let cluster = tokio::task::spawn_blocking(Cluster::start)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    if cluster.is_external() {
        eprintln!("skipped: needs a throwaway cluster, but PGKEEL_TEST_URL is set");
        return None;
    }
    Some(Arc::new(cluster))
}

/// Runs a blocking cluster operation off the runtime thread, so the runtime keeps
/// polling its sockets meanwhile, as it would in an application.
async fn on_cluster<F>(cluster: &Arc<Cluster>, what: &str, f: F)
where
    F: FnOnce(&Cluster) -> Result<(), pgkeel_testkit::TestkitError> + Send + 'static,
{
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || f(&c))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

fn pool_for(cluster: &Cluster) -> Pool {
    let base = cluster.url(cluster.superuser(), "postgres");
    let url = common::with_param(&base, &format!("application_name={APP}"));
    Pool::builder(url)
        .max_size(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

/// Checks out all four connections at once, runs a query on each and returns them idle;
/// returns their backend pids.
async fn warm(pool: &Pool) -> Vec<i32> {
    let (a, b, c, d) = tokio::join!(pool.get(), pool.get(), pool.get(), pool.get());
    let conns = [a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap()];
    let mut pids = Vec::new();
    for conn in &conns {
        let row = conn.query_one("SELECT pg_backend_pid()", &[]).await;
        pids.push(row.unwrap().get::<_, i32>(0));
    }
    drop(conns);
    assert_eq!(pool.status().idle, 4);
    pids
}

/// A connection error: the server is gone or went away mid-call.
fn assert_connection_error(e: &Error, during: &str) {
    eprintln!("{during}: {:?} {e}", e.kind());
    assert!(
        e.kind() == ErrorKind::Io || e.is_connection_fatal(),
        "{during}: not a connection error: {e} ({:?}, code {:?})",
        e.kind(),
        e.code()
    );
}

/// The server's answer to `SELECT $1::int8` through the pool.
async fn echo(pool: &Pool, v: i64) -> Result<i64, Error> {
    Ok(pool.query_one("SELECT $1::int8", &[&v]).await?.get(0))
}

#[tokio::test]
async fn idle_connections_killed_by_a_restart_are_replaced_and_the_first_call_succeeds() {
    let Some(cluster) = own_cluster().await else {
        return;
    };
    let pool = pool_for(&cluster);
    let old = warm(&pool).await;

    on_cluster(&cluster, "restart", Cluster::restart).await;

    // No manual action, no retry: the very first call works.
    assert_eq!(
        echo(&pool, 1)
            .await
            .expect("the first call after a restart"),
        1
    );
    let conn = pool.get().await.unwrap();
    let pid: i32 = conn
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!old.contains(&pid), "backend {pid} survived the restart?");
    drop(conn);
    for i in 0..20 {
        assert_eq!(echo(&pool, i).await.unwrap(), i);
    }
    let s = pool.status();
    assert_eq!(
        s.evicted_health_check, 4,
        "all four found dead on checkout: {s:?}"
    );
    assert!(s.adds_up(), "{s:?}");
    assert_eq!(s.in_use, 0, "{s:?}");
}

#[tokio::test]
async fn calls_during_an_outage_fail_with_connection_errors_and_work_again_after_it() {
    let Some(cluster) = own_cluster().await else {
        return;
    };
    let pool = pool_for(&cluster);
    warm(&pool).await;
    let held = pool.get().await.unwrap();
    held.query("SELECT 1", &[]).await.unwrap();

    on_cluster(&cluster, "stop", Cluster::stop_server).await;

    // The checked-out connection: its session was terminated.
    let err = held
        .query("SELECT 1", &[])
        .await
        .expect_err("the server is down");
    assert_connection_error(&err, "on a checked-out connection");
    drop(held);

    // New calls: the idle connections are dead and no new one can be opened.
    for i in 0..5 {
        let started = Instant::now();
        let err = echo(&pool, i).await.expect_err("the server is down");
        assert_connection_error(&err, &format!("call {i} during the outage"));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "call {i} took {:?} to fail",
            started.elapsed()
        );
    }
    let runs = std::sync::atomic::AtomicU32::new(0);
    let err = pool
        .transaction(async |tx| {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tx.execute("SELECT 1", &[]).await
        })
        .await
        .expect_err("the server is down");
    assert_connection_error(&err, "pool.transaction during the outage");
    assert_eq!(runs.into_inner(), 0, "the closure needs a connection first");
    let s = pool.status();
    assert!(s.connect_failures >= 5, "{s:?}");
    assert_eq!((s.in_use, s.idle), (0, 0), "{s:?}");
    assert!(s.adds_up(), "{s:?}");

    on_cluster(&cluster, "start", Cluster::start_server).await;

    assert_eq!(
        echo(&pool, 1)
            .await
            .expect("the first call after the outage"),
        1
    );
    let tasks: Vec<_> = (0..50i64)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { echo(&pool, i).await })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap().unwrap(), i as i64);
    }
    let s = pool.status();
    assert!(s.adds_up(), "{s:?}");
    assert_eq!((s.in_use, s.waiting), (0, 0), "{s:?}");
}

#[tokio::test]

async fn the_first_call_after_a_restart_succeeds_even_if_the_runtime_was_busy_meanwhile() {
    let Some(cluster) = own_cluster().await else {
        return;
    };
    let pool = pool_for(&cluster);
    let old = warm(&pool).await;

    // Blocks this (only) runtime thread: the server's FATAL messages and FINs arrive
    // while the reactor is not polled, as when an application's runtime is busy.
    cluster.restart().unwrap();

    let first = echo(&pool, 1).await;
    assert_eq!(
        first.as_ref().ok(),
        Some(&1),
        "the first call after a restart: {first:?} ({:?})",
        pool.status()
    );
    let pid: i32 = pool
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!old.contains(&pid));
}
