//! [`Status`] and the pool's counters.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Why a connection left the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EvictReason {
    /// Its exchange was abandoned or failed; it is broken.
    Broken,
    /// The rollback (or reset) on return failed or timed out.
    RollbackFailed,
    /// It outlived `max_lifetime`.
    Lifetime,
    /// It sat idle longer than `idle_timeout`.
    Idle,
    /// It failed the checkout health check.
    HealthCheck,
    /// The caller kept a clone of the connection after returning it.
    ClonedOut,
    /// The configuration asks for a writable server (`target_session_attrs` read-write
    /// or primary) and a statement on it failed with SQLSTATE 25006
    /// (read_only_sql_transaction): the server became read-only or a standby, so the
    /// next connect goes through `target_session_attrs` again.
    ReadOnly,
}

impl EvictReason {
    /// The `reason` label of `pgkeel.pool.evictions`, in snake case.
    pub(crate) fn label(self) -> &'static str {
        match self {
            EvictReason::Broken => "broken",
            EvictReason::RollbackFailed => "rollback_failed",
            EvictReason::Lifetime => "lifetime",
            EvictReason::Idle => "idle",
            EvictReason::HealthCheck => "health_check",
            EvictReason::ClonedOut => "cloned_out",
            EvictReason::ReadOnly => "read_only",
        }
    }
}

/// Where a connection of the pool is; each one is counted in exactly one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gauge {
    /// In the idle queue.
    Idle = 0,
    /// Checked out.
    InUse = 1,
    /// Being opened.
    Opening = 2,
    /// Returned and being cleaned up (recovery, rollback, reset).
    Returning = 3,
    /// Evicted; its cancel and close are still running.
    Draining = 4,
}

/// Bits per gauge in [`Gauges::word`]; bounds `max_size`.
const BITS: u32 = 12;
/// The largest pool size the gauges can count.
pub(crate) const MAX_POOL_SIZE: usize = (1 << BITS) - 1;

fn unit(g: Gauge) -> u64 {
    1 << (BITS * g as u32)
}

/// The pool's gauges. The five places a connection can be are packed in one atomic
/// word, so a snapshot is one load: it always adds up, and a move from one place to
/// another (one `fetch_add`) never counts a connection twice. With the `metrics`
/// feature each move is mirrored on the metric gauges by increments, so they never go
/// stale.
#[derive(Default)]
pub(crate) struct Gauges {
    word: AtomicU64,
    pub(crate) waiting: AtomicUsize,
    #[cfg(feature = "metrics")]
    metrics: Option<crate::telemetry::metrics::GaugeHandles>,
}

impl std::fmt::Debug for Gauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gauges")
            .field("snapshot", &self.snapshot())
            .field("waiting", &self.waiting)
            .finish()
    }
}

impl Gauges {
    /// The gauges of the pool `name` of at most `max_size` connections.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(name: &str, max_size: usize) -> Gauges {
        Gauges {
            #[cfg(feature = "metrics")]
            metrics: Some(crate::telemetry::metrics::GaugeHandles::new(name, max_size)),
            ..Gauges::default()
        }
    }

    pub(crate) fn add(&self, g: Gauge) {
        self.word.fetch_add(unit(g), Ordering::AcqRel);
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.states[g as usize].increment(1.0);
            m.size.increment(1.0);
        }
    }

    pub(crate) fn sub(&self, g: Gauge) {
        self.word.fetch_sub(unit(g), Ordering::AcqRel);
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.states[g as usize].decrement(1.0);
            m.size.decrement(1.0);
        }
    }

    /// Moves one connection from `from` to `to` in one step.
    pub(crate) fn shift(&self, from: Gauge, to: Gauge) {
        self.word
            .fetch_add(unit(to).wrapping_sub(unit(from)), Ordering::AcqRel);
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.states[from as usize].decrement(1.0);
            m.states[to as usize].increment(1.0);
        }
    }

    /// Counts one more caller waiting, for as long as the guard lives.
    pub(crate) fn waiter(&self) -> GaugeGuard<'_> {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.waiting.increment(1.0);
        }
        GaugeGuard::new(self)
    }

    /// The five gauges, read at one instant: idle, in use, opening, returning, draining.
    pub(crate) fn snapshot(&self) -> [usize; 5] {
        let w = self.word.load(Ordering::Acquire);
        std::array::from_fn(|i| ((w >> (BITS * i as u32)) & MAX_POOL_SIZE as u64) as usize)
    }

    pub(crate) fn get(&self, g: Gauge) -> usize {
        self.snapshot()[g as usize]
    }
}

/// Counts a connection in a gauge for as long as it lives, even if the work it guards
/// panics or is dropped.
pub(crate) struct InGauge {
    // The gauges alone, not the pool: an idle connection's gauge lives in the pool's
    // idle queue, and a handle to the pool there would keep a dropped pool (and every
    // idle backend) alive forever.
    gauges: std::sync::Arc<Gauges>,
    gauge: Gauge,
}

impl InGauge {
    pub(crate) fn new(gauges: &std::sync::Arc<Gauges>, gauge: Gauge) -> InGauge {
        gauges.add(gauge);
        InGauge {
            gauges: gauges.clone(),
            gauge,
        }
    }

    /// Moves the count to another gauge.
    pub(crate) fn shift(&mut self, to: Gauge) {
        self.gauges.shift(self.gauge, to);
        self.gauge = to;
    }
}

impl Drop for InGauge {
    fn drop(&mut self) {
        self.gauges.sub(self.gauge);
    }
}

/// A counter of the pool: the number [`Status`] reads and, with the `metrics` feature,
/// the metric it feeds (one bookkeeping, two readers).
#[derive(Default)]
pub(crate) struct Count {
    n: AtomicU64,
    #[cfg(feature = "metrics")]
    metric: Option<metrics::Counter>,
}

impl Count {
    /// A counter that also feeds the metric `name` of the pool `pool`.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    fn named(name: &'static str, pool: &str) -> Count {
        Count {
            n: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            metric: Some(crate::telemetry::metrics::counter(name, pool)),
        }
    }

    /// An eviction counter that also feeds `pgkeel.pool.evictions{reason}`.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    fn eviction(pool: &str, reason: &'static str) -> Count {
        Count {
            n: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            metric: Some(crate::telemetry::metrics::eviction(pool, reason)),
        }
    }

    pub(crate) fn load(&self, order: Ordering) -> u64 {
        self.n.load(order)
    }
}

impl std::fmt::Debug for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.n.fmt(f)
    }
}

/// The metric names the counters feed (the metrics module holds them only when the
/// feature is on).
#[cfg(feature = "metrics")]
use crate::telemetry::metrics as names;
#[cfg(not(feature = "metrics"))]
mod names {
    pub const ACQUIRES: &str = "";
    pub const TIMEOUTS: &str = "";
    pub const CONNECTS: &str = "";
    pub const CONNECT_ERRORS: &str = "";
    pub const ROLLBACKS_ON_RETURN: &str = "";
    pub const CANCELS: &str = "";
    pub const RECOVERED: &str = "";
    pub const TRANSACTION_RETRIES: &str = "";
    pub const BACKENDS_LINGERING: &str = "";
    pub const LEAK_REPORTS: &str = "";
    pub const SHARED_CALLS: &str = "";
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) acquires: Count,
    pub(crate) acquire_timeouts: Count,
    pub(crate) connects: Count,
    pub(crate) connect_failures: Count,
    pub(crate) evicted_broken: Count,
    pub(crate) evicted_rollback_failed: Count,
    pub(crate) evicted_lifetime: Count,
    pub(crate) evicted_idle: Count,
    pub(crate) evicted_health_check: Count,
    pub(crate) evicted_cloned_out: Count,
    pub(crate) evicted_read_only: Count,
    pub(crate) rollbacks_on_return: Count,
    pub(crate) cancels_sent: Count,
    pub(crate) recovered: Count,
    pub(crate) transaction_retries: Count,
    pub(crate) backends_lingering: Count,
    pub(crate) leak_reports: Count,
    pub(crate) lane_joins: Count,
    /// How long successful checkouts waited (only with the `metrics` feature).
    #[cfg(feature = "metrics")]
    pub(crate) wait_time: Option<metrics::Histogram>,
}

impl Counters {
    /// The counters of the pool `pool`.
    pub(crate) fn new(pool: &str) -> Counters {
        let c = |name| Count::named(name, pool);
        let e = |reason| Count::eviction(pool, reason);
        Counters {
            acquires: c(names::ACQUIRES),
            acquire_timeouts: c(names::TIMEOUTS),
            connects: c(names::CONNECTS),
            connect_failures: c(names::CONNECT_ERRORS),
            evicted_broken: e(EvictReason::Broken.label()),
            evicted_rollback_failed: e(EvictReason::RollbackFailed.label()),
            evicted_lifetime: e(EvictReason::Lifetime.label()),
            evicted_idle: e(EvictReason::Idle.label()),
            evicted_health_check: e(EvictReason::HealthCheck.label()),
            evicted_cloned_out: e(EvictReason::ClonedOut.label()),
            evicted_read_only: e(EvictReason::ReadOnly.label()),
            rollbacks_on_return: c(names::ROLLBACKS_ON_RETURN),
            cancels_sent: c(names::CANCELS),
            recovered: c(names::RECOVERED),
            transaction_retries: c(names::TRANSACTION_RETRIES),
            backends_lingering: c(names::BACKENDS_LINGERING),
            leak_reports: c(names::LEAK_REPORTS),
            lane_joins: c(names::SHARED_CALLS),
            #[cfg(feature = "metrics")]
            wait_time: Some(crate::telemetry::metrics::wait_time(pool)),
        }
    }

    /// Notes how long a successful checkout waited.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn waited(&self, started: Option<std::time::Instant>) {
        #[cfg(feature = "metrics")]
        if let (Some(h), Some(started)) = (&self.wait_time, started) {
            h.record(started.elapsed().as_secs_f64());
        }
    }

    pub(crate) fn evicted(&self, reason: EvictReason) {
        let c = match reason {
            EvictReason::Broken => &self.evicted_broken,
            EvictReason::RollbackFailed => &self.evicted_rollback_failed,
            EvictReason::Lifetime => &self.evicted_lifetime,
            EvictReason::Idle => &self.evicted_idle,
            EvictReason::HealthCheck => &self.evicted_health_check,
            EvictReason::ClonedOut => &self.evicted_cloned_out,
            EvictReason::ReadOnly => &self.evicted_read_only,
        };
        bump(c);
    }
}

pub(crate) fn bump(c: &Count) {
    c.n.fetch_add(1, Ordering::Relaxed);
    #[cfg(feature = "metrics")]
    if let Some(m) = &c.metric {
        m.increment(1);
    }
}

/// Counts a waiting caller for as long as it lives; see [`Gauges::waiter`].
pub(crate) struct GaugeGuard<'a>(&'a Gauges);

impl<'a> GaugeGuard<'a> {
    fn new(g: &'a Gauges) -> Self {
        g.waiting.fetch_add(1, Ordering::AcqRel);
        GaugeGuard(g)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.0.metrics {
            m.waiting.decrement(1.0);
        }
    }
}

/// A snapshot of the pool: sizes now, and counters since it was built.
///
/// `size == idle + in_use + opening + returning + draining`, and `size <= max_size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The configured maximum.
    pub max_size: usize,
    /// Connections that exist or are being opened, counted against `max_size`.
    pub size: usize,
    /// Connections idle in the pool.
    pub idle: usize,
    /// Connections checked out.
    pub in_use: usize,
    /// Connections being opened.
    pub opening: usize,
    /// Returned connections being cleaned up (rollback, reset), and idle ones being
    /// pinged by the background health check.
    pub returning: usize,
    /// Connections being closed (evicted, expired, or closed with the pool) whose close,
    /// and cancel when broken, are still running; each still holds its slot.
    pub draining: usize,
    /// Callers waiting in `get()`.
    pub waiting: usize,
    /// Successful checkouts.
    pub acquires: u64,
    /// `get()` calls that hit `acquire_timeout`.
    pub acquire_timeouts: u64,
    /// Connections opened.
    pub connects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Evictions of broken connections.
    pub evicted_broken: u64,
    /// Evictions after a failed or timed-out rollback/reset on return.
    pub evicted_rollback_failed: u64,
    /// Evictions at `max_lifetime`.
    pub evicted_lifetime: u64,
    /// Evictions at `idle_timeout`.
    pub evicted_idle: u64,
    /// Evictions by a health check: at checkout, or of an idle connection in the
    /// background (a closed socket, or a failed ping after `health_check_after`).
    pub evicted_health_check: u64,
    /// Evictions because a clone of the connection was kept after its return.
    pub evicted_cloned_out: u64,
    /// Evictions after SQLSTATE 25006 on a pool that asks for a writable server
    /// ([`EvictReason::ReadOnly`]).
    pub evicted_read_only: u64,
    /// Returned connections that were inside a transaction and were rolled back.
    pub rollbacks_on_return: u64,
    /// CancelRequests sent for abandoned exchanges of evicted connections.
    pub cancels_sent: u64,
    /// Abandoned connections recovered instead of evicted (`AbandonPolicy::Recover`).
    pub recovered: u64,
    /// Re-runs of `Pool::transaction` closures after retryable errors.
    pub transaction_retries: u64,
    /// Evicted connections whose backend was still there when the pool stopped waiting
    /// for it (`drain_timeout`): their slot was freed, so the server may briefly run more
    /// backends than `max_size`. Each one is also logged at WARN.
    pub backends_lingering: u64,
    /// Calls of `Pool::query`/`query_one`/`query_opt`/`execute` that shared a connection
    /// another such call had checked out, instead of waiting for one of their own.
    pub shared_calls: u64,
    /// Checkouts held longer than `leak_threshold` (each one is also logged at WARN,
    /// once).
    pub leak_reports: u64,
    /// Failed connect attempts since the last one that succeeded; 0 while connects work.
    /// While it is above 0, the pool makes one attempt at a time, spaced by its reconnect
    /// backoff.
    pub consecutive_connect_failures: u32,
    /// The most recent failed connect attempt (kept after connects work again).
    pub last_connect_error: Option<ConnectFailure>,
}

/// A failed connect attempt, as [`Status::last_connect_error`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectFailure {
    /// The error's text: each host and port tried, with its own cause.
    pub message: String,
    /// When the attempt failed.
    pub at: std::time::SystemTime,
    /// How many attempts in a row had failed, this one included.
    pub consecutive_failures: u32,
}

impl Status {
    /// Whether the sizes add up: `size` is the sum of its parts and within `max_size`.
    pub fn adds_up(&self) -> bool {
        self.size == self.idle + self.in_use + self.opening + self.returning + self.draining
            && self.size <= self.max_size
    }
}
