//! pgkeel's benchmark harness: pgkeel against tokio-postgres (+ deadpool-postgres) and
//! sqlx on a throwaway PostgreSQL cluster, with pgbench as the reference.
//!
//! ```text
//! cargo run --release -p pgkeel-bench                      # everything, ~10 minutes
//! cargo run --release -p pgkeel-bench -- --quick           # a smoke run
//! cargo run --release -p pgkeel-bench -- --only storm      # one workload
//! ```
//!
//! Every workload runs each driver in turn (pgkeel, tokio-postgres, sqlx, pgkeel, …) for
//! several repetitions, each on a fresh Tokio runtime with fresh connections; the table
//! gives medians and ranges and pgkeel's ratio to each peer. See docs/BENCHMARKS.md.

mod args;
mod child;
mod drivers;
mod measure;
mod raw;
mod report;
mod setup;
mod workloads;

use std::time::Instant;

use args::{Args, Mode, Sizes, Workload};
use report::Report;
use setup::Bench;

fn main() {
    let mode = match args::parse() {
        Ok(mode) => mode,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    match mode {
        Mode::Child(child) => {
            if let Err(msg) = child.run() {
                eprintln!("{msg}");
                std::process::exit(1);
            }
        }
        Mode::Run(args) => run(args),
    }
}

fn run(args: Args) {
    let started = Instant::now();
    let revision = revision();
    let sizes = &args.sizes;
    let bench = match Bench::start(sizes, &args.only) {
        Ok(bench) => bench,
        Err(msg) => {
            eprintln!("could not start the benchmark cluster: {msg}");
            std::process::exit(1);
        }
    };
    let mut report = Report::default();
    for workload in &args.only {
        let t = Instant::now();
        run_workload(*workload, &bench, sizes, &mut report);
        eprintln!("{} took {:.0?}", workload.name(), t.elapsed());
    }
    println!("{}", environment(&bench, sizes, &revision));
    println!("{}", report.render());
    println!("Total run time: {:.0?}.", started.elapsed());
}

fn run_workload(workload: Workload, bench: &Bench, sizes: &Sizes, report: &mut Report) {
    use workloads::*;
    match workload {
        Workload::PointSelect => point_select::run(bench, sizes, report),
        Workload::SharedConn => shared_conn::run(bench, sizes, report),
        Workload::LargeFetch => large_fetch::run(bench, sizes, report),
        Workload::Decode => decode::run(bench, sizes, report),
        Workload::Inserts => inserts::run(bench, sizes, report),
        Workload::Storm => storm::run(bench, sizes, report),
        Workload::Acquire => acquire::run(bench, sizes, report),
        Workload::Pgbench => pgbench::run(bench, sizes, report),
        Workload::Callgrind => callgrind::run(bench, sizes, report),
        Workload::Copy => copy::run(bench, sizes, report),
    }
}

/// The machine, the server and the crate versions, as a few markdown lines.
fn environment(bench: &Bench, sizes: &Sizes, revision: &str) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let crates = ["tokio", "tokio-postgres", "deadpool-postgres", "sqlx"]
        .map(|c| format!("{c} {}", locked_version(c).unwrap_or_else(|| "?".into())))
        .join(", ");
    format!(
        "- pgkeel: {}\n- machine: {cores} cores ({cpu}), {}\n- server: PostgreSQL {} on 127.0.0.1 (TCP), fsync off, synchronous_commit off, jit off, autovacuum off\n- crates: pgkeel {}, {crates}; runtime: Tokio multi-thread, 2 workers\n- sizes: {}{} repetitions per driver, pool of {}, {} tasks\n",
        revision,
        os_line(),
        bench.server_version(),
        env!("CARGO_PKG_VERSION").replace("0.0.0", &locked_version("pgkeel").unwrap_or_default()),
        if sizes.quick { "--quick, " } else { "" },
        sizes.reps,
        sizes.pool_size,
        sizes.tasks,
    )
}

/// The commit the harness was built from, and whether pgkeel's sources differ from it.
fn revision() -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(head) => {
            let dirty = git(&["status", "--porcelain", "--", "src"]).is_some_and(|s| !s.is_empty());
            format!(
                "commit {head}{}",
                if dirty {
                    " with uncommitted changes in src/"
                } else {
                    ""
                }
            )
        }
        None => "not a git checkout".into(),
    }
}

fn os_line() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| format!("Linux {}", r.trim()))
        .unwrap_or_default()
}

/// A package's version in the workspace's Cargo.lock.
fn locked_version(name: &str) -> Option<String> {
    let lock =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock")).ok()?;
    let needle = format!("name = \"{name}\"\nversion = \"");
    let start = lock.find(&needle)? + needle.len();
    lock[start..].split('"').next().map(str::to_string)
}
