//! The workloads of issue 5, one file each, and the timed loop that the throughput
//! workloads share.

pub mod acquire;
pub mod callgrind;
pub mod copy;
pub mod decode;
pub mod inserts;
pub mod large_fetch;
pub mod pgbench;
pub mod point_select;
pub mod shared_conn;
pub mod storm;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::measure::cpu_times;

/// Tells looping tasks when to stop, and counts what they did.
#[derive(Default)]
pub struct Ctl {
    stop: AtomicBool,
    ops: AtomicU64,
}

impl Ctl {
    pub fn new() -> Arc<Ctl> {
        Arc::new(Ctl::default())
    }

    /// Whether the task should do another operation.
    pub fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    /// Counts one finished operation.
    pub fn done_one(&self) {
        self.ops.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a timed loop measured between the end of its warm-up and its stop.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub ops: u64,
    pub secs: f64,
    pub cpu: Duration,
    /// The system (kernel) part of `cpu`.
    pub sys: Duration,
    /// CPU seconds the watched server backends spent over the span (0 when none watched).
    pub server_cpu_secs: f64,
}

impl Measured {
    pub fn per_sec(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    /// Client CPU (user + system, every thread of the harness) per operation, in µs.
    pub fn cpu_us_per_op(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.ops.max(1) as f64
    }

    /// The system (kernel) part of [`Measured::cpu_us_per_op`].
    pub fn sys_us_per_op(&self) -> f64 {
        self.sys.as_secs_f64() * 1e6 / self.ops.max(1) as f64
    }

    /// The watched server backends' CPU per operation, in µs.
    pub fn server_us_per_op(&self) -> f64 {
        self.server_cpu_secs * 1e6 / self.ops.max(1) as f64
    }

    /// The watched server backends' CPU time as a share of the span, in % of one core.
    pub fn server_busy_pct(&self) -> f64 {
        crate::measure::busy_pct(self.server_cpu_secs, self.secs)
    }
}

/// Spawns `tasks`, lets them warm up, counts their operations and the process's CPU time
/// over `measure`, then stops them and waits for them.
pub async fn timed<F>(tasks: Vec<F>, ctl: Arc<Ctl>, warmup: Duration, measure: Duration) -> Measured
where
    F: Future<Output = ()> + Send + 'static,
{
    timed_watching(tasks, ctl, warmup, measure, &[]).await
}

/// [`timed`], also reading the CPU time of the server backends `server_pids` over the
/// measured span.
pub async fn timed_watching<F>(
    tasks: Vec<F>,
    ctl: Arc<Ctl>,
    warmup: Duration,
    measure: Duration,
    server_pids: &[i32],
) -> Measured
where
    F: Future<Output = ()> + Send + 'static,
{
    let server_cpu = || -> f64 {
        server_pids
            .iter()
            .map(|&pid| crate::measure::process_cpu_secs(pid))
            .sum()
    };
    let handles: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
    tokio::time::sleep(warmup).await;
    let (ops0, cpu0, t0) = (ctl.ops.load(Ordering::Relaxed), cpu_times(), Instant::now());
    let server0 = server_cpu();
    tokio::time::sleep(measure).await;
    let (ops1, cpu1, secs) = (ctl.ops.load(Ordering::Relaxed), cpu_times(), t0.elapsed());
    let server1 = server_cpu();
    ctl.stop.store(true, Ordering::Relaxed);
    for h in handles {
        if let Err(e) = h.await {
            panic!("a benchmark task failed: {e}");
        }
    }
    Measured {
        ops: ops1 - ops0,
        secs: secs.as_secs_f64(),
        cpu: (cpu1.0 + cpu1.1) - (cpu0.0 + cpu0.1),
        sys: cpu1.1 - cpu0.1,
        server_cpu_secs: server1 - server0,
    }
}

/// Names for inserted rows: the same few short strings for every driver.
pub const NAMES: [&str; 8] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
];

/// The child's side of a ceiling run: `sql` streamed by pgkeel in a spawned task with
/// nothing decoded (rows are only counted), so the rate is what the server can produce;
/// with the server backend's CPU time over the run.
pub fn ceiling_child(url: &str, sql: &'static str) -> crate::child::ChildResult {
    use futures::StreamExt;
    let url = url.to_string();
    crate::measure::on_fresh_runtime_in(true, async move {
        let conn = crate::drivers::pgkeel_conn(&url).await;
        let pid = crate::drivers::pgkeel_pid(&conn).await;
        let server = crate::measure::process_cpu_secs(pid);
        let t = Instant::now();
        let mut rows = conn
            .query_raw(sql, &[] as pgkeel::Params)
            .await
            .expect("pgkeel query_raw");
        let (mut n, mut values) = (0u64, 0usize);
        while let Some(row) = rows.next().await {
            values += row.expect("pgkeel row").len();
            n += 1;
        }
        std::hint::black_box(values);
        let mut r = crate::child::ChildResult::default();
        r.set("secs", t.elapsed().as_secs_f64());
        r.set("rows", n as f64);
        r.set(
            "server_cpu_secs",
            crate::measure::process_cpu_secs(pid) - server,
        );
        r
    })
}

/// What a streamed single-connection workload records beside its own figures: each
/// driver's rate on the runtime's block_on thread, the server backend's share of the
/// in-task runs, and the rate with nothing decoded (the server's ceiling).
#[derive(Default)]
pub struct Beside {
    rate_main: [Vec<f64>; 3],
    busy: [Vec<f64>; 3],
    ceiling: Vec<f64>,
    floor: Floor,
}

/// The server's floor over the repetitions: a raw client that discards the answers
/// (see `raw.rs`), its rate and the server backend's CPU per row or statement.
#[derive(Default)]
pub struct Floor {
    rate: Vec<f64>,
    server_us: Vec<f64>,
}

impl Floor {
    /// Records one raw run (`what` names it on stderr).
    pub fn push(
        &mut self,
        what: &str,
        rep: usize,
        unit: &str,
        run: std::io::Result<crate::raw::Floor>,
    ) {
        let f = run.unwrap_or_else(|e| panic!("{what} raw client: {e}"));
        eprintln!(
            "{what:<13} rep {rep} {:>9.0} {unit}/s with a raw client that discards them, server busy {:.0}%, {:.3} µs/{unit}",
            f.rate, f.busy, f.server_us
        );
        self.rate.push(f.rate);
        self.server_us.push(f.server_us);
    }

    /// Adds the floor's rows to the report under `name`, in the reference column, with
    /// floor ÷ tokio-postgres (`tp`, its rates): the most a driver could gain over it
    /// while the server does the same work per row or statement.
    pub fn report(
        self,
        name: &'static str,
        unit: &str,
        tp: &[f64],
        report: &mut crate::report::Report,
    ) {
        use crate::report::{Better, Cell, Line};
        if self.rate.is_empty() {
            return;
        }
        let bound = (!tp.is_empty())
            .then(|| crate::measure::summary(&self.rate).0 / crate::measure::summary(tp).0);
        report.push(
            Line::new(
                name,
                &format!("server floor: {unit}/s for a raw client that discards the answers"),
                Some(Better::Higher),
            )
            .reference(Cell::Values(self.rate)),
        );
        report.push(
            Line::new(
                name,
                &format!("server floor: backend CPU µs per {unit}"),
                Some(Better::Lower),
            )
            .reference(Cell::Values(self.server_us)),
        );
        if let Some(bound) = bound {
            report.push(
                Line::new(name, "server floor ÷ tokio-postgres (medians)", None)
                    .reference(Cell::Text(format!("{bound:.2}×"))),
            );
        }
    }
}

impl Beside {
    /// Runs the ceiling child `what` (e.g. `fetch-ceiling`) once for repetition `rep`.
    pub fn ceiling(&mut self, what: &str, url: &str, rows: i64, rep: usize) {
        let c = crate::child::run_child(what, crate::report::Driver::Pgkeel, url, 0)
            .unwrap_or_else(|e| panic!("{what} child: {e}"));
        assert_eq!(c.get("rows"), rows as f64, "{what} read every row");
        let rate = c.get("rows") / c.get("secs");
        let busy = crate::measure::busy_pct(c.get("server_cpu_secs"), c.get("secs"));
        eprintln!(
            "{what:<13} rep {rep} {rate:>9.0} rows/s with nothing decoded, server busy {busy:.0}%"
        );
        self.ceiling.push(rate);
    }

    /// Runs the raw client on `sql` once for repetition `rep` (`what` names it).
    pub fn floor(
        &mut self,
        what: &str,
        bench: &crate::setup::Bench,
        sql: &str,
        rows: i64,
        rep: usize,
    ) {
        let c = &bench.cluster;
        let run = crate::raw::stream(c.port(), c.superuser(), &bench.db, sql, rows);
        self.floor.push(what, rep, "row", run);
    }

    /// Runs the block_on child `what` (e.g. `fetch-block-on`) for `driver`; its rows/s.
    pub fn block_on(
        &mut self,
        what: &str,
        url: &str,
        driver: crate::report::Driver,
        rows: i64,
    ) -> f64 {
        let r = crate::child::run_child(what, driver, url, 0)
            .unwrap_or_else(|e| panic!("{what} child for {}: {e}", driver.name()));
        assert_eq!(r.get("rows"), rows as f64, "{what} read every row");
        let rate = r.get("rows") / r.get("secs");
        self.rate_main[driver as usize].push(rate);
        rate
    }

    /// Records the server backend's share of the in-task run `r` of `driver`.
    pub fn server_share(&mut self, driver: crate::report::Driver, r: &crate::child::ChildResult) {
        let busy = crate::measure::busy_pct(r.get("server_cpu_secs"), r.get("secs"));
        self.busy[driver as usize].push(busy);
    }

    /// Adds its rows to the report under `name`; `tp` is tokio-postgres's in-task rates.
    pub fn report(self, name: &'static str, tp: &[f64], report: &mut crate::report::Report) {
        use crate::report::{Better, Cell, Driver, Line};
        report.push(
            Line::new(
                name,
                "rows/s read on the block_on thread",
                Some(Better::Higher),
            )
            .drivers(self.rate_main),
        );
        report.push(Line::new(name, "server backend busy, % of the run", None).drivers(self.busy));
        report.push(
            Line::new(
                name,
                "server ceiling: rows/s with nothing decoded (pgkeel counting rows)",
                Some(Better::Higher),
            )
            .set(Driver::Pgkeel, Cell::Values(self.ceiling)),
        );
        self.floor.report(name, "row", tp, report);
    }
}
