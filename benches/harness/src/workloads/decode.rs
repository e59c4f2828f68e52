//! The decode workload: stream 1,000,000 rows of (int8, text, float8, timestamptz,
//! numeric, uuid, jsonb) and decode every column into its natural Rust type (i64,
//! String, f64, chrono `DateTime<Utc>`, rust_decimal `Decimal`, `Uuid`,
//! `serde_json::Value`), each run in a fresh child process so its memory high-water mark
//! is its own.
//!
//! The rows are generated once by `generate_series` into a table, so the server's part
//! of each run is a sequential scan and the client's decoding is what differs. Every
//! driver uses its own decoders: pgkeel's `chrono`, `uuid`, `serde_json` and
//! `rust_decimal` features; tokio-postgres's `with-chrono-0_4`, `with-uuid-1` and
//! `with-serde_json-1` with rust_decimal's `db-tokio-postgres`; sqlx's `chrono`, `uuid`,
//! `json` and `rust_decimal`.

use std::hint::black_box;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::Row as _;
use uuid::Uuid;

use super::Beside;
use crate::args::Sizes;
use crate::child::{self, ChildResult};
use crate::drivers;
use crate::measure::{cpu_times, on_fresh_runtime_in, proc_status_kib, process_cpu_secs};
use crate::report::{Better, Check, Driver, Line, Report};
use crate::setup::{Bench, DECODE_SQL};

const NAME: &str = "2b. decode 7 types (streamed, 1 connection)";

pub fn run(bench: &Bench, sizes: &Sizes, report: &mut Report) {
    let mut rate = [vec![], vec![], vec![]];
    let mut peak = [vec![], vec![], vec![]];
    let mut cpu = [vec![], vec![], vec![]];
    let mut beside = Beside::default();
    for rep in 1..=sizes.reps {
        beside.ceiling("decode-ceiling", &bench.url, sizes.fetch_rows, rep);
        beside.floor("decode-floor", bench, DECODE_SQL, sizes.fetch_rows, rep);
        for driver in sizes.drivers.clone() {
            let on_main = beside.block_on("decode-block-on", &bench.url, driver, sizes.fetch_rows);
            let r = child::run_child("decode", driver, &bench.url, sizes.fetch_rows as u64)
                .unwrap_or_else(|e| panic!("decode child for {}: {e}", driver.name()));
            let rows = r.get("rows");
            assert_eq!(
                rows,
                sizes.fetch_rows as f64,
                "{} decoded all rows",
                driver.name()
            );
            assert_eq!(
                r.get("check"),
                expected_check(sizes.fetch_rows),
                "{} decoded the same values",
                driver.name()
            );
            let rows_per_sec = rows / r.get("secs");
            beside.server_share(driver, &r);
            let peak_mib = (r.get("hwm_after_kib") - r.get("rss_before_kib")) / 1024.0;
            let cpu_us = r.get("cpu_secs") * 1e6 / rows;
            eprintln!(
                "decode        rep {rep} {:<15} {:>9.0} rows/s  peak +{peak_mib:.1} MiB  {cpu_us:.2} µs CPU/row \
                 ({on_main:.0} rows/s on the block_on thread){}",
                driver.name(),
                rows_per_sec,
                crate::measure::spins_text(&r)
            );
            rate[driver as usize].push(rows_per_sec);
            peak[driver as usize].push(peak_mib);
            cpu[driver as usize].push(cpu_us);
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
            "client CPU µs/row (user + system)",
            Some(Better::Lower),
        )
        .drivers(cpu),
    );
    report.push(
        Line::new(
            NAME,
            "peak memory MiB (RSS high-water delta)",
            Some(Better::Lower),
        )
        .drivers(peak),
    );
    report.note(format!(
        "Decode: {} rows of (int8, text, float8, timestamptz, numeric, uuid, jsonb) into \
         (i64, String, f64, DateTime<Utc>, rust_decimal::Decimal, Uuid, serde_json::Value); \
         each run is a fresh child process; peak memory = VmHWM after the fetch − VmRSS before it; \
         client CPU = the child's getrusage (every thread) over connecting and the fetch; \
         rows are read in a spawned task (as a service does) and, reported beside it, on the \
         runtime's block_on thread (see the COPY note).",
        sizes.fetch_rows
    ));
}

/// What [`Acc::check`] must come to for `n` rows: the sum of the ids and of the
/// amounts' cents (`i * 1.25` is `125 * i` cents).
fn expected_check(n: i64) -> f64 {
    let ids = n * (n + 1) / 2;
    (ids + 125 * ids) as f64
}

/// One decoded row.
type Decoded = (i64, String, f64, DateTime<Utc>, Decimal, Uuid, Value);

/// Folds every decoded value into a few numbers, so no decode can be optimised away.
#[derive(Default)]
struct Acc {
    rows: u64,
    ids: i64,
    cents: i64,
    text_bytes: usize,
    floats: f64,
    secs: i64,
    uuids: u128,
    json_fields: usize,
}

impl Acc {
    fn add(&mut self, row: Decoded) {
        self.rows += 1;
        self.ids = self.ids.wrapping_add(row.0);
        self.text_bytes += row.1.len();
        self.floats += row.2;
        self.secs = self.secs.wrapping_add(row.3.timestamp());
        let cents = row.4 * Decimal::ONE_HUNDRED;
        self.cents = self
            .cents
            .wrapping_add(cents.mantissa() as i64 / 10i64.pow(cents.scale()));
        self.uuids ^= row.5.as_u128();
        self.json_fields += row.6.as_object().map_or(0, |o| o.len());
    }

    fn check(&self) -> f64 {
        (self.ids + self.cents) as f64
    }
}

/// The child's side: connect, then stream and decode every row, in a spawned task
/// (`in_task`) or on the runtime's block_on thread.
pub fn child(driver: Driver, url: &str, in_task: bool) -> ChildResult {
    let url = url.to_string();
    on_fresh_runtime_in(in_task, async move {
        let url = url.as_str();
        let cpu0 = cpu_times();
        let (acc, rss_before, secs, server_cpu) = match driver {
            Driver::Pgkeel => fetch_pgkeel(url).await,
            Driver::TokioPostgres => fetch_tokio_postgres(url).await,
            Driver::Sqlx => fetch_sqlx(url).await,
        };
        let cpu1 = cpu_times();
        let cpu = (cpu1.0 + cpu1.1) - (cpu0.0 + cpu0.1);
        black_box((
            acc.text_bytes,
            acc.floats,
            acc.secs,
            acc.uuids,
            acc.json_fields,
        ));
        let mut r = ChildResult::default();
        r.set("rows", acc.rows as f64);
        r.set("check", acc.check());
        r.set("secs", secs);
        r.set("server_cpu_secs", server_cpu);
        r.set("cpu_secs", cpu.as_secs_f64());
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
        .query_raw(DECODE_SQL, &[] as pgkeel::Params)
        .await
        .expect("pgkeel query_raw");
    while let Some(row) = rows.next().await {
        let row = row.expect("pgkeel row");
        acc.add((
            row.get(0),
            row.get(1),
            row.get(2),
            row.get(3),
            row.get(4),
            row.get(5),
            row.get(6),
        ));
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
    let stmt = client.prepare(DECODE_SQL).await.expect("prepare");
    let no_params: [&(dyn tokio_postgres::types::ToSql + Sync); 0] = [];
    let rows = client
        .query_raw(&stmt, no_params)
        .await
        .expect("tokio-postgres query_raw");
    futures::pin_mut!(rows);
    while let Some(row) = rows.next().await {
        let row = row.expect("tokio-postgres row");
        acc.add((
            row.get(0),
            row.get(1),
            row.get(2),
            row.get(3),
            row.get(4),
            row.get(5),
            row.get(6),
        ));
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
    let mut rows = sqlx::query(DECODE_SQL).fetch(&mut conn);
    while let Some(row) = rows.try_next().await.expect("sqlx row") {
        acc.add((
            row.get(0),
            row.get(1),
            row.get(2),
            row.get(3),
            row.get(4),
            row.get(5),
            row.get(6),
        ));
    }
    let secs = t.elapsed().as_secs_f64();
    (acc, rss, secs, process_cpu_secs(pid) - server)
}
