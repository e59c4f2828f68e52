//! Client instructions per query under valgrind's callgrind: a single-connection
//! point-select loop (the query of workload 1) on a current-thread runtime, in a child
//! process per driver, with collection switched on only inside the loop function
//! (`--toggle-collect`), so connecting and warming up are not counted. The server runs
//! outside valgrind; only the harness process is measured.
//!
//! The pgkeel profile is kept, with `callgrind_annotate --inclusive=yes` output beside
//! it, for hot-path work.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::Row as _;

use crate::args::Sizes;
use crate::child::{ChildResult, run_child_under};
use crate::drivers;
use crate::measure::Rng;
use crate::report::{Better, Cell, Driver, Line, Report};
use crate::setup::{Bench, POINT_SQL};

const NAME: &str = "callgrind: point select, 1 connection";
const WARMUP_QUERIES: u64 = 500;

pub fn run(bench: &Bench, sizes: &Sizes, report: &mut Report) {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("callgrind     skipped: valgrind not found (apt-get install valgrind)");
        report.note("callgrind: skipped, valgrind was not found.");
        return;
    }
    let dir = out_dir();
    std::fs::create_dir_all(&dir).expect("callgrind output dir");
    let n = sizes.callgrind_queries;
    let mut line = Line::new(NAME, "client instructions/query", Some(Better::Lower));
    for driver in sizes.drivers.clone() {
        let file = dir.join(format!("callgrind.{}.out", driver.name()));
        let wrapper = vec![
            "valgrind".to_string(),
            "--tool=callgrind".to_string(),
            format!("--callgrind-out-file={}", file.display()),
            format!("--toggle-collect=*{}", loop_fn(driver)),
        ];
        let r = run_child_under(&wrapper, "callgrind", driver, &bench.url, n)
            .unwrap_or_else(|e| panic!("callgrind child for {}: {e}", driver.name()));
        assert_eq!(r.get("queries"), n as f64);
        let ir = totals(&file).unwrap_or_else(|| panic!("no totals in {}", file.display()));
        let per_query = ir as f64 / n as f64;
        eprintln!(
            "callgrind     {:<15} {per_query:>9.0} instructions/query ({ir} in {n} queries), {}",
            driver.name(),
            file.display()
        );
        line = line.set(driver, Cell::Values(vec![per_query]));
    }
    report.push(line);
    if !sizes.drivers.contains(&Driver::Pgkeel) {
        return;
    }
    let annotated = annotate(&dir.join("callgrind.pgkeel.out"));
    report.note(format!(
        "callgrind: {n} queries after {WARMUP_QUERIES} warm-up queries, current-thread runtime, \
         counted only inside the loop; profiles in {} (pgkeel's inclusive annotation: {}).",
        dir.display(),
        annotated.map_or_else(
            || "callgrind_annotate failed".into(),
            |p| p.display().to_string()
        )
    ));
}

/// `<target>/pgkeel-bench`, beside the release directory of this executable.
fn out_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let target = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    target.join("pgkeel-bench")
}

/// The name of the one function callgrind collects in, per driver. The pattern ends at
/// the name, so the async blocks inside it (`…::{{closure}}`) do not toggle again.
fn loop_fn(driver: Driver) -> &'static str {
    match driver {
        Driver::Pgkeel => "callgrind_loop_pgkeel",
        Driver::TokioPostgres => "callgrind_loop_tokio_postgres",
        Driver::Sqlx => "callgrind_loop_sqlx",
    }
}

/// The collected instruction count of a callgrind output file.
fn totals(file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let find = |prefix: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(prefix)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    };
    find("totals:").or_else(|| find("summary:"))
}

/// Writes `callgrind_annotate` of `file` beside it, inclusive and self cost, and prints
/// the top of the inclusive one.
fn annotate(file: &Path) -> Option<PathBuf> {
    let run = |inclusive: &str| {
        let out = Command::new("callgrind_annotate")
            .arg(format!("--inclusive={inclusive}"))
            .arg("--threshold=99.9")
            .arg(file)
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let self_cost = run("no")?;
    std::fs::write(file.with_extension("self.txt"), self_cost.as_bytes()).ok()?;
    let text = run("yes")?;
    let path = file.with_extension("inclusive.txt");
    std::fs::write(&path, text.as_bytes()).ok()?;
    eprintln!(
        "callgrind     pgkeel, inclusive, top 30 ({}):",
        path.display()
    );
    for l in text
        .lines()
        .skip_while(|l| !l.contains("file:function"))
        .skip(2)
        .take(30)
    {
        eprintln!("    {l}");
    }
    Some(path)
}

/// The child's side: connect, warm up, then the measured loop.
pub fn child(driver: Driver, url: &str, n: u64) -> ChildResult {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let queries = match driver {
        Driver::Pgkeel => {
            let conn = rt.block_on(drivers::pgkeel_conn(url));
            rt.block_on(pgkeel_queries(&conn, WARMUP_QUERIES, 1));
            callgrind_loop_pgkeel(&rt, &conn, n)
        }
        Driver::TokioPostgres => {
            let client = rt.block_on(drivers::tokio_postgres(url));
            let stmt = rt.block_on(client.prepare(POINT_SQL)).expect("prepare");
            rt.block_on(tokio_postgres_queries(&client, &stmt, WARMUP_QUERIES, 1));
            callgrind_loop_tokio_postgres(&rt, &client, &stmt, n)
        }
        Driver::Sqlx => {
            let mut conn = rt.block_on(drivers::sqlx_conn(url));
            rt.block_on(sqlx_queries(&mut conn, WARMUP_QUERIES, 1));
            callgrind_loop_sqlx(&rt, &mut conn, n)
        }
    };
    let mut r = ChildResult::default();
    r.set("queries", queries as f64);
    r
}

#[inline(never)]
fn callgrind_loop_pgkeel(rt: &tokio::runtime::Runtime, conn: &pgkeel::Connection, n: u64) -> u64 {
    rt.block_on(pgkeel_queries(conn, n, 2))
}

#[inline(never)]
fn callgrind_loop_tokio_postgres(
    rt: &tokio::runtime::Runtime,
    client: &tokio_postgres::Client,
    stmt: &tokio_postgres::Statement,
    n: u64,
) -> u64 {
    rt.block_on(tokio_postgres_queries(client, stmt, n, 2))
}

#[inline(never)]
fn callgrind_loop_sqlx(rt: &tokio::runtime::Runtime, conn: &mut sqlx::PgConnection, n: u64) -> u64 {
    rt.block_on(sqlx_queries(conn, n, 2))
}

const ROWS: i64 = 10_000;

async fn pgkeel_queries(conn: &pgkeel::Connection, n: u64, seed: u64) -> u64 {
    let mut rng = Rng::new(seed);
    for _ in 0..n {
        let id = rng.id(ROWS);
        let row = conn.query_one(POINT_SQL, &[&id]).await.expect("pgkeel");
        let value: (i64, String, f64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(value.0, id);
        black_box(value);
    }
    n
}

async fn tokio_postgres_queries(
    client: &tokio_postgres::Client,
    stmt: &tokio_postgres::Statement,
    n: u64,
    seed: u64,
) -> u64 {
    let mut rng = Rng::new(seed);
    for _ in 0..n {
        let id = rng.id(ROWS);
        let row = client
            .query_one(stmt, &[&id])
            .await
            .expect("tokio-postgres");
        let value: (i64, String, f64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(value.0, id);
        black_box(value);
    }
    n
}

async fn sqlx_queries(conn: &mut sqlx::PgConnection, n: u64, seed: u64) -> u64 {
    let mut rng = Rng::new(seed);
    for _ in 0..n {
        let id = rng.id(ROWS);
        let row = sqlx::query(POINT_SQL)
            .bind(id)
            .fetch_one(&mut *conn)
            .await
            .expect("sqlx");
        let value: (i64, String, f64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(value.0, id);
        black_box(value);
    }
    n
}
