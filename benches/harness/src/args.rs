//! Command-line arguments: what to run and how big.

use std::time::Duration;

use crate::report::Driver;

/// The workloads, in the order a full run takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    PointSelect,
    SharedConn,
    LargeFetch,
    Decode,
    Inserts,
    Storm,
    Acquire,
    Pgbench,
    Callgrind,
    Copy,
}

impl Workload {
    pub const ALL: [Workload; 10] = [
        Workload::PointSelect,
        Workload::SharedConn,
        Workload::LargeFetch,
        Workload::Decode,
        Workload::Inserts,
        Workload::Storm,
        Workload::Acquire,
        Workload::Pgbench,
        Workload::Callgrind,
        Workload::Copy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::PointSelect => "point-select",
            Workload::SharedConn => "shared-conn",
            Workload::LargeFetch => "large-fetch",
            Workload::Decode => "decode",
            Workload::Inserts => "inserts",
            Workload::Storm => "storm",
            Workload::Acquire => "acquire",
            Workload::Pgbench => "pgbench",
            Workload::Callgrind => "callgrind",
            Workload::Copy => "copy",
        }
    }

    fn parse(s: &str) -> Result<Workload, String> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| format!("unknown workload {s:?}; one of: {}", names()))
    }
}

fn names() -> String {
    Workload::ALL.map(Workload::name).join(", ")
}

/// What the harness process was started to do.
pub enum Mode {
    /// The orchestrator: start a cluster, run the workloads, print the table.
    Run(Args),
    /// A child process for one measurement that needs a process of its own.
    Child(crate::child::ChildArgs),
}

/// The orchestrator's arguments.
pub struct Args {
    pub only: Vec<Workload>,
    pub sizes: Sizes,
}

/// How big and how long every workload is.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub quick: bool,
    /// The drivers to run, in the order they alternate (default: all three).
    pub drivers: Vec<Driver>,
    pub reps: usize,
    pub pool_size: usize,
    pub tasks: usize,
    pub point_rows: i64,
    pub point_warmup: Duration,
    pub point_measure: Duration,
    pub fetch_rows: i64,
    pub insert_rows: i64,
    pub insert_chunk: usize,
    pub storm_tasks: usize,
    pub storm_iters: usize,
    pub acquire_warmup: Duration,
    pub acquire_measure: Duration,
    pub pgbench_scale: u32,
    pub pgbench_secs: u32,
    pub callgrind_queries: u64,
    pub copy_rows: i64,
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            quick: false,
            drivers: Driver::ALL.to_vec(),
            reps: 3,
            pool_size: 8,
            tasks: 32,
            point_rows: 100_000,
            point_warmup: Duration::from_secs(1),
            point_measure: Duration::from_secs(5),
            fetch_rows: 1_000_000,
            insert_rows: 100_000,
            insert_chunk: 1000,
            storm_tasks: 64,
            storm_iters: 50,
            acquire_warmup: Duration::from_millis(500),
            acquire_measure: Duration::from_secs(3),
            pgbench_scale: 10,
            pgbench_secs: 10,
            callgrind_queries: 20_000,
            copy_rows: 1_000_000,
        }
    }

    fn quick() -> Sizes {
        Sizes {
            quick: true,
            reps: 1,
            point_rows: 10_000,
            point_warmup: Duration::from_millis(100),
            point_measure: Duration::from_millis(400),
            fetch_rows: 50_000,
            insert_rows: 5_000,
            insert_chunk: 500,
            storm_tasks: 16,
            storm_iters: 10,
            acquire_warmup: Duration::from_millis(50),
            acquire_measure: Duration::from_millis(300),
            pgbench_scale: 1,
            pgbench_secs: 1,
            callgrind_queries: 2_000,
            copy_rows: 50_000,
            ..Sizes::full()
        }
    }
}

pub const USAGE: &str = "\
usage: cargo run --release -p pgkeel-bench -- [--quick] [--only W[,W...]] [--reps N]
                                             [--drivers D[,D...]]

  --quick        shrink every workload (a smoke run of well under a minute)
  --only W,...   run only these workloads: point-select, shared-conn, large-fetch, decode, inserts,
                 storm, acquire, pgbench, callgrind, copy (default: all of them)
  --reps N       repetitions per driver (default 3, with --quick 1)
  --drivers D,...  only these drivers: pgkeel, tokio-postgres, sqlx (default: all; for
                 profiling one driver with perf or strace, the ratios need all three)

Starts a throwaway PostgreSQL cluster (pgkeel-testkit), runs each workload for pgkeel,
tokio-postgres (+ deadpool-postgres) and sqlx in alternation, runs pgbench as the
reference, and prints one markdown table. PGKEEL_PG_BINDIR picks the PostgreSQL binaries.";

/// Parses `std::env::args()`.
pub fn parse() -> Result<Mode, String> {
    let mut argv = std::env::args().skip(1).peekable();
    if argv.peek().map(String::as_str) == Some("child") {
        argv.next();
        return crate::child::ChildArgs::parse(argv).map(Mode::Child);
    }
    let (mut quick, mut only, mut reps, mut drivers) = (false, Vec::new(), None, Vec::new());
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--only" => {
                let list = argv.next().ok_or("--only needs a workload")?;
                for w in list.split(',') {
                    only.push(Workload::parse(w.trim())?);
                }
            }
            "--drivers" => {
                let list = argv.next().ok_or("--drivers needs a driver")?;
                for d in list.split(',') {
                    let d = Driver::parse(d.trim()).ok_or(format!("unknown driver {d:?}"))?;
                    drivers.push(d);
                }
            }
            "--reps" => {
                let n = argv.next().ok_or("--reps needs a number")?;
                reps = Some(
                    n.parse::<usize>()
                        .map_err(|_| format!("bad --reps {n:?}"))?,
                );
            }
            // `cargo bench` passes --bench; accept it so either command works.
            "--bench" => {}
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    let mut sizes = if quick { Sizes::quick() } else { Sizes::full() };
    if let Some(reps) = reps {
        sizes.reps = reps.max(1);
    }
    if !drivers.is_empty() {
        sizes.drivers = drivers;
    }
    if only.is_empty() {
        only = Workload::ALL.to_vec();
    }
    Ok(Mode::Run(Args { only, sizes }))
}
