//! The pool's background upkeep: idle timeouts, lifetimes, `min_idle`, leak reports.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::status::Gauge;
use super::{EvictReason, Meta, PoolInner};

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

    fn refill(self: &Arc<Self>) {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).len();
        let have = idle + self.gauges.get(Gauge::Opening);
        for _ in have..self.opts.min_idle {
            let Ok(permit) = self.sem.clone().try_acquire_owned() else {
                return;
            };
            let inner = self.clone();
            tokio::spawn(async move {
                if let Ok((conn, gauge)) = inner.connect_new().await {
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
                tracing::warn!(checkout = *id, held_for = ?since.elapsed(), %location, "pooled connection held longer than the leak threshold");
            }
        }
    }
}
