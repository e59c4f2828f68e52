//! [`PooledConnection`], the return rule, and [`PoolTransaction`].

use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

use super::status::{bump, Gauge};
use super::{EvictReason, Meta, Pool, PoolInner};
use crate::connection::Connection;
use crate::error::Error;
use crate::transaction::{Transaction, TransactionBuilder};

/// A connection checked out of a [`Pool`]; derefs to [`Connection`] and goes back to the
/// pool when dropped.
pub struct PooledConnection {
    conn: Option<Connection>,
    meta: Meta,
    permit: Option<OwnedSemaphorePermit>,
    pool: Arc<PoolInner>,
    checkout: u64,
}

impl PooledConnection {
    pub(crate) fn new(
        pool: Arc<PoolInner>,
        conn: Connection,
        meta: Meta,
        permit: OwnedSemaphorePermit,
        caller: &'static Location<'static>,
    ) -> PooledConnection {
        pool.gauges.in_use.fetch_add(1, Ordering::AcqRel);
        let checkout = pool.next_checkout.fetch_add(1, Ordering::Relaxed);
        if pool.opts.leak_threshold.is_some() {
            let mut leaks = pool.leaks.lock().unwrap_or_else(|e| e.into_inner());
            leaks.push((checkout, Instant::now(), caller, false));
        }
        PooledConnection {
            conn: Some(conn),
            meta,
            permit: Some(permit),
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
        if let (Some(conn), Some(permit)) = (self.conn.take(), self.permit.take()) {
            pool.give_back(conn, self.meta, permit);
        }
        pool.gauges.in_use.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for PooledConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PooledConnection").field(&self.conn).finish()
    }
}

impl PoolInner {
    /// The return rule; decided synchronously from the connection's own state.
    fn give_back(self: &Arc<Self>, conn: Connection, meta: Meta, permit: OwnedSemaphorePermit) {
        let shared = &conn.inner.shared;
        if shared.is_abandoned() && !shared.is_broken_for_good() && !conn.is_closed() {
            return self.spawn_recover(conn, meta, permit);
        }
        if conn.is_broken() || conn.is_closed() {
            return self.drain(conn, permit);
        }
        if Arc::strong_count(&conn.inner) > 1 {
            tracing::warn!(
                pid = conn.backend_pid(),
                "a clone of a pooled connection outlived its return; the pool closes it"
            );
            self.evicted(EvictReason::ClonedOut, &conn);
            return self.spawn_close_with_slot(conn, permit);
        }
        if self.closed.load(Ordering::Acquire) {
            return self.spawn_close_with_slot(conn, permit);
        }
        if meta.expired() {
            self.evicted(EvictReason::Lifetime, &conn);
            return self.spawn_close_with_slot(conn, permit);
        }
        let clean = match conn.inner.wire.try_lock() {
            Ok(wire) => wire.is_usable() && !wire.needs_cleanup(),
            Err(_) => false,
        };
        if clean && self.opts.reset_on_return.is_none() {
            self.push_idle(conn, meta);
            drop(permit);
            return;
        }
        self.spawn_return(conn, meta, permit);
    }

    /// Runs `work` in a spawned task that keeps the slot, counted in `gauge`, until it is
    /// done. With no runtime left nothing can be awaited: `work` is dropped unrun, and with
    /// it the connection it owns (its socket closes) and the slot.
    pub(crate) fn spawn_with_slot(
        self: &Arc<Self>,
        gauge: Gauge,
        permit: OwnedSemaphorePermit,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = self.clone();
        inner.gauges.get(gauge).fetch_add(1, Ordering::AcqRel);
        rt.spawn(async move {
            work.await;
            inner.gauges.get(gauge).fetch_sub(1, Ordering::AcqRel);
            drop(permit);
        });
    }

    /// Evicts a broken connection, keeping its slot until its cancel and close are done.
    fn drain(self: &Arc<Self>, conn: Connection, permit: OwnedSemaphorePermit) {
        self.evicted(EvictReason::Broken, &conn);
        let drain = conn.inner.shared.take_drain();
        if drain.is_some() {
            bump(&self.counters.cancels_sent);
        }
        let limit = self.opts.drain_timeout;
        self.spawn_with_slot(Gauge::Draining, permit, async move {
            if let Some(task) = drain {
                let _ = tokio::time::timeout(limit, task).await;
            }
            drop(conn);
        });
    }

    /// Rolls back (and resets) a returned connection in the background, within
    /// `return_timeout` including the wait for its wire lock; evicts it on any failure.
    fn spawn_return(self: &Arc<Self>, conn: Connection, meta: Meta, permit: OwnedSemaphorePermit) {
        let inner = self.clone();
        let work = async move {
            let limit = inner.opts.return_timeout;
            match tokio::time::timeout(limit, inner.clean(&conn)).await {
                Ok(Ok(())) => inner.put_idle(conn, meta).await,
                Ok(Err(e)) => {
                    tracing::warn!(pid = conn.backend_pid(), error = %e, "rollback on return failed; connection evicted");
                    inner.evict_after_failed_return(conn).await;
                }
                Err(_) => {
                    tracing::warn!(
                        pid = conn.backend_pid(),
                        ?limit,
                        "rollback on return timed out; connection evicted"
                    );
                    inner.evict_after_failed_return(conn).await;
                }
            }
        };
        self.spawn_with_slot(Gauge::Returning, permit, work);
    }

    /// Recovers an abandoned connection (`AbandonPolicy::Recover`) within `drain_timeout`,
    /// then applies the usual return rules; evicts it on any failure.
    fn spawn_recover(self: &Arc<Self>, conn: Connection, meta: Meta, permit: OwnedSemaphorePermit) {
        bump(&self.counters.cancels_sent);
        let inner = self.clone();
        let limit = self.opts.drain_timeout;
        let work = async move {
            let wire = conn.inner.wire.clone();
            let recovered = tokio::time::timeout(limit, async {
                let mut wire = wire.lock_owned().await;
                wire.recover().await?;
                if wire.needs_cleanup() {
                    bump(&inner.counters.rollbacks_on_return);
                    wire.cleanup(true).await?;
                }
                Ok::<_, Error>(())
            })
            .await;
            match recovered {
                Ok(Ok(())) if !conn.is_broken() => {
                    bump(&inner.counters.recovered);
                    inner.put_idle(conn, meta).await;
                }
                failed => {
                    let why = match failed {
                        Ok(Ok(())) => "the connection broke".to_owned(),
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => format!("no ReadyForQuery within {limit:?}"),
                    };
                    tracing::debug!(
                        pid = conn.backend_pid(),
                        why,
                        "recovery failed; connection evicted"
                    );
                    inner.evicted(EvictReason::Broken, &conn);
                    conn.inner.shared.kill_socket();
                }
            }
        };
        self.spawn_with_slot(Gauge::Draining, permit, work);
    }

    async fn clean(&self, conn: &Connection) -> Result<(), Error> {
        let mut wire = conn.lock("pool return").await?;
        if wire.needs_cleanup() {
            bump(&self.counters.rollbacks_on_return);
            wire.cleanup(true).await?;
        }
        if let Some(sql) = &self.opts.reset_on_return {
            wire.simple_query(sql).await?;
            // A reset such as DISCARD ALL drops the server's prepared statements.
            wire.cache.clear();
        }
        Ok(())
    }

    async fn evict_after_failed_return(&self, conn: Connection) {
        self.evicted(EvictReason::RollbackFailed, &conn);
        // Whoever still holds its wire (a leaked transaction) must not go on using it:
        // close() takes the socket down by force when the lock does not come free.
        self.close_conn(conn).await;
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
