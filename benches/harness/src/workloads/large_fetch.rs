//! Workload 2: stream 1,000,000 rows of (int8, text, float8, timestamptz) into owned
//! values, each run in a fresh child process so its memory high-water mark is its own.
//!
//! The timestamptz column is selected as `extract(epoch FROM ts)::float8` for every
//! driver, as in the first runs of this workload, so figures stay comparable. Peak memory is the child's VmHWM
//! after the fetch minus its VmRSS just before it (after connecting).

use std::hint::black_box;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use sqlx::Row as _;

use super::Beside;
use crate::args::Sizes;
use crate::child::{self, ChildResult};
use crate::drivers;
use crate::measure::{on_fresh_runtime_in, proc_status_kib, process_cpu_secs};
use crate::report::{Better, Check, Driver, Line, Report};
use crate::setup::{Bench, FETCH_SQL};

const NAME: &str = "2. large fetch (streamed, 1 connection)";

pub fn run(bench: &Bench, sizes: &Sizes, report: &mut Report) {
    let mut rate = [vec![], vec![], vec![]];
    let mut peak = [vec![], vec![], vec![]];
    let mut beside = Beside::default();
    for rep in 1..=sizes.reps {
        beside.ceiling("fetch-ceiling", &bench.url, sizes.fetch_rows, rep);
        beside.floor("fetch-floor", bench, FETCH_SQL, sizes.fetch_rows, rep);
        for driver in sizes.drivers.clone() {
            let on_main = beside.block_on("fetch-block-on", &bench.url, driver, sizes.fetch_rows);
            let r = child::run_child("fetch", driver, &bench.url, sizes.fetch_rows as u64)
                .unwrap_or_else(|e| panic!("large-fetch child for {}: {e}", driver.name()));
            let rows = r.get("rows");
            assert_eq!(
                rows,
                sizes.fetch_rows as f64,
                "{} fetched all rows",
                driver.name()
            );
            let rows_per_sec = rows / r.get("secs");
            beside.server_share(driver, &r);
            let peak_mib = (r.get("hwm_after_kib") - r.get("rss_before_kib")) / 1024.0;
            eprintln!(
                "large-fetch   rep {rep} {:<15} {:>9.0} rows/s  peak +{peak_mib:.1} MiB \
                 ({on_main:.0} rows/s on the block_on thread){}",
                driver.name(),
                rows_per_sec,
                crate::measure::spins_text(&r)
            );
            rate[driver as usize].push(rows_per_sec);
            peak[driver as usize].push(peak_mib);
        }
    }
    let tp_rate = rate[Driver::TokioPostgres as usize].clone();
    report.push(
        Line::new(NAME, "rows/s", Some(Better::Higher))
            .drivers(rate)
            .check(Check::AtLeast(Driver::TokioPostgres, 1.2)),
    );
    beside.report(NAME, &tp_rate, report);
    report.push(
        Line::new(
            NAME,
            "peak memory MiB (RSS high-water delta)",
            Some(Better::Lower),
        )
        .drivers(peak)
        .check(Check::Below(16.0, "MiB")),
    );
    report.note(format!(
        "Large fetch: {} rows; the timestamptz column is selected as `extract(epoch FROM ts)::float8` \
         for every driver (as in the first runs of this workload, so figures stay comparable); each run is a fresh child process; \
         peak memory = VmHWM after the fetch − VmRSS before it; rows are read in a spawned \
         task (as a service does) and, reported beside it, on the runtime's block_on thread \
         (see the COPY note).",
        sizes.fetch_rows
    ));
}

/// Sums every decoded value, so no decode can be optimised away.
#[derive(Default)]
struct Acc {
    rows: u64,
    ids: i64,
    text_bytes: usize,
    floats: f64,
}

impl Acc {
    fn add(&mut self, row: (i64, String, f64, f64)) {
        self.rows += 1;
        self.ids = self.ids.wrapping_add(row.0);
        self.text_bytes += row.1.len();
        self.floats += row.2 + row.3;
    }
}

/// The child's side: connect, then stream and decode every row, in a spawned task
/// (`in_task`) or on the runtime's block_on thread.
pub fn child(driver: Driver, url: &str, in_task: bool) -> ChildResult {
    let url = url.to_string();
    on_fresh_runtime_in(in_task, async move {
        let url = url.as_str();
        let (acc, rss_before, secs, server_cpu) = match driver {
            Driver::Pgkeel => fetch_pgkeel(url).await,
            Driver::TokioPostgres => fetch_tokio_postgres(url).await,
            Driver::Sqlx => fetch_sqlx(url).await,
        };
        black_box((acc.ids, acc.text_bytes, acc.floats));
        let mut r = ChildResult::default();
        r.set("rows", acc.rows as f64);
        r.set("secs", secs);
        r.set("server_cpu_secs", server_cpu);
        r.set("rss_before_kib", rss_before as f64);
        r.set("hwm_after_kib", proc_status_kib("VmHWM") as f64);
        crate::measure::report_spins(&mut r);
        r
    })
}

async fn fetch_pgkeel(url: &str) -> (Acc, u64, f64, f64) {
    let conn = drivers::pgkeel_conn(url).await;
    let pid = drivers::pgkeel_pid(&conn).await;
    let server = process_cpu_secs(pid);
    let rss = proc_status_kib("VmRSS");
    let t = Instant::now();
    let mut acc = Acc::default();
    let mut rows = conn
        .query_raw(FETCH_SQL, &[] as pgkeel::Params)
        .await
        .expect("pgkeel query_raw");
    while let Some(row) = rows.next().await {
        let row = row.expect("pgkeel row");
        acc.add((row.get(0), row.get(1), row.get(2), row.get(3)));
    }
    let secs = t.elapsed().as_secs_f64();
    crate::measure::note_spins(conn.read_spin_counts());
    (acc, rss, secs, process_cpu_secs(pid) - server)
}

async fn fetch_tokio_postgres(url: &str) -> (Acc, u64, f64, f64) {
    let client = drivers::tokio_postgres(url).await;
    let pid = drivers::tokio_postgres_pid(&client).await;
    let server = process_cpu_secs(pid);
    let rss = proc_status_kib("VmRSS");
    let t = Instant::now();
    let mut acc = Acc::default();
    let stmt = client.prepare(FETCH_SQL).await.expect("prepare");
    let no_params: [&(dyn tokio_postgres::types::ToSql + Sync); 0] = [];
    let rows = client
        .query_raw(&stmt, no_params)
        .await
        .expect("tokio-postgres query_raw");
    futures::pin_mut!(rows);
    while let Some(row) = rows.next().await {
        let row = row.expect("tokio-postgres row");
        acc.add((row.get(0), row.get(1), row.get(2), row.get(3)));
    }
    let secs = t.elapsed().as_secs_f64();
    (acc, rss, secs, process_cpu_secs(pid) - server)
}

async fn fetch_sqlx(url: &str) -> (Acc, u64, f64, f64) {
    let mut conn = drivers::sqlx_conn(url).await;
    let pid = drivers::sqlx_pid(&mut conn).await;
    let server = process_cpu_secs(pid);
    let rss = proc_status_kib("VmRSS");
    let t = Instant::now();
    let mut acc = Acc::default();
    let mut rows = sqlx::query(FETCH_SQL).fetch(&mut conn);
    while let Some(row) = rows.try_next().await.expect("sqlx row") {
        acc.add((row.get(0), row.get(1), row.get(2), row.get(3)));
    }
    let secs = t.elapsed().as_secs_f64();
    (acc, rss, secs, process_cpu_secs(pid) - server)
}
