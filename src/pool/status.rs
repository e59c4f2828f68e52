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
}

/// The gauges a background task of the pool is counted in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Gauge {
    /// Rollback or reset of a returned connection.
    Returning,
    /// Cancel, recovery or close of an evicted connection.
    Draining,
}

#[derive(Debug, Default)]
pub(crate) struct Gauges {
    pub(crate) in_use: AtomicUsize,
    pub(crate) waiting: AtomicUsize,
    pub(crate) opening: AtomicUsize,
    pub(crate) returning: AtomicUsize,
    pub(crate) draining: AtomicUsize,
}

impl Gauges {
    pub(crate) fn get(&self, gauge: Gauge) -> &AtomicUsize {
        match gauge {
            Gauge::Returning => &self.returning,
            Gauge::Draining => &self.draining,
        }
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
    pub(crate) rollbacks_on_return: AtomicU64,
    pub(crate) cancels_sent: AtomicU64,
    pub(crate) recovered: AtomicU64,
    pub(crate) transaction_retries: AtomicU64,
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
    /// Returned connections being cleaned up (rollback, reset).
    pub returning: usize,
    /// Evicted broken connections whose cancel and close are still running.
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
    /// Evictions by the checkout health check.
    pub evicted_health_check: u64,
    /// Evictions because a clone of the connection was kept after its return.
    pub evicted_cloned_out: u64,
    /// Returned connections that were inside a transaction and were rolled back.
    pub rollbacks_on_return: u64,
    /// CancelRequests sent for abandoned exchanges of evicted connections.
    pub cancels_sent: u64,
    /// Abandoned connections recovered instead of evicted (`AbandonPolicy::Recover`).
    pub recovered: u64,
    /// Re-runs of `Pool::transaction` closures after retryable errors.
    pub transaction_retries: u64,
}

impl Status {
    /// Whether the sizes add up: `size` is the sum of its parts and within `max_size`.
    pub fn adds_up(&self) -> bool {
        self.size == self.idle + self.in_use + self.opening + self.returning + self.draining
            && self.size <= self.max_size
    }
}
