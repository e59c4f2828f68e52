//! The extended-protocol exchanges: prepare, and bind/execute in one round trip.
//!
//! A query by SQL text names its parameter types from the Rust values (see [`super::bind`]),
//! so Parse, Describe, Bind, Execute and Sync go out in one write and the answer comes
//! back in one read. The statement is then cached, with its types resolved (see
//! [`super::describe`]); the next call with the same SQL and types sends only Bind,
//! Execute and Sync. Reference: PostgreSQL manual, "Extended Query".

use std::sync::Arc;

use bytes::BytesMut;

use super::bind::{self, Binding, check_count, check_types, write_bind};
use super::wire::{Closes, Ended, Flow, Handler, Wire};
use super::{StatementRef, ToStatement};
use crate::error::{Error, ErrorKind, sqlstate};
use crate::protocol::backend::{DataRow, rows_affected};
use crate::protocol::frontend::{self, Target};
use crate::protocol::{BackendMessage, TransactionStatus};
use crate::row::Row;
use crate::statement::{Column, Statement};
use crate::types::{Oid, ToSql, Type, catalog};

/// Query parameters: any mix of Rust values that implement [`ToSql`].
pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Where the rows of an exchange go.
pub(crate) trait RowSink {
    fn row(&mut self, columns: &Arc<[Column]>, row: DataRow);

    /// Puts resolved column types into the rows already received.
    fn retype(&mut self, _columns: &Arc<[Column]>) {}

    /// A non-NULL value of column `col` among the rows received, if the sink keeps rows.
    fn sample(&self, _col: usize) -> Option<&[u8]> {
        None
    }
}

impl RowSink for Vec<Row> {
    fn row(&mut self, columns: &Arc<[Column]>, row: DataRow) {
        self.push(Row::new(columns.clone(), row));
    }

    fn retype(&mut self, columns: &Arc<[Column]>) {
        let rows = std::mem::take(self);
        self.extend(rows.into_iter().map(|r| r.with_columns(columns.clone())));
    }

    fn sample(&self, col: usize) -> Option<&[u8]> {
        self.iter().find_map(|r| r.raw(col))
    }
}

/// Drops rows; `execute` only wants the count.
pub(crate) struct Discard;

impl RowSink for Discard {
    fn row(&mut self, _: &Arc<[Column]>, _: DataRow) {}
}

/// How the statement of an exchange is found.
pub(super) enum Plan<'a> {
    /// Already prepared (cached or by the user), or described and parsed afresh at each
    /// use (pooler mode, a statement cache of size 0).
    Prepared(Statement),
    /// Parse it now under `name` ("" for the unnamed statement), with client-named types.
    Parse {
        sql: &'a str,
        types: Vec<Oid>,
        name: String,
    },
}

/// Where a (possibly limited) Execute stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The row limit was reached; the portal has more rows.
    Suspended,
    /// The command finished, having affected this many rows.
    Done(u64),
}

/// What the server said while answering one exchange.
#[derive(Default)]
pub(super) struct Answer {
    pub(super) suspended: bool,
    pub(super) parsed: bool,
    pub(super) param_types: Option<Vec<Oid>>,
    /// The parameter types, resolved (set once the answer's types were looked up).
    pub(super) params: Option<Vec<Type>>,
    pub(super) columns: Option<Arc<[Column]>>,
    pub(super) rows_affected: u64,
}

/// Reads the answer to a Parse/Bind/Execute exchange into an [`Answer`], rows into a
/// sink. A streamed batch (ended with Flush) stops at PortalSuspended, and sends its
/// Sync once the command completes or fails.
pub(super) struct AnswerReader<'s, S> {
    pub(super) a: Answer,
    sink: &'s mut S,
    streaming: bool,
    failed: bool,
    need_sync: bool,
}

impl<'s, S: RowSink> AnswerReader<'s, S> {
    pub(super) fn new(sink: &'s mut S, columns: Option<Arc<[Column]>>, streaming: bool) -> Self {
        AnswerReader {
            a: Answer {
                columns,
                ..Answer::default()
            },
            sink,
            streaming,
            failed: false,
            need_sync: streaming,
        }
    }

    fn sync_once(&mut self) -> Flow {
        match std::mem::take(&mut self.need_sync) {
            true => Flow::Sync,
            false => Flow::Continue,
        }
    }
}

impl<S: RowSink> Handler for AnswerReader<'_, S> {
    fn message(&mut self, msg: BackendMessage) -> Result<Flow, BackendMessage> {
        let a = &mut self.a;
        match msg {
            BackendMessage::DataRow(row) => match &a.columns {
                Some(cols) if cols.len() == row.len() => self.sink.row(cols, row),
                _ => return Err(BackendMessage::DataRow(row)),
            },
            BackendMessage::ParseComplete => a.parsed = true,
            BackendMessage::ParameterDescription(oids) => a.param_types = Some(oids),
            BackendMessage::RowDescription(fields) => {
                a.columns = Some(fields.into_iter().map(Column::from_field).collect())
            }
            BackendMessage::NoData => a.columns = Some(Arc::from(Vec::new())),
            // The Close of a name about to be parsed again.
            BackendMessage::BindComplete | BackendMessage::CloseComplete => {}
            BackendMessage::PortalSuspended if self.streaming && !self.failed => {
                a.suspended = true;
                return Ok(Flow::Stop);
            }
            BackendMessage::PortalSuspended | BackendMessage::EmptyQueryResponse => {
                return Ok(self.sync_once());
            }
            BackendMessage::CommandComplete(tag) => {
                a.rows_affected = rows_affected(&tag);
                return Ok(self.sync_once());
            }
            msg => return Err(msg),
        }
        Ok(Flow::Continue)
    }

    fn error(&mut self) -> Flow {
        self.failed = true;
        self.sync_once()
    }
}

impl Wire {
    /// Runs SQL text with parameters; rows go to `sink`. Returns the rows affected.
    pub(crate) async fn query_sql(
        &mut self,
        sql: &str,
        b: Binding<'_>,
        sink: &mut impl RowSink,
    ) -> Result<u64, Error> {
        let plan = self.plan_sql(sql, b, false).await?;
        let cached = matches!(plan, Plan::Prepared(_));
        let idle = self.transaction_status() == TransactionStatus::Idle;
        match self.run_limited(plan, b, 0, sink).await {
            // The server refused a cached statement before running it (the schema changed
            // under it, or it was deallocated); `settle_cache` has forgotten it. Outside a
            // transaction block nothing happened, so prepare afresh and run once more.
            // Inside one, the error has failed the transaction: it is the caller's.
            Err(e) if cached && idle && is_stale_statement(Some(&e)) => {
                tracing::debug!(sql, error = %e, "re-preparing a stale cached statement");
                let plan = self.plan_sql(sql, b, false).await?;
                self.run_limited(plan, b, 0, sink).await
            }
            // Nothing in the SQL fixes the type of a text literal (`$1 IS NULL`): name it
            // `text`, as a string with no context is. Nothing ran; inside a transaction
            // block the error has failed it, so it is the caller's.
            Err(e) if !cached && idle && bind::is_indeterminate(&e) && b.text_oids().is_some() => {
                let oids = b.text_oids().unwrap_or_default();
                let plan = self.plan_sql_oids(sql, oids);
                self.run_limited(plan, b, 0, sink).await
            }
            other => other,
        }
        .map(|step| match step {
            Step::Done(n) => n,
            Step::Suspended => 0,
        })
    }

    /// Runs a prepared statement with parameters; rows go to `sink`.
    pub(crate) async fn query_prepared(
        &mut self,
        stmt: &Statement,
        params: Params<'_>,
        sink: &mut impl RowSink,
    ) -> Result<u64, Error> {
        check_prepared(self.shared.id, stmt, params)?;
        let plan = Plan::Prepared(stmt.clone());
        match self
            .run_limited(plan, Binding::new(params), 0, sink)
            .await?
        {
            Step::Done(n) => Ok(n),
            Step::Suspended => Ok(0),
        }
    }

    /// Finds SQL text in the statement cache, or plans to parse it (named from a hash
    /// of the SQL and parameter types, so the name is the same for the same statement
    /// in every session: sessions that meet on one server connection behind a pooler
    /// can only ever run the statement they asked for). With `describe`, or when a
    /// parameter needs the server's inferred type, a statement not cached is described
    /// first (one more round trip), so its types are known before the Bind.
    pub(super) async fn plan_sql<'s>(
        &mut self,
        sql: &'s str,
        b: Binding<'_>,
        describe: bool,
    ) -> Result<Plan<'s>, Error> {
        if let Some(stmt) = self.shared.pipe.lock().cache.get_with(sql, b.oids()) {
            if b.needs_check() {
                check_types(stmt.params(), b)?;
            }
            return Ok(Plan::Prepared(stmt));
        }
        if !describe && !b.needs_describe() {
            return Ok(self.plan_parse(sql, b.oids().collect()));
        }
        let stmt = self.describe_first(sql, b.oids().collect()).await?;
        check_types(stmt.params(), b)?;
        Ok(Plan::Prepared(stmt))
    }

    /// As `plan_sql` without a description, from parameter OIDs.
    pub(super) fn plan_sql_oids<'s>(&mut self, sql: &'s str, types: Vec<Oid>) -> Plan<'s> {
        let found = self
            .shared
            .pipe
            .lock()
            .cache
            .get_with(sql, types.iter().copied());
        match found {
            Some(stmt) => Plan::Prepared(stmt),
            None => self.plan_parse(sql, types),
        }
    }

    fn plan_parse<'s>(&self, sql: &'s str, types: Vec<Oid>) -> Plan<'s> {
        let cache_on = self.shared.pipe.lock().cache.enabled();
        let name = match cache_on {
            true => statement_name("s", sql, &types),
            false => String::new(),
        };
        Plan::Parse { sql, types, name }
    }

    /// Runs a plan, returning at most `max_rows` rows before pausing (0: all rows).
    async fn run_limited(
        &mut self,
        plan: Plan<'_>,
        b: Binding<'_>,
        max_rows: i32,
        sink: &mut impl RowSink,
    ) -> Result<Step, Error> {
        let streaming = max_rows > 0;
        if streaming {
            // A streamed batch ends with Flush, so its own answer owes nothing: begun
            // on a paused portal or an open COPY, the exchange would end at the
            // ReadyForQuery of the settled work and leave its batch unread on the wire.
            // Settle first, in an exchange of its own.
            self.settle().await?;
        }
        let mut f = self.begin("running a query", Closes::Inline)?;
        if let Err(e) = write_plan(&plan, b, max_rows, f.buf()) {
            f.abandon_unsent();
            return Err(e);
        }
        match streaming {
            // A streamed batch ends with Flush: its Sync goes out once the command ends.
            true => frontend::flush(f.buf()),
            false => f.sync(),
        }
        f.flush().await?;
        let prepared = match &plan {
            Plan::Prepared(s) => Some(s.columns_arc().clone()),
            Plan::Parse { .. } => None,
        };
        let mut reader = AnswerReader::new(sink, prepared, streaming);
        let ended = f.read(&mut reader).await?;
        let mut answer = reader.a;
        let error = f.take_error();
        if ended == Ended::Stopped {
            // Mid-exchange no lookup can run: a stream's statement was described (and
            // its types looked up) before it started, so the catalogue knows them.
            let columns = answer
                .columns
                .take()
                .unwrap_or_else(|| Arc::from(Vec::new()));
            let columns = match catalog::retyped(&f.wire().shared, &columns) {
                Some(resolved) => {
                    sink.retype(&resolved);
                    resolved
                }
                None => columns,
            };
            answer.columns = Some(columns.clone());
            f.pause(false, columns);
        }
        drop(f);
        if error.is_none() && ended != Ended::Stopped {
            if let Some(columns) = self.resolve_answer(&mut answer).await? {
                sink.retype(&columns);
            }
            if let Some(columns) = &answer.columns
                && let Some(records) = self.resolve_records(columns, sink).await?
            {
                sink.retype(&records);
            }
        }
        let error = error.map(|e| self.name_parameter(e, &plan, b, &answer));
        self.settle_cache(plan, &answer, error.as_ref());
        match error {
            Some(e) => Err(e),
            None => Ok(answer.step()),
        }
    }

    /// A server error about a parameter, with the parameter named.
    pub(super) fn name_parameter(
        &self,
        e: Error,
        plan: &Plan<'_>,
        b: Binding<'_>,
        answer: &Answer,
    ) -> Error {
        let (sql, types): (Option<&str>, Vec<Type>) = match plan {
            Plan::Prepared(stmt) => (stmt.reparse_sql(), stmt.params().to_vec()),
            Plan::Parse { sql, .. } => {
                let oids = answer.param_types.clone().unwrap_or_default();
                let types = oids.into_iter().map(|o| catalog::known(&self.shared, o));
                (Some(*sql), types.collect())
            }
        };
        bind::name_parameter(e, sql, b, &types)
    }

    /// Starts a streamed query: the first batch of at most `max_rows` rows goes to `sink`.
    pub(crate) async fn stream_start<T: ToStatement + ?Sized>(
        &mut self,
        statement: &T,
        params: Params<'_>,
        max_rows: i32,
        sink: &mut impl RowSink,
    ) -> Result<Step, Error> {
        let b = Binding::new(params);
        let plan = match statement.statement_ref() {
            StatementRef::Sql(sql) => self.plan_sql(sql, b, true).await?,
            StatementRef::Prepared(stmt) => {
                check_prepared(self.shared.id, stmt, params)?;
                Plan::Prepared(stmt.clone())
            }
        };
        let cached = matches!(statement.statement_ref(), StatementRef::Sql(_));
        let idle = self.transaction_status() == TransactionStatus::Idle;
        match self.run_limited(plan, b, max_rows, sink).await {
            // As in `query_sql`: a stale cached statement ran nothing; prepare it afresh.
            Err(e) if cached && idle && is_stale_statement(Some(&e)) => {
                let StatementRef::Sql(sql) = statement.statement_ref() else {
                    return Err(e);
                };
                let plan = self.plan_sql(sql, b, true).await?;
                self.run_limited(plan, b, max_rows, sink).await
            }
            other => other,
        }
    }

    /// Fetches the next batch of a paused stream.
    pub(crate) async fn stream_next(
        &mut self,
        max_rows: i32,
        sink: &mut impl RowSink,
    ) -> Result<Step, Error> {
        let (mut f, prefetched, columns) = self.resume()?;
        if !prefetched {
            frontend::execute("", max_rows, f.buf())?;
            frontend::flush(f.buf());
            f.flush().await?;
        }
        let mut reader = AnswerReader::new(sink, Some(columns.clone()), true);
        let ended = f.read(&mut reader).await?;
        let step = reader.a.step();
        if ended == Ended::Stopped {
            f.pause(false, columns);
        }
        let error = f.take_error();
        drop(f);
        match (error, step) {
            (Some(e), _) => Err(e),
            (None, Step::Suspended) => {
                self.stream_prefetch(max_rows).await?;
                Ok(Step::Suspended)
            }
            (None, done) => Ok(done),
        }
    }

    /// Prepares `sql` as a named statement owned by the caller (in pooler mode, a
    /// statement parsed afresh at every use), with its types resolved.
    pub(crate) async fn prepare(&mut self, sql: &str, types: &[Type]) -> Result<Statement, Error> {
        let oids: Vec<Oid> = types.iter().map(|t| t.oid()).collect();
        let cache_on = self.shared.pipe.lock().cache.enabled();
        let name = match cache_on {
            true => {
                let n = self.next_statement_number();
                statement_name(&format!("p{n}_"), sql, &oids)
            }
            false => String::new(),
        };
        let (params, columns) = self.parse_describe(&name, sql, &oids).await?;
        if name.is_empty() {
            return Ok(Statement::reparsed(sql, params, columns, self.shared.id));
        }
        let owner = Some(Arc::downgrade(&self.shared));
        let stmt = Statement::new(name, params, columns, self.shared.id, owner);
        match super::pipeline::pipelinable_sql(sql) {
            true => Ok(stmt),
            false => Ok(stmt.not_pipelinable()),
        }
    }

    /// Caches a freshly parsed statement, or forgets a cached one the server no longer
    /// accepts (its plan changed with the schema, or it is gone).
    pub(super) fn settle_cache(&mut self, plan: Plan<'_>, answer: &Answer, error: Option<&Error>) {
        match plan {
            Plan::Parse { sql, types, name } if answer.parsed && !name.is_empty() => {
                let params = match &answer.params {
                    Some(params) => params.clone(),
                    None => self.known_types(answer.param_types.as_deref().unwrap_or_default()),
                };
                let columns = answer
                    .columns
                    .clone()
                    .unwrap_or_else(|| Arc::from(Vec::new()));
                let stmt = Statement::new(name, params, columns, self.shared.id, None);
                let evicted = self.shared.pipe.lock().cache.insert(sql, types, stmt);
                self.to_close.extend(evicted);
            }
            Plan::Prepared(stmt) if is_stale_statement(error) && stmt.reparse_sql().is_none() => {
                let removed = self.shared.pipe.lock().cache.remove_statement(stmt.name());
                removed.into_iter().for_each(|n| self.to_close.push(n));
            }
            _ => {}
        }
    }
}

/// A server-side statement name from a strong hash of the SQL and parameter types
/// (SHA-256, 128 bits kept): the same statement gets the same name in every session,
/// and different statements never share one.
pub(crate) fn statement_name(prefix: &str, sql: &str, types: &[Oid]) -> String {
    use std::fmt::Write;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(sql.as_bytes());
    ctx.update(&[0]);
    for oid in types {
        ctx.update(&oid.to_be_bytes());
    }
    let digest = ctx.finish();
    let mut name = String::with_capacity(8 + prefix.len() + 32);
    name.push_str("pgkeel_");
    name.push_str(prefix);
    for b in &digest.as_ref()[..16] {
        let _ = write!(name, "{b:02x}");
    }
    name
}

/// Whether a server error means a cached statement must be prepared again.
pub(super) fn is_stale_statement(error: Option<&Error>) -> bool {
    let Some(db) = error.and_then(Error::as_db_error) else {
        return false;
    };
    db.code() == sqlstate::INVALID_SQL_STATEMENT_NAME
        || (db.code() == sqlstate::FEATURE_NOT_SUPPORTED
            && db.routine() == Some("RevalidateCachedQuery"))
}

impl Answer {
    fn step(&self) -> Step {
        match self.suspended {
            true => Step::Suspended,
            false => Step::Done(self.rows_affected),
        }
    }
}

pub(super) fn check_prepared(
    conn_id: u64,
    stmt: &Statement,
    params: Params<'_>,
) -> Result<(), Error> {
    if stmt.conn_id() != conn_id {
        return Err(Error::new(
            ErrorKind::Misuse,
            "this statement was prepared on another connection",
        ));
    }
    check_count(stmt.params(), params)?;
    check_types(stmt.params(), Binding::new(params))
}

/// Appends Parse and Describe of `name`. A named statement is closed first in the same
/// batch: a session that shares this server connection (behind a pooler) may have left
/// the same statement there, and closing a name that does not exist is no error.
pub(super) fn write_parse(
    name: &str,
    sql: &str,
    types: &[Oid],
    buf: &mut BytesMut,
) -> Result<(), Error> {
    if !name.is_empty() {
        frontend::close(Target::Statement, name, buf)?;
    }
    frontend::parse(name, sql, types, buf)?;
    frontend::describe(Target::Statement, name, buf)?;
    Ok(())
}

/// Appends what makes the plan's statement exist for a Bind: Parse for a statement
/// parsed now or afresh at every use; nothing for one on the server. Returns the
/// statement's name and, when known, its parameter types.
pub(super) fn write_statement<'p>(
    plan: &'p Plan<'_>,
    typed: Option<&'p [Type]>,
    buf: &mut BytesMut,
) -> Result<(&'p str, Option<&'p [Type]>), Error> {
    match plan {
        Plan::Prepared(stmt) => {
            if let Some(sql) = stmt.reparse_sql() {
                let oids: Vec<Oid> = stmt.params().iter().map(Type::oid).collect();
                write_parse("", sql, &oids, buf)?;
            }
            Ok((stmt.name(), Some(stmt.params())))
        }
        Plan::Parse { sql, types, name } => {
            write_parse(name, sql, types, buf)?;
            Ok((name, typed))
        }
    }
}

pub(super) fn write_plan(
    plan: &Plan<'_>,
    b: Binding<'_>,
    max_rows: i32,
    buf: &mut BytesMut,
) -> Result<(), Error> {
    match (plan, b.typed) {
        (Plan::Prepared(stmt), _) => check_count(stmt.params(), b.params)?,
        (Plan::Parse { .. }, Some(typed)) => check_types(typed, b)?,
        (Plan::Parse { .. }, None) => {}
    }
    let (name, known) = write_statement(plan, b.typed, buf)?;
    write_bind(name, b, known, buf)?;
    frontend::execute("", max_rows, buf)?;
    Ok(())
}
