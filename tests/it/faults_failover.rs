//! A primary/standby promotion under write load, checked by the ledger: four tasks
//! write in transactions through a pool whose URL names both servers with
//! `target_session_attrs=read-write`; the primary stops (cleanly, or crashes with
//! synchronous replication on), the standby is promoted, the writes move over by
//! themselves, and every acknowledged commit is on the new primary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pgkeel::Pool;
use pgkeel_testkit::{ClusterBuilder, LedgerReport, TestkitError, WriteLedger, WriteOutcome};

/// Runs a blocking cluster step off the runtime threads.
async fn step<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T, TestkitError> + Send + 'static,
) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// What a promotion under load came to.
#[derive(Debug)]
struct Failover {
    report: LedgerReport,
    /// Commits acknowledged after the promotion returned: the writes moved over.
    committed_after: u64,
    /// From the primary's stop to the first commit on the new primary.
    outage: Duration,
}

/// Writes in transactions from four tasks until `stop`; counts the commits made after
/// `promoted` is set, and notes when the first of them was acknowledged.
fn writers(
    pool: &Pool,
    ledger: &Arc<WriteLedger>,
    stop: &Arc<AtomicBool>,
    promoted: &Arc<AtomicBool>,
    after: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<Option<Instant>>> {
    (0..4)
        .map(|_| {
            let (pool, ledger) = (pool.clone(), ledger.clone());
            let (stop, promoted, after) = (stop.clone(), promoted.clone(), after.clone());
            tokio::spawn(async move {
                let mut first_after = None;
                while !stop.load(Ordering::Relaxed) {
                    let id = ledger.next_id();
                    let result = async {
                        let tx = pool.begin().await?;
                        tx.execute(ledger.insert_sql().as_str(), &[&id]).await?;
                        tx.commit().await
                    }
                    .await;
                    let was_promoted = promoted.load(Ordering::Acquire);
                    match ledger.record(id, &result) {
                        WriteOutcome::Committed if was_promoted => {
                            after.fetch_add(1, Ordering::Relaxed);
                            first_after.get_or_insert_with(Instant::now);
                        }
                        WriteOutcome::Committed => {}
                        _ => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
                first_after
            })
        })
        .collect()
}

/// Starts a primary and a standby, writes through a pool for 1 s, stops the primary
/// with `mode`, promotes the standby, writes 2 s more, and checks the ledger on the new
/// primary. With `sync`, the primary waits for the standby's flush before acknowledging
/// a commit (`synchronous_standby_names = '*'`, and `synchronous_commit = on`, which the
/// test kit otherwise turns off for speed: without it this check finds lost commits).
async fn promotion_under_write_load(mode: &'static str, sync: bool) -> Option<Failover> {
    let commit = if sync { "on" } else { "off" };
    let start = move || {
        ClusterBuilder::new()
            .setting("synchronous_commit", commit)
            .start()
    };
    let primary = Arc::new(step("start the primary", start).await);
    if primary.is_external() {
        eprintln!("skipped: needs throwaway clusters, but PGKEEL_TEST_URL is set");
        return None;
    }
    let ledger = WriteLedger::create_on(&primary, "postgres", "ledger").unwrap();
    let ledger = Arc::new(ledger);
    let p = primary.clone();
    let standby = Arc::new(step("start a standby", move || p.start_standby()).await);
    if sync {
        primary
            .psql(
                "postgres",
                "ALTER SYSTEM SET synchronous_standby_names = '*'; SELECT pg_reload_conf()",
            )
            .unwrap();
    }
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write&connect_timeout=2&sslmode=disable",
        primary.port(),
        standby.port()
    );
    let pool = Pool::builder(url.as_str())
        .max_size(4)
        .acquire_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let flags = (Arc::default(), Arc::default(), Arc::default());
    let tasks = writers(&pool, &ledger, &flags.0, &flags.1, &flags.2);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let p = primary.clone();
    let stopped = Instant::now();
    step("stop the primary", move || p.stop_server_with_mode(mode)).await;
    let s = standby.clone();
    step("promote the standby", move || s.promote()).await;
    flags.1.store(true, Ordering::Release);
    tokio::time::sleep(Duration::from_secs(2)).await;
    flags.0.store(true, Ordering::Relaxed);
    let mut first = None;
    for t in tasks {
        if let Some(at) = t.await.unwrap() {
            first = Some(first.map_or(at, |f: Instant| f.min(at)));
        }
    }
    let report = ledger.check_on(&standby, "postgres").unwrap();
    Some(Failover {
        report,
        committed_after: flags.2.load(Ordering::Relaxed),
        outage: first.expect("no commit on the new primary") - stopped,
    })
}

/// A clean stop (`-m fast`) ships every WAL record to the standby before the primary
/// exits, so with asynchronous replication no acknowledged commit may be missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_after_a_clean_stop_under_write_load_loses_no_acknowledged_commit() {
    let Some(run) = promotion_under_write_load("fast", false).await else {
        return;
    };
    println!("promotion after -m fast: {run:?}");
    run.report.assert_clean();
    assert!(
        run.report.committed > 0 && run.committed_after > 0,
        "{run:?}"
    );
    assert!(run.outage < Duration::from_secs(10), "{run:?}");
}

/// The primary crashes (`-m immediate`) with synchronous replication: every commit it
/// acknowledged had reached the standby; those in flight are unknown, never lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_after_a_crash_with_synchronous_replication_loses_no_acknowledged_commit() {
    let Some(run) = promotion_under_write_load("immediate", true).await else {
        return;
    };
    println!("promotion after -m immediate, synchronous replication: {run:?}");
    run.report.assert_clean();
    assert!(
        run.report.committed > 0 && run.committed_after > 0,
        "{run:?}"
    );
    assert!(run.outage < Duration::from_secs(10), "{run:?}");
}
