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
/// another (one `fetch_add`) never counts a connection twice.
#[derive(Debug, Default)]
pub(crate) struct Gauges {
    word: AtomicU64,
    pub(crate) waiting: AtomicUsize,
}

impl Gauges {
    pub(crate) fn add(&self, g: Gauge) {
        self.word.fetch_add(unit(g), Ordering::AcqRel);
    }

    pub(crate) fn sub(&self, g: Gauge) {
        self.word.fetch_sub(unit(g), Ordering::AcqRel);
    }

    /// Moves one connection from `from` to `to` in one step.
    pub(crate) fn shift(&self, from: Gauge, to: Gauge) {
        self.word
            .fetch_add(unit(to).wrapping_sub(unit(from)), Ordering::AcqRel);
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

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) acquires: AtomicU64,
    pub(crate) acquire_timeouts: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) evicted_broken: AtomicU64,
    pub(crate) evicted_rollback_failed: AtomicU64,
    pub(crate) evicted_lifetime: AtomicU64,
    pub(crate) evicted_idle: AtomicU64,
    pub(crate) evicted_health_check: AtomicU64,
    pub(crate) evicted_cloned_out: AtomicU64,
    pub(crate) evicted_read_only: AtomicU64,
    pub(crate) rollbacks_on_return: AtomicU64,
    pub(crate) cancels_sent: AtomicU64,
    pub(crate) recovered: AtomicU64,
    pub(crate) transaction_retries: AtomicU64,
    pub(crate) backends_lingering: AtomicU64,
    pub(crate) lane_joins: AtomicU64,
}

impl Counters {
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

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Increments a gauge for as long as it lives.
pub(crate) struct GaugeGuard<'a>(&'a AtomicUsize);

impl<'a> GaugeGuard<'a> {
    pub(crate) fn new(g: &'a AtomicUsize) -> Self {
        g.fetch_add(1, Ordering::AcqRel);
        GaugeGuard(g)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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
