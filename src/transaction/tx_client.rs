//! [`TxClient`]: the statement methods a [`super::Transaction`] and its savepoints share.
//!
//! The transaction's wire sits behind a small async mutex of its own, so the methods
//! take `&self`: two calls on one transaction (`join!` in one task, or two tasks sharing
//! it) run one after the other, never interleaved. A row stream or COPY keeps that mutex
//! for its life; a call from the task holding one fails at once instead of waiting for
//! itself, as a direct call on the connection does while a transaction is open.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use crate::connection::wire::{Caller, HolderMark, Shared, Wire, WireGuard};
use crate::connection::{
    Binding, DEFAULT_BATCH_ROWS, Discard, Params, RowStream, ToStatement, WireSlot, at_most_one,
    bounded_call, run_on, split_typed,
};
use crate::error::{Error, ErrorKind};
use crate::protocol::TransactionStatus;
use crate::row::{Row, SimpleQueryMessage};
use crate::statement::Statement;
use crate::telemetry::{Call, exchange, statement_text};
use crate::types::{ToSql, Type};

/// The wire of an open transaction, and the connection's holder mark.
pub(crate) struct TxCore {
    pub(super) wire: WireGuard,
    holder: HolderMark,
}

impl TxCore {
    /// The span of one exchange in the transaction.
    pub(super) fn span(&self, call: Call, sql: Option<&str>) -> Option<tracing::Span> {
        exchange(&self.wire.shared.telemetry, call, sql)
    }

    pub(super) fn new(wire: WireGuard, holder: HolderMark) -> TxCore {
        TxCore { wire, holder }
    }

    /// Moves the connection's holder mark to the current task.
    pub(super) fn refresh(&self) {
        self.holder.refresh();
    }

    /// Runs what dropped savepoints left behind, so the wire is ready for a statement.
    async fn ready(&mut self, pending: &StdMutex<Vec<String>>) -> Result<(), Error> {
        self.holder.refresh();
        // A COPY dropped unfinished ends first, so its outcome (a failed COPY fails the
        // transaction) shows in the status before anything else runs.
        if self.wire.ledger.is_copying() {
            self.wire.settle().await?;
        }
        let sql = {
            let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
            let sql = pending.join("; ");
            pending.clear();
            sql
        };
        if !sql.is_empty() {
            self.wire.simple_query(&sql).await?;
        }
        Ok(())
    }
}

/// The statement methods of an open [`super::Transaction`] or [`super::Savepoint`]
/// (both dereference to it); every one takes `&self`.
///
/// Calls on one transaction never interleave on the wire: a second call (from a
/// `join!` in the same task, or from another task sharing the transaction) waits until
/// the first is done. While a row stream or COPY opened from the transaction is alive,
/// it holds the transaction: a call from the task that holds the stream fails at once
/// with [`ErrorKind::Misuse`] (it would wait for itself forever); another task waits.
pub struct TxClient {
    core: Mutex<Option<TxCore>>,
    shared: Arc<Shared>,
    limit: Option<std::time::Duration>,
    /// Rollbacks of savepoints dropped unfinished, run before the next statement.
    pending: StdMutex<Vec<String>>,
    /// The task that holds the transaction through a row stream or COPY.
    lent: StdMutex<Option<Caller>>,
    next_savepoint: AtomicU32,
}

impl TxClient {
    pub(super) fn new(core: TxCore) -> TxClient {
        TxClient {
            limit: core.wire.shared.limits.query,
            shared: core.wire.shared.clone(),
            core: Mutex::new(Some(core)),
            pending: StdMutex::new(Vec::new()),
            lent: StdMutex::new(None),
            next_savepoint: AtomicU32::new(0),
        }
    }

    /// The core, through exclusive access (no lock needed).
    pub(super) fn owned_core(&mut self) -> Result<&mut TxCore, Error> {
        self.core.get_mut().as_mut().ok_or_else(ended)
    }

    /// Readies the wire through exclusive access.
    pub(super) async fn ready_owned(&mut self) -> Result<(), Error> {
        let core = self.core.get_mut().as_mut().ok_or_else(ended)?;
        core.ready(&self.pending).await
    }

    /// Ends the transaction's hold: returns its wire for the cleanup.
    pub(super) fn take_wire(&mut self) -> Option<WireGuard> {
        let TxCore { wire, holder } = self.core.get_mut().take()?;
        drop(holder);
        Some(wire)
    }

    pub(super) fn next_savepoint_name(&self) -> String {
        let n = self.next_savepoint.fetch_add(1, Ordering::Relaxed) + 1;
        format!("pgkeel_sp{n}")
    }

    /// Queues SQL to run before the next statement (a dropped savepoint's rollback).
    pub(super) fn defer(&self, sql: String) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.push(sql);
    }

    /// Runs SQL in the simple protocol and drops its rows.
    pub(super) async fn run(&self, sql: &str) -> Result<(), Error> {
        let mut core = self.lock("a savepoint command").await?;
        core.wire.simple_query(sql).await.map(drop)
    }

    /// Fails when the current task holds the transaction through a stream or COPY.
    fn check_not_lent(&self, what: &str) -> Result<(), Error> {
        let lent = *self.lent.lock().unwrap_or_else(|e| e.into_inner());
        match lent == Some(Caller::current()) {
            false => Ok(()),
            true => Err(Error::new(
                ErrorKind::Misuse,
                format!(
                    "this task holds the transaction through an open row stream or COPY and \
                     called {what} on it, which would wait for itself forever; finish or drop \
                     the stream first"
                ),
            )),
        }
    }

    /// Takes the transaction's wire for one call and readies it.
    ///
    /// # Cancel safety
    /// Dropped while waiting: nothing happens. Dropped while a deferred savepoint
    /// rollback is in flight: the connection turns broken, as for any exchange.
    async fn lock(&self, what: &str) -> Result<MappedMutexGuard<'_, TxCore>, Error> {
        self.check_not_lent(what)?;
        let guard = self.core.lock().await;
        let mut core = MutexGuard::try_map(guard, Option::as_mut).map_err(|_| ended())?;
        core.ready(&self.pending).await?;
        Ok(core)
    }

    /// The transaction's wire, readied, for calls defined elsewhere (fast path, large
    /// objects, portals and cursors); held until the returned guard drops.
    pub(crate) async fn wire_ready(&self) -> Result<MappedMutexGuard<'_, WireGuard>, Error> {
        let core = self.lock("a transaction call").await?;
        Ok(MappedMutexGuard::map(core, |c| &mut c.wire))
    }

    /// The time limit of one call on this transaction.
    pub(crate) fn query_limit(&self) -> Result<Option<std::time::Duration>, Error> {
        Ok(self.limit)
    }

    /// Takes the transaction's wire for the life of a stream or COPY.
    async fn lease(&self, what: &str) -> Result<WireSlot<'_>, Error> {
        let core = self.lock(what).await?;
        *self.lent.lock().unwrap_or_else(|e| e.into_inner()) = Some(Caller::current());
        let lease = TxLease {
            core,
            lent: &self.lent,
        };
        Ok(WireSlot::Lent(Box::new(lease)))
    }

    /// Runs a statement and returns all its rows; see [`crate::Connection::query`].
    ///
    /// # Errors
    /// As [`crate::Connection::query`]; [`ErrorKind::Misuse`] while this task holds a row
    /// stream or COPY of the transaction.
    ///
    /// # Cancel safety
    /// Dropped while waiting for the transaction: nothing happens. Dropped after the
    /// request was written: the connection turns broken, and the transaction with it.
    pub async fn query<T: ToStatement + ?Sized>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> Result<Vec<Row>, Error> {
        let span = exchange(
            &self.shared.telemetry,
            Call::Query,
            statement_text(&statement.statement_ref()),
        );
        bounded_call!(self.limit, span, {
            let mut core = self.lock("query").await?;
            let mut rows = Vec::new();
            run_on(&mut core.wire, statement, params, &mut rows).await?;
            Ok(rows)
        })
    }

    /// Runs SQL text with each parameter's PostgreSQL type named; see
    /// [`crate::Connection::query_typed`].
    ///
    /// # Errors
    /// As [`crate::Connection::query_typed`].
    ///
    /// # Cancel safety
    /// As [`TxClient::query`].
    pub async fn query_typed(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, Error> {
        let (values, types) = split_typed(params);
        let span = exchange(&self.shared.telemetry, Call::QueryTyped, Some(sql));
        bounded_call!(self.limit, span, {
            let mut core = self.lock("query_typed").await?;
            let mut rows = Vec::new();
            let b = Binding {
                params: &values,
                typed: Some(&types),
            };
            core.wire.query_sql(sql, b, &mut rows).await?;
            Ok(rows)
        })
    }

    /// Runs a statement that must return exactly one row.
    ///
    /// # Errors
    /// As [`crate::Connection::query_one`].
    ///
    /// # Cancel safety
    /// As [`TxClient::query`].
    pub async fn query_one<T: ToStatement + ?Sized>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> Result<Row, Error> {
        let rows = self.query(statement, params).await?;
        at_most_one(rows, false).map(|r| r.expect("one row"))
    }

    /// Runs a statement that returns at most one row.
    ///
    /// # Errors
    /// As [`crate::Connection::query_opt`].
    ///
    /// # Cancel safety
    /// As [`TxClient::query`].
    pub async fn query_opt<T: ToStatement + ?Sized>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> Result<Option<Row>, Error> {
        let rows = self.query(statement, params).await?;
        at_most_one(rows, true)
    }

    /// Runs a statement and returns the number of rows it affected.
    ///
    /// # Errors
    /// As [`crate::Connection::execute`].
    ///
    /// # Cancel safety
    /// As [`TxClient::query`].
    pub async fn execute<T: ToStatement + ?Sized>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> Result<u64, Error> {
        let span = exchange(
            &self.shared.telemetry,
            Call::Execute,
            statement_text(&statement.statement_ref()),
        );
        bounded_call!(self.limit, span, {
            let mut core = self.lock("execute").await?;
            run_on(&mut core.wire, statement, params, &mut Discard).await
        })
    }

    /// Runs a statement once per parameter set, pipelined; see
    /// [`crate::Connection::execute_many`].
    ///
    /// # Errors
    /// As [`crate::Connection::execute_many`]; an error fails the transaction.
    ///
    /// # Cancel safety
    /// As [`TxClient::query`].
    pub async fn execute_many<T, P, I>(&self, statement: &T, rows: I) -> Result<u64, Error>
    where
        T: ToStatement + ?Sized,
        P: crate::ParamSet,
        I: IntoIterator<Item = P>,
    {
        let rows = rows.into_iter();
        let span = exchange(
            &self.shared.telemetry,
            Call::ExecuteMany,
            statement_text(&statement.statement_ref()),
        );
        bounded_call!(self.limit, span, {
            let mut core = self.lock("execute_many").await?;
            core.wire.execute_many(statement, rows).await
        })
    }

    /// Runs a [`crate::Batch`] of statements in one write; see
    /// [`crate::Connection::run_batch`]. Inside a transaction, a failed statement fails
    /// the transaction, so the statements after it are skipped whatever the batch's Syncs.
    ///
    /// # Errors
    /// As [`crate::Connection::run_batch`].
    ///
    /// # Cancel safety
    /// As [`TxClient::query`].
    pub async fn run_batch(&self, batch: &crate::Batch<'_>) -> Result<crate::BatchResults, Error> {
        let span = exchange(&self.shared.telemetry, Call::Batch, None);
        bounded_call!(self.limit, span, {
            let mut core = self.lock("run_batch").await?;
            core.wire.run_batch(batch).await
        })
    }

    /// Prepares a statement on the transaction's connection; it stays usable on the
    /// connection after the transaction ends.
    ///
    /// # Errors
    /// As [`crate::Connection::prepare`].
    ///
    /// # Cancel safety
    /// As [`TxClient::query`].
    pub async fn prepare(&self, sql: &str) -> Result<Statement, Error> {
        self.prepare_typed(sql, &[]).await
    }

    /// Prepares a statement with some parameter types given.
    ///
    /// # Errors
    /// As [`crate::Connection::prepare`].
    ///
    /// # Cancel safety
    /// As [`TxClient::query`].
    pub async fn prepare_typed(&self, sql: &str, types: &[Type]) -> Result<Statement, Error> {
        let span = exchange(&self.shared.telemetry, Call::Prepare, Some(sql));
        bounded_call!(self.limit, span, {
            let mut core = self.lock("prepare").await?;
            core.wire.prepare(sql, types).await
        })
    }

    /// Runs statements in the simple protocol; see [`crate::Connection::simple_query`].
    ///
    /// # Errors
    /// As [`crate::Connection::simple_query`].
    ///
    /// # Cancel safety
    /// As [`TxClient::query`].
    pub async fn simple_query(&self, sql: &str) -> Result<Vec<SimpleQueryMessage>, Error> {
        let span = exchange(&self.shared.telemetry, Call::SimpleQuery, Some(sql));
        bounded_call!(self.limit, span, {
            let mut core = self.lock("simple_query").await?;
            core.wire.simple_query(sql).await
        })
    }

    /// Runs statements in the simple protocol and ignores their rows.
    ///
    /// # Errors
    /// As [`crate::Connection::simple_query`].
    ///
    /// # Cancel safety
    /// As [`TxClient::query`].
    pub async fn batch_execute(&self, sql: &str) -> Result<(), Error> {
        self.simple_query(sql).await.map(drop)
    }

    /// Streams a statement's rows in bounded batches; the stream holds the transaction
    /// until it ends or is dropped. Dropped between batches, its portal is closed before
    /// the transaction's next statement.
    ///
    /// # Errors
    /// As [`crate::Connection::query`].
    ///
    /// # Cancel safety
    /// As [`TxClient::query`].
    pub async fn query_raw<T, I>(&self, statement: &T, params: I) -> Result<RowStream<'_>, Error>
    where
        T: ToStatement + ?Sized,
        I: IntoIterator,
        I::Item: crate::types::BorrowToSql,
        I::IntoIter: ExactSizeIterator,
    {
        let owned = crate::types::collect_params(params);
        let slot = self.lease("query_raw").await?;
        let params = crate::types::as_refs(&owned);
        RowStream::start(slot, None, statement, &params, DEFAULT_BATCH_ROWS).await
    }

    /// Starts a `COPY … FROM STDIN` inside the transaction; see
    /// [`crate::Connection::copy_in`]. Dropped unfinished, the COPY fails, and with it
    /// the transaction.
    ///
    /// # Errors
    /// As [`crate::Connection::copy_in`].
    ///
    /// # Cancel safety
    /// As [`TxClient::query`].
    pub async fn copy_in(&self, sql: &str) -> Result<crate::CopyIn<'_>, Error> {
        let slot = self.lease("copy_in").await?;
        crate::CopyIn::start(slot, None, sql).await
    }

    /// Starts a `COPY … TO STDOUT` inside the transaction; see
    /// [`crate::Connection::copy_out`]. Dropped early, the rest of its data is read and
    /// dropped before the transaction's next statement.
    ///
    /// # Errors
    /// As [`crate::Connection::copy_out`].
    ///
    /// # Cancel safety
    /// As [`TxClient::query`].
    pub async fn copy_out(&self, sql: &str) -> Result<crate::CopyOut<'_>, Error> {
        let slot = self.lease("copy_out").await?;
        crate::CopyOut::start(slot, None, sql).await
    }

    /// The server's transaction status as of the last ReadyForQuery.
    pub fn transaction_status(&self) -> TransactionStatus {
        self.shared.transaction_status()
    }
}

fn ended() -> Error {
    Error::new(ErrorKind::Misuse, "the transaction has ended")
}

/// The transaction's wire, lent to a row stream or COPY for its life. Each use marks the
/// using task as the holder; dropping it clears the mark, then frees the wire.
struct TxLease<'a> {
    core: MappedMutexGuard<'a, TxCore>,
    lent: &'a StdMutex<Option<Caller>>,
}

impl Deref for TxLease<'_> {
    type Target = Wire;
    fn deref(&self) -> &Wire {
        &self.core.wire
    }
}

impl DerefMut for TxLease<'_> {
    fn deref_mut(&mut self) -> &mut Wire {
        // The stream may have moved to another task: the marks follow it.
        *self.lent.lock().unwrap_or_else(|e| e.into_inner()) = Some(Caller::current());
        self.core.refresh();
        &mut self.core.wire
    }
}

impl Drop for TxLease<'_> {
    fn drop(&mut self) {
        // Runs before the fields drop, so the mark is gone before the wire is free.
        *self.lent.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
