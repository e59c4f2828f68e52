//! Process CPU time, memory high-water marks, a small RNG, and the runtime every
//! measured run gets.

use std::time::Duration;

/// User and system CPU time of this whole process (every thread) so far.
pub fn cpu_times() -> (Duration, Duration) {
    // SAFETY: getrusage only writes the struct we hand it.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(usage.ru_utime), tv(usage.ru_stime))
}

/// `cpu_secs` of one process over `secs` of wall time, in % of one core.
pub fn busy_pct(cpu_secs: f64, secs: f64) -> f64 {
    100.0 * cpu_secs / secs
}

/// The CPU time (user + system) process `pid` has used, from /proc/PID/stat: how the
/// server backend's share of a run is measured (the cluster runs on this machine).
pub fn process_cpu_secs(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = match stat.rfind(')') {
        Some(at) => stat[at + 1..].split_whitespace().collect(),
        None => return f64::NAN,
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) / hz,
        _ => f64::NAN,
    }
}

/// A `kB` field of /proc/self/status (`VmRSS`, `VmHWM`), in KiB.
pub fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().trim_end_matches("kB").trim().parse().ok()
        })
        .unwrap_or(0)
}

/// xorshift64*: the same cheap generator for every driver, seeded per task so every
/// driver sees the same sequence of ids and sleep lengths.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in 1..=n.
    pub fn id(&mut self, n: i64) -> i64 {
        (self.next_u64() % n as u64) as i64 + 1
    }

    /// A number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The runtime of every measured run: a fresh multi-thread runtime with one worker per
/// core, so no background task of an earlier run (pool maintenance, reapers) is left.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs `fut` on a fresh [`runtime`] and shuts it down afterwards.
pub fn on_fresh_runtime<F: std::future::Future>(fut: F) -> F::Output {
    let rt = runtime();
    let out = rt.block_on(fut);
    rt.shutdown_timeout(Duration::from_secs(2));
    out
}

/// Runs `fut` on a fresh [`runtime`] and shuts it down afterwards: with `in_task`, as a
/// spawned task (where a service's work runs: on a worker thread, which also drives the
/// socket), else on the block_on thread.
pub fn on_fresh_runtime_in<F>(in_task: bool, fut: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    match in_task {
        true => on_fresh_runtime(async { tokio::spawn(fut).await.expect("the measured task") }),
        false => on_fresh_runtime(fut),
    }
}

/// Median, minimum and maximum.
pub fn summary(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

/// The read spins of the last pgkeel stream in this (child) process: found data, ran out.
static SPINS: std::sync::Mutex<(u64, u64)> = std::sync::Mutex::new((0, 0));

/// Keeps a pgkeel connection's read-spin counts for [`report_spins`].
pub fn note_spins(c: pgkeel::ReadSpinCounts) {
    *SPINS.lock().unwrap() = (c.hits, c.misses);
}

/// Puts the last noted read-spin counts in a child's result (zero for other drivers).
pub fn report_spins(r: &mut crate::child::ChildResult) {
    let (hits, misses) = *SPINS.lock().unwrap();
    r.set("spin_hits", hits as f64);
    r.set("spin_misses", misses as f64);
}

/// "found data / ran out" for a child's result, for the rep line of a stream workload.
pub fn spins_text(r: &crate::child::ChildResult) -> String {
    counts_text(r.get("spin_hits"), r.get("spin_misses"))
}

/// "found data / ran out" for a connection's read-spin counts (empty when it never spun).
pub fn spin_counts_text(c: pgkeel::ReadSpinCounts) -> String {
    counts_text(c.hits as f64, c.misses as f64)
}

fn counts_text(hits: f64, misses: f64) -> String {
    if hits + misses == 0.0 {
        String::new()
    } else {
        format!("  read spins {hits:.0} found / {misses:.0} out")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_counts_show_only_when_the_connection_spun() {
        let none = pgkeel::ReadSpinCounts::default();
        assert_eq!(spin_counts_text(none), "");
        let some = pgkeel::ReadSpinCounts {
            hits: 33,
            misses: 2,
        };
        assert_eq!(spin_counts_text(some), "  read spins 33 found / 2 out");
    }

    #[test]
    fn summary_of_odd_and_even_counts() {
        assert_eq!(summary(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(summary(&[4.0, 1.0, 2.0, 3.0]), (2.5, 1.0, 4.0));
    }

    #[test]
    fn rng_stays_in_range() {
        let mut rng = Rng::new(7);
        for _ in 0..10_000 {
            let id = rng.id(10);
            assert!((1..=10).contains(&id));
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn proc_status_has_rss() {
        let rss = proc_status_kib("VmRSS");
        assert!(rss > 0);
        assert!(proc_status_kib("VmHWM") >= rss);
    }
}
