//! [`Connection`]: one PostgreSQL session, shareable by many tasks.
//!
//! Every exchange runs under the connection's wire lock, so requests from different
//! tasks never interleave on the socket; they queue on the lock in arrival order. A call
//! whose future is dropped mid-exchange leaves the connection broken (see
//! [`wire`](self::wire) for the invariants): later calls fail at once with
//! [`ErrorKind::Broken`], never with someone else's rows.

mod batch;
mod binary_copy;
pub(crate) mod bind;
mod cache;
mod connect;
mod copy;
mod copy_in;
mod copy_out;
mod describe;
pub(crate) mod fastpath;
mod inflight;
mod ledger;
#[cfg(test)]
mod ledger_model;
mod listener;
mod many;
mod notify;
mod param_set;
pub(crate) mod pipeline;
pub(crate) mod portal;
mod query;
mod seam;
mod shared;
mod simple;
mod stream;
pub(crate) mod wire;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

pub use self::batch::{Batch, BatchOutput, BatchResults, Ticket};
pub use self::binary_copy::{BinaryCopyInWriter, BinaryCopyOutRow, BinaryCopyOutStream};
pub(crate) use self::bind::Binding;
pub use self::copy_in::CopyIn;
pub use self::copy_out::CopyOut;
pub use self::fastpath::Function;
pub use self::listener::{Listener, ListenerEvent, ListenerOptions};
pub use self::notify::{DEFAULT_NOTIFICATION_CAPACITY, NoticeHandler, Notification};
pub use self::param_set::ParamSet;
pub(crate) use self::query::Discard;
pub use self::query::Params;
pub(crate) use self::seam::ReturnState;
pub(crate) use self::stream::WireSlot;
pub use self::stream::{DEFAULT_BATCH_ROWS, RowStream};
use self::wire::HolderMark;
use self::wire::{Shared, Wire, WireGuard};
use crate::cancel::CancelToken;
use crate::config::Config;
use crate::error::{Error, ErrorKind, TimeoutKind};
use crate::protocol::TransactionStatus;
use crate::row::{Row, SimpleQueryMessage};
use crate::statement::Statement;
use crate::telemetry::{Call, exchange, statement_text};
use crate::types::{BorrowToSql, ToSql, Type, as_refs, collect_params};

/// How often a server checks that the client is still there while a query runs.
const CLIENT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How long `close()` waits for the wire lock before closing the socket by force.
const CLOSE_LOCK_WAIT: Duration = Duration::from_millis(500);

pub(crate) struct Inner {
    pub(crate) wire: Arc<Mutex<Wire>>,
    pub(crate) shared: Arc<Shared>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: say goodbye if nobody holds the wire, without waiting.
        if let Ok(mut wire) = self.wire.try_lock() {
            wire.terminate_nowait();
        }
    }
}

/// What [`Connection::pipeline_counts`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PipelineCounts {
    /// Calls written through the pipeline.
    pub calls: u64,
    /// Writes that carried them (one write may carry the calls of many tasks).
    pub writes: u64,
}

/// What [`Connection::read_spin_counts`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadSpinCounts {
    /// Spins that found data: waits that did not need the runtime to wake the reader.
    pub hits: u64,
    /// Spins that ran out of time, after which the reader waited as usual.
    pub misses: u64,
}

/// A PostgreSQL connection: cheap to clone, `Send + Sync`, shared by many tasks.
#[derive(Clone)]
pub struct Connection {
    pub(crate) inner: Arc<Inner>,
}

mod sealed {
    pub trait Sealed {}
}

/// What [`Connection::connect`] accepts: a URL or `key=value` string, or a [`Config`].
pub trait IntoConfig: sealed::Sealed {
    /// Parses or clones into a [`Config`].
    fn into_config(self) -> Result<Config, Error>;
}

impl sealed::Sealed for &str {}
impl IntoConfig for &str {
    fn into_config(self) -> Result<Config, Error> {
        self.parse()
    }
}
impl sealed::Sealed for &String {}
impl IntoConfig for &String {
    fn into_config(self) -> Result<Config, Error> {
        self.parse()
    }
}
impl sealed::Sealed for String {}
impl IntoConfig for String {
    fn into_config(self) -> Result<Config, Error> {
        self.parse()
    }
}
impl sealed::Sealed for Config {}
impl IntoConfig for Config {
    fn into_config(self) -> Result<Config, Error> {
        Ok(self)
    }
}
impl sealed::Sealed for &Config {}
impl IntoConfig for &Config {
    fn into_config(self) -> Result<Config, Error> {
        Ok(self.clone())
    }
}

/// A statement to run: SQL text, or a [`Statement`] prepared on this connection.
pub trait ToStatement: sealed::Sealed + Sync {
    #[doc(hidden)]
    fn statement_ref(&self) -> StatementRef<'_>;
}

#[doc(hidden)]
pub enum StatementRef<'a> {
    Sql(&'a str),
    Prepared(&'a Statement),
}

impl sealed::Sealed for str {}
impl ToStatement for str {
    fn statement_ref(&self) -> StatementRef<'_> {
        StatementRef::Sql(self)
    }
}
impl ToStatement for String {
    fn statement_ref(&self) -> StatementRef<'_> {
        StatementRef::Sql(self)
    }
}
impl sealed::Sealed for Statement {}
impl ToStatement for Statement {
    fn statement_ref(&self) -> StatementRef<'_> {
        StatementRef::Prepared(self)
    }
}

/// Runs a statement on a locked wire; the one path every query method takes.
pub(crate) async fn run_on<T: ToStatement + ?Sized>(
    wire: &mut Wire,
    statement: &T,
    params: Params<'_>,
    sink: &mut impl query::RowSink,
) -> Result<u64, Error> {
    match statement.statement_ref() {
        StatementRef::Sql(sql) => wire.query_sql(sql, Binding::new(params), sink).await,
        StatementRef::Prepared(stmt) => wire.query_prepared(stmt, params, sink).await,
    }
}

/// Runs `call` within `limit`; past it the call is dropped, with what a drop means at
/// that point (broken + cancel mid-exchange, nothing while waiting for the lock).
pub(crate) async fn with_timeout<T>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(Error::timeout(
            TimeoutKind::Query,
            format!("the call did not finish within {limit:?} (query_timeout)"),
        )),
    }
}

/// The values and the types of `query_typed`'s parameters, apart.
pub(crate) fn split_typed<'a>(
    params: &'a [(&'a (dyn ToSql + Sync), Type)],
) -> (Vec<&'a (dyn ToSql + Sync)>, Vec<Type>) {
    params.iter().map(|(v, t)| (*v, t.clone())).unzip()
}

/// Runs `$body` (a block that may await) under the query timeout `$limit`. Without a
/// limit the body runs inline: wrapping the large future of a query in another one
/// costs a copy of it on every call (about 900 instructions per query under callgrind).
///
/// With a span (see [`crate::telemetry::exchange`]) the body runs in it and its outcome
/// is recorded there; without one (no subscriber wants it) it costs nothing more.
macro_rules! bounded_call {
    ($limit:expr_2021, $body:block) => {
        match $limit {
            None => $body,
            Some(limit) => $crate::connection::with_timeout(limit, Box::pin(async $body)).await,
        }
    };
    ($limit:expr_2021, $span:expr_2021, $body:block) => {{
        let span: Option<::tracing::Span> = $span;
        match ($limit, span) {
            (None, None) => $body,
            (Some(limit), None) => {
                $crate::connection::with_timeout(limit, Box::pin(async $body)).await
            }
            (limit, Some(span)) => {
                $crate::telemetry::traced_within(limit, span, Box::pin(async $body)).await
            }
        }
    }};
}
pub(crate) use bounded_call;

/// Checks a row count for `query_one` (`allow_none` false) or `query_opt` (true).
pub(crate) fn at_most_one(mut rows: Vec<Row>, allow_none: bool) -> Result<Option<Row>, Error> {
    match (rows.len(), allow_none) {
        (1, _) => Ok(rows.pop()),
        (0, true) => Ok(None),
        (n, _) => {
            let expected = if allow_none {
                "at most one"
            } else {
                "exactly one"
            };
            Err(Error::new(
                ErrorKind::RowCount,
                format!("the query returned {n} rows; expected {expected}"),
            ))
        }
    }
}

impl Connection {
    /// Opens a connection from a `postgres://` URL, a `key=value` string or a [`Config`].
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for bad settings; [`ErrorKind::Io`] when no host answers;
    /// [`ErrorKind::Authentication`] (SQLSTATE 28P01 for a wrong password); a
    /// [`crate::TimeoutKind::Connect`] timeout when `connect_timeout` passes.
    ///
    /// # Cancel safety
    /// Dropping the future drops the half-open socket; nothing else is left behind.
    pub async fn connect(config: impl IntoConfig) -> Result<Connection, Error> {
        let config = config.into_config()?;
        // Boxed: the handshake's future is large, and a caller's stack need not hold it.
        let conn = Box::pin(connect::connect(&config)).await?;
        if !config.pooler_mode {
            conn.watch_for_client_gone().await?;
        }
        Ok(conn)
    }

    /// Asks the server (PostgreSQL 14 and later) to check for a vanished client every
    /// [`CLIENT_CHECK_INTERVAL`] while a query runs, so a query whose connection was
    /// given up stops even if every CancelRequest were lost. Skipped in pooler mode,
    /// where session settings would leak to other clients.
    async fn watch_for_client_gone(&self) -> Result<(), Error> {
        let version = self.parameter("server_version").unwrap_or_default();
        let major: u32 = version
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if major < 14 {
            return Ok(());
        }
        let ms = CLIENT_CHECK_INTERVAL.as_millis();
        let sql = format!("SET client_connection_check_interval = {ms}");
        self.simple_query(&sql).await.map(drop)
    }

    /// The span of one exchange on this connection; see [`crate::telemetry::exchange`].
    pub(crate) fn span(&self, call: Call, sql: Option<&str>) -> Option<tracing::Span> {
        exchange(&self.inner.shared.telemetry, call, sql)
    }

    /// Takes the wire lock for one exchange, naming its purpose for traces.
    pub(crate) async fn lock(&self, purpose: &'static str) -> Result<WireGuard, Error> {
        let shared = &self.inner.shared;
        shared.check()?;
        shared.check_not_holder(purpose)?;
        let lock = self.inner.wire.clone().lock_owned();
        let guard = match shared.limits.lock {
            None => lock.await,
            Some(limit) => tokio::time::timeout(limit, lock).await.map_err(|_| {
                let msg = format!("another task held the connection for longer than {limit:?} (lock_timeout); this call did not run");
                Error::timeout(TimeoutKind::WireLock, msg)
            })?,
        };
        let mut guard = WireGuard::new(guard, purpose);
        // Pipelined calls of other tasks may still be owed their answers.
        guard.drain_pipeline().await?;
        Ok(guard)
    }

    /// How many calls went out through the pipeline, and in how many writes: calls of
    /// several tasks that share a write show as fewer writes than calls.
    pub fn pipeline_counts(&self) -> PipelineCounts {
        let (calls, writes) = self.inner.shared.pipe.counts();
        PipelineCounts { calls, writes }
    }

    /// How often this connection's reads spun while the server streamed, and how often
    /// that found data (see [`crate::Config::read_spin`]).
    pub fn read_spin_counts(&self) -> ReadSpinCounts {
        let (hits, misses) = self.inner.shared.read_spin.get();
        ReadSpinCounts { hits, misses }
    }

    /// Runs a statement, pipelined with other tasks' calls when it can be (see
    /// [`pipeline`]); rows go to `rows` when given, else only the count is kept.
    async fn run_shared<T: ToStatement + ?Sized>(
        &self,
        what: &'static str,
        statement: &T,
        params: Params<'_>,
        rows: Option<&mut Vec<Row>>,
    ) -> Result<u64, Error> {
        if let Some(slot) = self.inner.enqueue(statement, params, rows.is_some())? {
            let mut call = pipeline::PipedCall::new(&self.inner, slot);
            if let pipeline::Piped::Done(got, n) = call.run().await? {
                if let Some(rows) = rows {
                    *rows = got;
                }
                return Ok(n);
            }
        }
        let mut wire = self.lock(what).await?;
        match rows {
            Some(rows) => run_on(&mut wire, statement, params, rows).await,
            None => run_on(&mut wire, statement, params, &mut Discard).await,
        }
    }

    /// Runs a statement and returns all its rows.
    ///
    /// Parameters are sent in binary, typed by their Rust types, except strings, which
    /// are untyped text literals the server types from the SQL (see `docs/TYPES.md`);
    /// SQL text is prepared and cached on first use, so later calls skip parsing. One
    /// round trip either way (two the first time for a statement that must be described
    /// first, such as one with an [`Infer`](crate::types::Infer) parameter).
    ///
    /// # Errors
    /// A server error ([`ErrorKind::Db`], with `code()` and `as_db_error()`); an
    /// [`ErrorKind::Encode`] error naming the parameter; [`ErrorKind::Broken`] or
    /// [`ErrorKind::Closed`] when the connection can no longer be used.
    ///
    /// # Cancel safety
    /// Dropped while waiting for the wire lock: nothing happens. Dropped after the
    /// request was written: the connection turns broken and the server is sent a
    /// CancelRequest.
    pub async fn query<T: ToStatement + ?Sized>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> Result<Vec<Row>, Error> {
        let span = self.span(Call::Query, statement_text(&statement.statement_ref()));
        bounded_call!(self.inner.shared.limits.query, span, {
            let mut rows = Vec::new();
            self.run_shared("query", statement, params, Some(&mut rows))
                .await?;
            Ok(rows)
        })
    }

    /// Runs SQL text with each parameter's PostgreSQL type named by the caller, and
    /// returns all its rows (tokio-postgres's `query_typed`).
    ///
    /// Every value is sent in binary as the type given with it, after a check that its
    /// Rust type can be; a type with OID 0 ([`Type::UNSPECIFIED`]) is left for the server
    /// to infer (the statement is then described first). Use it to pin a type the SQL
    /// leaves open, or to bind `&str` as exactly `text`.
    ///
    /// ```no_run
    /// # async fn demo(conn: pgkeel::Connection) -> Result<(), pgkeel::Error> {
    /// use pgkeel::types::Type;
    /// let rows = conn
    ///     .query_typed("SELECT $1 IS NULL", &[(&None::<i64>, Type::INT8)])
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Connection::query`]; an [`ErrorKind::Encode`] error naming the parameter,
    /// its Rust type and the PostgreSQL type when the value cannot be sent as that type.
    ///
    /// # Cancel safety
    /// As [`Connection::query`].
    pub async fn query_typed(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, Error> {
        let (values, types) = split_typed(params);
        let span = self.span(Call::QueryTyped, Some(sql));
        bounded_call!(self.inner.shared.limits.query, span, {
            let mut wire = self.lock("query_typed").await?;
            let mut rows = Vec::new();
            let b = Binding {
                params: &values,
                typed: Some(&types),
            };
            wire.query_sql(sql, b, &mut rows).await?;
            Ok(rows)
        })
    }

    /// Runs a statement that must return exactly one row.
    ///
    /// # Errors
    /// As [`Connection::query`], and [`ErrorKind::RowCount`] for zero or several rows.
    ///
    /// # Cancel safety
    /// As [`Connection::query`].
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
    /// As [`Connection::query`], and [`ErrorKind::RowCount`] for several rows.
    ///
    /// # Cancel safety
    /// As [`Connection::query`].
    pub async fn query_opt<T: ToStatement + ?Sized>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> Result<Option<Row>, Error> {
        let rows = self.query(statement, params).await?;
        at_most_one(rows, true)
    }

    /// Runs a statement and returns the number of rows it affected; rows it returns are
    /// dropped as they arrive.
    ///
    /// # Errors
    /// As [`Connection::query`].
    ///
    /// # Cancel safety
    /// As [`Connection::query`].
    pub async fn execute<T: ToStatement + ?Sized>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> Result<u64, Error> {
        let span = self.span(Call::Execute, statement_text(&statement.statement_ref()));
        bounded_call!(self.inner.shared.limits.query, span, {
            self.run_shared("execute", statement, params, None).await
        })
    }

    /// Runs a statement once per parameter set, pipelined, and returns the rows affected
    /// in all.
    ///
    /// The sets go out in chunks of Bind + Execute without waiting for each answer (one
    /// round trip per chunk), and the run ends with a single Sync, so it is one unit:
    /// outside a transaction, all rows are committed or none; inside one, an error fails
    /// the transaction as any statement's would. Rows a statement returns are dropped.
    ///
    /// Each item of `rows` is one [`ParamSet`]: a tuple, an array, a `Vec` or a slice of
    /// `&dyn ToSql`. The sets are taken from the iterator as they are written, so any
    /// number of them runs in flat memory.
    ///
    /// ```no_run
    /// # async fn demo(conn: pgkeel::Connection) -> Result<(), pgkeel::Error> {
    /// let people = [(1i64, "Ada"), (2, "Grace")];
    /// let n = conn
    ///     .execute_many("INSERT INTO people (id, name) VALUES ($1, $2)", &people)
    ///     .await?;
    /// assert_eq!(n, 2);
    /// // Or computed on the way, from any iterator:
    /// let n = conn
    ///     .execute_many(
    ///         "INSERT INTO people (id, name) VALUES ($1, $2)",
    ///         (3..1000i64).map(|id| (id, format!("person {id}"))),
    ///     )
    ///     .await?;
    /// assert_eq!(n, 997);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The first server error, with the index (from 0) of the parameter set it belongs
    /// to in its message (nothing of the run is kept outside a transaction); an
    /// [`ErrorKind::Encode`] error naming the index of the parameter set that could not
    /// be encoded (the run is then rolled back the same way).
    ///
    /// # Cancel safety
    /// As [`Connection::query`].
    pub async fn execute_many<T, P, I>(&self, statement: &T, rows: I) -> Result<u64, Error>
    where
        T: ToStatement + ?Sized,
        P: ParamSet,
        I: IntoIterator<Item = P>,
    {
        let rows = rows.into_iter();
        let span = self.span(
            Call::ExecuteMany,
            statement_text(&statement.statement_ref()),
        );
        bounded_call!(self.inner.shared.limits.query, span, {
            let mut wire = self.lock("execute_many").await?;
            wire.execute_many(statement, rows).await
        })
    }

    /// Runs a [`Batch`] of statements in one write and reads their answers in order;
    /// each statement's result is taken from the [`BatchResults`] with the ticket the
    /// batch gave when it was queued.
    ///
    /// Statements by SQL text are found in the statement cache or parsed within the
    /// batch (once per distinct SQL and parameter types), so even a cold batch costs one
    /// round trip. Where the batch puts its Syncs decides what fails together: see
    /// [`Batch::new`] and [`Batch::all_or_nothing`]. The wire is held for the whole run.
    ///
    /// ```no_run
    /// # async fn demo(conn: pgkeel::Connection) -> Result<(), pgkeel::Error> {
    /// let mut batch = pgkeel::Batch::all_or_nothing();
    /// let debit = batch.execute("UPDATE accounts SET balance = balance - 10 WHERE id = 1", &[]);
    /// let credit = batch.execute("UPDATE accounts SET balance = balance + 10 WHERE id = 2", &[]);
    /// let mut results = conn.run_batch(&batch).await?;
    /// assert_eq!((results.take(debit)?, results.take(credit)?), (1, 1));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Server errors are per statement, in the results (each names the statement's
    /// index). The run itself fails, with nothing sent, when a parameter cannot be
    /// encoded or does not fit its statement, or a statement is a COPY
    /// ([`ErrorKind::Misuse`]); and as any call does when the connection fails: then
    /// which units ran is unknown, as for any statement whose answer was lost.
    ///
    /// # Cancel safety
    /// As [`Connection::query`]. Dropped after it was written, each unit has run once or
    /// not at all: the CancelRequest stops the statement the server is running, but
    /// independent statements already on the server's socket may still run, so which of
    /// them did is unknown (an all-or-nothing batch is one unit: all or none).
    pub async fn run_batch(&self, batch: &Batch<'_>) -> Result<BatchResults, Error> {
        let span = self.span(Call::Batch, None);
        bounded_call!(self.inner.shared.limits.query, span, {
            let mut wire = self.lock("run_batch").await?;
            wire.run_batch(batch).await
        })
    }

    /// Prepares a statement, letting the server infer parameter types. The statement can
    /// be used by every task sharing this connection, and is closed on the server when
    /// its last clone is dropped.
    ///
    /// # Errors
    /// A server error for invalid SQL; [`ErrorKind::Broken`]/[`ErrorKind::Closed`].
    ///
    /// # Cancel safety
    /// As [`Connection::query`].
    pub async fn prepare(&self, sql: &str) -> Result<Statement, Error> {
        self.prepare_typed(sql, &[]).await
    }

    /// Prepares a statement with some parameter types given (the rest are inferred).
    ///
    /// # Errors
    /// As [`Connection::prepare`].
    ///
    /// # Cancel safety
    /// As [`Connection::query`].
    pub async fn prepare_typed(&self, sql: &str, types: &[Type]) -> Result<Statement, Error> {
        let span = self.span(Call::Prepare, Some(sql));
        bounded_call!(self.inner.shared.limits.query, span, {
            let mut wire = self.lock("prepare").await?;
            wire.prepare(sql, types).await
        })
    }

    /// Streams a statement's rows in bounded batches of [`DEFAULT_BATCH_ROWS`], holding
    /// the wire lock until the stream ends or is dropped; see [`RowStream`] for what an
    /// early drop costs.
    ///
    /// The parameters come from any iterator of values, references or `&dyn ToSql`
    /// ([`BorrowToSql`]), as tokio-postgres's `query_raw` takes them; a slice of
    /// references still works. An empty slice needs its type named (`&[] as Params`, or
    /// `std::iter::empty::<i32>()`).
    ///
    /// ```no_run
    /// # async fn demo(conn: pgkeel::Connection) -> Result<(), pgkeel::Error> {
    /// use futures::TryStreamExt;
    /// let ids = vec![1i64, 2, 3];
    /// let sql = "SELECT $1::int8 + $2::int8 + $3::int8";
    /// let rows: Vec<pgkeel::Row> = conn.query_raw(sql, ids.iter()).await?.try_collect().await?;
    /// let none: Vec<pgkeel::Row> = conn.query_raw("SELECT 1", &[] as pgkeel::Params).await?.try_collect().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Connection::query`]; [`ErrorKind::Misuse`] if this task already holds the
    /// connection through a transaction or another stream.
    ///
    /// # Cancel safety
    /// As [`Connection::query`].
    pub async fn query_raw<T, I>(
        &self,
        statement: &T,
        params: I,
    ) -> Result<RowStream<'static>, Error>
    where
        T: ToStatement + ?Sized,
        I: IntoIterator,
        I::Item: BorrowToSql,
        I::IntoIter: ExactSizeIterator,
    {
        let owned = collect_params(params);
        self.query_raw_batched(statement, &as_refs(&owned), DEFAULT_BATCH_ROWS)
            .await
    }

    /// As [`Connection::query_raw`], with `batch_rows` rows per batch.
    ///
    /// # Errors
    /// As [`Connection::query_raw`].
    ///
    /// # Cancel safety
    /// As [`Connection::query`].
    pub async fn query_raw_batched<T: ToStatement + ?Sized>(
        &self,
        statement: &T,
        params: Params<'_>,
        batch_rows: i32,
    ) -> Result<RowStream<'static>, Error> {
        let span = self.span(Call::QueryRaw, statement_text(&statement.statement_ref()));
        bounded_call!(self.inner.shared.limits.query, span, {
            let wire = self.lock("query_raw").await?;
            let holder = HolderMark::new(wire.shared.clone());
            let slot = WireSlot::Owned(wire);
            RowStream::start(slot, Some(holder), statement, params, batch_rows).await
        })
    }

    /// Runs one or more statements separated by semicolons in the simple protocol, and
    /// returns their rows (as text) and completions in order.
    ///
    /// # Errors
    /// The first server error; statements after it did not run.
    ///
    /// # Cancel safety
    /// As [`Connection::query`].
    pub async fn simple_query(&self, sql: &str) -> Result<Vec<SimpleQueryMessage>, Error> {
        let span = self.span(Call::SimpleQuery, Some(sql));
        bounded_call!(self.inner.shared.limits.query, span, {
            let mut wire = self.lock("simple_query").await?;
            wire.simple_query(sql).await
        })
    }

    /// Runs one or more statements separated by semicolons and ignores their rows.
    ///
    /// # Errors
    /// As [`Connection::simple_query`].
    ///
    /// # Cancel safety
    /// As [`Connection::query`].
    pub async fn batch_execute(&self, sql: &str) -> Result<(), Error> {
        self.simple_query(sql).await.map(drop)
    }

    /// A token that cancels this session's running query from anywhere.
    pub fn cancel_token(&self) -> CancelToken {
        self.inner.shared.cancel.clone()
    }

    /// The backend process id of this session (`pg_backend_pid()`).
    pub fn backend_pid(&self) -> i32 {
        self.inner.shared.cancel.process_id
    }

    /// A run-time parameter the server reported (`server_version`, `client_encoding`,
    /// `TimeZone`, …), as of the last message read.
    pub fn parameter(&self, name: &str) -> Option<String> {
        let params = self
            .inner
            .shared
            .params
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        params.get(name).cloned()
    }

    /// The transaction status of the last ReadyForQuery: the server's word, not a
    /// client-side guess, so a `BEGIN` sent as plain SQL shows here too.
    pub fn transaction_status(&self) -> TransactionStatus {
        self.inner.shared.transaction_status()
    }

    /// Whether an exchange was abandoned or failed mid-way; a broken connection is never
    /// used again.
    pub fn is_broken(&self) -> bool {
        self.inner.shared.is_broken()
    }

    /// Whether [`Connection::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.is_closed()
    }

    /// Closes the connection; later calls fail with [`ErrorKind::Closed`]. Idempotent.
    ///
    /// Waits at most 500 ms for the wire lock to send Terminate; if another task holds it
    /// longer, the socket is shut down by force and that task's call fails with
    /// [`ErrorKind::Closed`].
    ///
    /// # Errors
    /// None today; the `Result` leaves room for reporting a failed goodbye.
    ///
    /// # Cancel safety
    /// The connection is marked closed before the first await; dropping the future
    /// leaves it closed (the socket goes when the last handle is dropped).
    pub async fn close(&self) -> Result<(), Error> {
        let shared = &self.inner.shared;
        if shared.mark_closed() {
            return Ok(());
        }
        let holds_it = shared.check_not_holder("close").is_err();
        match holds_it {
            true => shared.kill_socket(),
            false => {
                match tokio::time::timeout(CLOSE_LOCK_WAIT, self.inner.wire.clone().lock_owned())
                    .await
                {
                    Ok(mut wire) => wire.terminate().await,
                    Err(_) => shared.kill_socket(),
                }
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.inner.shared.id)
            .field("backend_pid", &self.backend_pid())
            .field("broken", &self.is_broken())
            .field("closed", &self.is_closed())
            .finish()
    }
}
