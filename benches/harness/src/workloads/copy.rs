//! Workload 8: binary COPY of 1,000,000 rows of (int8, text, float8, timestamptz), in
//! (rows made in Rust, written with a typed binary writer) and out (every value decoded
//! into an owned Rust value): pgkeel `BinaryCopyInWriter` / `BinaryCopyOutStream` against
//! tokio-postgres's types of the same names. sqlx has no typed binary COPY.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use futures::{StreamExt, pin_mut};

use super::NAMES;
use crate::args::Sizes;
use crate::drivers;
use crate::measure::{on_fresh_runtime, on_fresh_runtime_in, process_cpu_secs};
use crate::report::{Better, Cell, Check, Driver, Line, Report};
use crate::setup::Bench;

const NAME: &str = "8. binary COPY (1 connection)";
const IN_SQL: &str = "COPY copy_dst (id, name, value, ts) FROM STDIN (FORMAT binary)";
const OUT_SQL: &str = "COPY copy_src (id, name, value, ts) TO STDOUT (FORMAT binary)";
const COUNT_SQL: &str = "SELECT count(*) FROM copy_dst";

fn row(i: i64) -> (i64, String, f64, SystemTime) {
    let name = format!("{}-{i}", NAMES[i as usize % NAMES.len()]);
    let ts = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_000 + i as u64);
    (i, name, i as f64 * 0.25, ts)
}

pub fn run(bench: &Bench, sizes: &Sizes, report: &mut Report) {
    let n = sizes.copy_rows;
    let drivers: Vec<Driver> = sizes
        .drivers
        .iter()
        .copied()
        .filter(|d| *d != Driver::Sqlx)
        .collect();
    let (mut ins, mut outs, mut outs_main, mut busy) = (
        [vec![], vec![], vec![]],
        [vec![], vec![], vec![]],
        [vec![], vec![], vec![]],
        [vec![], vec![], vec![]],
    );
    for rep in 1..=sizes.reps {
        for &driver in &drivers {
            bench.psql("TRUNCATE copy_dst").expect("truncate");
            let secs = on_fresh_runtime(copy_in(driver, bench.url.clone(), n));
            let (out, server) = on_fresh_runtime_in(true, copy_out(driver, bench.url.clone(), n));
            let (out_main, _) = on_fresh_runtime_in(false, copy_out(driver, bench.url.clone(), n));
            eprintln!(
                "copy          rep {rep} {:<15} {:>9.0} rows/s in, {:>9.0} rows/s out \
                 ({:>9.0} on the block_on thread)",
                driver.name(),
                n as f64 / secs,
                n as f64 / out,
                n as f64 / out_main,
            );
            ins[driver as usize].push(n as f64 / secs);
            outs[driver as usize].push(n as f64 / out);
            outs_main[driver as usize].push(n as f64 / out_main);
            busy[driver as usize].push(crate::measure::busy_pct(server, out));
        }
    }
    let [i0, i1, _] = ins;
    let [o0, o1, _] = outs;
    let [m0, m1, _] = outs_main;
    let [b0, b1, _] = busy;
    let none = || Cell::Text("n/a (no typed binary COPY)".into());
    report.push(
        Line::new(NAME, "rows/s, binary COPY in", Some(Better::Higher))
            .set(Driver::Pgkeel, Cell::Values(i0))
            .set(Driver::TokioPostgres, Cell::Values(i1))
            .set(Driver::Sqlx, none())
            .check(Check::AtLeast(Driver::TokioPostgres, 1.0)),
    );
    report.push(
        Line::new(NAME, "rows/s, binary COPY out", Some(Better::Higher))
            .set(Driver::Pgkeel, Cell::Values(o0))
            .set(Driver::TokioPostgres, Cell::Values(o1))
            .set(Driver::Sqlx, none())
            .check(Check::AtLeast(Driver::TokioPostgres, 1.0)),
    );
    report.push(
        Line::new(
            NAME,
            "rows/s, COPY out on the block_on thread",
            Some(Better::Higher),
        )
        .set(Driver::Pgkeel, Cell::Values(m0))
        .set(Driver::TokioPostgres, Cell::Values(m1))
        .set(Driver::Sqlx, none()),
    );
    report.push(
        Line::new(
            NAME,
            "server backend busy during COPY out, % of the run",
            None,
        )
        .set(Driver::Pgkeel, Cell::Values(b0))
        .set(Driver::TokioPostgres, Cell::Values(b1))
        .set(Driver::Sqlx, none()),
    );
    report.note(format!(
        "COPY: {n} rows of (int8, text, float8, timestamptz); in = rows built in Rust and \
         written with each driver's BinaryCopyInWriter into an unindexed table (timed to the \
         COPY's end); out = BinaryCopyOutStream with every value decoded into an owned Rust \
         value (i64, String, f64, SystemTime), read in a spawned task (as a service does) and, \
         reported beside it, on the runtime's block_on thread (as in `#[tokio::main]`'s \
         body): there a worker thread drives the socket, so every wake-up crosses threads, \
         which costs a driver that reads on the caller's task (pgkeel) more than one that \
         reads on its own connection task (tokio-postgres)."
    ));
}

/// Loads `n` rows with a typed binary COPY; returns the seconds taken.
async fn copy_in(driver: Driver, url: String, n: i64) -> f64 {
    let url = url.as_str();
    let secs = match driver {
        Driver::Pgkeel => {
            use pgkeel::Type;
            let conn = drivers::pgkeel_conn(url).await;
            let t = Instant::now();
            let sink = conn.copy_in(IN_SQL).await.expect("pgkeel copy_in");
            let types = [Type::INT8, Type::TEXT, Type::FLOAT8, Type::TIMESTAMPTZ];
            let mut w = pgkeel::BinaryCopyInWriter::new(sink, &types);
            for i in 0..n {
                let (id, name, value, ts) = row(i);
                w.write(&[&id, &name, &value, &ts])
                    .await
                    .expect("pgkeel write");
            }
            assert_eq!(w.finish().await.expect("pgkeel finish"), n as u64);
            t.elapsed().as_secs_f64()
        }
        _ => {
            use tokio_postgres::binary_copy::BinaryCopyInWriter;
            use tokio_postgres::types::Type;
            let client = drivers::tokio_postgres(url).await;
            let t = Instant::now();
            let sink = client
                .copy_in(IN_SQL)
                .await
                .expect("tokio-postgres copy_in");
            let types = [Type::INT8, Type::TEXT, Type::FLOAT8, Type::TIMESTAMPTZ];
            let w = BinaryCopyInWriter::new(sink, &types);
            pin_mut!(w);
            for i in 0..n {
                let (id, name, value, ts) = row(i);
                w.as_mut()
                    .write(&[&id, &name, &value, &ts])
                    .await
                    .expect("tokio-postgres write");
            }
            assert_eq!(w.finish().await.expect("tokio-postgres finish"), n as u64);
            t.elapsed().as_secs_f64()
        }
    };
    let conn = drivers::pgkeel_conn(url).await;
    let count: i64 = conn.query_one(COUNT_SQL, &[]).await.expect("count").get(0);
    assert_eq!(count, n);
    secs
}

/// Reads `n` rows with a typed binary COPY, decoding every value; returns the seconds
/// and the server backend's CPU seconds meanwhile.
async fn copy_out(driver: Driver, url: String, n: i64) -> (f64, f64) {
    let url = url.as_str();
    let mut rows = 0i64;
    let secs = match driver {
        Driver::Pgkeel => {
            use pgkeel::Type;
            let conn = drivers::pgkeel_conn(url).await;
            let pid = drivers::pgkeel_pid(&conn).await;
            let server = process_cpu_secs(pid);
            let t = Instant::now();
            let out = conn.copy_out(OUT_SQL).await.expect("pgkeel copy_out");
            let types = [Type::INT8, Type::TEXT, Type::FLOAT8, Type::TIMESTAMPTZ];
            let mut stream = pgkeel::BinaryCopyOutStream::new(out, &types);
            while let Some(row) = stream.next().await {
                let row = row.expect("pgkeel row");
                let v: (i64, String, f64, SystemTime) =
                    (row.get(0), row.get(1), row.get(2), row.get(3));
                black_box(v);
                rows += 1;
            }
            let secs = t.elapsed().as_secs_f64();
            (secs, process_cpu_secs(pid) - server)
        }
        _ => {
            use tokio_postgres::binary_copy::BinaryCopyOutStream;
            use tokio_postgres::types::Type;
            let client = drivers::tokio_postgres(url).await;
            let pid = drivers::tokio_postgres_pid(&client).await;
            let server = process_cpu_secs(pid);
            let t = Instant::now();
            let out = client
                .copy_out(OUT_SQL)
                .await
                .expect("tokio-postgres copy_out");
            let types = [Type::INT8, Type::TEXT, Type::FLOAT8, Type::TIMESTAMPTZ];
            let stream = BinaryCopyOutStream::new(out, &types);
            pin_mut!(stream);
            while let Some(row) = stream.next().await {
                let row = row.expect("tokio-postgres row");
                let v: (i64, String, f64, SystemTime) =
                    (row.get(0), row.get(1), row.get(2), row.get(3));
                black_box(v);
                rows += 1;
            }
            let secs = t.elapsed().as_secs_f64();
            (secs, process_cpu_secs(pid) - server)
        }
    };
    assert_eq!(rows, n, "{} read every row", driver.name());
    secs
}
