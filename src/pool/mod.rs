//! [`Pool`]: the application's way to PostgreSQL.
//!
//! - `pool.query / query_one / query_opt / execute`: autocommit on any free connection.
//! - `pool.begin()`: a [`PoolTransaction`] that owns its pooled connection.
//! - `pool.transaction(async |tx| { … })`: runs an async closure in a transaction,
//!   commits, and re-runs it on serialization failures and deadlocks.
//!
//! Slots are a fair (FIFO) semaphore of `max_size` permits. A permit is held by every
//! connection that is checked out, being opened, being cleaned up or draining; idle
//! connections hold none. So the number of server backends never exceeds `max_size`,
//! even while abandoned connections are still being cancelled.
//!
//! On return the decision is synchronous and follows the connection's own state: broken
//! → evicted (its slot kept until its cancel and close finish); on a server that turned
//! read-only (SQLSTATE 25006 while `target_session_attrs` asks for a writable one) →
//! evicted; inside a transaction by the server's status byte, or busy → a background
//! ROLLBACK within `return_timeout`, else evicted; otherwise idle at once, with no round
//! trip.
//!
//! While connects fail, one attempt runs at a time, spaced by an exponential backoff
//! (50 ms doubling to 1 s by default, with jitter), and every caller waiting meanwhile gets that
//! attempt's result. Idle connections are checked in the background: their sockets every
//! maintenance round, a ping after `health_check_after`. See `docs/CONNECTING.md`.

mod backoff;
mod lanes;
mod maintain;
#[cfg(test)]
mod model;
mod options;
mod pooled;
mod retry;
mod status;

use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

pub use self::options::{AbandonPolicy, AfterConnect, DEFAULT_HEALTH_CHECK_AFTER, PoolBuilder};
pub use self::pooled::{PoolTransaction, PooledConnection};
pub use self::retry::TransactionRunner;
pub use self::status::{ConnectFailure, EvictReason, Status};

use self::backoff::{Gate, Outcome, Turn};
use self::options::PoolOptions;
use self::status::{Counters, Gauge, Gauges, InGauge, bump};
use crate::config::{Config, TargetSessionAttrs};
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
    /// When it was last known alive: returned by a user, or pinged.
    checked_at: Instant,
}

struct Idle {
    conn: Connection,
    meta: Meta,
    gauge: InGauge,
}

pub(crate) struct PoolInner {
    /// The `pool` label of its metrics and the pool name of its spans.
    name: String,
    config: Config,
    opts: PoolOptions,
    sem: Arc<Semaphore>,
    idle: StdMutex<Vec<Idle>>,
    gauges: Arc<Gauges>,
    counters: Counters,
    /// Reconnect backoff: one attempt at a time while connects fail.
    gate: Arc<Gate>,
    /// `target_session_attrs` asks for a writable server: evict on SQLSTATE 25006.
    wants_writable: bool,
    closed: AtomicBool,
    next_checkout: AtomicU64,
    leaks: StdMutex<Vec<(u64, Instant, &'static Location<'static>, bool)>>,
    /// Checkouts shared by the pool's own query calls (see [`lanes`]).
    lanes: StdMutex<Vec<Arc<lanes::Lane>>>,
    /// Wakes callers queued for a checkout when a lane they may join opens.
    lane_ready: tokio::sync::Notify,
}

/// A pool's name when none was given: the first host, its port and the database.
fn default_name(config: &Config) -> String {
    let db = config.get_dbname();
    match config.targets().ok().and_then(|t| t.into_iter().next()) {
        Some(first) => format!("{first}/{db}"),
        None => db,
    }
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
        let wants_writable = matches!(
            config.get_target_session_attrs(),
            TargetSessionAttrs::ReadWrite | TargetSessionAttrs::Primary
        );
        let name = opts.name.clone().unwrap_or_else(|| default_name(&config));
        let inner = Arc::new(PoolInner {
            gauges: Arc::new(Gauges::new(&name, opts.max_size)),
            counters: Counters::new(&name),
            name,
            sem: Arc::new(Semaphore::new(opts.max_size)),
            gate: Arc::new(Gate::new(opts.backoff_base, opts.backoff_cap)),
            wants_writable,
            config,
            opts,
            idle: StdMutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            next_checkout: AtomicU64::new(1),
            leaks: StdMutex::new(Vec::new()),
            lanes: StdMutex::new(Vec::new()),
            lane_ready: tokio::sync::Notify::new(),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(maintain::maintain(Arc::downgrade(&inner)));
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
        let conn = self.use_for(statement, params).await?;
        let result = conn.query(statement, params).await;
        conn.settled();
        result
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
        let conn = self.use_for(statement, params).await?;
        let result = conn.query_one(statement, params).await;
        conn.settled();
        result
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
        let conn = self.use_for(statement, params).await?;
        let result = conn.query_opt(statement, params).await;
        conn.settled();
        result
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
        let conn = self.use_for(statement, params).await?;
        let result = conn.execute(statement, params).await;
        conn.settled();
        result
    }

    /// A connection for one of the pool's own query calls: shared with other such calls
    /// when none is idle (see [`lanes`]).
    #[track_caller]
    fn use_for<'a, T: ToStatement + ?Sized>(
        &'a self,
        statement: &'a T,
        params: Params<'a>,
    ) -> impl std::future::Future<Output = Result<lanes::Use, Error>> + Send + 'a {
        let caller = Location::caller();
        async move { self.inner.use_for(statement, params, caller).await }
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
        // A lifetime too long for the clock is no lifetime.
        let expires =
            lifetime.and_then(|l| now.checked_add(l - l.mul_f64(jitter_fraction() * 0.1)));
        Meta {
            expires,
            idle_since: now,
            checked_at: now,
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

type Checkout = (Connection, Meta, OwnedSemaphorePermit, InGauge);

/// Idle longer than this, a connection's socket is peeked at checkout (one syscall);
/// a connection in steady use is checked from what the runtime already knows.
const PEEK_AFTER_IDLE: Duration = Duration::from_millis(100);

/// A connection on its way from a spawned task to a caller. If the caller has stopped
/// waiting, even after the value reached the channel, dropping the hand-off puts the
/// connection back in the pool: a connection is never opened and then thrown away.
struct Handoff {
    pool: Arc<PoolInner>,
    checkout: Option<Checkout>,
}

impl Handoff {
    fn new(pool: &Arc<PoolInner>, checkout: Checkout) -> Handoff {
        Handoff {
            pool: pool.clone(),
            checkout: Some(checkout),
        }
    }

    fn take(mut self) -> Checkout {
        self.checkout.take().expect("a hand-off is taken once")
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        if let Some((conn, meta, permit, gauge)) = self.checkout.take() {
            match self.pool.closed.load(Ordering::Acquire) {
                true => self.pool.spawn_close_with_slot(conn, permit, gauge),
                false => {
                    self.pool.push_idle(conn, meta, gauge);
                    drop(permit);
                }
            }
        }
    }
}

impl PoolInner {
    /// Checks out a connection, in a `pool.acquire` span when a subscriber wants one.
    async fn acquire(
        self: &Arc<Self>,
        caller: &'static Location<'static>,
    ) -> Result<PooledConnection, Error> {
        match crate::telemetry::acquire(&self.name) {
            None => self.acquire_untraced(caller).await,
            span => crate::telemetry::traced(span, self.acquire_untraced(caller)).await,
        }
    }

    async fn acquire_untraced(
        self: &Arc<Self>,
        caller: &'static Location<'static>,
    ) -> Result<PooledConnection, Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(pool_closed());
        }
        let limit = self.opts.acquire_timeout;
        let started = cfg!(feature = "metrics").then(Instant::now);
        let slot = match self.acquire_now() {
            Some(checkout) => Ok(Ok(checkout)),
            None => tokio::time::timeout(limit, self.acquire_slot()).await,
        };
        let (conn, meta, permit, gauge) = match slot {
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
        self.counters.waited(started);
        Ok(PooledConnection::new(
            self.clone(),
            (conn, meta, permit, gauge),
            caller,
        ))
    }

    /// The fast path: a free slot and a hot idle connection that needs no await to vouch
    /// for, taken without arming a timer. Anything else goes the slow way.
    fn acquire_now(self: &Arc<Self>) -> Option<Checkout> {
        // Free permits exist only while nobody waits, so this never jumps the queue.
        let permit = self.sem.clone().try_acquire_owned().ok()?;
        let idle = self.pop_idle()?;
        let idle_for = idle.meta.idle_since.elapsed();
        let no_ping = !self.needs_ping(&idle.meta);
        let alive = idle_for < PEEK_AFTER_IDLE
            && no_ping
            && !idle.meta.expired()
            && idle.conn.quick_check(false);
        if !alive {
            // Back where it was; the slow path evicts or vouches for it properly.
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(idle);
            return None;
        }
        Some((idle.conn, idle.meta, permit, idle.gauge))
    }

    async fn acquire_slot(self: &Arc<Self>) -> Result<Checkout, Error> {
        let mut permit = self.wait_for_slot().await?;
        loop {
            let Some(idle) = self.pop_idle() else {
                return self.open(permit).await;
            };
            match self.usable_on_checkout(idle, permit).await {
                Ok((idle, permit)) => return Ok((idle.conn, idle.meta, permit, idle.gauge)),
                Err(p) => {
                    permit = p.ok_or_else(|| {
                        Error::new(
                            ErrorKind::Closed,
                            "the runtime stopped during a health check",
                        )
                    })?
                }
            }
        }
    }

    /// Waits for a slot, first come first served. While connects fail and no connection
    /// exists that could come back (none idle, in use or being cleaned up), a failed
    /// attempt ends the wait with its error: the slot would only lead to the next one.
    ///
    /// # Cancel safety
    /// Cancel safe: dropped, the waiter leaves the queue.
    async fn wait_for_slot(&self) -> Result<OwnedSemaphorePermit, Error> {
        let _waiting = self.gauges.waiter();
        let mut outcomes = self.gate.subscribe();
        let acquire = self.sem.clone().acquire_owned();
        tokio::pin!(acquire);
        loop {
            // A failure first: the slot it frees would only lead to the next attempt.
            let changed = tokio::select! {
                biased;
                changed = outcomes.changed() => changed,
                permit = &mut acquire => return permit.map_err(|_| pool_closed()),
            };
            if changed.is_err() {
                return acquire.await.map_err(|_| pool_closed());
            }
            let failed = match &*outcomes.borrow_and_update() {
                Outcome::Failed(e) => Some(e.duplicate()),
                _ => None,
            };
            if let Some(e) = failed.filter(|_| self.nothing_to_hand_back()) {
                return Err(e);
            }
        }
    }

    /// Whether no connection exists that a waiter could be handed.
    fn nothing_to_hand_back(&self) -> bool {
        let [idle, in_use, _, returning, _] = self.gauges.snapshot();
        idle + in_use + returning == 0
    }

    /// Whether an idle connection is due a ping before use (`health_check_after`).
    fn needs_ping(&self, meta: &Meta) -> bool {
        let after = self.opts.health_check_after;
        after.is_some_and(|t| meta.checked_at.elapsed() >= t)
    }

    /// Whether an idle connection is waiting.
    fn has_idle(&self) -> bool {
        !self
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    fn pop_idle(&self) -> Option<Idle> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Puts a connection in the idle queue (or closes it if the pool has closed). The
    /// caller holds a slot and drops it afterwards, so the waiter that slot wakes finds
    /// the connection there, and a closing connection is still counted.
    async fn put_idle(&self, conn: Connection, meta: Meta, mut gauge: InGauge) {
        match self.closed.load(Ordering::Acquire) {
            true => {
                gauge.shift(Gauge::Draining);
                self.close_conn(conn).await
            }
            false => self.push_idle(conn, meta, gauge),
        }
    }

    fn push_idle(&self, conn: Connection, mut meta: Meta, gauge: InGauge) {
        meta.idle_since = Instant::now();
        meta.checked_at = meta.idle_since;
        self.requeue(Idle { conn, meta, gauge });
    }

    /// Puts a connection back in the idle queue as it was (idle since when it was).
    fn requeue(&self, mut idle: Idle) {
        idle.gauge.shift(Gauge::Idle);
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(idle);
    }

    /// Closes a connection and waits (bounded by `drain_timeout`) until its backend has
    /// gone, including the cancel and close of one that broke; past the bound, the
    /// backend is counted as lingering.
    async fn close_conn(&self, conn: Connection) {
        let limit = self.opts.drain_timeout;
        let deadline = crate::transport::blocking::tokio_instant_after(limit);
        let _ = tokio::time::timeout_at(deadline, conn.close()).await;
        if let Some(drain) = conn.take_drain() {
            self.await_drain(drain, deadline).await;
        }
    }

    /// Waits for the task that cancels and closes a broken connection.
    async fn await_drain(
        &self,
        drain: tokio::task::JoinHandle<bool>,
        deadline: tokio::time::Instant,
    ) {
        let gone = matches!(tokio::time::timeout_at(deadline, drain).await, Ok(Ok(true)));
        if !gone {
            bump(&self.counters.backends_lingering);
            tracing::warn!(
                limit = ?self.opts.drain_timeout,
                "an evicted connection's backend was still running when its slot was freed"
            );
        }
    }

    /// Lifetime, a non-blocking look at the socket, and the optional ping. An unusable
    /// connection is closed here, under the caller's slot, before that slot opens
    /// another: the pool never runs more backends than its size. Hands the slot back
    /// when the connection was not usable.
    async fn usable_on_checkout(
        self: &Arc<Self>,
        idle: Idle,
        permit: OwnedSemaphorePermit,
    ) -> Result<(Idle, OwnedSemaphorePermit), Option<OwnedSemaphorePermit>> {
        if idle.meta.expired() {
            self.evict_now(idle.conn, EvictReason::Lifetime, idle.gauge)
                .await;
            return Err(Some(permit));
        }
        let peek = idle.meta.idle_since.elapsed() >= PEEK_AFTER_IDLE;
        if !idle.conn.quick_check(peek) {
            self.evict_now(idle.conn, EvictReason::HealthCheck, idle.gauge)
                .await;
            return Err(Some(permit));
        }
        match self.needs_ping(&idle.meta) {
            false => Ok((idle, permit)),
            true => self.ping(idle, permit).await,
        }
    }

    /// Pings in a spawned task that holds the connection and its slot: if the caller
    /// stops waiting, the connection goes back to the idle queue before the slot is
    /// freed, instead of being lost with the caller's future.
    async fn ping(
        self: &Arc<Self>,
        idle: Idle,
        permit: OwnedSemaphorePermit,
    ) -> Result<(Idle, OwnedSemaphorePermit), Option<OwnedSemaphorePermit>> {
        let (tx, rx) = oneshot::channel::<Result<Handoff, OwnedSemaphorePermit>>();
        let inner = self.clone();
        tokio::spawn(async move {
            let ping = idle.conn.simple_query("");
            let limit = inner.opts.return_timeout;
            let ok = matches!(tokio::time::timeout(limit, ping).await, Ok(Ok(_)));
            if !ok {
                inner
                    .evict_now(idle.conn, EvictReason::HealthCheck, idle.gauge)
                    .await;
                let _ = tx.send(Err(permit));
                return;
            }
            // A refused hand-off drops here, and its Drop returns the connection.
            let checkout = (idle.conn, idle.meta, permit, idle.gauge);
            drop(tx.send(Ok(Handoff::new(&inner, checkout))));
        });
        match rx.await {
            Ok(Ok(handoff)) => {
                let (conn, meta, permit, gauge) = handoff.take();
                Ok((Idle { conn, meta, gauge }, permit))
            }
            Ok(Err(permit)) => Err(Some(permit)),
            Err(_) => Err(None),
        }
    }

    /// Counts an eviction and reports it: a WARN for the ones that mean trouble (broken,
    /// failed rollback, failed health check, a clone kept), DEBUG for routine expiry.
    fn evicted(&self, reason: EvictReason, conn: &Connection) {
        self.counters.evicted(reason);
        let pid = conn.backend_pid();
        match reason {
            EvictReason::Lifetime | EvictReason::Idle => {
                tracing::debug!(?reason, pid, "connection evicted")
            }
            _ => tracing::warn!(?reason, pid, "connection evicted"),
        }
    }

    /// Evicts a connection and waits (bounded) until its backend is gone.
    async fn evict_now(&self, conn: Connection, reason: EvictReason, mut gauge: InGauge) {
        gauge.shift(Gauge::Draining);
        self.evicted(reason, &conn);
        self.close_conn(conn).await;
    }

    /// Closes a connection in the background under `permit`, counted as draining.
    fn spawn_close_with_slot(
        self: &Arc<Self>,
        conn: Connection,
        permit: OwnedSemaphorePermit,
        mut gauge: InGauge,
    ) {
        let inner = self.clone();
        gauge.shift(Gauge::Draining);
        self.spawn_with_slot(permit, Some(gauge), async move {
            inner.close_conn(conn).await;
        });
    }

    /// Opens a connection in a spawned task, so that a caller who stops waiting does not
    /// waste it: it goes to the idle queue instead.
    /// While connects fail, it first waits its turn at the reconnect backoff, and may
    /// get the error of the attempt it waited for instead.
    async fn open(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Result<Checkout, Error> {
        let turn = self.gate.turn().await?;
        // The backoff may have kept this caller past a close().
        if self.closed.load(Ordering::Acquire) {
            return Err(pool_closed());
        }
        let (tx, rx) = oneshot::channel::<Result<Handoff, Error>>();
        let inner = self.clone();
        // In the caller's span (its `pool.acquire`), so the connect shows inside it.
        let in_span = tracing::Instrument::in_current_span;
        tokio::spawn(in_span(async move {
            let sent = match inner.connect_new(turn).await {
                Ok((conn, gauge)) => {
                    let meta = Meta::new(inner.opts.max_lifetime);
                    tx.send(Ok(Handoff::new(&inner, (conn, meta, permit, gauge))))
                }
                Err(e) => {
                    drop(permit);
                    tx.send(Err(e))
                }
            };
            // A refused hand-off drops here, and its Drop returns the connection.
            drop(sent);
        }));
        match rx.await {
            Ok(result) => result.map(Handoff::take),
            Err(_) => Err(Error::new(
                ErrorKind::Closed,
                "the runtime stopped while connecting",
            )),
        }
    }

    /// Opens a connection and reports the result to the reconnect backoff (`turn` says
    /// whether this is the one attempt allowed while connects fail).
    async fn connect_new(self: &Arc<Self>, turn: Turn) -> Result<(Connection, InGauge), Error> {
        let opening = InGauge::new(&self.gauges, Gauge::Opening);
        let result = async {
            let conn = Connection::connect(&self.config).await?;
            conn.set_recoverable(self.opts.abandon_policy.recovers(&self.config));
            if let Some(hook) = &self.opts.after_connect {
                hook(&conn).await?;
            }
            Ok((conn, opening))
        }
        .await;
        match &result {
            Ok(_) => bump(&self.counters.connects),
            Err(_) => bump(&self.counters.connect_failures),
        }
        let settled = result.as_ref().map(drop);
        match turn {
            Turn::Probe(probe) => probe.settle(settled),
            Turn::Free => self.gate.record(settled),
        }
        result
    }

    fn status(&self) -> Status {
        let c = &self.counters;
        let [idle, in_use, opening, returning, draining] = self.gauges.snapshot();
        let count = |a: &status::Count| a.load(Ordering::Relaxed);
        let (consecutive_connect_failures, last_connect_error) = self.gate.report();
        Status {
            max_size: self.opts.max_size,
            size: idle + in_use + opening + returning + draining,
            idle,
            in_use,
            opening,
            returning,
            draining,
            waiting: self.gauges.waiting.load(Ordering::Acquire),
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
            evicted_read_only: count(&c.evicted_read_only),
            rollbacks_on_return: count(&c.rollbacks_on_return),
            cancels_sent: count(&c.cancels_sent),
            recovered: count(&c.recovered),
            transaction_retries: count(&c.transaction_retries),
            backends_lingering: count(&c.backends_lingering),
            shared_calls: count(&c.lane_joins),
            leak_reports: count(&c.leak_reports),
            consecutive_connect_failures,
            last_connect_error,
        }
    }

    async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.sem.close();
        // A timeout too long for the clock is no timeout.
        let deadline = Instant::now().checked_add(self.opts.close_timeout);
        let before = |d: Option<Instant>| d.is_none_or(|d| Instant::now() < d);
        while self.busy() > 0 && before(deadline) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let idle: Vec<Idle> =
            std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        let closes = idle.into_iter().map(|mut i| {
            i.gauge.shift(Gauge::Draining);
            async move {
                self.close_conn(i.conn).await;
                drop(i.gauge);
            }
        });
        futures::future::join_all(closes).await;
        // Connections returned meanwhile are closed by their own tasks; wait for those too.
        while self.busy() > 0 && before(deadline) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn busy(&self) -> usize {
        let [_, in_use, opening, returning, draining] = self.gauges.snapshot();
        in_use + opening + returning + draining
    }
}
