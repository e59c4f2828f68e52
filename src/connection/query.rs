//! The extended-protocol exchanges: prepare, and bind/execute in one round trip.
//!
//! A query by SQL text names its parameter types from the Rust values, so Parse,
//! Describe, Bind, Execute and Sync go out in one write and the answer comes back in one
//! read. The statement is then cached; the next call with the same SQL and types sends
//! only Bind, Execute and Sync. Reference: PostgreSQL manual, "Extended Query".

use std::sync::Arc;

use bytes::BytesMut;

use super::wire::{Closes, Ended, Flow, Handler, Wire};
use super::{StatementRef, ToStatement};
use crate::error::{sqlstate, Error, ErrorKind};
use crate::protocol::backend::{rows_affected, DataRow};
use crate::protocol::frontend::{self, Format, Target};
use crate::protocol::{BackendMessage, TransactionStatus};
use crate::row::Row;
use crate::statement::{Column, Statement};
use crate::types::{IsNull, Oid, ToSql, Type};

/// Query parameters: any mix of Rust values that implement [`ToSql`].
pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Where the rows of an exchange go.
pub(crate) trait RowSink {
    fn row(&mut self, columns: &Arc<[Column]>, row: DataRow);
}

impl RowSink for Vec<Row> {
    fn row(&mut self, columns: &Arc<[Column]>, row: DataRow) {
        self.push(Row::new(columns.clone(), row));
    }
}

/// Drops rows; `execute` only wants the count.
pub(crate) struct Discard;

impl RowSink for Discard {
    fn row(&mut self, _: &Arc<[Column]>, _: DataRow) {}
}

/// How the statement of an exchange is found.
pub(super) enum Plan<'a> {
    /// Already prepared (cached or by the user).
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
    pub(super) columns: Option<Arc<[Column]>>,
    pub(super) rows_affected: u64,
}

/// Reads the answer to a Parse/Bind/Execute exchange into an [`Answer`], rows into a
/// sink. A streamed batch (ended with Flush) stops at PortalSuspended, and sends its
/// Sync once the command completes or fails.
struct AnswerReader<'s, S> {
    a: Answer,
    sink: &'s mut S,
    streaming: bool,
    failed: bool,
    need_sync: bool,
}

impl<'s, S: RowSink> AnswerReader<'s, S> {
    fn new(sink: &'s mut S, columns: Option<Arc<[Column]>>, streaming: bool) -> Self {
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
                return Ok(self.sync_once())
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
        params: Params<'_>,
        sink: &mut impl RowSink,
    ) -> Result<u64, Error> {
        let plan = self.plan_sql(sql, params);
        let cached = matches!(plan, Plan::Prepared(_));
        let idle = self.transaction_status() == TransactionStatus::Idle;
        match self.run_limited(plan, params, 0, sink).await {
            // The server refused a cached statement before running it (the schema changed
            // under it, or it was deallocated); `settle_cache` has forgotten it. Outside a
            // transaction block nothing happened, so prepare afresh and run once more.
            // Inside one, the error has failed the transaction: it is the caller's.
            Err(e) if cached && idle && is_stale_statement(Some(&e)) => {
                tracing::debug!(sql, error = %e, "re-preparing a stale cached statement");
                let plan = self.plan_sql(sql, params);
                self.run_limited(plan, params, 0, sink).await
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
        match self
            .run_limited(prepared_plan(stmt), params, 0, sink)
            .await?
        {
            Step::Done(n) => Ok(n),
            Step::Suspended => Ok(0),
        }
    }

    /// Finds SQL text in the statement cache, or plans to parse it (named from a hash
    /// of the SQL and parameter types, so the name is the same for the same statement
    /// in every session: sessions that meet on one server connection behind a pooler
    /// can only ever run the statement they asked for).
    pub(super) fn plan_sql<'s>(&mut self, sql: &'s str, params: Params<'_>) -> Plan<'s> {
        let oids = params.iter().map(|p| p.dyn_sql_type().oid());
        match self.cache.get_with(sql, oids.clone()) {
            Some(stmt) => Plan::Prepared(stmt),
            None => self.plan_parse(sql, oids.collect()),
        }
    }

    /// As `plan_sql`, from parameter OIDs.
    pub(super) fn plan_sql_oids<'s>(&mut self, sql: &'s str, types: Vec<Oid>) -> Plan<'s> {
        match self.cache.get_with(sql, types.iter().copied()) {
            Some(stmt) => Plan::Prepared(stmt),
            None => self.plan_parse(sql, types),
        }
    }

    fn plan_parse<'s>(&self, sql: &'s str, types: Vec<Oid>) -> Plan<'s> {
        let name = match self.cache.enabled() {
            true => statement_name("s", sql, &types),
            false => String::new(),
        };
        Plan::Parse { sql, types, name }
    }

    /// Runs a plan, returning at most `max_rows` rows before pausing (0: all rows).
    async fn run_limited(
        &mut self,
        plan: Plan<'_>,
        params: Params<'_>,
        max_rows: i32,
        sink: &mut impl RowSink,
    ) -> Result<Step, Error> {
        let mut f = self.begin("running a query", Closes::Inline)?;
        if let Err(e) = write_plan(&plan, params, max_rows, f.buf()) {
            f.abandon_unsent();
            return Err(e);
        }
        let streaming = max_rows > 0;
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
        let answer = reader.a;
        let error = f.take_error();
        if ended == Ended::Stopped {
            let columns = answer
                .columns
                .clone()
                .unwrap_or_else(|| Arc::from(Vec::new()));
            f.pause(false, columns);
        }
        drop(f);
        self.settle_cache(plan, &answer, error.as_ref());
        match error {
            Some(e) => Err(e),
            None => Ok(answer.step()),
        }
    }

    /// Starts a streamed query: the first batch of at most `max_rows` rows goes to `sink`.
    pub(crate) async fn stream_start<T: ToStatement + ?Sized>(
        &mut self,
        statement: &T,
        params: Params<'_>,
        max_rows: i32,
        sink: &mut impl RowSink,
    ) -> Result<Step, Error> {
        let plan = match statement.statement_ref() {
            StatementRef::Sql(sql) => self.plan_sql(sql, params),
            StatementRef::Prepared(stmt) => {
                check_prepared(self.shared.id, stmt, params)?;
                prepared_plan(stmt)
            }
        };
        let cached = matches!(plan, Plan::Prepared(_))
            && matches!(statement.statement_ref(), StatementRef::Sql(_));
        let idle = self.transaction_status() == TransactionStatus::Idle;
        match self.run_limited(plan, params, max_rows, sink).await {
            // As in `query_sql`: a stale cached statement ran nothing; prepare it afresh.
            Err(e) if cached && idle && is_stale_statement(Some(&e)) => {
                let StatementRef::Sql(sql) = statement.statement_ref() else {
                    return Err(e);
                };
                let plan = self.plan_sql(sql, params);
                self.run_limited(plan, params, max_rows, sink).await
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
    /// statement parsed afresh at every use).
    pub(crate) async fn prepare(&mut self, sql: &str, types: &[Type]) -> Result<Statement, Error> {
        let oids: Vec<Oid> = types.iter().map(|t| t.oid()).collect();
        let name = match self.cache.enabled() {
            true => {
                let n = self.next_statement_number();
                statement_name(&format!("p{n}_"), sql, &oids)
            }
            false => String::new(),
        };
        let mut f = self.begin("preparing a statement", Closes::Inline)?;
        if let Err(e) = write_parse(&name, sql, &oids, f.buf()) {
            f.abandon_unsent();
            return Err(e);
        }
        f.sync();
        f.flush().await?;
        let mut discard = Discard;
        let mut reader = AnswerReader::new(&mut discard, None, false);
        f.read(&mut reader).await?;
        if let Some(e) = f.take_error() {
            return Err(e);
        }
        drop(f);
        let answer = reader.a;
        let params = answer
            .param_types
            .unwrap_or_default()
            .into_iter()
            .map(Type::for_oid)
            .collect();
        let columns = answer.columns.unwrap_or_else(|| Arc::from(Vec::new()));
        if name.is_empty() {
            return Ok(Statement::reparsed(sql, params, columns, self.shared.id));
        }
        let owner = Some(Arc::downgrade(&self.shared));
        Ok(Statement::new(name, params, columns, self.shared.id, owner))
    }

    /// Caches a freshly parsed statement, or forgets a cached one the server no longer
    /// accepts (its plan changed with the schema, or it is gone).
    pub(super) fn settle_cache(&mut self, plan: Plan<'_>, answer: &Answer, error: Option<&Error>) {
        match plan {
            Plan::Parse { sql, types, name } if answer.parsed && !name.is_empty() => {
                let params = answer.param_types.clone().unwrap_or_default();
                let params = params.into_iter().map(Type::for_oid).collect();
                let columns = answer
                    .columns
                    .clone()
                    .unwrap_or_else(|| Arc::from(Vec::new()));
                let stmt = Statement::new(name, params, columns, self.shared.id, None);
                let evicted = self.cache.insert(sql, types, stmt);
                self.to_close.extend(evicted);
            }
            Plan::Prepared(stmt) if is_stale_statement(error) => {
                self.cache
                    .remove_statement(stmt.name())
                    .into_iter()
                    .for_each(|n| self.to_close.push(n));
            }
            _ => {}
        }
    }
}

/// The plan for a prepared statement: Bind to its name, or parse it again (pooler mode).
pub(super) fn prepared_plan(stmt: &Statement) -> Plan<'_> {
    match stmt.reparse_sql() {
        Some(sql) => Plan::Parse {
            sql,
            types: stmt.params().iter().map(|t| t.oid()).collect(),
            name: String::new(),
        },
        None => Plan::Prepared(stmt.clone()),
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
    check_types(stmt.params(), params)
}

/// Fails unless there is one parameter per type.
pub(super) fn check_count(types: &[Type], params: Params<'_>) -> Result<(), Error> {
    match types.len() == params.len() {
        true => Ok(()),
        false => Err(Error::new(
            ErrorKind::Encode,
            format!(
                "the statement takes {} parameters but {} were given",
                types.len(),
                params.len()
            ),
        )),
    }
}

/// Fails when a parameter's Rust type cannot be sent as the statement's type (the count
/// is checked by [`check_count`], with every prepared plan).
pub(super) fn check_types(types: &[Type], params: Params<'_>) -> Result<(), Error> {
    let mismatch = params
        .iter()
        .zip(types)
        .enumerate()
        .find(|(_, (p, ty))| !p.dyn_accepts(ty));
    match mismatch {
        None => Ok(()),
        Some((i, (p, ty))) => Err(Error::new(
            ErrorKind::Encode,
            format!(
                "parameter ${} has type {ty}, which Rust type {} cannot be sent as",
                i + 1,
                p.rust_type_name()
            ),
        )),
    }
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

fn write_plan(
    plan: &Plan<'_>,
    params: Params<'_>,
    max_rows: i32,
    buf: &mut BytesMut,
) -> Result<(), Error> {
    if let Plan::Prepared(stmt) = plan {
        check_count(stmt.params(), params)?;
    }
    let name = match plan {
        Plan::Prepared(stmt) => stmt.name(),
        Plan::Parse { sql, types, name } => {
            write_parse(name, sql, types, buf)?;
            name
        }
    };
    let types = match plan {
        Plan::Prepared(stmt) => Some(stmt.params()),
        Plan::Parse { .. } => None,
    };
    frontend::bind(
        "",
        name,
        params.len(),
        Format::Binary,
        |i, buf| encode_param(i, params[i], types, buf),
        Format::Binary,
        buf,
    )?;
    frontend::execute("", max_rows, buf)?;
    Ok(())
}

pub(super) fn encode_param(
    i: usize,
    p: &dyn ToSql,
    types: Option<&[Type]>,
    buf: &mut BytesMut,
) -> Result<bool, Error> {
    // The statement's own type when there is one (borrowed: no clone per parameter).
    let own;
    let ty = match types.and_then(|t| t.get(i)) {
        Some(ty) => ty,
        None => {
            own = p.dyn_sql_type();
            &own
        }
    };
    match p.to_sql_checked(ty, buf) {
        Ok(IsNull::Yes) => Ok(true),
        Ok(IsNull::No) => Ok(false),
        Err(e) => {
            let msg = format!(
                "parameter ${} of type {ty} from Rust type {}",
                i + 1,
                p.rust_type_name()
            );
            Err(Error::with_source(ErrorKind::Encode, msg, e))
        }
    }
}
