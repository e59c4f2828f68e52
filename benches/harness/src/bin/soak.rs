//! A soak run: mixed load through a pool, with a random fault every few seconds, for as
//! long as asked (default 30 minutes). Not part of CI.
//!
//! ```text
//! cargo run --release -p pgkeel-bench --bin soak -- --minutes 30
//! ```
//!
//! It starts a throwaway cluster with durability on (fsync, synchronous_commit), puts a
//! `FaultProxy` in front of it, and runs 16 workers through a pool of 8: transactional
//! writes checked by a `WriteLedger`, reads whose answers are checked, row streams whose
//! sums are checked, and queries abandoned by short timeouts. Every 2–6 s one fault:
//! resets of every connection, a blackhole, latency, one-byte slices, a terminated
//! backend, a SIGKILLed backend, a fast restart. Every 10 s it prints operations,
//! errors, wrong answers, dirty checkouts, faults, RSS, descriptors and the pool's
//! figures; at the end, the ledger check. Any wrong answer, dirty checkout or ledger
//! violation makes it exit with status 1.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use pgkeel::{Pool, TransactionStatus};
use pgkeel_testkit::{ClusterBuilder, FaultProxy, WriteLedger};

#[derive(Default)]
struct Counts {
    ops: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    wrong: AtomicU64,
    dirty: AtomicU64,
    faults: AtomicU64,
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// splitmix64 over a per-task state.
fn rand(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let minutes: f64 = arg("--minutes").unwrap_or(30.0);
    let run_for = Duration::from_secs_f64(minutes * 60.0);
    let cluster = Arc::new(
        ClusterBuilder::new()
            .setting("fsync", "on")
            .setting("synchronous_commit", "on")
            .setting("full_page_writes", "on")
            .start()?,
    );
    let db = cluster.create_database()?;
    let ledger = Arc::new(WriteLedger::create_on(&cluster, &db, "soak_ledger")?);
    let target = format!("127.0.0.1:{}", cluster.port()).parse()?;
    let proxy = Arc::new(FaultProxy::start(target).await?);
    let url = format!(
        "postgres://{}@127.0.0.1:{}/{db}?connect_timeout=5&query_timeout_ms=5000&cancel_timeout=2",
        cluster.superuser(),
        proxy.port()
    );
    let pool = Pool::builder(url.as_str())
        .max_size(8)
        .acquire_timeout(Duration::from_secs(10))
        .build()?;
    let counts = Arc::new(Counts::default());
    let stop = Instant::now() + run_for;
    println!("soak for {minutes} min: 16 workers, pool of 8, a fault every 2-6 s");

    let mut workers = Vec::new();
    for w in 0..16u64 {
        let (pool, ledger, counts) = (pool.clone(), ledger.clone(), counts.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = w.wrapping_mul(0x1234_5678_9ABC_DEF1) + 1;
            while Instant::now() < stop {
                one_op(&pool, &ledger, &counts, &mut rng).await;
            }
        }));
    }
    let chaos = tokio::spawn(chaos(
        proxy.clone(),
        cluster.clone(),
        db.clone(),
        counts.clone(),
        stop,
    ));
    let started = Instant::now();
    while Instant::now() < stop {
        tokio::time::sleep(Duration::from_secs(10).min(stop - Instant::now())).await;
        report(started, &counts, &pool);
    }
    for w in workers {
        w.await?;
    }
    chaos.await?;
    proxy.clear();
    // The last fault may have left the server in crash recovery: wait until it answers.
    let check = loop {
        match ledger.check_on(&cluster, &db) {
            Ok(check) => break check,
            Err(e) if started.elapsed() < run_for + Duration::from_secs(120) => {
                println!("waiting for the server: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    println!(
        "ledger: {} committed, {} failed, {} unknown ({} of them committed), {} violations",
        check.committed,
        check.failed,
        check.unknown,
        check.unknown_committed,
        check.violations.len()
    );
    for v in check.violations.iter().take(20) {
        println!("  {v}");
    }
    report(started, &counts, &pool);
    let bad = counts.wrong.load(Ordering::Relaxed)
        + counts.dirty.load(Ordering::Relaxed)
        + check.violations.len() as u64;
    pool.close().await;
    if bad > 0 {
        std::process::exit(1);
    }
    Ok(())
}

fn arg(name: &str) -> Option<f64> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

/// One operation of a random kind; its result is checked where it can be.
async fn one_op(pool: &Pool, ledger: &WriteLedger, counts: &Counts, rng: &mut u64) {
    let kind = rand(rng) % 10;
    let n = (rand(rng) % 1_000_000) as i64;
    bump(&counts.ops);
    let result: Result<(), pgkeel::Error> = async {
        let conn = pool.get().await?;
        // A checkout must never be inside someone else's transaction.
        if conn.transaction_status() != TransactionStatus::Idle {
            bump(&counts.dirty);
        }
        match kind {
            0..=3 => {
                drop(conn);
                let id = ledger.next_id();
                let r = async {
                    let tx = pool.begin().await?;
                    tx.execute(ledger.insert_sql().as_str(), &[&id]).await?;
                    tx.commit().await
                }
                .await;
                ledger.record(id, &r);
                r
            }
            4..=6 => {
                let in_tx: bool = conn
                    .query_one(
                        "SELECT $1::int8 * 2, pg_current_xact_id_if_assigned() IS NOT NULL",
                        &[&n],
                    )
                    .await
                    .map(|r| {
                        if r.get::<_, i64>(0) != n * 2 {
                            bump(&counts.wrong);
                        }
                        r.get(1)
                    })?;
                if in_tx {
                    bump(&counts.dirty);
                }
                Ok(())
            }
            7 => {
                let stream = conn
                    .query_raw_batched("SELECT g FROM generate_series(1, 2000) g", &[], 128)
                    .await?;
                futures::pin_mut!(stream);
                let mut sum = 0i64;
                while let Some(row) = stream.next().await {
                    sum += i64::from(row?.get::<_, i32>(0));
                }
                if sum != 2000 * 2001 / 2 {
                    bump(&counts.wrong);
                }
                Ok(())
            }
            _ => {
                let limit = Duration::from_millis(rand(rng) % 20);
                let params: [&(dyn pgkeel::ToSql + Sync); 1] = [&n];
                let slow = conn.query_one("SELECT pg_sleep(0.01), $1::int8", &params);
                match tokio::time::timeout(limit, slow).await {
                    Ok(r) => {
                        if r?.get::<_, i64>(1) != n {
                            bump(&counts.wrong);
                        }
                    }
                    Err(_) => bump(&counts.timeouts),
                }
                Ok(())
            }
        }
    }
    .await;
    if result.is_err() {
        bump(&counts.errors);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One fault every 2–6 s until `stop`.
async fn chaos(
    proxy: Arc<FaultProxy>,
    cluster: Arc<pgkeel_testkit::Cluster>,
    db: String,
    counts: Arc<Counts>,
    stop: Instant,
) {
    let mut rng = 42u64;
    while Instant::now() + Duration::from_secs(8) < stop {
        tokio::time::sleep(Duration::from_millis(2000 + rand(&mut rng) % 4000)).await;
        bump(&counts.faults);
        match rand(&mut rng) % 8 {
            0 | 1 => proxy.reset_all(),
            2 => {
                proxy.set_blackhole(true);
                tokio::time::sleep(Duration::from_millis(1500)).await;
                proxy.set_blackhole(false);
            }
            3 => {
                proxy.set_latency(Duration::from_millis(20), Duration::from_millis(30));
                tokio::time::sleep(Duration::from_secs(2)).await;
                proxy.clear();
            }
            4 => {
                proxy.set_slice(Some(1));
                tokio::time::sleep(Duration::from_secs(1)).await;
                proxy.clear();
            }
            5 => {
                let sql = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                           WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() \
                           ORDER BY random() LIMIT 1";
                let (c, d) = (cluster.clone(), db.clone());
                let _ = tokio::task::spawn_blocking(move || c.psql(&d, sql)).await;
            }
            6 => {
                let sql = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' \
                           AND pid <> pg_backend_pid() ORDER BY random() LIMIT 1";
                let (c, d) = (cluster.clone(), db.clone());
                let pid = tokio::task::spawn_blocking(move || c.psql(&d, sql)).await;
                if let Ok(Ok(pid)) = pid {
                    let pid = pid.trim().to_owned();
                    if !pid.is_empty() {
                        let _ = std::process::Command::new("kill")
                            .args(["-9", &pid])
                            .status();
                    }
                }
            }
            _ => {
                let c = cluster.clone();
                let _ = tokio::task::spawn_blocking(move || c.restart()).await;
            }
        }
    }
}

fn report(started: Instant, counts: &Counts, pool: &Pool) {
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let s = pool.status();
    println!(
        "{:>6.0}s ops {} errors {} timeouts {} wrong {} dirty {} faults {} | rss {} KiB fds {} | pool size {} idle {} in_use {} evicted_broken {} lingering {}",
        started.elapsed().as_secs_f64(),
        c(&counts.ops),
        c(&counts.errors),
        c(&counts.timeouts),
        c(&counts.wrong),
        c(&counts.dirty),
        c(&counts.faults),
        rss_kib(),
        std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()),
        s.size,
        s.idle,
        s.in_use,
        s.evicted_broken,
        s.backends_lingering,
    );
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
