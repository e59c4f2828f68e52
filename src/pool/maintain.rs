//! The pool's background upkeep: idle timeouts, lifetimes, idle health checks,
//! `min_idle`, leak reports.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

use super::status::Gauge;
use super::{EvictReason, Idle, Meta, PoolInner};

/// Idle timeouts, lifetimes, `min_idle`, leak reports; ends when the pool is dropped.
pub(super) async fn maintain(pool: Weak<PoolInner>) {
    let every = match pool.upgrade() {
        Some(p) => p.opts.maintenance_interval,
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = pool.upgrade() else { return };
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        inner.prune_idle();
        inner.check_idle();
        inner.refill();
        inner.report_leaks();
    }
}

impl PoolInner {
    /// Closes idle connections past their lifetime, and past `idle_timeout` above
    /// `min_idle`; each close holds a slot until its backend is gone (when no slot is
    /// free, the connection waits for the next round).
    fn prune_idle(self: &Arc<Self>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let min = self.opts.min_idle;
        let timeout = self.opts.idle_timeout;
        let mut i = 0;
        while i < idle.len() {
            let meta = idle[i].meta;
            let too_idle =
                timeout.is_some_and(|t| meta.idle_since.elapsed() >= t) && idle.len() > min;
            let reason = match (meta.expired(), too_idle) {
                (true, _) => EvictReason::Lifetime,
                (false, true) => EvictReason::Idle,
                _ => {
                    i += 1;
                    continue;
                }
            };
            let Ok(permit) = self.sem.clone().try_acquire_owned() else {
                return;
            };
            let gone = idle.remove(i);
            self.evicted(reason, &gone.conn);
            self.spawn_close_with_slot(gone.conn, permit, gone.gauge);
        }
    }

    /// Looks at every idle connection's socket (one non-blocking syscall each) and
    /// evicts those the server or the kernel closed (a keepalive timeout, a restart);
    /// pings those not known alive for `health_check_after` in the background. Each
    /// eviction and ping holds a slot; when none is free, the rest wait for next round.
    fn check_idle(self: &Arc<Self>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let mut i = 0;
        while i < idle.len() {
            let alive = idle[i].conn.quick_check(true);
            if alive && !self.needs_ping(&idle[i].meta) {
                i += 1;
                continue;
            }
            let Ok(permit) = self.sem.clone().try_acquire_owned() else {
                return;
            };
            let one = idle.remove(i);
            match alive {
                false => {
                    self.evicted(EvictReason::HealthCheck, &one.conn);
                    self.spawn_close_with_slot(one.conn, permit, one.gauge);
                }
                true => self.spawn_ping(one, permit),
            }
        }
    }

    /// Pings an idle connection under `permit`; requeues it alive or evicts it.
    fn spawn_ping(self: &Arc<Self>, mut one: Idle, permit: OwnedSemaphorePermit) {
        one.gauge.shift(Gauge::Returning);
        let inner = self.clone();
        self.spawn_with_slot(permit, None, async move {
            let limit = inner.opts.return_timeout;
            let ping = tokio::time::timeout(limit, one.conn.simple_query("")).await;
            let closed = inner.closed.load(Ordering::Acquire);
            match ping {
                Ok(Ok(_)) if !closed => {
                    one.meta.checked_at = Instant::now();
                    inner.requeue(one);
                }
                Ok(Ok(_)) => {
                    let mut gauge = one.gauge;
                    gauge.shift(Gauge::Draining);
                    inner.close_conn(one.conn).await;
                }
                _ => {
                    inner
                        .evict_now(one.conn, EvictReason::HealthCheck, one.gauge)
                        .await
                }
            }
        });
    }

    fn refill(self: &Arc<Self>) {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).len();
        let have = idle + self.gauges.get(Gauge::Opening);
        // Idle connections hold no slot: the free slots less the idle ones is the room
        // left under max_size.
        let room = self.sem.available_permits().saturating_sub(idle);
        let want = self.opts.min_idle.saturating_sub(have).min(room);
        for _ in 0..want {
            let Ok(permit) = self.sem.clone().try_acquire_owned() else {
                return;
            };
            // While connects fail, only when the backoff allows the next attempt.
            let Some(turn) = self.gate.try_turn() else {
                return;
            };
            let inner = self.clone();
            tokio::spawn(async move {
                if let Ok((conn, gauge)) = inner.connect_new(turn).await {
                    let meta = Meta::new(inner.opts.max_lifetime);
                    inner.put_idle(conn, meta, gauge).await;
                }
                drop(permit);
            });
        }
    }

    fn report_leaks(&self) {
        let Some(threshold) = self.opts.leak_threshold else {
            return;
        };
        let mut leaks = self.leaks.lock().unwrap_or_else(|e| e.into_inner());
        for (id, since, location, warned) in leaks.iter_mut() {
            if !*warned && since.elapsed() >= threshold {
                *warned = true;
                super::bump(&self.counters.leak_reports);
                tracing::warn!(checkout = *id, held_for = ?since.elapsed(), %location, "pooled connection held longer than the leak threshold");
            }
        }
    }
}
