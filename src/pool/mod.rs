//! [`Pool`]: the application's way to PostgreSQL.
//!
//! - `pool.query / query_one / query_opt / execute`: autocommit on any free connection.
//! - `pool.begin()`: a [`PoolTransaction`] that owns its pooled connection.
//! - `pool.transaction(|tx| Box::pin(async move { … }))`: runs a closure in a transaction,
//!   commits, and re-runs it on serialization failures and deadlocks.
//!
//! Slots are a fair (FIFO) semaphore of `max_size` permits. A permit is held by every
//! connection that is checked out, being opened, being cleaned up or draining; idle
//! connections hold none. So the number of server backends never exceeds `max_size`,
//! even while abandoned connections are still being cancelled.
//!
//! On return the decision is synchronous and follows the connection's own state: broken
//! → evicted (its slot kept until its cancel and close finish); inside a transaction by
//! the server's status byte, or busy → a background ROLLBACK within `return_timeout`,
//! else evicted; otherwise idle at once, with no round trip.

mod options;
mod pooled;
mod retry;
mod status;

use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

pub use self::options::{AbandonPolicy, AfterConnect, PoolBuilder};
pub use self::pooled::{PoolTransaction, PooledConnection};
pub use self::status::{EvictReason, Status};

use self::options::PoolOptions;
use self::status::{bump, Counters, GaugeGuard, Gauges};
use crate::config::Config;
use crate::connection::{Connection, IntoConfig, Params, ToStatement};
use crate::error::{Error, ErrorKind, TimeoutKind};
use crate::row::Row;

/// A pool of connections; cheap to clone, shared by every task of an application.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

/// When a connection was made and when it must go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    expires: Option<Instant>,
    idle_since: Instant,
}

struct Idle {
    conn: Connection,
    meta: Meta,
}

pub(crate) struct PoolInner {
    config: Config,
    opts: PoolOptions,
    sem: Arc<Semaphore>,
    idle: StdMutex<Vec<Idle>>,
    gauges: Gauges,
    counters: Counters,
    closed: AtomicBool,
    next_checkout: AtomicU64,
    leaks: StdMutex<Vec<(u64, Instant, &'static Location<'static>, bool)>>,
}

fn pool_closed() -> Error {
    Error::new(ErrorKind::PoolClosed, "the pool is closed")
}

impl Pool {
    /// Starts building a pool for a URL, a `key=value` string or a [`Config`].
    pub fn builder(config: impl IntoConfig) -> PoolBuilder {
        PoolBuilder {
            config: config.into_config(),
            options: PoolOptions::default(),
        }
    }

    pub(crate) fn new(config: Config, opts: PoolOptions) -> Pool {
        let inner = Arc::new(PoolInner {
            sem: Arc::new(Semaphore::new(opts.max_size)),
            config,
            opts,
            idle: StdMutex::new(Vec::new()),
            gauges: Gauges::default(),
            counters: Counters::default(),
            closed: AtomicBool::new(false),
            next_checkout: AtomicU64::new(1),
            leaks: StdMutex::new(Vec::new()),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(maintain(Arc::downgrade(&inner)));
        }
        Pool { inner }
    }

    /// Checks out a connection: an idle one, or a new one when there is room. Waiters are
    /// served first come, first served.
    ///
    /// # Errors
    /// A [`TimeoutKind::Acquire`] timeout after `acquire_timeout` (its message gives the
    /// pool's figures); [`ErrorKind::PoolClosed`]; the connect error when opening failed.
    ///
    /// # Cancel safety
    /// Dropping the future loses nothing: a connection being opened for it goes to the
    /// idle queue for the next caller.
    #[track_caller]
    pub fn get(
        &self,
    ) -> impl std::future::Future<Output = Result<PooledConnection, Error>> + Send + '_ {
        let caller = Location::caller();
        async move { self.inner.acquire(caller).await }
    }

    /// Runs a statement on any free connection (autocommit) and returns its rows.
    ///
    /// # Errors
    /// As [`Pool::get`] and [`Connection::query`].
    pub async fn query<T: ToStatement + ?Sized>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> Result<Vec<Row>, Error> {
        self.get().await?.query(statement, params).await
    }

    /// Runs a statement that must return exactly one row.
    ///
    /// # Errors
    /// As [`Pool::get`] and [`Connection::query_one`].
    pub async fn query_one<T: ToStatement + ?Sized>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> Result<Row, Error> {
        self.get().await?.query_one(statement, params).await
    }

    /// Runs a statement that returns at most one row.
    ///
    /// # Errors
    /// As [`Pool::get`] and [`Connection::query_opt`].
    pub async fn query_opt<T: ToStatement + ?Sized>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> Result<Option<Row>, Error> {
        self.get().await?.query_opt(statement, params).await
    }

    /// Runs a statement on any free connection and returns the rows affected.
    ///
    /// # Errors
    /// As [`Pool::get`] and [`Connection::execute`].
    pub async fn execute<T: ToStatement + ?Sized>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> Result<u64, Error> {
        self.get().await?.execute(statement, params).await
    }

    /// A snapshot of sizes and counters.
    pub fn status(&self) -> Status {
        self.inner.status()
    }

    /// Whether [`Pool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Refuses new checkouts, waits up to `close_timeout` for checked-out connections to
    /// come back, and closes every connection.
    pub async fn close(&self) {
        self.inner.close().await;
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("status", &self.status())
            .finish()
    }
}

impl Meta {
    fn new(lifetime: Option<Duration>) -> Meta {
        let now = Instant::now();
        // Up to 10 % early, so connections opened together do not all expire together.
        let expires = lifetime.map(|l| now + l - l.mul_f64(jitter_fraction() * 0.1));
        Meta {
            expires,
            idle_since: now,
        }
    }

    fn expired(&self) -> bool {
        self.expires.is_some_and(|e| Instant::now() >= e)
    }
}

/// A number in [0, 1) for jitter; not for anything secret.
pub(crate) fn jitter_fraction() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
    // splitmix64 finaliser
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as f64 / (u64::MAX as f64 + 1.0)
}

type Checkout = (Connection, Meta, OwnedSemaphorePermit);

impl PoolInner {
    async fn acquire(
        self: &Arc<Self>,
        caller: &'static Location<'static>,
    ) -> Result<PooledConnection, Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(pool_closed());
        }
        let limit = self.opts.acquire_timeout;
        let (conn, meta, permit) = match tokio::time::timeout(limit, self.acquire_slot()).await {
            Ok(r) => r?,
            Err(_) => {
                bump(&self.counters.acquire_timeouts);
                let s = self.status();
                let msg = format!(
                    "no connection within {limit:?}: {} of {} connections in use ({} idle, {} being opened, {} being cleaned up, {} draining), {} callers waiting",
                    s.in_use, s.max_size, s.idle, s.opening, s.returning, s.draining, s.waiting
                );
                return Err(Error::timeout(TimeoutKind::Acquire, msg));
            }
        };
        bump(&self.counters.acquires);
        Ok(PooledConnection::new(
            self.clone(),
            conn,
            meta,
            permit,
            caller,
        ))
    }

    async fn acquire_slot(self: &Arc<Self>) -> Result<Checkout, Error> {
        let permit = {
            let _waiting = GaugeGuard::new(&self.gauges.waiting);
            self.sem
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| pool_closed())?
        };
        loop {
            let Some(idle) = self.pop_idle() else {
                return self.open(permit).await;
            };
            if self.usable_on_checkout(&idle).await {
                return Ok((idle.conn, idle.meta, permit));
            }
        }
    }

    fn pop_idle(&self) -> Option<Idle> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Puts a connection in the idle queue; the caller drops its permit afterwards, so
    /// the waiter that permit wakes finds the connection there.
    fn put_idle(&self, conn: Connection, mut meta: Meta) {
        if self.closed.load(Ordering::Acquire) {
            spawn_close(conn);
            return;
        }
        meta.idle_since = Instant::now();
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Idle { conn, meta });
    }

    /// Lifetime, a non-blocking look for a closed socket, and the optional ping.
    async fn usable_on_checkout(&self, idle: &Idle) -> bool {
        if idle.meta.expired() {
            self.evict(idle.conn.clone(), EvictReason::Lifetime);
            return false;
        }
        let alive = match idle.conn.inner.wire.try_lock() {
            Ok(mut wire) => wire.check_idle(),
            Err(_) => false,
        };
        let stale = self
            .opts
            .health_check_after
            .is_some_and(|t| idle.meta.idle_since.elapsed() >= t);
        let healthy = alive && (!stale || self.ping(&idle.conn).await);
        if !healthy {
            self.evict(idle.conn.clone(), EvictReason::HealthCheck);
        }
        healthy
    }

    async fn ping(&self, conn: &Connection) -> bool {
        let ping = conn.simple_query("");
        matches!(
            tokio::time::timeout(self.opts.return_timeout, ping).await,
            Ok(Ok(_))
        )
    }

    fn evict(&self, conn: Connection, reason: EvictReason) {
        self.counters.evicted(reason);
        tracing::debug!(?reason, pid = conn.backend_pid(), "connection evicted");
        spawn_close(conn);
    }

    /// Opens a connection in a spawned task, so that a caller who stops waiting does not
    /// waste it: it goes to the idle queue instead.
    async fn open(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Result<Checkout, Error> {
        let (tx, rx) = oneshot::channel::<Result<Checkout, Error>>();
        let inner = self.clone();
        tokio::spawn(async move {
            match inner.connect_new().await {
                Ok(conn) => {
                    let meta = Meta::new(inner.opts.max_lifetime);
                    if let Err(Ok((conn, meta, permit))) = tx.send(Ok((conn, meta, permit))) {
                        inner.put_idle(conn, meta);
                        drop(permit);
                    }
                }
                Err(e) => {
                    drop(permit);
                    let _ = tx.send(Err(e));
                }
            }
        });
        rx.await.unwrap_or_else(|_| {
            Err(Error::new(
                ErrorKind::Closed,
                "the runtime stopped while connecting",
            ))
        })
    }

    async fn connect_new(&self) -> Result<Connection, Error> {
        let _opening = GaugeGuard::new(&self.gauges.opening);
        let result = async {
            let conn = Connection::connect(&self.config).await?;
            let recover = self.opts.abandon_policy == AbandonPolicy::Recover;
            conn.inner.shared.set_recoverable(recover);
            if let Some(hook) = &self.opts.after_connect {
                hook(&conn).await?;
            }
            Ok(conn)
        }
        .await;
        match &result {
            Ok(_) => bump(&self.counters.connects),
            Err(e) => {
                bump(&self.counters.connect_failures);
                tracing::warn!(error = %e, "pool could not open a connection");
            }
        }
        result
    }

    fn status(&self) -> Status {
        let g = &self.gauges;
        let c = &self.counters;
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).len();
        let held = self
            .opts
            .max_size
            .saturating_sub(self.sem.available_permits());
        let load = |a: &std::sync::atomic::AtomicUsize| a.load(Ordering::Acquire);
        let count = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Status {
            max_size: self.opts.max_size,
            size: held + idle,
            idle,
            in_use: load(&g.in_use),
            opening: load(&g.opening),
            returning: load(&g.returning),
            draining: load(&g.draining),
            waiting: load(&g.waiting),
            acquires: count(&c.acquires),
            acquire_timeouts: count(&c.acquire_timeouts),
            connects: count(&c.connects),
            connect_failures: count(&c.connect_failures),
            evicted_broken: count(&c.evicted_broken),
            evicted_rollback_failed: count(&c.evicted_rollback_failed),
            evicted_lifetime: count(&c.evicted_lifetime),
            evicted_idle: count(&c.evicted_idle),
            evicted_health_check: count(&c.evicted_health_check),
            evicted_cloned_out: count(&c.evicted_cloned_out),
            rollbacks_on_return: count(&c.rollbacks_on_return),
            cancels_sent: count(&c.cancels_sent),
            recovered: count(&c.recovered),
            transaction_retries: count(&c.transaction_retries),
        }
    }

    async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.sem.close();
        let deadline = Instant::now() + self.opts.close_timeout;
        while self.busy() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let idle: Vec<Idle> =
            std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        let closes = idle.into_iter().map(|i| async move {
            let _ = i.conn.close().await;
        });
        futures::future::join_all(closes).await;
    }

    fn busy(&self) -> usize {
        let g = &self.gauges;
        [&g.in_use, &g.opening, &g.returning, &g.draining]
            .iter()
            .map(|a| a.load(Ordering::Acquire))
            .sum()
    }
}

fn spawn_close(conn: Connection) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(async move {
                let _ = conn.close().await;
            });
        }
        Err(_) => drop(conn),
    }
}

/// Idle timeouts, lifetimes, `min_idle`, leak reports; ends when the pool is dropped.
async fn maintain(pool: Weak<PoolInner>) {
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
    fn prune_idle(&self) {
        let mut evicted = Vec::new();
        {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let min = self.opts.min_idle;
            let timeout = self.opts.idle_timeout;
            let mut i = 0;
            while i < idle.len() {
                let meta = idle[i].meta;
                let too_idle =
                    timeout.is_some_and(|t| meta.idle_since.elapsed() >= t) && idle.len() > min;
                match (meta.expired(), too_idle) {
                    (true, _) => evicted.push((idle.remove(i).conn, EvictReason::Lifetime)),
                    (false, true) => evicted.push((idle.remove(i).conn, EvictReason::Idle)),
                    _ => i += 1,
                }
            }
        }
        for (conn, reason) in evicted {
            self.evict(conn, reason);
        }
    }

    fn refill(self: &Arc<Self>) {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).len();
        let have = idle + self.gauges.opening.load(Ordering::Acquire);
        for _ in have..self.opts.min_idle {
            let Ok(permit) = self.sem.clone().try_acquire_owned() else {
                return;
            };
            let inner = self.clone();
            tokio::spawn(async move {
                if let Ok(conn) = inner.connect_new().await {
                    inner.put_idle(conn, Meta::new(inner.opts.max_lifetime));
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
