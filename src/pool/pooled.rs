//! [`PooledConnection`], the return rule, and [`PoolTransaction`].

use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

use super::status::{Gauge, InGauge, bump};
use super::{Checkout, EvictReason, Meta, Pool, PoolInner};
use crate::connection::{Connection, ReturnState};
use crate::error::Error;
use crate::transaction::{Transaction, TransactionBuilder};

/// A connection checked out of a [`Pool`]; derefs to [`Connection`] and goes back to the
/// pool when dropped.
pub struct PooledConnection {
    conn: Option<Connection>,
    meta: Meta,
    permit: Option<OwnedSemaphorePermit>,
    gauge: Option<InGauge>,
    pool: Arc<PoolInner>,
    checkout: u64,
}

impl PooledConnection {
    pub(crate) fn new(
        pool: Arc<PoolInner>,
        (conn, meta, permit, mut gauge): Checkout,
        caller: &'static Location<'static>,
    ) -> PooledConnection {
        gauge.shift(Gauge::InUse);
        let checkout = pool.next_checkout.fetch_add(1, Ordering::Relaxed);
        if pool.opts.leak_threshold.is_some() {
            let mut leaks = pool.leaks.lock().unwrap_or_else(|e| e.into_inner());
            leaks.push((checkout, Instant::now(), caller, false));
        }
        PooledConnection {
            conn: Some(conn),
            meta,
            permit: Some(permit),
            gauge: Some(gauge),
            pool,
            checkout,
        }
    }
}

impl Deref for PooledConnection {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a live pooled connection has its connection")
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        let pool = &self.pool;
        if pool.opts.leak_threshold.is_some() {
            let mut leaks = pool.leaks.lock().unwrap_or_else(|e| e.into_inner());
            leaks.retain(|(id, ..)| *id != self.checkout);
        }
        let (conn, permit, gauge) = (self.conn.take(), self.permit.take(), self.gauge.take());
        if let (Some(conn), Some(permit), Some(gauge)) = (conn, permit, gauge) {
            pool.give_back(conn, self.meta, permit, gauge);
        }
    }
}

impl std::fmt::Debug for PooledConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PooledConnection").field(&self.conn).finish()
    }
}

impl PoolInner {
    /// The return pipeline, the same under every abandon policy: a kept clone, a dead
    /// connection, a closed pool, a read-only server when a writable one was asked
    /// (SQLSTATE 25006 seen) and an expired lifetime each end the connection; one
    /// that is clean goes straight back to the idle queue; anything else (an abandoned
    /// exchange, an open transaction, a paused portal, a reset to run) is restored in
    /// the background within its deadline, or evicted.
    fn give_back(
        self: &Arc<Self>,
        conn: Connection,
        meta: Meta,
        permit: OwnedSemaphorePermit,
        gauge: InGauge,
    ) {
        let state = conn.return_state();
        if conn.has_other_handles() {
            tracing::warn!(
                pid = conn.backend_pid(),
                "a clone of a pooled connection outlived its return; the pool closes it"
            );
            self.evicted(EvictReason::ClonedOut, &conn);
            return self.spawn_close_with_slot(conn, permit, gauge);
        }
        if state == ReturnState::Dead {
            if conn.was_cancelled() {
                bump(&self.counters.cancels_sent);
            }
            self.evicted(EvictReason::Broken, &conn);
            return self.spawn_close_with_slot(conn, permit, gauge);
        }
        if self.closed.load(Ordering::Acquire) {
            return self.spawn_close_with_slot(conn, permit, gauge);
        }
        if self.wants_writable && conn.hit_read_only() {
            // The server it reached is read-only now (a standby after a failover, or
            // default_transaction_read_only turned on): the next connect goes through
            // target_session_attrs again and finds the writable one.
            self.evicted(EvictReason::ReadOnly, &conn);
            return self.spawn_close_with_slot(conn, permit, gauge);
        }
        if meta.expired() {
            self.evicted(EvictReason::Lifetime, &conn);
            return self.spawn_close_with_slot(conn, permit, gauge);
        }
        if state == ReturnState::Clean && self.opts.reset_on_return.is_none() {
            self.push_idle(conn, meta, gauge);
            drop(permit);
            return;
        }
        self.spawn_restore(conn, meta, permit, gauge, state);
    }

    /// Runs `work` in a spawned task that keeps the slot, counted in `gauge`, until it is
    /// done (or panics, or is dropped). With no runtime left nothing can be awaited:
    /// `work` is dropped unrun, and with it the connection it owns (its socket closes)
    /// and the slot.
    pub(crate) fn spawn_with_slot(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
        gauge: Option<InGauge>,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            // Dropped in this order on every path: the count, then the slot.
            let _slot = permit;
            let _gauge = gauge;
            work.await;
        });
    }

    /// Restores a returned connection in the background (recovery of an abandoned
    /// exchange within `drain_timeout`; rollback and reset within `return_timeout`),
    /// then puts it back idle; evicts it on any failure.
    fn spawn_restore(
        self: &Arc<Self>,
        conn: Connection,
        meta: Meta,
        permit: OwnedSemaphorePermit,
        mut gauge: InGauge,
        state: ReturnState,
    ) {
        let abandoned = state == ReturnState::Abandoned;
        let pid = conn.backend_pid();
        if abandoned {
            bump(&self.counters.cancels_sent);
        }
        let inner = self.clone();
        let limit = match abandoned {
            true => self.opts.drain_timeout + self.opts.return_timeout,
            false => self.opts.return_timeout,
        };
        gauge.shift(Gauge::Returning);
        let work = async move {
            let reset = inner.opts.reset_on_return.as_deref();
            let restored = tokio::time::timeout(limit, conn.restore(reset)).await;
            let why = match restored {
                Ok(Ok(done)) if conn.return_state() == ReturnState::Clean => {
                    if done.recovered {
                        bump(&inner.counters.recovered);
                    }
                    if done.rolled_back {
                        bump(&inner.counters.rollbacks_on_return);
                    }
                    return inner.put_idle(conn, meta, gauge).await;
                }
                Ok(Ok(_)) => "the connection broke".to_owned(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("not done within {limit:?}"),
            };
            let reason = match abandoned {
                true => EvictReason::Broken,
                false => EvictReason::RollbackFailed,
            };
            tracing::warn!(
                pid = conn.backend_pid(),
                why,
                "restoring a returned connection failed; connection evicted"
            );
            tracing::Span::current().record("error.type", reason.label());
            gauge.shift(Gauge::Draining);
            inner.evicted(reason, &conn);
            // Whoever still holds its wire (a leaked transaction) must not go on using it:
            // close() takes the socket down by force when the lock does not come free.
            inner.close_conn(conn).await;
        };
        // The gauge moves with the connection inside `work` (to the idle queue, or to
        // draining), and is dropped with it if `work` panics.
        let span = crate::telemetry::restore(&self.name, pid, return_state_name(state));
        let work = tracing::Instrument::instrument(work, span.unwrap_or_else(tracing::Span::none));
        self.spawn_with_slot(permit, None, work);
    }
}

/// The `pgkeel.return_state` field of a restore span.
fn return_state_name(state: ReturnState) -> &'static str {
    match state {
        ReturnState::Clean => "clean",
        ReturnState::NeedsCleanup => "needs_cleanup",
        ReturnState::Abandoned => "abandoned",
        ReturnState::Dead => "dead",
        ReturnState::Busy => "busy",
    }
}

/// A transaction that owns its pooled connection: commit or roll back; dropped, it rolls
/// back and the connection returns to the pool (or is evicted if broken).
pub struct PoolTransaction {
    // Field order matters: the transaction (and its rollback) goes before the connection
    // returns, so the return sees the rollback's wire lock and waits for it.
    tx: Transaction,
    conn: PooledConnection,
}

impl PoolTransaction {
    pub(crate) fn new(tx: Transaction, conn: PooledConnection) -> PoolTransaction {
        PoolTransaction { tx, conn }
    }

    /// Commits, then returns the connection to the pool.
    ///
    /// # Errors
    /// As [`Transaction::commit`].
    pub async fn commit(self) -> Result<(), Error> {
        let PoolTransaction { tx, conn } = self;
        let result = tx.commit().await;
        drop(conn);
        result
    }

    /// Rolls back, then returns the connection to the pool.
    ///
    /// # Errors
    /// As [`Transaction::rollback`].
    pub async fn rollback(self) -> Result<(), Error> {
        let PoolTransaction { tx, conn } = self;
        let result = tx.rollback().await;
        drop(conn);
        result
    }

    /// The pooled connection under the transaction (its backend pid, parameters, …).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl Deref for PoolTransaction {
    type Target = Transaction;
    fn deref(&self) -> &Transaction {
        &self.tx
    }
}

impl DerefMut for PoolTransaction {
    fn deref_mut(&mut self) -> &mut Transaction {
        &mut self.tx
    }
}

impl std::fmt::Debug for PoolTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolTransaction")
            .field("tx", &self.tx)
            .field("conn", &self.conn)
            .finish()
    }
}

impl Pool {
    /// Checks out a connection and begins a transaction on it.
    ///
    /// # Errors
    /// As [`Pool::get`] and [`Connection::transaction`].
    #[track_caller]
    pub fn begin(
        &self,
    ) -> impl std::future::Future<Output = Result<PoolTransaction, Error>> + Send + '_ {
        self.begin_at(Location::caller())
    }

    /// `begin`, recording `caller` for leak reports.
    pub(crate) async fn begin_at(
        &self,
        caller: &'static Location<'static>,
    ) -> Result<PoolTransaction, Error> {
        let conn = self.inner.acquire(caller).await?;
        let tx = conn.transaction().await?;
        Ok(PoolTransaction { tx, conn })
    }

    /// Checks out a connection and begins a transaction with options.
    ///
    /// # Errors
    /// As [`Pool::get`] and [`TransactionBuilder::start`].
    #[track_caller]
    pub fn begin_with<'a>(
        &'a self,
        options: impl FnOnce(TransactionBuilder) -> TransactionBuilder + Send + 'a,
    ) -> impl std::future::Future<Output = Result<PoolTransaction, Error>> + Send + 'a {
        let get = self.get();
        async move {
            let conn = get.await?;
            let tx = options(conn.build_transaction()).start().await?;
            Ok(PoolTransaction { tx, conn })
        }
    }
}
