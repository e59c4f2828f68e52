//! The extended-protocol exchanges: prepare, and bind/execute in one round trip.
//!
//! A query by SQL text names its parameter types from the Rust values, so Parse,
//! Describe, Bind, Execute and Sync go out in one write and the answer comes back in one
//! read. The statement is then cached; the next call with the same SQL and types sends
//! only Bind, Execute and Sync. Reference: PostgreSQL manual, "Extended Query".

use std::sync::Arc;

use bytes::BytesMut;

use super::wire::{InFlight, Wire};
use super::{StatementRef, ToStatement};
use crate::error::{sqlstate, DbError, Error, ErrorKind};
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
    /// Parse it now under `name` ("" when the cache is off), with client-named types.
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
    pub(super) closes_done: usize,
    pub(super) error: Option<Error>,
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
        match self.run(plan, params, sink).await {
            // The server refused a cached statement before running it (the schema changed
            // under it, or it was deallocated); `settle_cache` has forgotten it. Outside a
            // transaction block nothing happened, so prepare afresh and run once more.
            // Inside one, the error has failed the transaction: it is the caller's.
            Err(e) if cached && idle && is_stale_statement(Some(&e)) => {
                tracing::debug!(sql, error = %e, "re-preparing a stale cached statement");
                let plan = self.plan_sql(sql, params);
                self.run(plan, params, sink).await
            }
            other => other,
        }
    }

    /// Runs a prepared statement with parameters; rows go to `sink`.
    pub(crate) async fn query_prepared(
        &mut self,
        stmt: &Statement,
        params: Params<'_>,
        sink: &mut impl RowSink,
    ) -> Result<u64, Error> {
        check_prepared(self.shared.id, stmt, params)?;
        self.run(Plan::Prepared(stmt.clone()), params, sink).await
    }

    /// The cached statement for this SQL and these parameter types, or a Parse of it.
    pub(super) fn plan_sql<'s>(&mut self, sql: &'s str, params: Params<'_>) -> Plan<'s> {
        let oids = params.iter().map(|p| p.dyn_sql_type().oid());
        match self.cache.get_with(sql, oids.clone()) {
            Some(stmt) => Plan::Prepared(stmt),
            None => {
                let types: Vec<Oid> = oids.collect();
                let name = match self.cache.enabled() {
                    true => self.next_statement_name("s"),
                    false => String::new(),
                };
                Plan::Parse { sql, types, name }
            }
        }
    }

    async fn run(
        &mut self,
        plan: Plan<'_>,
        params: Params<'_>,
        sink: &mut impl RowSink,
    ) -> Result<u64, Error> {
        match self.run_limited(plan, params, 0, sink).await? {
            Step::Done(n) => Ok(n),
            Step::Suspended => Err(Error::protocol(
                crate::protocol::ProtocolError::Unexpected {
                    got: "PortalSuspended",
                    during: "running a query without a row limit",
                },
            )),
        }
    }

    /// Runs a plan, returning at most `max_rows` rows before pausing (0: all rows).
    async fn run_limited(
        &mut self,
        plan: Plan<'_>,
        params: Params<'_>,
        max_rows: i32,
        sink: &mut impl RowSink,
    ) -> Result<Step, Error> {
        let mut f = self.start().await?;
        let start = f.buf().len();
        if let Err(e) = write_plan(&plan, params, max_rows, f.buf()) {
            f.abandon_unsent(start);
            return Err(e);
        }
        let streaming = max_rows > 0;
        // A stream pauses at PortalSuspended, so Closes would be answered after it: keep
        // them for an exchange that runs to its Sync.
        let closing = match streaming {
            true => Vec::new(),
            false => write_closes(&mut f),
        };
        end_batch(&mut f, streaming);
        f.flush().await?;
        let prepared = match &plan {
            Plan::Prepared(s) => Some(s.columns_arc().clone()),
            Plan::Parse { .. } => None,
        };
        let answer = read_answer(&mut f, prepared, sink, streaming).await?;
        drop(f);
        self.requeue_closes(closing, answer.closes_done);
        if streaming {
            self.stream_columns = answer.columns.clone();
        }
        self.settle_cache(plan, &answer);
        match answer.error {
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
                Plan::Prepared(stmt.clone())
            }
        };
        self.run_limited(plan, params, max_rows, sink).await
    }

    /// Fetches the next batch of a paused stream.
    pub(crate) async fn stream_next(
        &mut self,
        max_rows: i32,
        sink: &mut impl RowSink,
    ) -> Result<Step, Error> {
        let columns = self.stream_columns.clone();
        let prefetched = std::mem::take(&mut self.batch_in_flight);
        let mut f = InFlight::resume(self)?;
        if !prefetched {
            frontend::execute("", max_rows, f.buf())?;
            end_batch(&mut f, true);
            f.flush().await?;
        }
        let answer = read_answer(&mut f, columns, sink, true).await?;
        drop(f);
        let step = answer.step();
        match (answer.error, step) {
            (Some(e), _) => Err(e),
            (None, Step::Suspended) => {
                self.stream_prefetch(max_rows).await?;
                Ok(Step::Suspended)
            }
            (None, done) => Ok(done),
        }
    }

    /// Prepares `sql` as a named statement owned by the caller.
    pub(crate) async fn prepare(&mut self, sql: &str, types: &[Type]) -> Result<Statement, Error> {
        let name = self.next_statement_name("p");
        let oids: Vec<Oid> = types.iter().map(|t| t.oid()).collect();
        let mut f = self.start().await?;
        let start = f.buf().len();
        let written = frontend::parse(&name, sql, &oids, f.buf())
            .and_then(|()| frontend::describe(Target::Statement, &name, f.buf()));
        if let Err(e) = written {
            f.abandon_unsent(start);
            return Err(e.into());
        }
        let closing = write_closes(&mut f);
        f.sync();
        f.flush().await?;
        let answer = read_answer(&mut f, None, &mut Discard, false).await?;
        drop(f);
        self.requeue_closes(closing, answer.closes_done);
        if let Some(e) = answer.error {
            return Err(e);
        }
        let params = answer
            .param_types
            .unwrap_or_default()
            .into_iter()
            .map(Type::for_oid)
            .collect();
        let columns = answer.columns.unwrap_or_else(|| Arc::from(Vec::new()));
        let owner = Some(Arc::downgrade(&self.shared));
        Ok(Statement::new(name, params, columns, self.shared.id, owner))
    }

    /// Puts back the Close requests the server skipped because of an earlier error.
    fn requeue_closes(&mut self, closing: Vec<String>, done: usize) {
        self.to_close.extend(closing.into_iter().skip(done));
    }

    /// Caches a freshly parsed statement, or forgets a cached one the server no longer
    /// accepts (its plan changed with the schema, or it is gone).
    pub(super) fn settle_cache(&mut self, plan: Plan<'_>, answer: &Answer) {
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
            Plan::Prepared(stmt) if is_stale_statement(answer.error.as_ref()) => {
                self.cache
                    .remove_statement(stmt.name())
                    .into_iter()
                    .for_each(|n| self.to_close.push(n));
            }
            _ => {}
        }
    }
}

/// Whether a server error means a cached statement must be prepared again.
fn is_stale_statement(error: Option<&Error>) -> bool {
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

/// Ends a batch of messages: Sync for a whole exchange; Flush for a streamed batch, which
/// keeps the portal open (its Sync follows when the command completes).
fn end_batch(f: &mut InFlight<'_>, streaming: bool) {
    match streaming {
        true => frontend::flush(f.buf()),
        false => f.sync(),
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
            frontend::parse(name, sql, types, buf)?;
            frontend::describe(Target::Statement, name, buf)?;
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
    let ty = types
        .and_then(|t| t.get(i).cloned())
        .unwrap_or_else(|| p.dyn_sql_type());
    match p.to_sql_checked(&ty, buf) {
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

/// Appends a Close for every statement waiting to be closed; returns their names.
pub(crate) fn write_closes(f: &mut InFlight<'_>) -> Vec<String> {
    let names = std::mem::take(&mut f.wire().to_close);
    for name in &names {
        // Names are ours and NUL-free, so this cannot fail.
        let _ = frontend::close(Target::Statement, name, f.buf());
    }
    names
}

/// Reads the server's answer up to ReadyForQuery (or, for a streamed batch, up to
/// PortalSuspended). A server error is kept in the answer (the exchange still runs to its
/// end); a socket or protocol failure breaks the connection and is returned.
async fn read_answer(
    f: &mut InFlight<'_>,
    columns: Option<Arc<[Column]>>,
    sink: &mut impl RowSink,
    streaming: bool,
) -> Result<Answer, Error> {
    let mut a = Answer {
        columns,
        ..Answer::default()
    };
    // A streamed batch ends with Flush; its Sync goes out once the command ends.
    let mut need_sync = streaming;
    loop {
        match f.recv_after(&mut a.error).await? {
            BackendMessage::DataRow(row) => match &a.columns {
                Some(cols) if cols.len() == row.len() => sink.row(cols, row),
                _ => {
                    let msg = BackendMessage::DataRow(row);
                    return Err(
                        f.unexpected(&msg, "reading rows that do not match their description")
                    );
                }
            },
            BackendMessage::ParseComplete => a.parsed = true,
            BackendMessage::ParameterDescription(oids) => a.param_types = Some(oids),
            BackendMessage::RowDescription(fields) => {
                a.columns = Some(fields.into_iter().map(Column::from_field).collect())
            }
            BackendMessage::NoData => a.columns = Some(Arc::from(Vec::new())),
            BackendMessage::BindComplete => {}
            BackendMessage::PortalSuspended if streaming && a.error.is_none() => {
                f.pause();
                a.suspended = true;
                return Ok(a);
            }
            BackendMessage::PortalSuspended | BackendMessage::EmptyQueryResponse => {
                send_sync_once(f, &mut need_sync).await?
            }
            BackendMessage::CommandComplete(tag) => {
                a.rows_affected = rows_affected(&tag);
                send_sync_once(f, &mut need_sync).await?;
            }
            BackendMessage::CloseComplete => a.closes_done += 1,
            BackendMessage::ErrorResponse(fields) => {
                keep_first(&mut a.error, Error::db(DbError::from_fields(fields)));
                send_sync_once(f, &mut need_sync).await?;
            }
            BackendMessage::CopyInResponse(_) => {
                need_sync = false;
                refuse_copy_in(f, &mut a.error, true).await?;
            }
            BackendMessage::CopyOutResponse(_)
            | BackendMessage::CopyData(_)
            | BackendMessage::CopyDone => {}
            BackendMessage::ReadyForQuery(status) => {
                f.finish(status);
                return Ok(a);
            }
            other => return Err(f.unexpected(&other, "running a query")),
        }
    }
}

/// Sends the Sync a streamed batch held back, once.
async fn send_sync_once(f: &mut InFlight<'_>, need_sync: &mut bool) -> Result<(), Error> {
    if std::mem::take(need_sync) {
        f.sync();
        f.flush().await?;
    }
    Ok(())
}

pub(crate) fn keep_first(slot: &mut Option<Error>, e: Error) {
    if slot.is_none() {
        *slot = Some(e);
    }
}

/// A COPY FROM STDIN reached through a plain query: tell the server it gets no data.
/// In the extended protocol the server ignores our Sync while in copy mode, so a new one
/// must follow the CopyFail.
pub(crate) async fn refuse_copy_in(
    f: &mut InFlight<'_>,
    error: &mut Option<Error>,
    extended: bool,
) -> Result<(), Error> {
    let _ = frontend::copy_fail(
        "COPY FROM STDIN is not supported through this call",
        f.buf(),
    );
    if extended {
        f.sync();
    }
    f.flush().await?;
    keep_first(
        error,
        Error::new(
            ErrorKind::Misuse,
            "COPY FROM STDIN cannot run through query/execute/simple_query; it was refused",
        ),
    );
    Ok(())
}
