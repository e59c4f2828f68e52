//! Workload 4: a timeout storm. 64 tasks × 50 iterations on a pool of 8; each iteration
//! checks out a connection, runs `SELECT pg_sleep(x)` (x uniform in 0–20 ms, the same
//! sequence for every driver) under `tokio::time::timeout(10 ms)`, gives the connection
//! back, then runs `SELECT $1::int8` through the pool and checks the value.
//!
//! Server time on abandoned sleeps is measured, not assumed: a sampler on a connection of
//! its own counts, every 2 ms, the backends that are `active` in a pg_sleep query, and
//! integrates that count over time from the storm's start until no such backend is left.
//! From that total it subtracts the sleep time some caller was still waiting for (x for a
//! sleep that finished, at most 10 ms for one that timed out). The rest is server time
//! spent on sleeps nobody waits for any more. The waited-for part is an upper bound
//! (a sleep queued behind an abandoned one may not even have started when its caller
//! gave up), so for a driver that does not cancel, the figure is a lower bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pgkeel::pool::AbandonPolicy;

use crate::args::Sizes;
use crate::drivers;
use crate::measure::{Rng, on_fresh_runtime};
use crate::report::{Better, Cell, Check, Driver, Line, Report};
use crate::setup::Bench;

const NAME: &str = "4. timeout storm (64 tasks × 50, pool of 8)";
const TIMEOUT: Duration = Duration::from_millis(10);
const MAX_SLEEP_SECS: f64 = 0.020;
const SLEEP_SQL: &str = "SELECT pg_sleep($1)";
const CHECK_SQL: &str = "SELECT $1::int8";
const SAMPLE_SQL: &str = "SELECT count(*), \
     count(*) FILTER (WHERE clock_timestamp() - query_start > interval '10 ms') \
     FROM pg_stat_activity \
     WHERE state = 'active' AND query = 'SELECT pg_sleep($1)' AND pid <> pg_backend_pid()";
const SAMPLE_EVERY: Duration = Duration::from_millis(2);
/// The longest the sampler waits for sleeps to end after the storm.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// What the tasks of one storm saw.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    timed_out: u64,
    wrong: u64,
    errors: u64,
    /// Sleep seconds some caller was still waiting for.
    waited_for: f64,
    /// Σ (x − 10 ms) over timed-out sleeps: the abandoned time if nothing is cancelled.
    abandoned_if_uncancelled: f64,
    /// Σ x over every sleep asked for.
    requested: f64,
}

impl Tally {
    fn sleep(&mut self, x: f64, outcome: Outcome) {
        let limit = TIMEOUT.as_secs_f64();
        self.requested += x;
        match outcome {
            Outcome::Done => self.waited_for += x,
            Outcome::TimedOut => {
                self.timed_out += 1;
                self.waited_for += x.min(limit);
                self.abandoned_if_uncancelled += (x - limit).max(0.0);
            }
            Outcome::Failed => self.errors += 1,
        }
    }

    fn check(&mut self, sent: i64, got: Option<i64>) {
        match got {
            Some(v) if v == sent => {}
            Some(_) => self.wrong += 1,
            None => self.errors += 1,
        }
    }

    fn add(&mut self, o: Tally) {
        self.timed_out += o.timed_out;
        self.wrong += o.wrong;
        self.errors += o.errors;
        self.waited_for += o.waited_for;
        self.abandoned_if_uncancelled += o.abandoned_if_uncancelled;
        self.requested += o.requested;
    }
}

enum Outcome {
    Done,
    TimedOut,
    Failed,
}

fn outcome<T, E>(r: Result<Result<T, E>, tokio::time::error::Elapsed>) -> Outcome {
    match r {
        Ok(Ok(_)) => Outcome::Done,
        Ok(Err(_)) => Outcome::Failed,
        Err(_) => Outcome::TimedOut,
    }
}

/// One storm's figures.
#[derive(Debug)]
struct Storm {
    wall: f64,
    tally: Tally,
    server_sleep: f64,
    /// Server seconds in sleeps past the first 10 ms of each one's own run.
    past_limit: f64,
    drain: f64,
    pool_status: Option<String>,
}

impl Storm {
    fn abandoned(&self) -> f64 {
        self.server_sleep - self.tally.waited_for
    }

    /// `seconds` as a percentage of the sleep time asked for.
    fn of_asked(&self, seconds: f64) -> f64 {
        seconds / self.tally.requested * 100.0
    }
}

pub fn run(bench: &Bench, sizes: &Sizes, report: &mut Report) {
    let mut runs: [Vec<Storm>; 3] = Default::default();
    let mut evict_runs = Vec::new();
    let mut stops: [Vec<f64>; 3] = Default::default();
    for rep in 1..=sizes.reps {
        for driver in sizes.drivers.clone() {
            let ms = on_fresh_runtime(stop_latency(driver, &bench.url, PROBES));
            eprintln!(
                "storm         rep {rep} {:<15} server stopped an abandoned 300 ms sleep {ms:.1} ms after the timeout",
                driver.name()
            );
            stops[driver as usize].push(ms);
            let s = on_fresh_runtime(one(driver, &bench.url, sizes, AbandonPolicy::Auto));
            progress(rep, driver.name(), &s);
            runs[driver as usize].push(s);
        }
        let s = on_fresh_runtime(one(Driver::Pgkeel, &bench.url, sizes, AbandonPolicy::Evict));
        progress(rep, "pgkeel/Evict", &s);
        evict_runs.push(s);
    }
    let line =
        |metric: &str, better: Option<Better>, pgkeel: &[Storm], f: &dyn Fn(&Storm) -> f64| {
            let mut line = Line::new(NAME, metric, better);
            for d in Driver::ALL {
                let storms = if d == Driver::Pgkeel {
                    pgkeel
                } else {
                    &runs[d as usize]
                };
                line = line.set(d, Cell::Values(storms.iter().map(f).collect()));
            }
            line
        };
    let default = &runs[0];
    let evict_name = "pgkeel with AbandonPolicy::Evict";
    report.push(
        line("wall time s", Some(Better::Lower), default, &|s| s.wall)
            .check(Check::Beats(Driver::TokioPostgres)),
    );
    report.push(
        line(
            &format!("wall time s, {evict_name}"),
            Some(Better::Lower),
            &evict_runs,
            &|s| s.wall,
        )
        .check(Check::Beats(Driver::TokioPostgres)),
    );
    report.push(
        line("wrong results", Some(Better::Lower), default, &|s| {
            s.tally.wrong as f64
        })
        .check(Check::Zero),
    );
    report.push(
        line(
            &format!("wrong results, {evict_name}"),
            Some(Better::Lower),
            &evict_runs,
            &|s| s.tally.wrong as f64,
        )
        .check(Check::Zero),
    );
    report.push(line("errors", Some(Better::Lower), default, &|s| {
        s.tally.errors as f64
    }));
    report.push(line("timed-out sleeps", None, default, &|s| {
        s.tally.timed_out as f64
    }));
    report.push(line(
        "server s on abandoned sleeps, measured",
        Some(Better::Lower),
        default,
        &|s| s.abandoned(),
    ));
    report.push(
        line(
            "server time on abandoned sleeps, measured, % of the sleep time asked",
            Some(Better::Lower),
            default,
            &|s| s.of_asked(s.abandoned()),
        )
        .check(Check::Below(15.0, "%")),
    );
    report.push(line(
        "server s in sleeps past the first 10 ms of each one's own run",
        Some(Better::Lower),
        default,
        &|s| s.past_limit,
    ));
    report.push(
        line(
            "server time in sleeps past the first 10 ms of each one's own run, % of the sleep time asked",
            Some(Better::Lower),
            default,
            &|s| s.of_asked(s.past_limit),
        )
        .check(Check::Below(15.0, "%")),
    );
    report.push(line(
        &format!("server s on abandoned sleeps, measured, {evict_name}"),
        Some(Better::Lower),
        &evict_runs,
        &|s| s.abandoned(),
    ));
    report.push(line(
        "server s on abandoned sleeps if none were cancelled, Σ(x − 10 ms)",
        None,
        default,
        &|s| s.tally.abandoned_if_uncancelled,
    ));
    report.push(line(
        "ms until no pg_sleep runs after the storm",
        Some(Better::Lower),
        default,
        &|s| s.drain * 1e3,
    ));
    let mut stop_line = Line::new(
        NAME,
        "ms from timeout until the server stops a 300 ms sleep",
        Some(Better::Lower),
    );
    for d in Driver::ALL {
        stop_line = stop_line.set(d, Cell::Values(std::mem::take(&mut stops[d as usize])));
    }
    report.push(stop_line);
    report.note(format!(
        "Storm: {} tasks × {} iterations; timeout 10 ms around the sleep only (checkout outside it); \
         abandoned server time = pg_stat_activity samples every 2 ms of active pg_sleep backends, \
         integrated, minus the sleep time callers still waited for (see docs/BENCHMARKS.md). \
         pgkeel runs with its default `AbandonPolicy::Auto` (Recover on a direct connection) unless the row says Evict.",
        sizes.storm_tasks, sizes.storm_iters
    ));
}

fn progress(rep: usize, who: &str, s: &Storm) {
    eprintln!(
        "storm         rep {rep} {who:<15} {:>6.2} s wall, {} timed out, {} wrong, {} errors, \
         abandoned server sleep {:.2} s (uncancelled would be {:.2} s), {:.2} s past 10 ms of a sleep's own run, \
         drain {:.0} ms; sampler: {:.2} s of pg_sleep on the server for {:.2} s asked{}",
        s.wall,
        s.tally.timed_out,
        s.tally.wrong,
        s.tally.errors,
        s.abandoned(),
        s.tally.abandoned_if_uncancelled,
        s.past_limit,
        s.drain * 1e3,
        s.server_sleep,
        s.tally.requested,
        s.pool_status.as_deref().unwrap_or(""),
    );
}

async fn one(driver: Driver, url: &str, sizes: &Sizes, policy: AbandonPolicy) -> Storm {
    let (tasks, iters) = (sizes.storm_tasks, sizes.storm_iters);
    match driver {
        Driver::Pgkeel => {
            let pool = pgkeel::Pool::builder(url)
                .max_size(sizes.pool_size)
                .abandon_policy(policy)
                .build()
                .expect("pgkeel pool");
            let warm = futures::future::join_all((0..sizes.pool_size).map(|_| pool.get())).await;
            drop(warm);
            let before = pool.status();
            let mut s = storm(url, tasks, |t| pgkeel_task(pool.clone(), t, iters)).await;
            let after = pool.status();
            s.pool_status = Some(format!(
                "; pool: {} connects, {} evicted broken, {} recovered, {} cancels sent",
                after.connects - before.connects,
                after.evicted_broken - before.evicted_broken,
                after.recovered - before.recovered,
                after.cancels_sent - before.cancels_sent,
            ));
            pool.close().await;
            s
        }
        Driver::TokioPostgres => {
            let pool = drivers::deadpool(url, sizes.pool_size).await;
            let s = storm(url, tasks, |t| deadpool_task(pool.clone(), t, iters)).await;
            pool.close();
            s
        }
        Driver::Sqlx => {
            let pool = drivers::sqlx_pool(url, sizes.pool_size).await;
            let s = storm(url, tasks, |t| sqlx_task(pool.clone(), t, iters)).await;
            pool.close().await;
            s
        }
    }
}

/// Runs the tasks with the sampler beside them.
async fn storm<F, Fut>(url: &str, tasks: usize, task: F) -> Storm
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Tally> + Send + 'static,
{
    let sampler = Sampler::start(url).await;
    let t = Instant::now();
    let handles: Vec<_> = (0..tasks).map(|i| tokio::spawn(task(i))).collect();
    let mut tally = Tally::default();
    for h in handles {
        tally.add(h.await.expect("a storm task panicked"));
    }
    let wall = t.elapsed().as_secs_f64();
    let sampled = sampler.finish().await;
    Storm {
        wall,
        tally,
        server_sleep: sampled.busy,
        past_limit: sampled.past_limit,
        drain: sampled.drain,
        pool_status: None,
    }
}

/// The sleep length and check value of iteration `i` of task `task`.
fn iteration(rng: &mut Rng, task: usize, i: usize) -> (f64, i64) {
    (rng.unit() * MAX_SLEEP_SECS, (task * 1_000_000 + i) as i64)
}

async fn pgkeel_task(pool: pgkeel::Pool, task: usize, iters: usize) -> Tally {
    let (mut rng, mut tally) = (Rng::new(1000 + task as u64), Tally::default());
    for i in 0..iters {
        let (x, v) = iteration(&mut rng, task, i);
        match pool.get().await {
            Ok(conn) => {
                let r = tokio::time::timeout(TIMEOUT, conn.execute(SLEEP_SQL, &[&x])).await;
                tally.sleep(x, outcome(r));
            }
            Err(_) => tally.sleep(x, Outcome::Failed),
        }
        let got = pool.query_one(CHECK_SQL, &[&v]).await;
        tally.check(v, got.ok().map(|row| row.get(0)));
    }
    tally
}

async fn deadpool_task(pool: deadpool_postgres::Pool, task: usize, iters: usize) -> Tally {
    let (mut rng, mut tally) = (Rng::new(1000 + task as u64), Tally::default());
    for i in 0..iters {
        let (x, v) = iteration(&mut rng, task, i);
        match pool.get().await {
            Ok(client) => {
                // Preparing is part of the call, as it is inside pgkeel's and sqlx's.
                let call = async {
                    let stmt = client.prepare_cached(SLEEP_SQL).await?;
                    client.execute(&stmt, &[&x]).await
                };
                let r = tokio::time::timeout(TIMEOUT, call).await;
                tally.sleep(x, outcome(r));
            }
            Err(_) => tally.sleep(x, Outcome::Failed),
        }
        let got = async {
            let client = pool.get().await.ok()?;
            let stmt = client.prepare_cached(CHECK_SQL).await.ok()?;
            let row = client.query_one(&stmt, &[&v]).await.ok()?;
            Some(row.get::<_, i64>(0))
        };
        tally.check(v, got.await);
    }
    tally
}

async fn sqlx_task(pool: sqlx::PgPool, task: usize, iters: usize) -> Tally {
    let (mut rng, mut tally) = (Rng::new(1000 + task as u64), Tally::default());
    for i in 0..iters {
        let (x, v) = iteration(&mut rng, task, i);
        match pool.acquire().await {
            Ok(mut conn) => {
                let call = sqlx::query(SLEEP_SQL).bind(x).execute(&mut *conn);
                let r = tokio::time::timeout(TIMEOUT, call).await;
                tally.sleep(x, outcome(r));
            }
            Err(_) => tally.sleep(x, Outcome::Failed),
        }
        let got = sqlx::query_scalar::<_, i64>(CHECK_SQL)
            .bind(v)
            .fetch_one(&pool)
            .await;
        tally.check(v, got.ok());
    }
    tally
}

/// How many abandoned sleeps [`stop_latency`] times per run.
const PROBES: usize = 5;
const PROBE_SLEEP_SQL: &str = "SELECT pg_sleep(0.3)";
const PID_ACTIVE_SQL: &str =
    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'";

/// The median time, in ms, from a 10 ms timeout around `SELECT pg_sleep(0.3)` on a
/// connection of its own to the moment its backend is no longer active: the cancel
/// latency for a driver that cancels, the rest of the sleep for one that does not.
async fn stop_latency(driver: Driver, url: &str, probes: usize) -> f64 {
    let watcher = drivers::tokio_postgres(url).await;
    let active = watcher
        .prepare(PID_ACTIVE_SQL)
        .await
        .expect("prepare watcher");
    let mut ms = Vec::new();
    for _ in 0..probes {
        // Each arm keeps its connection alive until the backend is seen idle.
        let t = match driver {
            Driver::Pgkeel => {
                let conn = drivers::pgkeel_conn(url).await;
                let pid = conn.backend_pid();
                let r = tokio::time::timeout(TIMEOUT, conn.execute(PROBE_SLEEP_SQL, &[])).await;
                assert!(r.is_err(), "the probe sleep timed out");
                wait_inactive(&watcher, &active, pid).await
            }
            Driver::TokioPostgres => {
                let client = drivers::tokio_postgres(url).await;
                let pid: i32 = client
                    .query_one("SELECT pg_backend_pid()", &[])
                    .await
                    .expect("pid")
                    .get(0);
                let r = tokio::time::timeout(TIMEOUT, client.execute(PROBE_SLEEP_SQL, &[])).await;
                assert!(r.is_err(), "the probe sleep timed out");
                wait_inactive(&watcher, &active, pid).await
            }
            Driver::Sqlx => {
                let mut conn = drivers::sqlx_conn(url).await;
                let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                    .fetch_one(&mut conn)
                    .await
                    .expect("pid");
                let r =
                    tokio::time::timeout(TIMEOUT, sqlx::query(PROBE_SLEEP_SQL).execute(&mut conn))
                        .await;
                assert!(r.is_err(), "the probe sleep timed out");
                wait_inactive(&watcher, &active, pid).await
            }
        };
        ms.push(t);
    }
    crate::measure::summary(&ms).0
}

/// Polls until backend `pid` is no longer active; returns the ms that took.
async fn wait_inactive(
    watcher: &tokio_postgres::Client,
    active: &tokio_postgres::Statement,
    pid: i32,
) -> f64 {
    let t = Instant::now();
    while t.elapsed() < DRAIN_LIMIT {
        let n: i64 = watcher
            .query_one(active, &[&pid])
            .await
            .expect("watch")
            .get(0);
        if n == 0 {
            break;
        }
    }
    t.elapsed().as_secs_f64() * 1e3
}

/// Samples pg_stat_activity on a tokio-postgres connection of its own.
struct Sampler {
    finished: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<Sampled>,
}

/// What the sampler integrated.
struct Sampled {
    /// Backend seconds in the storm's sleeps.
    busy: f64,
    /// Backend seconds in the storm's sleeps past the first 10 ms of each one's run.
    past_limit: f64,
    /// Seconds sleeps went on after the storm.
    drain: f64,
}

impl Sampler {
    async fn start(url: &str) -> Sampler {
        let client = drivers::tokio_postgres(url).await;
        let stmt = client.prepare(SAMPLE_SQL).await.expect("prepare sampler");
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let handle = tokio::spawn(async move {
            let count = || async {
                let row = client.query_one(&stmt, &[]).await.expect("sample");
                [row.get::<_, i64>(0), row.get::<_, i64>(1)]
            };
            let (mut last_n, mut last_t) = (count().await, Instant::now());
            let mut integral = [0.0; 2];
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut finished_at = None;
            loop {
                tick.tick().await;
                let n = count().await;
                let now = Instant::now();
                // Trapezoids: the counts move between samples.
                let dt = (now - last_t).as_secs_f64();
                for i in 0..2 {
                    integral[i] += (last_n[i] + n[i]) as f64 / 2.0 * dt;
                }
                (last_n, last_t) = (n, now);
                if flag.load(Ordering::Acquire) {
                    let since = *finished_at.get_or_insert(now);
                    if n[0] == 0 || now - since > DRAIN_LIMIT {
                        return Sampled {
                            busy: integral[0],
                            past_limit: integral[1],
                            drain: (now - since).as_secs_f64(),
                        };
                    }
                }
            }
        });
        Sampler { finished, handle }
    }

    /// Tells the sampler the storm is over; returns what it integrated.
    async fn finish(self) -> Sampled {
        self.finished.store(true, Ordering::Release);
        self.handle.await.expect("sampler")
    }
}
