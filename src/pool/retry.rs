//! `Pool::transaction`: run a closure in a transaction, commit, and re-run the whole
//! closure on errors that a fresh attempt may not hit.

use std::panic::Location;
use std::time::Duration;

use futures::future::BoxFuture;

use super::status::bump;
use super::{Pool, jitter_fraction};
use crate::error::{Error, ErrorKind};
use crate::transaction::Transaction;

impl Pool {
    /// Runs `f` in a transaction on a pooled connection and commits.
    ///
    /// On an error whose [`Error::is_retryable`] is true (40001 serialization_failure,
    /// 40P01 deadlock_detected) or whose SQLSTATE is in the builder's `retry_codes` (e.g.
    /// 55P03, 23505), from the closure or from `COMMIT`, the transaction is rolled back and
    /// the whole closure runs again after an exponential backoff with full jitter, up to
    /// `max_attempts` runs in all. An [`ErrorKind::CommitOutcomeUnknown`] error (the
    /// connection failed during `COMMIT`) is returned, never retried.
    ///
    /// Each attempt's transaction state lives in its own guard, never in an object the
    /// pool shares between tasks, so concurrent calls cannot see each other's state.
    ///
    /// ```no_run
    /// # async fn demo(pool: pgkeel::pool::Pool) -> Result<(), pgkeel::Error> {
    /// let moved: u64 = pool
    ///     .transaction(|tx| Box::pin(async move {
    ///         tx.execute("UPDATE acct SET bal = bal - 10 WHERE id = 1", &[]).await?;
    ///         tx.execute("UPDATE acct SET bal = bal + 10 WHERE id = 2", &[]).await
    ///     }))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The last attempt's error, or the first one that is not retryable.
    #[track_caller]
    pub fn transaction<'a, T, F>(
        &'a self,
        f: F,
    ) -> impl std::future::Future<Output = Result<T, Error>> + Send + 'a
    where
        F: for<'t> FnMut(&'t mut Transaction) -> BoxFuture<'t, Result<T, Error>> + Send + 'a,
        T: Send + 'a,
    {
        let caller = Location::caller();
        self.run_transaction(f, caller)
    }

    async fn run_transaction<T, F>(
        &self,
        mut f: F,
        caller: &'static Location<'static>,
    ) -> Result<T, Error>
    where
        F: for<'t> FnMut(&'t mut Transaction) -> BoxFuture<'t, Result<T, Error>>,
    {
        let mut attempt = 1;
        loop {
            let err = match self.attempt(&mut f, caller).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if attempt >= self.inner.opts.max_attempts || !self.retries(&err) {
                return Err(err);
            }
            bump(&self.inner.counters.transaction_retries);
            tracing::debug!(attempt, code = err.code(), "retrying transaction");
            tokio::time::sleep(self.backoff(attempt)).await;
            attempt += 1;
        }
    }

    async fn attempt<T, F>(&self, f: &mut F, caller: &'static Location<'static>) -> Result<T, Error>
    where
        F: for<'t> FnMut(&'t mut Transaction) -> BoxFuture<'t, Result<T, Error>>,
    {
        let mut tx = self.begin_at(caller).await?;
        match f(&mut tx).await {
            Ok(v) => tx.commit().await.map(|()| v),
            Err(e) => {
                // Rolled back now rather than by the guard, so the retry starts clean.
                let _ = tx.rollback().await;
                Err(e)
            }
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

    fn backoff(&self, attempt: u32) -> Duration {
        let opts = &self.inner.opts;
        let exp = opts.retry_base_delay.saturating_mul(1 << attempt.min(16));
        exp.min(opts.retry_max_delay).mul_f64(jitter_fraction())
    }
}
