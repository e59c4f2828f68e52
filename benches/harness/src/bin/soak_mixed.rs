//! A mixed-workload soak: every kind of call the driver offers, through a pool and a
//! shared connection, with cancellation everywhere and backends terminated now and then,
//! for as long as asked (default 30 minutes). Not part of CI.
//!
//! ```text
//! cargo run --release -p pgkeel-bench --bin soak_mixed -- --soak-minutes 30
//! PGKEEL_SOAK_MINUTES=2 cargo run --release -p pgkeel-bench --bin soak_mixed
//! ```
//!
//! Unlike the `soak` binary (faults injected by a proxy, server restarts), the server
//! here stays up, so the process's memory and the backends left at the end say whether
//! the driver leaks. 24 tasks share a pool of 8 and one `Connection`, and run at random:
//! point queries whose answers are derived from a task-unique parameter and checked;
//! ledger inserts in transactions (client-made ids, each recorded as committed, failed
//! or unknown and checked against the table at the end); transactions committed or
//! dropped to roll back (a dropped one's id must be absent); row streams dropped
//! mid-way; `execute_many`; COPY FROM STDIN; NOTIFY to the shared connection, which
//! LISTENs. A quarter of the calls run under `tokio::time::timeout` with a random limit
//! of 0–30 ms, and every 5–15 s a random pgkeel backend is terminated with
//! `pg_terminate_backend`. RSS is sampled at the start and every minute (more often in
//! short runs). Exit status 1 on any wrong answer, ledger violation, or more backends at
//! the end than the pool and the shared connection may hold.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use pgkeel::{Connection, Error, ErrorKind, Pool};
use pgkeel_testkit::{Cluster, ClusterBuilder, WriteLedger, WriteOutcome};

const APP: &str = "pgkeel-soak";
const POOL_SIZE: usize = 8;
const WORKERS: u64 = 24;
/// Rows of the lookup table the point queries read.
const KV_ROWS: i64 = 10_000;

/// The kinds of operation, for the counts.
#[derive(Debug, Clone, Copy)]
enum Kind {
    PointPool,
    PointLane,
    PointShared,
    Sleepy,
    Insert,
    TxCommit,
    TxDrop,
    Stream,
    Many,
    CopyIn,
    Notify,
    Terminate,
}

const KINDS: [Kind; 12] = [
    Kind::PointPool,
    Kind::PointLane,
    Kind::PointShared,
    Kind::Sleepy,
    Kind::Insert,
    Kind::TxCommit,
    Kind::TxDrop,
    Kind::Stream,
    Kind::Many,
    Kind::CopyIn,
    Kind::Notify,
    Kind::Terminate,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::PointPool => "point (pooled conn)",
            Kind::PointLane => "point (pool.query_one)",
            Kind::PointShared => "point (shared conn)",
            Kind::Sleepy => "pg_sleep point",
            Kind::Insert => "ledger insert (tx)",
            Kind::TxCommit => "tx committed",
            Kind::TxDrop => "tx dropped (rollback)",
            Kind::Stream => "row stream dropped mid-way",
            Kind::Many => "execute_many",
            Kind::CopyIn => "COPY in",
            Kind::Notify => "NOTIFY",
            Kind::Terminate => "pg_terminate_backend",
        }
    }
}

#[derive(Default)]
struct Stats {
    ops: [AtomicU64; 12],
    oks: [AtomicU64; 12],
    timeouts: [AtomicU64; 12],
    errors: Mutex<BTreeMap<String, u64>>,
    wrong: AtomicU64,
    wrong_examples: Mutex<Vec<String>>,
    notify_sent: AtomicU64,
    notify_received: AtomicU64,
    reconnects: AtomicU64,
}

impl Stats {
    fn wrong(&self, what: String) {
        self.wrong.fetch_add(1, Ordering::Relaxed);
        let mut ex = self
            .wrong_examples
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if ex.len() < 20 {
            ex.push(what);
        }
    }

    fn error(&self, e: &Error) {
        let key = match e.kind() {
            ErrorKind::Db => format!("Db {}", e.code().unwrap_or("?")),
            k => format!("{k:?}"),
        };
        *self
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default() += 1;
    }

    fn total(&self, a: &[AtomicU64; 12]) -> u64 {
        a.iter().map(|x| x.load(Ordering::Relaxed)).sum()
    }
}

/// The shared connection, replaced when a terminated backend has broken it.
struct Shared {
    url: String,
    conn: RwLock<Arc<Connection>>,
    healing: tokio::sync::Mutex<()>,
}

impl Shared {
    async fn open(url: &str) -> Result<Arc<Connection>, Error> {
        let conn = Connection::connect(url).await?;
        conn.batch_execute("LISTEN soak").await?;
        Ok(Arc::new(conn))
    }

    fn get(&self) -> Arc<Connection> {
        self.conn.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reconnects if the current connection is broken or closed.
    async fn heal(&self, stats: &Stats) {
        let _one = self.healing.lock().await;
        let cur = self.get();
        if !(cur.is_broken() || cur.is_closed()) {
            return;
        }
        if let Ok(conn) = Shared::open(&self.url).await {
            *self.conn.write().unwrap_or_else(|e| e.into_inner()) = conn;
            stats.reconnects.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Ctx {
    pool: Pool,
    shared: Shared,
    ledger: WriteLedger,
    stats: Stats,
    batches: AtomicU64,
}

/// splitmix64 over a per-task state.
fn rand(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The lookup table's value for `id`.
fn kv(id: i64) -> i64 {
    (id * id) % 1_000_003
}

fn minutes() -> f64 {
    let args: Vec<String> = std::env::args().collect();
    let flag = args
        .iter()
        .position(|a| a == "--soak-minutes")
        .and_then(|i| args.get(i + 1)?.parse().ok());
    let env = std::env::var("PGKEEL_SOAK_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok());
    flag.or(env).unwrap_or(30.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let minutes = minutes();
    let run_for = Duration::from_secs_f64(minutes * 60.0);
    let cluster = Arc::new(ClusterBuilder::new().start()?);
    let db = cluster.create_database()?;
    cluster.psql(
        &db,
        &format!(
            "CREATE TABLE soak_kv (id int8 PRIMARY KEY, v int8 NOT NULL);
             INSERT INTO soak_kv SELECT g, (g * g) % 1000003 FROM generate_series(1, {KV_ROWS}) g;
             CREATE TABLE soak_many (batch int8 NOT NULL, i int4 NOT NULL);
             CREATE INDEX ON soak_many (batch);
             CREATE TABLE soak_copy (batch int8 NOT NULL, i int4 NOT NULL, payload text);
             CREATE INDEX ON soak_copy (batch);"
        ),
    )?;
    let ledger = WriteLedger::create_on(&cluster, &db, "soak_ledger")?;
    let base = cluster.url(cluster.superuser(), &db);
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}application_name={APP}");
    let admin_url = format!("{base}{sep}application_name=soak-admin");
    let pool = Pool::builder(url.as_str())
        .max_size(POOL_SIZE)
        .acquire_timeout(Duration::from_secs(10))
        .build()?;
    let shared = Shared {
        conn: RwLock::new(Shared::open(&url).await?),
        url: url.clone(),
        healing: tokio::sync::Mutex::new(()),
    };
    let ctx = Arc::new(Ctx {
        pool,
        shared,
        ledger,
        stats: Stats::default(),
        batches: AtomicU64::new(1),
    });
    let started = Instant::now();
    let stop = started + run_for;
    println!(
        "soak_mixed for {minutes} min: {WORKERS} tasks, pool of {POOL_SIZE} + 1 shared connection, \
         timeouts on 1 call in 4, a backend terminated every 5-15 s"
    );

    let mut tasks = Vec::new();
    for t in 0..WORKERS {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = (t + 1).wrapping_mul(0x1234_5678_9ABC_DEF1);
            while Instant::now() < stop {
                one_op(&ctx, t as i64, &mut rng).await;
            }
        }));
    }
    tasks.push(tokio::spawn(receive_notifications(ctx.clone(), stop)));
    tasks.push(tokio::spawn(terminate_backends(
        ctx.clone(),
        admin_url.clone(),
        stop,
    )));

    // RSS at the start and every minute (every twentieth of a short run).
    let every = Duration::from_secs(60).min(run_for / 20);
    let mut rss = vec![(Duration::ZERO, rss_kib())];
    progress(&ctx, started, rss[0].1);
    while Instant::now() < stop {
        tokio::time::sleep(every.min(stop.saturating_duration_since(Instant::now()))).await;
        let sample = (started.elapsed(), rss_kib());
        progress(&ctx, started, sample.1);
        rss.push(sample);
    }
    for t in tasks {
        t.await?;
    }
    // Let cleanups and recoveries of the last dropped calls finish.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let admin = Connection::connect(admin_url.as_str()).await?;
    let backends: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&APP],
        )
        .await?
        .get(0);
    let status = ctx.pool.status();
    let check = ledger_check(&ctx.ledger, &cluster, &db)?;
    report(&ctx, started, &rss, run_for, backends, &status, &check);
    let bad = ctx.stats.wrong.load(Ordering::Relaxed) > 0
        || !check.violations.is_empty()
        || backends > POOL_SIZE as i64 + 1;
    ctx.pool.close().await;
    if bad {
        std::process::exit(1);
    }
    Ok(())
}

fn ledger_check(
    ledger: &WriteLedger,
    cluster: &Cluster,
    db: &str,
) -> Result<pgkeel_testkit::LedgerReport, Box<dyn std::error::Error>> {
    Ok(ledger.check_on(cluster, db)?)
}

/// What one operation came to, short of its checks.
enum Outcome {
    Ok,
    Err(Error),
}

impl From<Result<(), Error>> for Outcome {
    fn from(r: Result<(), Error>) -> Outcome {
        match r {
            Ok(()) => Outcome::Ok,
            Err(e) => Outcome::Err(e),
        }
    }
}

async fn one_op(ctx: &Ctx, task: i64, rng: &mut u64) {
    let kind = match rand(rng) % 100 {
        0..=14 => Kind::PointPool,
        15..=29 => Kind::PointLane,
        30..=44 => Kind::PointShared,
        45..=49 => Kind::Sleepy,
        50..=59 => Kind::Insert,
        60..=66 => Kind::TxCommit,
        67..=72 => Kind::TxDrop,
        73..=80 => Kind::Stream,
        81..=86 => Kind::Many,
        87..=92 => Kind::CopyIn,
        _ => Kind::Notify,
    };
    let limit = rand(rng)
        .is_multiple_of(4)
        .then(|| Duration::from_micros(rand(rng) % 30_000));
    let seed = rand(rng);
    // Ids are made before the call, so a call dropped by its timeout is still recorded.
    let uses_id = matches!(kind, Kind::Insert | Kind::TxCommit | Kind::TxDrop);
    let id = if uses_id { ctx.ledger.next_id() } else { 0 };
    let i = kind as usize;
    ctx.stats.ops[i].fetch_add(1, Ordering::Relaxed);
    let fut = run(ctx, kind, task, id, seed);
    let outcome = match limit {
        None => Some(fut.await),
        Some(limit) => tokio::time::timeout(limit, fut).await.ok(),
    };
    match outcome {
        Some(Outcome::Ok) => {
            ctx.stats.oks[i].fetch_add(1, Ordering::Relaxed);
        }
        Some(Outcome::Err(e)) => {
            ctx.stats.error(&e);
            if matches!(
                e.kind(),
                ErrorKind::Broken | ErrorKind::Closed | ErrorKind::Io
            ) || e.is_connection_fatal()
            {
                ctx.shared.heal(&ctx.stats).await;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None => {
            ctx.stats.timeouts[i].fetch_add(1, Ordering::Relaxed);
            if uses_id {
                ctx.ledger.record_dropped(id);
            }
            let conn = ctx.shared.get();
            if conn.is_broken() || conn.is_closed() {
                ctx.shared.heal(&ctx.stats).await;
            }
        }
    }
}

/// A point query: a row of the lookup table and a value derived from the task.
async fn point(ctx: &Ctx, conn: &Connection, task: i64, seed: u64) -> Result<(), Error> {
    let key = (seed % KV_ROWS as u64) as i64 + 1;
    let salt = (seed >> 20) as i64 % 1_000_000;
    let row = conn
        .query_one(
            "SELECT v, $2::int8 * 1000003 + $3::int8 FROM soak_kv WHERE id = $1",
            &[&key, &task, &salt],
        )
        .await?;
    check_point(ctx, row, key, task, salt);
    Ok(())
}

fn check_point(ctx: &Ctx, row: pgkeel::Row, key: i64, task: i64, salt: i64) {
    let (v, mine): (i64, i64) = (row.get(0), row.get(1));
    if v != kv(key) || mine != task * 1_000_003 + salt {
        ctx.stats.wrong(format!(
            "task {task} key {key} salt {salt}: got v {v}, derived {mine}"
        ));
    }
}

async fn run(ctx: &Ctx, kind: Kind, task: i64, id: i64, seed: u64) -> Outcome {
    let r: Result<(), Error> = async {
        match kind {
            Kind::PointPool => {
                let conn = ctx.pool.get().await?;
                point(ctx, &conn, task, seed).await
            }
            Kind::PointShared => point(ctx, &ctx.shared.get(), task, seed).await,
            Kind::PointLane => {
                let key = (seed % KV_ROWS as u64) as i64 + 1;
                let salt = (seed >> 20) as i64 % 1_000_000;
                let row = ctx
                    .pool
                    .query_one(
                        "SELECT v, $2::int8 * 1000003 + $3::int8 FROM soak_kv WHERE id = $1",
                        &[&key, &task, &salt],
                    )
                    .await?;
                check_point(ctx, row, key, task, salt);
                Ok(())
            }
            Kind::Sleepy => {
                let ms = (seed % 20) as f64;
                let salt = (seed >> 20) as i64;
                let row = ctx
                    .pool
                    .query_one(
                        "SELECT pg_sleep($1::float8 / 1000), $2::int8 * 7 + $3::int8",
                        &[&ms, &task, &salt],
                    )
                    .await?;
                let got: i64 = row.get(1);
                if got != task.wrapping_mul(7).wrapping_add(salt) {
                    ctx.stats
                        .wrong(format!("task {task} sleepy salt {salt}: got {got}"));
                }
                Ok(())
            }
            Kind::Insert => {
                let r = async {
                    let tx = ctx.pool.begin().await?;
                    tx.execute(ctx.ledger.insert_sql().as_str(), &[&id]).await?;
                    tx.commit().await
                }
                .await;
                ctx.ledger.record(id, &r);
                r
            }
            Kind::TxCommit | Kind::TxDrop => {
                let pooled;
                let shared;
                let conn: &Connection = if seed.is_multiple_of(2) {
                    pooled = match ctx.pool.get().await {
                        Ok(c) => c,
                        Err(e) => {
                            ctx.ledger.record_outcome(id, WriteOutcome::Failed);
                            return Err(e);
                        }
                    };
                    &pooled
                } else {
                    shared = ctx.shared.get();
                    &shared
                };
                let r = async {
                    let tx = conn.transaction().await?;
                    tx.execute(ctx.ledger.insert_sql().as_str(), &[&id]).await?;
                    let sql = format!(
                        "SELECT count(*), $2::int8 FROM {} WHERE id = $1",
                        "soak_ledger"
                    );
                    let row = tx.query_one(sql.as_str(), &[&id, &task]).await?;
                    let (n, t): (i64, i64) = (row.get(0), row.get(1));
                    if n != 1 || t != task {
                        ctx.stats
                            .wrong(format!("task {task} tx id {id}: sees {n} rows, task {t}"));
                    }
                    match kind {
                        Kind::TxCommit => tx.commit().await,
                        _ => {
                            drop(tx);
                            Ok(())
                        }
                    }
                }
                .await;
                match (kind, &r) {
                    (Kind::TxDrop, Ok(())) => ctx.ledger.record_outcome(id, WriteOutcome::Failed),
                    _ => {
                        ctx.ledger.record(id, &r);
                    }
                }
                r
            }
            Kind::Stream => {
                let pooled;
                let shared;
                let conn: &Connection = if seed.is_multiple_of(2) {
                    pooled = ctx.pool.get().await?;
                    &pooled
                } else {
                    shared = ctx.shared.get();
                    &shared
                };
                let take = (seed >> 8) % 2500;
                let stream = conn
                    .query_raw_batched(
                        "SELECT g, $1::int8 FROM generate_series(1, 2000) g",
                        &[&task],
                        64,
                    )
                    .await?;
                futures::pin_mut!(stream);
                let mut seen = 0i64;
                while (seen as u64) < take {
                    let Some(row) = stream.next().await else {
                        break;
                    };
                    let row = row?;
                    let (g, t): (i32, i64) = (row.get(0), row.get(1));
                    seen += 1;
                    if i64::from(g) != seen || t != task {
                        ctx.stats
                            .wrong(format!("task {task} stream row {seen}: g {g}, task {t}"));
                        break;
                    }
                }
                if take >= 2000 && seen != 2000 {
                    ctx.stats
                        .wrong(format!("task {task} stream read {seen} of 2000 rows"));
                }
                Ok(())
            }
            Kind::Many => {
                let conn = ctx.pool.get().await?;
                let batch = ctx.batches.fetch_add(1, Ordering::Relaxed) as i64;
                let k = (seed % 20) as i32 + 1;
                let idx: Vec<i32> = (0..k).collect();
                let params: Vec<[&(dyn pgkeel::ToSql + Sync); 2]> =
                    idx.iter().map(|i| [&batch as _, i as _]).collect();
                let rows: Vec<pgkeel::Params<'_>> = params.iter().map(|p| &p[..]).collect();
                let n = conn
                    .execute_many("INSERT INTO soak_many (batch, i) VALUES ($1, $2)", rows)
                    .await?;
                let there: i64 = conn
                    .query_one("SELECT count(*) FROM soak_many WHERE batch = $1", &[&batch])
                    .await?
                    .get(0);
                if n != k as u64 || there != i64::from(k) {
                    ctx.stats.wrong(format!(
                        "execute_many batch {batch}: {k} rows, said {n}, table has {there}"
                    ));
                }
                Ok(())
            }
            Kind::CopyIn => {
                let pooled;
                let shared;
                let conn: &Connection = if seed.is_multiple_of(2) {
                    pooled = ctx.pool.get().await?;
                    &pooled
                } else {
                    shared = ctx.shared.get();
                    &shared
                };
                let batch = ctx.batches.fetch_add(1, Ordering::Relaxed) as i64;
                let k = (seed % 50) as i64 + 1;
                let mut data = String::new();
                for i in 0..k {
                    data.push_str(&format!("{batch}\t{i}\ttask {task} row {i}\n"));
                }
                let mut copy = conn
                    .copy_in("COPY soak_copy (batch, i, payload) FROM STDIN")
                    .await?;
                copy.send(data.as_bytes()).await?;
                let n = copy.finish().await?;
                let there: i64 = conn
                    .query_one("SELECT count(*) FROM soak_copy WHERE batch = $1", &[&batch])
                    .await?
                    .get(0);
                if n != k as u64 || there != k {
                    ctx.stats.wrong(format!(
                        "COPY batch {batch}: {k} rows, said {n}, table has {there}"
                    ));
                }
                Ok(())
            }
            Kind::Notify => {
                let payload = format!("t{task}:{seed}");
                ctx.pool
                    .execute("SELECT pg_notify('soak', $1)", &[&payload])
                    .await?;
                ctx.stats.notify_sent.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Kind::Terminate => Ok(()),
        }
    }
    .await;
    r.into()
}

/// Takes the shared connection's notifications and checks their shape.
async fn receive_notifications(ctx: Arc<Ctx>, stop: Instant) {
    while Instant::now() < stop {
        let conn = ctx.shared.get();
        let wait = tokio::time::timeout(Duration::from_millis(500), conn.next_notification());
        if let Ok(n) = wait.await {
            ctx.stats.notify_received.fetch_add(1, Ordering::Relaxed);
            let ok = n.channel() == "soak"
                && n.payload()
                    .strip_prefix('t')
                    .and_then(|p| p.split_once(':'))
                    .is_some_and(|(t, s)| t.parse::<u64>().is_ok() && s.parse::<u64>().is_ok());
            if !ok {
                ctx.stats.wrong(format!(
                    "notification {:?} on {:?}",
                    n.payload(),
                    n.channel()
                ));
            }
        }
    }
}

/// Every 5–15 s, terminates one random backend of the pool or the shared connection.
async fn terminate_backends(ctx: Arc<Ctx>, admin_url: String, stop: Instant) {
    let mut rng = 7u64;
    let mut admin: Option<Connection> = None;
    let i = Kind::Terminate as usize;
    loop {
        let pause = Duration::from_millis(5000 + rand(&mut rng) % 10_000);
        if Instant::now() + pause + Duration::from_secs(5) >= stop {
            break;
        }
        tokio::time::sleep(pause).await;
        if admin
            .as_ref()
            .is_none_or(|a| a.is_broken() || a.is_closed())
        {
            admin = Connection::connect(admin_url.as_str()).await.ok();
        }
        let Some(a) = &admin else { continue };
        ctx.stats.ops[i].fetch_add(1, Ordering::Relaxed);
        let r = a
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1 ORDER BY random() LIMIT 1",
                &[&APP],
            )
            .await;
        match r {
            Ok(_) => ctx.stats.oks[i].fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                ctx.stats.error(&e);
                0
            }
        };
    }
}

fn progress(ctx: &Ctx, started: Instant, rss: u64) {
    let s = &ctx.stats;
    let p = ctx.pool.status();
    println!(
        "{:>6.0}s ops {} ok {} timeouts {} errors {} wrong {} | rss {} KiB | pool size {} idle {} in_use {} evicted_broken {}",
        started.elapsed().as_secs_f64(),
        s.total(&s.ops),
        s.total(&s.oks),
        s.total(&s.timeouts),
        s.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum::<u64>(),
        s.wrong.load(Ordering::Relaxed),
        rss,
        p.size,
        p.idle,
        p.in_use,
        p.evicted_broken,
    );
}

fn report(
    ctx: &Ctx,
    started: Instant,
    rss: &[(Duration, u64)],
    run_for: Duration,
    backends: i64,
    status: &pgkeel::pool::Status,
    check: &pgkeel_testkit::LedgerReport,
) {
    let s = &ctx.stats;
    let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "\n== soak_mixed report ({:.1} min) ==",
        started.elapsed().as_secs_f64() / 60.0
    );
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>10}",
        "operation", "total", "ok", "timed out", "errors"
    );
    for k in KINDS {
        let i = k as usize;
        let (ops, ok, to) = (ld(&s.ops[i]), ld(&s.oks[i]), ld(&s.timeouts[i]));
        println!(
            "{:<28} {:>10} {:>10} {:>10} {:>10}",
            k.name(),
            ops,
            ok,
            to,
            ops.saturating_sub(ok + to)
        );
    }
    println!(
        "{:<28} {:>10} {:>10} {:>10}",
        "all",
        s.total(&s.ops),
        s.total(&s.oks),
        s.total(&s.timeouts)
    );
    println!("errors by kind:");
    for (k, n) in s.errors.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        println!("  {k:<24} {n}");
    }
    println!(
        "NOTIFY: {} sent, {} received by the shared connection; shared connection reopened {} times",
        ld(&s.notify_sent),
        ld(&s.notify_received),
        ld(&s.reconnects)
    );
    println!("wrong results: {}", ld(&s.wrong));
    for w in s
        .wrong_examples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        println!("  {w}");
    }
    println!(
        "ledger: {} committed, {} failed or rolled back, {} unknown ({} of them committed), {} violations",
        check.committed,
        check.failed,
        check.unknown,
        check.unknown_committed,
        check.violations.len()
    );
    for v in check.violations.iter().take(20) {
        println!("  {v}");
    }
    println!(
        "backends open at the end: {backends} (pool max {POOL_SIZE} + 1 shared connection); pool size {} idle {} in_use {} evicted_broken {}",
        status.size, status.idle, status.in_use, status.evicted_broken
    );
    println!("RSS (KiB) at each tenth of the run:");
    for t in 0..=10u32 {
        let at = run_for * t / 10;
        // The last sample taken at or before `at` (a little slack for timer drift).
        let sample = rss
            .iter()
            .rfind(|(d, _)| *d <= at + Duration::from_secs(2))
            .copied()
            .unwrap_or(rss[0]);
        println!(
            "  {:>3}% ({:>5.1} min): {}",
            t * 10,
            sample.0.as_secs_f64() / 60.0,
            sample.1
        );
    }
    // After warm-up (the first fifth), a leak shows as steady growth.
    let warm: Vec<&(Duration, u64)> = rss.iter().filter(|(d, _)| *d >= run_for / 5).collect();
    if warm.len() >= 2 {
        let n = warm.len() as f64;
        let xs: Vec<f64> = warm.iter().map(|(d, _)| d.as_secs_f64() / 60.0).collect();
        let ys: Vec<f64> = warm.iter().map(|(_, r)| *r as f64).collect();
        let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
        let cov: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let var: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
        let slope = if var > 0.0 { cov / var } else { 0.0 };
        let (first, last) = (warm[0].1, warm[warm.len() - 1].1);
        let max = warm.iter().map(|(_, r)| *r).max().unwrap_or(0);
        let grew = last as f64 > first as f64 * 1.05 && slope > 0.0;
        println!(
            "RSS after warm-up: {first} KiB -> {last} KiB (max {max}), trend {slope:+.0} KiB/min: {}",
            if grew {
                "GREW (look for a leak)"
            } else {
                "no steady growth"
            }
        );
    }
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
