//! [`PoolBuilder`]: the pool's limits and hooks.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::Pool;
use crate::config::Config;
use crate::connection::Connection;
use crate::error::Error;

/// The default of [`PoolBuilder::health_check_after`].
pub const DEFAULT_HEALTH_CHECK_AFTER: Duration = Duration::from_secs(30);

/// A hook run on every new connection before the pool hands it out (e.g. `SET search_path`).
pub type AfterConnect = Arc<dyn Fn(&Connection) -> BoxFuture<'_, Result<(), Error>> + Send + Sync>;

/// What the pool does with a connection whose exchange was abandoned (its future dropped
/// mid-exchange).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AbandonPolicy {
    /// The default: [`AbandonPolicy::Recover`] on a direct connection to PostgreSQL,
    /// [`AbandonPolicy::Evict`] in pooler mode (behind PgBouncer and the like), where a
    /// cancel may reach another client's server session.
    #[default]
    Auto,
    /// Evict it: its cancel and close run in the background while its slot stays counted.
    Evict,
    /// Recover it when its request went out whole: send the CancelRequest, wait until the
    /// server has closed the cancel socket (the backend has then been signalled, and a
    /// signal that finds it idle is discarded), read the abandoned exchange to its
    /// ReadyForQuery within `drain_timeout` (repeating the cancel every 75 ms meanwhile,
    /// each one confirmed, since PostgreSQL drops a cancel that lands between the
    /// messages of an exchange), and then return it under the usual rules.
    /// On any doubt it is evicted. Never use this through a connection pooler such as
    /// PgBouncer: the cancel may reach another client's server session; a pool in
    /// pooler mode refuses it at build.
    Recover,
}

impl AbandonPolicy {
    /// Whether abandoned exchanges are recovered on a connection made with `config`.
    pub(crate) fn recovers(self, config: &crate::Config) -> bool {
        match self {
            AbandonPolicy::Auto => !config.get_pooler_mode(),
            AbandonPolicy::Evict => false,
            AbandonPolicy::Recover => true,
        }
    }
}

/// The settings of a pool.
#[derive(Clone)]
pub(crate) struct PoolOptions {
    pub(crate) name: Option<String>,
    pub(crate) max_size: usize,
    pub(crate) min_idle: usize,
    pub(crate) acquire_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) health_check_after: Option<Duration>,
    pub(crate) reset_on_return: Option<String>,
    pub(crate) after_connect: Option<AfterConnect>,
    pub(crate) return_timeout: Duration,
    pub(crate) drain_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) leak_threshold: Option<Duration>,
    pub(crate) maintenance_interval: Duration,
    pub(crate) abandon_policy: AbandonPolicy,
    pub(crate) max_attempts: u32,
    pub(crate) retry_codes: Vec<String>,
    pub(crate) retry_base_delay: Duration,
    pub(crate) retry_max_delay: Duration,
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_cap: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            name: None,
            max_size: 10,
            min_idle: 0,
            acquire_timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            health_check_after: Some(DEFAULT_HEALTH_CHECK_AFTER),
            reset_on_return: None,
            after_connect: None,
            return_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(5),
            close_timeout: Duration::from_secs(5),
            leak_threshold: None,
            maintenance_interval: Duration::from_secs(1),
            abandon_policy: AbandonPolicy::Auto,
            max_attempts: 5,
            retry_codes: Vec::new(),
            retry_base_delay: Duration::from_millis(5),
            retry_max_delay: Duration::from_millis(500),
            backoff_base: super::backoff::DEFAULT_BACKOFF_BASE,
            backoff_cap: super::backoff::DEFAULT_BACKOFF_CAP,
        }
    }
}

/// Builds a [`Pool`]; start with [`Pool::builder`].
pub struct PoolBuilder {
    pub(crate) config: Result<Config, Error>,
    pub(crate) options: PoolOptions,
}

impl PoolBuilder {
    /// The pool's name: the `pool` label of its metrics and the
    /// `db.client.connection.pool.name` of its spans (default: the first host, its port
    /// and the database, as `db.example.com:5432/app`). Must not be empty.
    pub fn name(mut self, name: &str) -> Self {
        self.options.name = Some(name.to_owned());
        self
    }

    /// The most connections the pool keeps, counting those being opened, cleaned up or
    /// drained (default 10; at least 1, at most 4095, else `build()` fails).
    pub fn max_size(mut self, n: usize) -> Self {
        self.options.max_size = n;
        self
    }

    /// Connections kept open and idle, refilled in the background (default 0).
    pub fn min_idle(mut self, n: usize) -> Self {
        self.options.min_idle = n;
        self
    }

    /// How long `get()` may take in all, waiting plus connecting (default 30 s).
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.options.acquire_timeout = d;
        self
    }

    /// Bounds each connect: socket, startup and authentication.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        if let Ok(c) = &mut self.config {
            c.connect_timeout(d);
        }
        self
    }

    /// Closes connections idle longer than this, above `min_idle` (default 10 min).
    pub fn idle_timeout(mut self, d: Option<Duration>) -> Self {
        self.options.idle_timeout = d;
        self
    }

    /// Closes connections older than this, each with up to 10 % jitter so they do not all
    /// expire at once (default 30 min).
    pub fn max_lifetime(mut self, d: Option<Duration>) -> Self {
        self.options.max_lifetime = d;
        self
    }

    /// Pings an idle connection not known alive for this long (default 30 s; `None`:
    /// never). The maintenance task pings such connections in the background every
    /// round, so a checkout rarely waits for one; a checkout that finds one first pings
    /// it itself. Apart from this, a cheap non-blocking look at the socket runs on every
    /// idle connection every maintenance round, and at checkout.
    pub fn health_check_after(mut self, d: Option<Duration>) -> Self {
        self.options.health_check_after = d;
        self
    }

    /// SQL run on every returned connection before reuse, e.g. `DISCARD ALL`.
    pub fn reset_on_return(mut self, sql: Option<&str>) -> Self {
        self.options.reset_on_return = sql.map(str::to_owned);
        self
    }

    /// A hook run on every new connection.
    pub fn after_connect<F>(mut self, hook: F) -> Self
    where
        F: Fn(&Connection) -> BoxFuture<'_, Result<(), Error>> + Send + Sync + 'static,
    {
        self.options.after_connect = Some(Arc::new(hook));
        self
    }

    /// Bounds the cleanup of a returned connection (waiting for its wire lock, ROLLBACK,
    /// reset); past it the connection is evicted (default 5 s).
    pub fn return_timeout(mut self, d: Duration) -> Self {
        self.options.return_timeout = d;
        self
    }

    /// Bounds how long an evicted broken connection's slot waits for its cancel and close
    /// (default 5 s).
    pub fn drain_timeout(mut self, d: Duration) -> Self {
        self.options.drain_timeout = d;
        self
    }

    /// Bounds how long `close()` waits for checked-out connections (default 5 s).
    pub fn close_timeout(mut self, d: Duration) -> Self {
        self.options.close_timeout = d;
        self
    }

    /// Logs a WARN with the caller's location for connections held longer than this.
    pub fn leak_threshold(mut self, d: Option<Duration>) -> Self {
        self.options.leak_threshold = d;
        self
    }

    /// How often idle timeouts, lifetimes, idle health, `min_idle` and leaks are checked
    /// (default 1 s).
    pub fn maintenance_interval(mut self, d: Duration) -> Self {
        self.options.maintenance_interval = d.max(Duration::from_millis(10));
        self
    }

    /// What to do with connections whose exchange was abandoned (default:
    /// [`AbandonPolicy::Auto`], which recovers them on direct connections and evicts them
    /// in pooler mode).
    pub fn abandon_policy(mut self, policy: AbandonPolicy) -> Self {
        self.options.abandon_policy = policy;
        self
    }

    /// How many times `Pool::transaction` runs its closure at most (default 5).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.options.max_attempts = n.max(1);
        self
    }

    /// Extra SQLSTATEs that `Pool::transaction` retries, beside 40001 and 40P01 (e.g.
    /// 55P03 lock_not_available, 23505 unique_violation).
    pub fn retry_codes(mut self, codes: &[&str]) -> Self {
        self.options.retry_codes = codes.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// The first and the largest retry delay (exponential with full jitter; default 5 ms
    /// and 500 ms).
    pub fn retry_delays(mut self, base: Duration, max: Duration) -> Self {
        self.options.retry_base_delay = base;
        self.options.retry_max_delay = max.max(base);
        self
    }

    /// The reconnect backoff while connects fail (default 50 ms and 1 s): after the n-th
    /// failed attempt (connects that were under way together and failed together count
    /// as one) the next attempt waits `min(max, base × 2^(n-1))`, drawn between half and
    /// all of it, and only one attempt runs at a time; every caller waiting meanwhile
    /// gets that attempt's result. Once the server is back, the pool serves again within
    /// `max`. `base` must not be zero.
    pub fn connect_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.options.backoff_base = base;
        self.options.backoff_cap = max.max(base);
        self
    }

    /// Builds the pool. Connections open on demand (and `min_idle` in the background).
    ///
    /// # Errors
    /// [`crate::ErrorKind::Config`] for invalid connection settings, a `max_size` of 0 or
    /// above 4095, a zero `connect_backoff` base, or [`AbandonPolicy::Recover`] in pooler
    /// mode.
    pub fn build(self) -> Result<Pool, Error> {
        let config = self.config?;
        self.options.validate()?;
        if config.get_pooler_mode() && self.options.abandon_policy == AbandonPolicy::Recover {
            return Err(Error::config(
                "abandon_policy Recover is refused in pooler mode: behind a connection pooler \
                 a CancelRequest may reach another client's server session",
            ));
        }
        Ok(Pool::new(config, self.options))
    }
}

impl PoolOptions {
    fn validate(&self) -> Result<(), Error> {
        let most = super::status::MAX_POOL_SIZE;
        if self.max_size == 0 || self.max_size > most {
            return Err(Error::config(format!(
                "max_size {} is out of range: a pool holds 1 to {most} connections",
                self.max_size
            )));
        }
        if self.min_idle > self.max_size {
            return Err(Error::config(format!(
                "min_idle {} is above max_size {}: the pool never holds more than max_size \
                 connections",
                self.min_idle, self.max_size
            )));
        }
        if self.name.as_deref() == Some("") {
            return Err(Error::config(
                "name: a pool's name must not be empty (it labels its metrics and spans)",
            ));
        }
        if self.backoff_base.is_zero() {
            return Err(Error::config(
                "connect_backoff: the base delay must be above zero (else a pool whose \
                 connects fail would retry without pause)",
            ));
        }
        Ok(())
    }
}
