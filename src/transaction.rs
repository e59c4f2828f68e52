//! [`Transaction`] and [`Savepoint`]: scoped guards that roll back when dropped.
//!
//! A transaction holds its connection's wire lock for its whole life: other tasks calling
//! the connection wait until it ends; the task that holds it gets an
//! [`ErrorKind::Misuse`] error if it calls the connection directly instead of through the
//! transaction. Whether a transaction is open is read from the server's ReadyForQuery
//! status byte, never from a client-side flag, so a `COMMIT` or `BEGIN` sent as plain SQL
//! cannot fool the cleanup.

use crate::connection::wire::{HolderMark, WireGuard, spawn_cleanup};
use crate::connection::{
    Binding, Connection, Params, RowStream, ToStatement, at_most_one, bounded_call, run_on,
    split_typed,
};
use crate::connection::{DEFAULT_BATCH_ROWS, WireSlot};
use crate::error::{Error, ErrorKind};
use crate::protocol::TransactionStatus;
use crate::row::{Row, SimpleQueryMessage};
use crate::statement::Statement;
use crate::telemetry::{Call, exchange, statement_text, traced};
use crate::types::{ToSql, Type};

/// The isolation level of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IsolationLevel {
    /// `READ UNCOMMITTED` (PostgreSQL treats it as READ COMMITTED).
    ReadUncommitted,
    /// `READ COMMITTED`, PostgreSQL's default.
    ReadCommitted,
    /// `REPEATABLE READ`.
    RepeatableRead,
    /// `SERIALIZABLE`.
    Serializable,
}

impl IsolationLevel {
    fn sql(self) -> &'static str {
        match self {
            IsolationLevel::ReadUncommitted => "READ UNCOMMITTED",
            IsolationLevel::ReadCommitted => "READ COMMITTED",
            IsolationLevel::RepeatableRead => "REPEATABLE READ",
            IsolationLevel::Serializable => "SERIALIZABLE",
        }
    }
}

/// Options for a transaction; finish with [`TransactionBuilder::start`].
#[derive(Debug, Clone)]
pub struct TransactionBuilder {
    conn: Connection,
    isolation: Option<IsolationLevel>,
    read_only: Option<bool>,
    deferrable: Option<bool>,
}

impl TransactionBuilder {
    pub(crate) fn new(conn: Connection) -> TransactionBuilder {
        TransactionBuilder {
            conn,
            isolation: None,
            read_only: None,
            deferrable: None,
        }
    }

    /// Sets the isolation level.
    pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
        self.isolation = Some(level);
        self
    }

    /// Makes the transaction read only (or explicitly read write).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = Some(read_only);
        self
    }

    /// Makes a serializable read-only transaction deferrable.
    pub fn deferrable(mut self, deferrable: bool) -> Self {
        self.deferrable = Some(deferrable);
        self
    }

    /// The `BEGIN` statement these options make.
    pub fn begin_sql(&self) -> String {
        let mut sql = String::from("BEGIN");
        if let Some(level) = self.isolation {
            sql.push_str(" ISOLATION LEVEL ");
            sql.push_str(level.sql());
        }
        match self.read_only {
            Some(true) => sql.push_str(" READ ONLY"),
            Some(false) => sql.push_str(" READ WRITE"),
            None => {}
        }
        match self.deferrable {
            Some(true) => sql.push_str(" DEFERRABLE"),
            Some(false) => sql.push_str(" NOT DEFERRABLE"),
            None => {}
        }
        sql
    }

    /// Takes the connection's wire lock and begins the transaction.
    ///
    /// # Errors
    /// [`ErrorKind::Misuse`] if this task already holds the connection; a server error
    /// from `BEGIN`; [`ErrorKind::Broken`]/[`ErrorKind::Closed`].
    ///
    /// # Cancel safety
    /// Dropped while waiting for the lock: nothing happens. Dropped while `BEGIN` is in
    /// flight: the connection turns broken (and the server is sent a cancel).
    pub async fn start(self) -> Result<Transaction, Error> {
        let sql = self.begin_sql();
        let mut wire = self.conn.lock("transaction").await?;
        let holder = HolderMark::new(wire.shared.clone());
        let span = exchange(&wire.shared.telemetry, Call::Begin, Some(&sql));
        traced(span, wire.simple_query(&sql)).await?;
        Ok(Transaction {
            core: Some(TxCore {
                wire,
                _holder: holder,
                pending: Vec::new(),
                next_savepoint: 0,
            }),
        })
    }
}

/// The state a transaction and its savepoints share.
struct TxCore {
    wire: WireGuard,
    _holder: HolderMark,
    /// SQL to run before the next statement: rollbacks of savepoints dropped unfinished.
    pending: Vec<String>,
    next_savepoint: u32,
}

impl TxCore {
    /// The span of one exchange in the transaction.
    fn span(&self, call: Call, sql: Option<&str>) -> Option<tracing::Span> {
        exchange(&self.wire.shared.telemetry, call, sql)
    }

    /// Runs what dropped savepoints left behind, then hands out the wire.
    async fn ready(&mut self) -> Result<&mut WireGuard, Error> {
        self._holder.refresh();
        // A COPY dropped unfinished ends first, so its outcome (a failed COPY fails the
        // transaction) shows in the status before anything else runs.
        if self.wire.ledger.is_copying() {
            self.wire.settle().await?;
        }
        if !self.pending.is_empty() {
            let sql = self.pending.join("; ");
            self.pending.clear();
            self.wire.simple_query(&sql).await?;
        }
        Ok(&mut self.wire)
    }

    async fn run(&mut self, sql: &str) -> Result<(), Error> {
        self.ready().await?.simple_query(sql).await.map(drop)
    }
}

/// Defines the statement methods that [`Transaction`] and [`Savepoint`] share.
macro_rules! statement_methods {
    () => {
        /// Runs a statement and returns all its rows; see [`Connection::query`].
        ///
        /// # Errors
        /// As [`Connection::query`].
        pub async fn query<T: ToStatement + ?Sized>(
            &mut self,
            statement: &T,
            params: Params<'_>,
        ) -> Result<Vec<Row>, Error> {
            let limit = self.core()?.wire.shared.limits.query;
            let span = self
                .core()?
                .span(Call::Query, statement_text(&statement.statement_ref()));
            bounded_call!(limit, span, {
                let mut rows = Vec::new();
                let wire = self.core()?.ready().await?;
                run_on(wire, statement, params, &mut rows).await?;
                Ok(rows)
            })
        }

        /// Runs SQL text with each parameter's PostgreSQL type named; see
        /// [`Connection::query_typed`].
        ///
        /// # Errors
        /// As [`Connection::query_typed`].
        pub async fn query_typed(
            &mut self,
            sql: &str,
            params: &[(&(dyn ToSql + Sync), Type)],
        ) -> Result<Vec<Row>, Error> {
            let limit = self.core()?.wire.shared.limits.query;
            let (values, types) = split_typed(params);
            let span = self.core()?.span(Call::QueryTyped, Some(sql));
            bounded_call!(limit, span, {
                let mut rows = Vec::new();
                let b = Binding {
                    params: &values,
                    typed: Some(&types),
                };
                let wire = self.core()?.ready().await?;
                wire.query_sql(sql, b, &mut rows).await?;
                Ok(rows)
            })
        }

        /// Runs a statement that must return exactly one row.
        ///
        /// # Errors
        /// As [`Connection::query_one`].
        pub async fn query_one<T: ToStatement + ?Sized>(
            &mut self,
            statement: &T,
            params: Params<'_>,
        ) -> Result<Row, Error> {
            let rows = self.query(statement, params).await?;
            at_most_one(rows, false).map(|r| r.expect("one row"))
        }

        /// Runs a statement that returns at most one row.
        ///
        /// # Errors
        /// As [`Connection::query_opt`].
        pub async fn query_opt<T: ToStatement + ?Sized>(
            &mut self,
            statement: &T,
            params: Params<'_>,
        ) -> Result<Option<Row>, Error> {
            let rows = self.query(statement, params).await?;
            at_most_one(rows, true)
        }

        /// Runs a statement and returns the number of rows it affected.
        ///
        /// # Errors
        /// As [`Connection::execute`].
        pub async fn execute<T: ToStatement + ?Sized>(
            &mut self,
            statement: &T,
            params: Params<'_>,
        ) -> Result<u64, Error> {
            let limit = self.core()?.wire.shared.limits.query;
            let span = self
                .core()?
                .span(Call::Execute, statement_text(&statement.statement_ref()));
            bounded_call!(limit, span, {
                let wire = self.core()?.ready().await?;
                run_on(wire, statement, params, &mut crate::connection::Discard).await
            })
        }

        /// Runs a statement once per parameter set, pipelined; see
        /// [`Connection::execute_many`].
        ///
        /// # Errors
        /// As [`Connection::execute_many`]; an error fails the transaction.
        pub async fn execute_many<'p, T, I>(&mut self, statement: &T, rows: I) -> Result<u64, Error>
        where
            T: ToStatement + ?Sized,
            I: IntoIterator<Item = Params<'p>>,
            I::IntoIter: Send,
        {
            let limit = self.core()?.wire.shared.limits.query;
            let rows = rows.into_iter();
            let span = self.core()?.span(
                Call::ExecuteMany,
                statement_text(&statement.statement_ref()),
            );
            bounded_call!(limit, span, {
                self.core()?
                    .ready()
                    .await?
                    .execute_many(statement, rows)
                    .await
            })
        }

        /// Prepares a statement on the transaction's connection.
        ///
        /// # Errors
        /// As [`Connection::prepare`].
        pub async fn prepare(&mut self, sql: &str) -> Result<Statement, Error> {
            self.prepare_typed(sql, &[]).await
        }

        /// Prepares a statement with some parameter types given.
        ///
        /// # Errors
        /// As [`Connection::prepare`].
        pub async fn prepare_typed(
            &mut self,
            sql: &str,
            types: &[Type],
        ) -> Result<Statement, Error> {
            let limit = self.core()?.wire.shared.limits.query;
            let span = self.core()?.span(Call::Prepare, Some(sql));
            bounded_call!(limit, span, {
                self.core()?.ready().await?.prepare(sql, types).await
            })
        }

        /// Runs statements in the simple protocol; see [`Connection::simple_query`].
        ///
        /// # Errors
        /// As [`Connection::simple_query`].
        pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<SimpleQueryMessage>, Error> {
            let limit = self.core()?.wire.shared.limits.query;
            let span = self.core()?.span(Call::SimpleQuery, Some(sql));
            bounded_call!(limit, span, {
                self.core()?.ready().await?.simple_query(sql).await
            })
        }

        /// Runs statements in the simple protocol and ignores their rows.
        ///
        /// # Errors
        /// As [`Connection::simple_query`].
        pub async fn batch_execute(&mut self, sql: &str) -> Result<(), Error> {
            self.simple_query(sql).await.map(drop)
        }

        /// Streams a statement's rows in bounded batches; the stream borrows the
        /// transaction. Dropped between batches, its portal is closed before the
        /// transaction's next statement.
        ///
        /// # Errors
        /// As [`Connection::query`].
        pub async fn query_raw<T: ToStatement + ?Sized>(
            &mut self,
            statement: &T,
            params: Params<'_>,
        ) -> Result<RowStream<'_>, Error> {
            let span = self
                .core()?
                .span(Call::QueryRaw, statement_text(&statement.statement_ref()));
            let wire = self.core()?.ready().await?;
            let start = RowStream::start(
                WireSlot::Borrowed(wire),
                None,
                statement,
                params,
                DEFAULT_BATCH_ROWS,
            );
            traced(span, start).await
        }

        /// Starts a `COPY … FROM STDIN` inside the transaction; see
        /// [`Connection::copy_in`]. Dropped unfinished, the COPY fails, and with it the
        /// transaction.
        ///
        /// # Errors
        /// As [`Connection::copy_in`].
        pub async fn copy_in(&mut self, sql: &str) -> Result<crate::CopyIn<'_>, Error> {
            let span = self.core()?.span(Call::CopyIn, Some(sql));
            let wire = self.core()?.ready().await?;
            traced(
                span,
                crate::CopyIn::start(WireSlot::Borrowed(wire), None, sql),
            )
            .await
        }

        /// Starts a `COPY … TO STDOUT` inside the transaction; see
        /// [`Connection::copy_out`]. Dropped early, the rest of its data is read and
        /// dropped before the transaction's next statement.
        ///
        /// # Errors
        /// As [`Connection::copy_out`].
        pub async fn copy_out(&mut self, sql: &str) -> Result<crate::CopyOut<'_>, Error> {
            let span = self.core()?.span(Call::CopyOut, Some(sql));
            let wire = self.core()?.ready().await?;
            traced(
                span,
                crate::CopyOut::start(WireSlot::Borrowed(wire), None, sql),
            )
            .await
        }

        /// Opens a savepoint inside this transaction: a nested guard that rolls back to
        /// the savepoint when dropped unfinished.
        ///
        /// # Errors
        /// A server error from `SAVEPOINT`; [`ErrorKind::Broken`]/[`ErrorKind::Closed`].
        pub async fn savepoint(&mut self) -> Result<Savepoint<'_>, Error> {
            let core = self.core()?;
            core.next_savepoint += 1;
            let name = format!("pgkeel_sp{}", core.next_savepoint);
            core.run(&format!("SAVEPOINT {name}")).await?;
            Ok(Savepoint {
                core,
                name,
                done: false,
            })
        }

        /// The server's transaction status as of the last ReadyForQuery.
        pub fn transaction_status(&self) -> TransactionStatus {
            self.core_ref()
                .map_or(TransactionStatus::Idle, |c| c.wire.transaction_status())
        }
    };
}

/// An open transaction: a guard that holds its connection's wire lock and rolls back
/// when dropped without [`Transaction::commit`] or [`Transaction::rollback`].
///
/// Dropped unfinished with the runtime alive, a spawned task rolls back at once (within
/// a deadline, else the connection is broken) while still holding the wire lock, so no
/// later user of the connection sees its writes. Dropped while one of its statements is
/// mid-exchange, the connection turns broken, the server is sent a cancel, and the server
/// ends the transaction when the socket closes.
pub struct Transaction {
    core: Option<TxCore>,
}

impl Transaction {
    fn core(&mut self) -> Result<&mut TxCore, Error> {
        self.core
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::Misuse, "the transaction has ended"))
    }

    fn core_ref(&self) -> Option<&TxCore> {
        self.core.as_ref()
    }

    statement_methods!();

    /// Commits the transaction and releases the connection.
    ///
    /// # Errors
    /// [`ErrorKind::RolledBack`] if an earlier statement failed (the server rolled back
    /// instead); a server error from `COMMIT` (e.g. a deferred constraint), after which
    /// the transaction is rolled back; [`ErrorKind::CommitOutcomeUnknown`] when the
    /// connection failed while `COMMIT` was in flight.
    pub async fn commit(mut self) -> Result<(), Error> {
        // Whatever happens here, `Drop` then reads the server's status byte and rolls
        // back if a transaction is still open.
        let core = self.core()?;
        core.wire.shared.check()?;
        core.ready().await?;
        let failed = core.wire.transaction_status() == TransactionStatus::Failed;
        let span = core.span(Call::Commit, Some("COMMIT"));
        traced(span, core.wire.simple_query("COMMIT"))
            .await
            .map_err(commit_error)?;
        match failed {
            true => Err(Error::new(
                ErrorKind::RolledBack,
                "an earlier statement failed, so COMMIT rolled the transaction back",
            )),
            false => Ok(()),
        }
    }

    /// Rolls the transaction back and releases the connection.
    ///
    /// # Errors
    /// [`ErrorKind::Broken`]/[`ErrorKind::Closed`]/[`ErrorKind::Io`] if the connection
    /// failed (the server then rolls back when the socket closes).
    pub async fn rollback(mut self) -> Result<(), Error> {
        let core = self.core()?;
        core._holder.refresh();
        let span = core.span(Call::Rollback, Some("ROLLBACK"));
        traced(span, core.wire.simple_query("ROLLBACK"))
            .await
            .map(drop)
    }
}

fn commit_error(e: Error) -> Error {
    match e.is_connection_fatal() && e.as_db_error().is_none() {
        true => Error::with_source(
            ErrorKind::CommitOutcomeUnknown,
            "the connection failed while COMMIT was in flight; the transaction may or may not have committed",
            e,
        ),
        false => e,
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        let Some(core) = self.core.take() else { return };
        let TxCore { wire, _holder, .. } = core;
        drop(_holder);
        if wire.is_usable() && wire.needs_cleanup() {
            spawn_cleanup(wire, true);
        }
    }
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("status", &self.transaction_status())
            .finish()
    }
}

/// A savepoint inside a transaction: rolls back to itself when dropped without
/// [`Savepoint::commit`] (release) or [`Savepoint::rollback`]. The rollback runs before
/// the transaction's next statement, and before its `COMMIT`.
pub struct Savepoint<'a> {
    core: &'a mut TxCore,
    name: String,
    done: bool,
}

impl Savepoint<'_> {
    fn core(&mut self) -> Result<&mut TxCore, Error> {
        Ok(self.core)
    }

    fn core_ref(&self) -> Option<&TxCore> {
        Some(self.core)
    }

    statement_methods!();

    /// Releases the savepoint, keeping its work in the enclosing transaction.
    ///
    /// # Errors
    /// A server error from `RELEASE SAVEPOINT` (e.g. after a failed statement).
    pub async fn commit(mut self) -> Result<(), Error> {
        self.done = true;
        let sql = format!("RELEASE SAVEPOINT {}", self.name);
        self.core.run(&sql).await
    }

    /// Rolls back to the savepoint and releases it.
    ///
    /// # Errors
    /// [`ErrorKind::Broken`]/[`ErrorKind::Closed`] if the connection failed.
    pub async fn rollback(mut self) -> Result<(), Error> {
        self.done = true;
        let sql = rollback_to(&self.name);
        self.core.run(&sql).await
    }
}

fn rollback_to(name: &str) -> String {
    format!("ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}")
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.core.pending.push(rollback_to(&self.name));
        }
    }
}

impl std::fmt::Debug for Savepoint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Savepoint")
            .field("name", &self.name)
            .finish()
    }
}

impl Connection {
    /// Begins a transaction with the server's default options.
    ///
    /// # Errors
    /// As [`TransactionBuilder::start`].
    ///
    /// # Cancel safety
    /// As [`TransactionBuilder::start`].
    pub async fn transaction(&self) -> Result<Transaction, Error> {
        self.build_transaction().start().await
    }

    /// Options for a transaction: isolation level, read only, deferrable.
    pub fn build_transaction(&self) -> TransactionBuilder {
        TransactionBuilder::new(self.clone())
    }
}
