//! `execute_many`: one statement, many parameter sets, pipelined.
//!
//! Bind and Execute go out in chunks without waiting for each answer, and the whole run
//! ends with one Sync, so it is one unit: outside a transaction block it commits all
//! rows or none (PostgreSQL runs the messages before a Sync as one implicit
//! transaction); inside one, an error fails the transaction as any statement's would.
//! Each chunk ends with Flush and its answers are read before the next is sent, so the
//! server's replies never back up behind our writes.

use bytes::BytesMut;

use super::query::{
    check_count, check_prepared, check_types, encode_param, keep_first, Answer, Plan,
};
use super::wire::{InFlight, Wire};
use super::{Params, StatementRef, ToStatement};
use crate::error::{DbError, Error, ErrorKind};
use crate::protocol::backend::rows_affected;
use crate::protocol::frontend::{self, Format, Target};
use crate::protocol::BackendMessage;
use crate::statement::Column;
use crate::types::Type;

/// Parameter sets per chunk: large enough that a round trip per chunk costs little,
/// small enough that a chunk's replies fit the socket buffers.
const CHUNK: usize = 1024;

/// Sent to make the server fail (and so roll back) a run that cannot go on because a
/// later parameter set could not be encoded.
const ABORT_SQL: &str = "pgkeel: execute_many aborted: a parameter could not be encoded";

impl Wire {
    /// Runs `statement` once per parameter set; returns the rows affected in all.
    pub(crate) async fn execute_many<'p, T, I>(
        &mut self,
        statement: &T,
        rows: I,
    ) -> Result<u64, Error>
    where
        T: ToStatement + ?Sized,
        I: Iterator<Item = Params<'p>>,
    {
        let mut rows = rows.peekable();
        let Some(&first) = rows.peek() else {
            return Ok(0);
        };
        let plan = match statement.statement_ref() {
            StatementRef::Sql(sql) => self.plan_sql(sql, first),
            StatementRef::Prepared(stmt) => {
                check_prepared(self.shared.id, stmt, first)?;
                Plan::Prepared(stmt.clone())
            }
        };
        let mut answer = self.run_many(&plan, &mut rows).await?;
        let error = answer.error.take();
        // The statement itself parsed even if a row failed: it is cached all the same.
        self.settle_cache(plan, &answer);
        match error {
            Some(e) => Err(e),
            None => Ok(answer.rows_affected),
        }
    }

    async fn run_many<'p>(
        &mut self,
        plan: &Plan<'_>,
        rows: &mut std::iter::Peekable<impl Iterator<Item = Params<'p>>>,
    ) -> Result<Answer, Error> {
        let (name, types) = plan_target(plan);
        let mut f = self.start().await?;
        let head = f.buf().len();
        if let Plan::Parse { sql, types, name } = plan {
            let written = frontend::parse(name, sql, types, f.buf())
                .and_then(|()| frontend::describe(Target::Statement, name, f.buf()));
            if let Err(e) = written {
                f.abandon_unsent(head);
                return Err(e.into());
            }
        }
        let mut answer = Answer::default();
        let mut total = 0;
        let mut sent_any = false;
        loop {
            let chunk = match write_chunk(&name, &types, rows, f.buf()) {
                Ok(n) => n,
                Err(e) if !sent_any => {
                    f.abandon_unsent(head);
                    return Err(e);
                }
                Err(e) => return abort(&mut f, e).await,
            };
            let last = rows.peek().is_none();
            match last {
                true => f.sync(),
                false => frontend::flush(f.buf()),
            }
            f.flush().await?;
            sent_any = true;
            total += read_chunk(&mut f, &mut answer, chunk, last).await?;
            if answer.error.is_some() || last {
                break;
            }
        }
        if !f.is_finished() {
            // An error stopped the run before its Sync went out.
            f.sync();
            f.flush().await?;
            drain_to_ready(&mut f).await?;
        }
        answer.rows_affected = total;
        Ok(answer)
    }
}

/// The statement name and parameter types a plan binds with.
fn plan_target(plan: &Plan<'_>) -> (String, Vec<Type>) {
    match plan {
        Plan::Prepared(stmt) => (stmt.name().to_owned(), stmt.params().to_vec()),
        Plan::Parse { types, name, .. } => (
            name.clone(),
            types.iter().map(|&o| Type::for_oid(o)).collect(),
        ),
    }
}

/// Appends Bind + Execute for up to [`CHUNK`] parameter sets; on an error, nothing of
/// this chunk stays in the buffer.
fn write_chunk<'p>(
    name: &str,
    types: &[Type],
    rows: &mut impl Iterator<Item = Params<'p>>,
    buf: &mut BytesMut,
) -> Result<usize, Error> {
    let start = buf.len();
    let mut n = 0;
    while n < CHUNK {
        let Some(params) = rows.next() else { break };
        if let Err(e) = bind_row(name, types, params, buf) {
            buf.truncate(start);
            let msg = format!("parameter set {} of execute_many", n + 1);
            return Err(Error::with_source(ErrorKind::Encode, msg, e));
        }
        n += 1;
    }
    Ok(n)
}

fn bind_row(
    name: &str,
    types: &[Type],
    params: Params<'_>,
    buf: &mut BytesMut,
) -> Result<(), Error> {
    check_count(types, params)?;
    check_types(types, params)?;
    let encode = |i: usize, buf: &mut BytesMut| encode_param(i, params[i], Some(types), buf);
    frontend::bind(
        "",
        name,
        params.len(),
        Format::Binary,
        encode,
        Format::Binary,
        buf,
    )?;
    frontend::execute("", 0, buf)?;
    Ok(())
}

/// Reads one chunk's answers: `n` command completions, or the first error (after which
/// the server skips everything up to the Sync). With `last`, reads on to ReadyForQuery.
/// Returns the rows the chunk affected.
async fn read_chunk(
    f: &mut InFlight<'_>,
    a: &mut Answer,
    n: usize,
    last: bool,
) -> Result<u64, Error> {
    let (mut done, mut affected) = (0, 0);
    loop {
        match f.recv_after(&mut a.error).await? {
            BackendMessage::ParseComplete => a.parsed = true,
            BackendMessage::ParameterDescription(oids) => a.param_types = Some(oids),
            BackendMessage::RowDescription(fields) => {
                a.columns = Some(fields.into_iter().map(Column::from_field).collect())
            }
            BackendMessage::NoData | BackendMessage::BindComplete | BackendMessage::DataRow(_) => {}
            BackendMessage::CommandComplete(tag) => {
                affected += rows_affected(&tag);
                done += 1;
            }
            BackendMessage::EmptyQueryResponse => done += 1,
            BackendMessage::ErrorResponse(fields) => {
                keep_first(&mut a.error, Error::db(DbError::from_fields(fields)));
                if !last {
                    return Ok(affected);
                }
            }
            BackendMessage::ReadyForQuery(status) => {
                f.finish(status);
                return Ok(affected);
            }
            other => return Err(f.unexpected(&other, "running execute_many")),
        }
        if done == n && !last {
            return Ok(affected);
        }
    }
}

/// Reads and drops everything up to ReadyForQuery.
async fn drain_to_ready(f: &mut InFlight<'_>) -> Result<(), Error> {
    loop {
        if let BackendMessage::ReadyForQuery(status) = f.recv().await? {
            f.finish(status);
            return Ok(());
        }
    }
}

/// Makes the server fail the run (so its implicit transaction rolls back, or the
/// enclosing one fails), ends it, and returns the encoding error that stopped it.
async fn abort(f: &mut InFlight<'_>, e: Error) -> Result<Answer, Error> {
    frontend::parse("", ABORT_SQL, &[], f.buf())?;
    f.sync();
    f.flush().await?;
    drain_to_ready(f).await?;
    Err(e)
}
