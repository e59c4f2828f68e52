//! Faults from the server's side: backends terminated idle, mid-query and
//! mid-transaction, killed with SIGKILL, the server restarted in immediate mode under
//! write load, server-side timeouts, and a pool dropped with connections checked out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common;
use pgkeel::{Connection, ErrorKind, Pool};
use pgkeel_testkit::{Cluster, ClusterBuilder, TestDb, WriteLedger};

async fn terminate(watcher: &Connection, pid: i32) {
    let row = watcher
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "backend {pid} was not there");
}

async fn pid_of(conn: &Connection) -> i32 {
    conn.query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

/// An idle pooled connection whose backend was terminated is replaced at checkout:
/// the caller never sees the dead one.
#[tokio::test]
async fn a_terminated_idle_pooled_connection_is_replaced_unseen() {
    let (db, watcher) = common::db().await;
    let pool = Pool::builder(db.url()).max_size(2).build().unwrap();
    let pid = pid_of(&pool.get().await.unwrap()).await;
    terminate(&watcher, pid).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let conn = pool.get().await.unwrap();
    let new_pid = pid_of(&conn).await;
    assert_ne!(new_pid, pid);
    assert!(pool.status().adds_up(), "{:?}", pool.status());
}

/// A backend terminated mid-query: the query fails at once with the server's own
/// FATAL 57P01, later calls say the connection is gone, and the pool evicts it.
#[tokio::test]
async fn a_backend_terminated_mid_query_fails_with_57p01_and_is_evicted() {
    let (db, watcher) = common::db().await;
    let pool = Pool::builder(db.url()).max_size(1).build().unwrap();
    let conn = pool.get().await.unwrap();
    let pid = pid_of(&conn).await;
    let slow = tokio::spawn(async move {
        let started = Instant::now();
        let err = conn
            .query_one("SELECT pg_sleep(30)", &[])
            .await
            .unwrap_err();
        let again = conn.query_one("SELECT 1", &[]).await.unwrap_err();
        (err, again, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = Instant::now();
    terminate(&watcher, pid).await;
    let (err, again, _) = slow.await.unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(err.code(), Some("57P01"), "{err}");
    assert!(
        matches!(again.kind(), ErrorKind::Closed | ErrorKind::Broken),
        "{again}"
    );
    let fresh = pool.get().await.unwrap();
    assert_ne!(pid_of(&fresh).await, pid);
}

/// A backend terminated inside a transaction: the commit fails (never reported as
/// success), nothing of the transaction is in the table, and earlier commits stay.
#[tokio::test]
async fn a_backend_terminated_mid_transaction_commits_nothing_and_says_so() {
    let (db, watcher) = common::db().await;
    let ledger = WriteLedger::create(&db, "ledger").unwrap();
    let pool = Pool::builder(db.url()).max_size(1).build().unwrap();
    let before = ledger.next_id();
    let done = async {
        let tx = pool.begin().await?;
        tx.execute(ledger.insert_sql().as_str(), &[&before]).await?;
        tx.commit().await
    }
    .await;
    ledger.record(before, &done);
    let id = ledger.next_id();
    let tx = pool.begin().await.unwrap();
    tx.execute(ledger.insert_sql().as_str(), &[&id])
        .await
        .unwrap();
    let pid = tx
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    terminate(&watcher, pid).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let result = tx.commit().await;
    assert!(
        result.is_err(),
        "a commit on a terminated backend succeeded"
    );
    ledger.record(id, &result);
    let report = ledger.check(&db).unwrap();
    report.assert_clean();
    // The answer to COMMIT is the backend's FATAL 57P01: the driver cannot tell whether
    // it came before or after the commit record, so it says the outcome is unknown.
    assert_eq!(
        (report.committed, report.unknown, report.unknown_committed),
        (1, 1, 0),
        "{report:?}"
    );
    pool.query_one("SELECT 1", &[]).await.unwrap();
}

/// `statement_timeout` cancels the statement, not the session: the connection stays.
#[tokio::test]
async fn statement_timeout_keeps_the_connection() {
    let db = TestDb::new();
    let pool = Pool::builder(common::with_param(
        &db.url(),
        "options=-c%20statement_timeout%3D100",
    ))
    .max_size(1)
    .build()
    .unwrap();
    let conn = pool.get().await.unwrap();
    let pid = pid_of(&conn).await;
    let err = conn.query_one("SELECT pg_sleep(5)", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some("57014"), "{err}");
    assert_eq!(pid_of(&conn).await, pid);
    drop(conn);
    assert_eq!(pid_of(&pool.get().await.unwrap()).await, pid, "evicted");
}

/// `idle_in_transaction_session_timeout` ends the session: the transaction's next
/// statement fails with the server's reason, and the pool replaces the connection.
#[tokio::test]
async fn idle_in_transaction_session_timeout_ends_the_session_and_the_pool_replaces_it() {
    let db = TestDb::new();
    let url = common::with_param(
        &db.url(),
        "options=-c%20idle_in_transaction_session_timeout%3D200",
    );
    let pool = Pool::builder(url).max_size(1).build().unwrap();
    let tx = pool.begin().await.unwrap();
    let pid: i32 = tx
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let err = tx.query_one("SELECT 1", &[]).await.unwrap_err();
    assert!(
        err.code() == Some("25P03") || matches!(err.kind(), ErrorKind::Closed | ErrorKind::Io),
        "{err} ({:?})",
        err.kind()
    );
    drop(tx);
    let conn = pool.get().await.unwrap();
    assert_ne!(pid_of(&conn).await, pid);
}

/// `idle_session_timeout` (PostgreSQL 14+) closes idle sessions: the pool notices at
/// checkout and the caller gets a live connection.
#[tokio::test]
async fn idle_session_timeout_is_invisible_to_pool_users() {
    let db = TestDb::new();
    let url = common::with_param(&db.url(), "options=-c%20idle_session_timeout%3D200");
    let pool = Pool::builder(url).max_size(2).build().unwrap();
    let first = pid_of(&pool.get().await.unwrap()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..3 {
        let conn = pool.get().await.unwrap();
        assert_ne!(pid_of(&conn).await, first);
    }
}

/// A session the server closed while idle (`idle_session_timeout`): the next call, a
/// pipelined one too, fails as a lost connection (the server's FATAL 57P05, or closed),
/// never as a protocol error, and the connection is broken.
#[tokio::test]
async fn a_call_on_a_session_closed_while_idle_fails_as_a_lost_connection() {
    let db = TestDb::new();
    let url = common::with_param(&db.url(), "options=-c%20idle_session_timeout%3D200");
    for pipelined in [true, false] {
        let conn = Connection::connect(&url).await.unwrap();
        let sql = "SELECT $1::int8";
        if pipelined {
            conn.query_one(sql, &[&1i64]).await.unwrap(); // prepared: the next call pipelines
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let err = conn.query_one(sql, &[&2i64]).await.unwrap_err();
        assert!(
            err.code() == Some("57P05")
                || matches!(
                    err.kind(),
                    ErrorKind::Closed | ErrorKind::Io | ErrorKind::Broken
                ),
            "pipelined {pipelined}: {err} ({:?})",
            err.kind()
        );
        assert!(conn.is_broken(), "pipelined {pipelined}");
    }
}

/// A pool dropped while connections are checked out: once those are dropped too, no
/// backend with the pool's application_name is left and no descriptor is leaked.
#[tokio::test]
async fn a_pool_dropped_with_connections_checked_out_leaves_nothing_behind() {
    let (db, watcher) = common::db().await;
    let app = format!("leak_{}", db.name());
    let pool = Pool::builder(common::with_param(
        &db.url(),
        &format!("application_name={app}"),
    ))
    .max_size(4)
    .build()
    .unwrap();
    // Warm everything the test itself opens, then count descriptors.
    drop(futures::future::join_all((0..4).map(|_| pool.get())).await);
    let fds_before = open_fds();
    let held: Vec<_> = futures::future::join_all((0..3).map(|_| pool.get()))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let tx_conn = pool.get().await.unwrap();
    let tx = tx_conn.transaction().await.unwrap();
    drop(pool);
    drop(held);
    drop(tx);
    drop(tx_conn);
    let deadline = Instant::now() + Duration::from_secs(1);
    let left = loop {
        let n: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&app],
            )
            .await
            .unwrap()
            .get(0);
        if n == 0 || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(left, 0, "backends left behind");
    let fds_after = open_fds();
    assert!(
        fds_after <= fds_before - 4 + 1,
        "descriptors: {fds_before} before, {fds_after} after"
    );
}

/// Descriptors this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// A cluster of this test's own, for faults that hit every session on it, with the
/// durability the test kit's clusters normally turn off for speed: an acknowledged
/// commit must survive a crash of the server.
fn own_cluster() -> Arc<Cluster> {
    let cluster = ClusterBuilder::new()
        .setting("fsync", "on")
        .setting("synchronous_commit", "on")
        .setting("full_page_writes", "on")
        .start()
        .expect("start a cluster");
    Arc::new(cluster)
}

/// Writes in transactions from four tasks until `stop`, recording every answer.
fn write_load(
    pool: &Pool,
    ledger: &Arc<WriteLedger>,
    stop: Instant,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..4)
        .map(|_| {
            let (pool, ledger) = (pool.clone(), ledger.clone());
            tokio::spawn(async move {
                while Instant::now() < stop {
                    let id = ledger.next_id();
                    let result = async {
                        let tx = pool.begin().await?;
                        tx.execute(ledger.insert_sql().as_str(), &[&id]).await?;
                        tx.commit().await
                    }
                    .await;
                    if ledger.record(id, &result) != pgkeel_testkit::WriteOutcome::Committed {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            })
        })
        .collect()
}

/// Waits until a query on the pool succeeds; returns how long that took.
async fn until_healthy(pool: &Pool) -> Duration {
    let started = Instant::now();
    while pool.query_one("SELECT 1", &[]).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "pool never recovered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

/// Runs transactional writes from four tasks through a pool of four on a durable
/// cluster of its own for `secs`, with `fault` injected 800 ms in; returns the ledger
/// check and how long the pool took to serve again once `fault` returned (which it does
/// when the server accepts connections again).
async fn under_write_load<F, Fut>(secs: u64, fault: F) -> (pgkeel_testkit::LedgerReport, Duration)
where
    F: FnOnce(Arc<Cluster>, String, Pool) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let cluster = own_cluster();
    let db = cluster.create_database().unwrap();
    let url = cluster.url(cluster.superuser(), &db);
    let ledger = Arc::new(WriteLedger::create_on(&cluster, &db, "ledger").unwrap());
    let pool = Pool::builder(url.as_str())
        .max_size(4)
        .acquire_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let stop = Instant::now() + Duration::from_secs(secs);
    let tasks = write_load(&pool, &ledger, stop);
    tokio::time::sleep(Duration::from_millis(800)).await;
    fault(cluster.clone(), db.clone(), pool.clone()).await;
    let healthy = until_healthy(&pool).await;
    for t in tasks {
        t.await.unwrap();
    }
    (ledger.check_on(&cluster, &db).unwrap(), healthy)
}

/// `kill -9` of one backend makes the postmaster end every session and recover: under
/// write load, no acknowledged commit is lost, and the pool serves within a second of
/// the server accepting connections again.
#[tokio::test]
async fn sigkill_of_a_backend_under_write_load_loses_no_acknowledged_commit() {
    let (report, healthy) = under_write_load(3, |cluster, db, pool| async move {
        let pid = pid_of(&pool.get().await.unwrap()).await;
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        let ready = server_ready(&cluster, &db).await;
        println!("kill -9: server ready after {ready:?}");
    })
    .await;
    println!("kill -9: {report:?}; pool healthy {healthy:?} after the server");
    report.assert_clean();
    assert!(report.committed > 0 && report.failed > 0, "{report:?}");
    assert!(
        healthy < Duration::from_secs(1),
        "pool healthy {healthy:?} after the server"
    );
}

/// `pg_ctl restart -m immediate` under write load: the same guarantees.
#[tokio::test]
async fn immediate_restart_under_write_load_loses_no_acknowledged_commit() {
    let (report, healthy) = under_write_load(4, |cluster, _, _| async move {
        tokio::task::spawn_blocking(move || cluster.restart_with_mode("immediate"))
            .await
            .unwrap()
            .unwrap();
    })
    .await;
    println!("restart -m immediate: {report:?}; pool healthy {healthy:?} after the server");
    report.assert_clean();
    assert!(report.committed > 0 && report.failed > 0, "{report:?}");
    assert!(
        healthy < Duration::from_secs(1),
        "pool healthy {healthy:?} after the server"
    );
}

/// Polls with psql until the server accepts connections again; returns how long.
async fn server_ready(cluster: &Arc<Cluster>, db: &str) -> Duration {
    let started = Instant::now();
    // Let the postmaster notice the crash and start ending sessions first.
    tokio::time::sleep(Duration::from_millis(50)).await;
    loop {
        let (c, d) = (cluster.clone(), db.to_owned());
        let ok = tokio::task::spawn_blocking(move || c.psql(&d, "SELECT 1").is_ok())
            .await
            .unwrap();
        if ok {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server never came back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A query abandoned just around its completion, 1,000 times, under the Recover policy
/// (the connection is kept, and its cancel may land late): the next query on that same
/// connection never receives an innocent 57014. The first call of the statement is
/// abandoned through the locked path (recovered); later ones through the pipeline.
#[tokio::test]
async fn a_cancel_racing_completion_never_hits_the_next_query() {
    let db = TestDb::new();
    let pool = Pool::builder(db.url())
        .max_size(1)
        .abandon_policy(pgkeel::pool::AbandonPolicy::Recover)
        .build()
        .unwrap();
    let mut abandoned = 0;
    for i in 0..1000u64 {
        {
            let conn = pool.get().await.unwrap();
            let limit = Duration::from_micros(200 + (i * 7919) % 2500);
            let n = i as i64;
            let params: [&(dyn pgkeel::ToSql + Sync); 1] = [&n];
            let q = conn.query_one("SELECT pg_sleep(0.001), $1::int8", &params);
            if tokio::time::timeout(limit, q).await.is_err() {
                abandoned += 1;
            }
        }
        let n = i as i64;
        let row = pool
            .query_one("SELECT $1::int8", &[&n])
            .await
            .unwrap_or_else(|e| panic!("round {i}: {e}"));
        assert_eq!(row.get::<_, i64>(0), n);
    }
    let s = pool.status();
    println!(
        "{abandoned} abandoned, {} recovered, {} evicted broken",
        s.recovered, s.evicted_broken
    );
    assert!(abandoned > 50, "{abandoned} abandoned; {s:?}");
}
