//! Workload 6: pgbench `-S -M prepared` (select-only, prepared) as the C/libpq reference,
//! with 8 and 32 clients, alternating.

use std::path::Path;
use std::process::Command;

use crate::args::Sizes;
use crate::report::{Better, Cell, Line, Report};
use crate::setup::Bench;

const NAME: &str = "6. pgbench -S -M prepared (reference)";
const DB: &str = "pgbench";

pub fn run(bench: &Bench, sizes: &Sizes, report: &mut Report) {
    let Some(bindir) = Bench::bindir() else {
        eprintln!("pgbench       skipped: no pgbench found (set PGKEEL_PG_BINDIR)");
        report.note("pgbench: skipped, no pgbench binary was found.");
        return;
    };
    let pgbench = bindir.join("pgbench");
    bench
        .cluster
        .psql("postgres", &format!("CREATE DATABASE {DB}"))
        .expect("create the pgbench database");
    let scale = sizes.pgbench_scale.to_string();
    let init = run_pgbench(&pgbench, bench, &["-i", "-q", "-s", &scale]);
    if let Err(e) = init {
        panic!("pgbench -i failed: {e}");
    }
    let clients = [8u32, 32];
    let mut tps = [vec![], vec![]];
    for rep in 1..=sizes.reps {
        for (i, c) in clients.iter().enumerate() {
            let (c, secs) = (c.to_string(), sizes.pgbench_secs.to_string());
            let out = run_pgbench(
                &pgbench,
                bench,
                &[
                    "-S", "-M", "prepared", "-n", "-c", &c, "-j", "2", "-T", &secs,
                ],
            )
            .unwrap_or_else(|e| panic!("pgbench failed: {e}"));
            let t = parse_tps(&out).unwrap_or_else(|| panic!("no tps in pgbench output:\n{out}"));
            eprintln!("pgbench       rep {rep} -c {c:<3} {t:>9.0} tps");
            tps[i].push(t);
        }
    }
    for (i, c) in clients.iter().enumerate() {
        report.push(
            Line::new(
                NAME,
                &format!("transactions/s, {c} clients"),
                Some(Better::Higher),
            )
            .reference(Cell::Values(std::mem::take(&mut tps[i]))),
        );
    }
    report.note(format!(
        "pgbench: scale {}, {} s per run, -j 2, one connection per client (pgbench -c 8 is the \
         closest match to point select's pool of 8 busy connections).",
        sizes.pgbench_scale, sizes.pgbench_secs
    ));
}

fn run_pgbench(pgbench: &Path, bench: &Bench, args: &[&str]) -> Result<String, String> {
    let port = bench.cluster.port().to_string();
    let out = Command::new(pgbench)
        .args([
            "-h",
            bench.cluster.host(),
            "-p",
            &port,
            "-U",
            bench.cluster.superuser(),
        ])
        .args(args)
        .arg(DB)
        .output()
        .map_err(|e| format!("could not run {}: {e}", pgbench.display()))?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{}: {text}", out.status))
    }
}

/// The figure of `tps = 12345.678 (without initial connection time)`.
fn parse_tps(out: &str) -> Option<f64> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("tps = "))
        .find(|rest| !rest.contains("including"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_tps_line_of_pgbench_15() {
        let out = "latency average = 0.2 ms\ninitial connection time = 3.1 ms\ntps = 41234.567890 (without initial connection time)\n";
        assert_eq!(parse_tps(out), Some(41234.56789));
        let old = "tps = 1.5 (including connections establishing)\ntps = 2.5 (excluding connections establishing)\n";
        assert_eq!(parse_tps(old), Some(2.5));
    }
}
