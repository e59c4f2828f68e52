//! Measurements that need a process of their own: the harness re-executes itself as
//! `pgkeel-bench child <what> --driver D --url U --n N` and reads one result line back.
//!
//! Large fetch uses this so each driver's memory high-water mark is its own; callgrind
//! uses it so valgrind sees only one driver's client loop.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use crate::report::Driver;

const RESULT_PREFIX: &str = "BENCH-RESULT";

/// The arguments of a child process.
pub struct ChildArgs {
    what: String,
    driver: Driver,
    url: String,
    n: u64,
}

impl ChildArgs {
    pub fn parse(mut argv: impl Iterator<Item = String>) -> Result<ChildArgs, String> {
        let what = argv.next().ok_or("child needs what to run")?;
        let (mut driver, mut url, mut n) = (None, None, 0);
        while let Some(flag) = argv.next() {
            let value = argv.next().ok_or(format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--driver" => driver = Some(Driver::parse(&value).ok_or("unknown driver")?),
                "--url" => url = Some(value),
                "--n" => n = value.parse().map_err(|_| "bad --n")?,
                _ => return Err(format!("unknown child flag {flag}")),
            }
        }
        Ok(ChildArgs {
            what,
            driver: driver.ok_or("child needs --driver")?,
            url: url.ok_or("child needs --url")?,
            n,
        })
    }

    /// Runs the measurement and prints its result line.
    pub fn run(self) -> Result<(), String> {
        let result = match self.what.as_str() {
            "fetch" => crate::workloads::large_fetch::child(self.driver, &self.url, true),
            "fetch-block-on" => crate::workloads::large_fetch::child(self.driver, &self.url, false),
            "decode" => crate::workloads::decode::child(self.driver, &self.url, true),
            "fetch-ceiling" => crate::workloads::ceiling_child(&self.url, crate::setup::FETCH_SQL),
            "decode-ceiling" => {
                crate::workloads::ceiling_child(&self.url, crate::setup::DECODE_SQL)
            }
            "decode-block-on" => crate::workloads::decode::child(self.driver, &self.url, false),
            "callgrind" => crate::workloads::callgrind::child(self.driver, &self.url, self.n),
            other => return Err(format!("unknown child measurement {other}")),
        };
        println!("{result}");
        Ok(())
    }
}

/// Named figures a child reports.
#[derive(Debug, Default)]
pub struct ChildResult(BTreeMap<String, f64>);

impl ChildResult {
    pub fn set(&mut self, key: &str, value: f64) {
        self.0.insert(key.to_string(), value);
    }

    pub fn get(&self, key: &str) -> f64 {
        *self
            .0
            .get(key)
            .unwrap_or_else(|| panic!("the child reported no {key}"))
    }

    fn parse(line: &str) -> Option<ChildResult> {
        let rest = line.strip_prefix(RESULT_PREFIX)?;
        let mut r = ChildResult::default();
        for pair in rest.split_whitespace() {
            let (k, v) = pair.split_once('=')?;
            r.set(k, v.parse().ok()?);
        }
        Some(r)
    }
}

impl std::fmt::Display for ChildResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(RESULT_PREFIX)?;
        for (k, v) in &self.0 {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

/// Runs `what` for `driver` in a child process of this executable.
pub fn run_child(what: &str, driver: Driver, url: &str, n: u64) -> Result<ChildResult, String> {
    run_child_under(&[], what, driver, url, n)
}

/// As [`run_child`], with the child started through `wrapper` (e.g. valgrind and its
/// options) when that is not empty.
pub fn run_child_under(
    wrapper: &[String],
    what: &str,
    driver: Driver,
    url: &str,
    n: u64,
) -> Result<ChildResult, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut cmd = Command::new(program);
            cmd.args(args).arg(&exe);
            cmd
        }
        None => Command::new(&exe),
    };
    cmd.args(["child", what, "--driver", driver.name(), "--url", url])
        .args(["--n", &n.to_string()])
        .stdin(Stdio::null());
    let out = cmd
        .output()
        .map_err(|e| format!("could not start {cmd:?}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{}: {stdout}{stderr}", out.status));
    }
    stdout
        .lines()
        .find_map(ChildResult::parse)
        .ok_or_else(|| format!("no {RESULT_PREFIX} line in: {stdout}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_round_trip() {
        let mut r = ChildResult::default();
        r.set("rows", 1000.0);
        r.set("secs", 0.25);
        let line = r.to_string();
        assert_eq!(line, "BENCH-RESULT rows=1000 secs=0.25");
        let back = ChildResult::parse(&line).unwrap();
        assert_eq!((back.get("rows"), back.get("secs")), (1000.0, 0.25));
    }
}
