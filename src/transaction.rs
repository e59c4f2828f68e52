//! [`Transaction`] and [`Savepoint`]: scoped guards that roll back when dropped.
//!
//! A transaction holds its connection's wire lock for its whole life: other tasks calling
//! the connection wait until it ends; the task that holds it gets an
//! [`ErrorKind::Misuse`] error if it calls the connection directly instead of through the
//! transaction. Whether a transaction is open is read from the server's ReadyForQuery
//! status byte, never from a client-side flag, so a `COMMIT` or `BEGIN` sent as plain SQL
//! cannot fool the cleanup.
//!
//! The statement methods (`query`, `execute`, …) take `&self` and live on [`TxClient`],
//! which both guards dereference to: see there for how concurrent calls on one
//! transaction are ordered.

mod tx_client;

use std::ops::Deref;

pub use self::tx_client::TxClient;
use self::tx_client::TxCore;
use crate::connection::Connection;
use crate::connection::wire::{HolderMark, spawn_cleanup};
use crate::error::{Error, ErrorKind};
use crate::protocol::TransactionStatus;
use crate::telemetry::{Call, exchange, traced};

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

/// The options of one transaction, shared by [`TransactionBuilder`] and the pool's
/// builder; `None` leaves the session's default.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TxOptions {
    pub(crate) isolation: Option<IsolationLevel>,
    pub(crate) read_only: Option<bool>,
    pub(crate) deferrable: Option<bool>,
}

impl TxOptions {
    /// The `BEGIN` statement these options make.
    pub(crate) fn begin_sql(&self) -> String {
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

    /// Refuses `deferrable(true)` where PostgreSQL would accept and ignore it: it only
    /// has an effect on a SERIALIZABLE READ ONLY transaction.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let serializable_read_only =
            self.isolation == Some(IsolationLevel::Serializable) && self.read_only == Some(true);
        match self.deferrable == Some(true) && !serializable_read_only {
            false => Ok(()),
            true => Err(Error::new(
                ErrorKind::Config,
                "deferrable(true) only has an effect on a transaction that is also \
                 isolation_level(Serializable) and read_only(true); PostgreSQL would \
                 ignore it here",
            )),
        }
    }
}

/// Options for a transaction; finish with [`TransactionBuilder::start`].
#[derive(Debug, Clone)]
pub struct TransactionBuilder {
    conn: Connection,
    options: TxOptions,
}

impl TransactionBuilder {
    pub(crate) fn new(conn: Connection) -> TransactionBuilder {
        TransactionBuilder {
            conn,
            options: TxOptions::default(),
        }
    }

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

    /// Makes a serializable read-only transaction deferrable: it waits at its first
    /// statement for a snapshot that cannot cause a serialization failure, and then
    /// never fails with one. Refused by [`TransactionBuilder::start`] unless the
    /// transaction is also [`IsolationLevel::Serializable`] and read only, where
    /// PostgreSQL would silently ignore it.
    pub fn deferrable(mut self, deferrable: bool) -> Self {
        self.options.deferrable = Some(deferrable);
        self
    }

    /// The `BEGIN` statement these options make.
    pub fn begin_sql(&self) -> String {
        self.options.begin_sql()
    }

    pub(crate) fn with_options(mut self, options: TxOptions) -> Self {
        self.options = options;
        self
    }

    /// Takes the connection's wire lock and begins the transaction.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for `deferrable(true)` on a transaction that is not
    /// serializable and read only; [`ErrorKind::Misuse`] if this task already holds the
    /// connection; a server error from `BEGIN`; [`ErrorKind::Broken`]/[`ErrorKind::Closed`].
    ///
    /// # Cancel safety
    /// Dropped while waiting for the lock: nothing happens. Dropped while `BEGIN` is in
    /// flight: the connection turns broken (and the server is sent a cancel).
    pub async fn start(self) -> Result<Transaction, Error> {
        self.options.check()?;
        let sql = self.begin_sql();
        let mut wire = self.conn.lock("transaction").await?;
        let holder = HolderMark::new(wire.shared.clone());
        let span = exchange(&wire.shared.telemetry, Call::Begin, Some(&sql));
        traced(span, wire.simple_query(&sql)).await?;
        Ok(Transaction {
            client: TxClient::new(TxCore::new(wire, holder)),
        })
    }
}

/// An open transaction: a guard that holds its connection's wire lock and rolls back
/// when dropped without [`Transaction::commit`] or [`Transaction::rollback`].
///
/// Its statement methods take `&self` (they are [`TxClient`]'s, which it dereferences
/// to), so repository code can share it, and `join!` two of its queries: they run one
/// after the other. It can move to another task between statements.
///
/// Dropped unfinished with the runtime alive, a spawned task rolls back at once (within
/// a deadline, else the connection is broken) while still holding the wire lock, so no
/// later user of the connection sees its writes. Dropped while one of its statements is
/// mid-exchange, the connection turns broken, the server is sent a cancel, and the server
/// ends the transaction when the socket closes.
pub struct Transaction {
    client: TxClient,
}

impl Deref for Transaction {
    type Target = TxClient;
    fn deref(&self) -> &TxClient {
        &self.client
    }
}

impl Transaction {
    /// Opens a savepoint inside this transaction: a nested guard that rolls back to
    /// the savepoint when dropped unfinished. The transaction cannot be used until the
    /// savepoint ends (it borrows it mutably).
    ///
    /// # Errors
    /// A server error from `SAVEPOINT`; [`ErrorKind::Broken`]/[`ErrorKind::Closed`].
    pub async fn savepoint(&mut self) -> Result<Savepoint<'_>, Error> {
        Savepoint::open(&self.client).await
    }

    /// Commits the transaction and releases the connection.
    ///
    /// # Errors
    /// [`ErrorKind::RolledBack`] if an earlier statement failed (the server rolled back
    /// instead); a server error from `COMMIT` (e.g. a deferred constraint), after which
    /// the transaction is rolled back; [`ErrorKind::CommitOutcomeUnknown`] when the
    /// connection failed while `COMMIT` was in flight, or `COMMIT` was answered by a
    /// `FATAL` error (the server or a pooler ended the session: it may have committed).
    pub async fn commit(mut self) -> Result<(), Error> {
        // Whatever happens here, `Drop` then reads the server's status byte and rolls
        // back if a transaction is still open.
        let core = self.client.owned_core()?;
        core.wire.shared.check()?;
        self.client.ready_owned().await?;
        let core = self.client.owned_core()?;
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
        let core = self.client.owned_core()?;
        core.refresh();
        let span = core.span(Call::Rollback, Some("ROLLBACK"));
        traced(span, core.wire.simple_query("ROLLBACK"))
            .await
            .map(drop)
    }
}

/// A COMMIT whose connection ended before its answer (a FATAL from the server or a
/// pooler in front of it is such an end: PgBouncer's "server conn crashed?", or a
/// backend terminated after the commit record was written) has an unknown outcome; an
/// ERROR (a deferred constraint, a serialization failure) means it rolled back.
fn commit_error(e: Error) -> Error {
    match e.is_connection_fatal() {
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
        let Some(wire) = self.client.take_wire() else {
            return;
        };
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
///
/// Its statement methods take `&self`, as a [`Transaction`]'s do ([`TxClient`]).
pub struct Savepoint<'a> {
    client: &'a TxClient,
    name: String,
    done: bool,
}

impl Deref for Savepoint<'_> {
    type Target = TxClient;
    fn deref(&self) -> &TxClient {
        self.client
    }
}

impl<'a> Savepoint<'a> {
    async fn open(client: &'a TxClient) -> Result<Savepoint<'a>, Error> {
        let name = client.next_savepoint_name();
        client.run(&format!("SAVEPOINT {name}")).await?;
        Ok(Savepoint {
            client,
            name,
            done: false,
        })
    }

    /// Opens a savepoint nested in this one; this one cannot be used until it ends.
    ///
    /// # Errors
    /// As [`Transaction::savepoint`].
    pub async fn savepoint(&mut self) -> Result<Savepoint<'_>, Error> {
        Savepoint::open(self.client).await
    }

    /// Releases the savepoint, keeping its work in the enclosing transaction.
    ///
    /// # Errors
    /// A server error from `RELEASE SAVEPOINT` (e.g. after a failed statement).
    pub async fn commit(mut self) -> Result<(), Error> {
        self.done = true;
        let sql = format!("RELEASE SAVEPOINT {}", self.name);
        self.client.run(&sql).await
    }

    /// Rolls back to the savepoint and releases it.
    ///
    /// # Errors
    /// [`ErrorKind::Broken`]/[`ErrorKind::Closed`] if the connection failed.
    pub async fn rollback(mut self) -> Result<(), Error> {
        self.done = true;
        let sql = rollback_to(&self.name);
        self.client.run(&sql).await
    }
}

fn rollback_to(name: &str) -> String {
    format!("ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}")
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.client.defer(rollback_to(&self.name));
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

    /// Options for one transaction: isolation level, read only, deferrable.
    ///
    /// ```no_run
    /// # async fn demo(conn: pgkeel::Connection) -> Result<(), pgkeel::Error> {
    /// use pgkeel::IsolationLevel;
    /// let tx = conn
    ///     .build_transaction()
    ///     .isolation_level(IsolationLevel::Serializable)
    ///     .read_only(true)
    ///     .deferrable(true)
    ///     .start()
    ///     .await?;
    /// let n: i64 = tx.query_one("SELECT count(*) FROM kv", &[]).await?.get(0);
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub fn build_transaction(&self) -> TransactionBuilder {
        TransactionBuilder::new(self.clone())
    }
}
