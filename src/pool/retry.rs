//! `Pool::transaction` and [`TransactionRunner`]: run an async closure in a transaction,
//! commit, and re-run the whole closure on errors that a fresh attempt may not hit.

use std::panic::Location;
use std::time::Duration;

use super::status::bump;
use super::{Pool, PoolTransaction, jitter_fraction};
use crate::error::{Error, ErrorKind};
use crate::transaction::{IsolationLevel, Transaction, TxOptions};

impl Pool {
    /// Runs the async closure `f` in a transaction on a pooled connection and commits,
    /// re-running it on serialization failures and deadlocks; the pool's defaults for
    /// attempts and backoff ([`crate::pool::PoolBuilder::max_attempts`],
    /// [`crate::pool::PoolBuilder::retry_delays`]) apply. For isolation, read only and
    /// per-call attempts, see [`Pool::build_transaction`].
    ///
    /// On an error whose [`Error::is_retryable`] is true (40001 serialization_failure,
    /// 40P01 deadlock_detected) or whose SQLSTATE is in the builder's `retry_codes` (e.g.
    /// 55P03, 23505), from the closure or from `COMMIT`, the transaction is rolled back and
    /// the whole closure runs again after an exponential backoff with full jitter. An
    /// [`ErrorKind::CommitOutcomeUnknown`] error (the connection failed during `COMMIT`)
    /// is returned, never retried.
    ///
    /// The closure may run several times: keep its effects inside the transaction. Each
    /// attempt's transaction lives in its own guard, so if the returned future is dropped
    /// (a timeout), the attempt's transaction rolls back and its connection returns clean.
    ///
    /// ```no_run
    /// # async fn demo(pool: pgkeel::pool::Pool) -> Result<(), pgkeel::Error> {
    /// let moved: u64 = pool
    ///     .transaction(async |tx| {
    ///         tx.execute("UPDATE acct SET bal = bal - 10 WHERE id = 1", &[]).await?;
    ///         tx.execute("UPDATE acct SET bal = bal + 10 WHERE id = 2", &[]).await
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The last attempt's error, or the first one that is not retryable.
    #[track_caller]
    pub fn transaction<T, F>(&self, f: F) -> impl Future<Output = Result<T, Error>>
    where
        F: AsyncFnMut(&mut Transaction) -> Result<T, Error>,
    {
        self.build_transaction().run(f)
    }

    /// Options for [`Pool::transaction`]: isolation level, read only, deferrable, the
    /// number of attempts and the backoff between them.
    ///
    /// ```no_run
    /// # async fn demo(pool: pgkeel::pool::Pool) -> Result<(), pgkeel::Error> {
    /// use std::time::Duration;
    /// use pgkeel::IsolationLevel;
    /// let total: i64 = pool
    ///     .build_transaction()
    ///     .isolation_level(IsolationLevel::Serializable)
    ///     .attempts(10)
    ///     .backoff(Duration::from_millis(1), Duration::from_millis(50))
    ///     .run(async |tx| {
    ///         let row = tx.query_one("SELECT sum(bal)::int8 FROM acct", &[]).await?;
    ///         Ok(row.get(0))
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn build_transaction(&self) -> TransactionRunner<'_> {
        let opts = &self.inner.opts;
        TransactionRunner {
            pool: self,
            options: TxOptions::default(),
            attempts: opts.max_attempts,
            backoff: (opts.retry_base_delay, opts.retry_max_delay),
            caller: Location::caller(),
        }
    }

    fn retries(&self, e: &Error) -> bool {
        if e.kind() == ErrorKind::CommitOutcomeUnknown {
            return false;
        }
        let extra = e
            .code()
            .is_some_and(|c| self.inner.opts.retry_codes.iter().any(|r| r == c));
        e.is_retryable() || extra
    }
}

/// A pool transaction being set up: its options, then [`TransactionRunner::run`] (a
/// closure, retried) or [`TransactionRunner::begin`] (a guard, once). From
/// [`Pool::build_transaction`].
#[derive(Debug, Clone)]
#[must_use = "a transaction runner does nothing until `run` or `begin`"]
pub struct TransactionRunner<'p> {
    pool: &'p Pool,
    options: TxOptions,
    attempts: u32,
    backoff: (Duration, Duration),
    caller: &'static Location<'static>,
}

impl TransactionRunner<'_> {
    /// Sets the isolation level (`SHOW transaction_isolation` reports it inside).
    pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
        self.options.isolation = Some(level);
        self
    }

    /// Makes the transaction read only (writes fail with SQLSTATE 25006), or
    /// explicitly read write.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.options.read_only = Some(read_only);
        self
    }

    /// Makes a serializable read-only transaction deferrable: it waits for a snapshot
    /// that cannot fail with a serialization error. Refused (an [`ErrorKind::Config`]
    /// error from `run`/`begin`) unless it is also serializable and read only, where
    /// PostgreSQL would ignore it.
    pub fn deferrable(mut self, deferrable: bool) -> Self {
        self.options.deferrable = Some(deferrable);
        self
    }

    /// How many times `run` may run the closure in all (1: no retry). Zero is refused
    /// by `run` with an [`ErrorKind::Config`] error.
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// The delay before retry *n* is a random fraction (full jitter) of
    /// `min(base × 2ⁿ, max)`; a zero `base` retries at once.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff = (base, max);
        self
    }

    /// Checks out a connection and begins one transaction with these options; the
    /// attempts and backoff play no part.
    ///
    /// # Errors
    /// As [`Pool::get`] and [`crate::TransactionBuilder::start`].
    pub async fn begin(&self) -> Result<PoolTransaction, Error> {
        self.options.check()?;
        let conn = self.pool.inner.acquire(self.caller).await?;
        let tx = conn
            .build_transaction()
            .with_options(self.options)
            .start()
            .await?;
        Ok(PoolTransaction::new(tx, conn))
    }

    /// Runs `f` in a transaction with these options and commits, re-running it on
    /// retryable errors as [`Pool::transaction`] describes.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for zero attempts or a refused option (nothing runs); the
    /// last attempt's error, or the first one that is not retryable.
    pub async fn run<T, F>(self, mut f: F) -> Result<T, Error>
    where
        F: AsyncFnMut(&mut Transaction) -> Result<T, Error>,
    {
        self.options.check()?;
        if self.attempts == 0 {
            return Err(Error::new(
                ErrorKind::Config,
                "attempts(0) would never run the transaction; use attempts(1) for no retry",
            ));
        }
        let mut attempt = 1;
        loop {
            let err = match self.attempt(&mut f).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if attempt >= self.attempts || !self.pool.retries(&err) {
                return Err(err);
            }
            bump(&self.pool.inner.counters.transaction_retries);
            tracing::debug!(attempt, code = err.code(), "retrying transaction");
            tokio::time::sleep(self.delay(attempt)).await;
            attempt += 1;
        }
    }

    async fn attempt<T, F>(&self, f: &mut F) -> Result<T, Error>
    where
        F: AsyncFnMut(&mut Transaction) -> Result<T, Error>,
    {
        let mut tx = self.begin().await?;
        match f(&mut tx).await {
            Ok(v) => tx.commit().await.map(|()| v),
            Err(e) => {
                // Rolled back now rather than by the guard, so the retry starts clean.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    fn delay(&self, attempt: u32) -> Duration {
        let (base, max) = self.backoff;
        let exp = base.saturating_mul(1 << attempt.min(16));
        exp.min(max).mul_f64(jitter_fraction())
    }
}
