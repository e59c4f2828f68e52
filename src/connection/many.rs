//! `execute_many`: one statement, many parameter sets, pipelined.
//!
//! Bind and Execute go out in chunks bounded by bytes, and the whole run ends with one
//! Sync, so it is one unit: outside a transaction block it commits all rows or none
//! (PostgreSQL runs the messages before a Sync as one implicit transaction); inside one,
//! an error fails the transaction as any statement's would. While a chunk is written,
//! whatever the server answers meanwhile is read, so a statement with large answers
//! (`INSERT … RETURNING`) can never fill both directions of the socket and stall.

use bytes::BytesMut;

use super::bind::{Binding, check_count, check_oids, check_types, write_bind};
use super::param_set::ParamSet;
use super::query::{Answer, Plan, check_prepared, is_stale_statement, write_statement};
use super::wire::{Closes, Flow, Handler, InFlight, Wire};
use super::{Params, StatementRef, ToStatement};
use crate::error::{Error, ErrorKind};
use crate::protocol::backend::rows_affected;
use crate::protocol::frontend;
use crate::protocol::{BackendMessage, TransactionStatus};
use crate::statement::Column;
use crate::types::{Oid, Type};

/// Bytes of Bind + Execute per write: large enough that a write costs little per row,
/// small enough that memory stays flat for any number of rows.
const CHUNK_BYTES: usize = 256 * 1024;

/// Sent to make the server fail (and so roll back) a run that cannot go on because a
/// later parameter set could not be encoded.
const ABORT_SQL: &str = "pgkeel: execute_many aborted: a parameter could not be encoded";

impl Wire {
    /// Runs `statement` once per parameter set; returns the rows affected in all.
    pub(crate) async fn execute_many<T, P, I>(
        &mut self,
        statement: &T,
        rows: I,
    ) -> Result<u64, Error>
    where
        T: ToStatement + ?Sized,
        P: ParamSet,
        I: Iterator<Item = P>,
    {
        let mut rows = rows.peekable();
        // The first set decides the statement's parameter types; its references are
        // copied out so that nothing of the set's own type is held across an await.
        let Some(first) = rows.peek().map(|p| p.refs().as_ref().to_vec()) else {
            return Ok(0);
        };
        let (plan, sql) = match statement.statement_ref() {
            StatementRef::Sql(sql) => (
                self.plan_sql(sql, Binding::new(&first), false).await?,
                Some(sql),
            ),
            StatementRef::Prepared(stmt) => {
                check_prepared(self.shared.id, stmt, &first)?;
                (Plan::Prepared(stmt.clone()), None)
            }
        };
        drop(first);
        // A cached statement may have gone stale: its first Bind is answered before the
        // rest goes out, so a stale one can be prepared afresh and the run go on.
        let cached = sql.is_some() && matches!(plan, Plan::Prepared(_));
        let idle = self.transaction_status() == TransactionStatus::Idle;
        let mut run = Run::default();
        let result = self
            .run_many(&plan, &mut rows, &mut run, cached && idle)
            .await;
        self.settle_cache(plan, &run.answer, result.as_ref().err());
        match (result, sql) {
            (Err(e), Some(sql)) if run.stale_first.is_some() && is_stale_statement(Some(&e)) => {
                tracing::debug!(sql, error = %e, "re-preparing a stale cached statement");
                let (bytes, oids) = run.stale_first.take().expect("checked above");
                let plan = self.plan_sql_oids(sql, oids);
                let mut again = Run {
                    replay: Some(bytes),
                    ..Run::default()
                };
                let result = self.run_many(&plan, &mut rows, &mut again, false).await;
                self.settle_cache(plan, &again.answer, result.as_ref().err());
                result
            }
            (result, _) => result,
        }
    }

    async fn run_many<P: ParamSet>(
        &mut self,
        plan: &Plan<'_>,
        rows: &mut std::iter::Peekable<impl Iterator<Item = P>>,
        run: &mut Run,
        check_first: bool,
    ) -> Result<u64, Error> {
        let mut f = self.begin("running execute_many", Closes::Inline)?;
        let (name, types) = match write_statement(plan, None, f.buf()) {
            Ok((name, types)) => (name.to_owned(), types.map(<[Type]>::to_vec)),
            Err(e) => {
                f.abandon_unsent();
                return Err(e);
            }
        };
        let target = match (&types, plan) {
            (Some(types), _) => Target::Types(types),
            (None, Plan::Parse { types, .. }) => Target::Oids(types),
            (None, Plan::Prepared(_)) => unreachable!("a prepared plan has types"),
        };
        if let Some(bytes) = &run.replay {
            f.buf().extend_from_slice(bytes);
        } else if check_first {
            if let Err(e) = run.first_alone(&mut f, &name, target, rows).await {
                // An encoding failure sent nothing; a socket failure broke the wire.
                f.abandon_unsent();
                return Err(e);
            }
            if f.failed() {
                return run.finish(&mut f).await;
            }
        }
        let mut reader = ManyReader::new(&mut run.answer);
        let mut sent = usize::from(run.replay.is_some() || check_first);
        loop {
            let start = f.buf().len();
            match write_chunk(&name, target, rows, &mut sent, f.buf()) {
                Ok(()) => {}
                Err(e) if sent == 0 => {
                    f.buf().truncate(start);
                    f.abandon_unsent();
                    return Err(e);
                }
                Err(e) => return abort(&mut f, &mut reader, e).await,
            }
            let last = rows.peek().is_none();
            if last {
                f.sync();
            }
            f.flush_reading(&mut reader).await?;
            if last || f.failed() {
                break;
            }
        }
        if !f.is_finished() {
            if rows.peek().is_some() {
                // An error stopped the run before its Sync went out.
                f.sync();
                f.flush().await?;
            }
            f.read(&mut reader).await?;
        }
        let (affected, done) = (reader.affected, reader.done);
        match f.take_error() {
            Some(e) => Err(e.context(failed_set(done, sent))),
            None => Ok(affected),
        }
    }
}

/// The state of one run that outlives its exchange: the answer (for the statement
/// cache), and the first parameter set's bytes when it went out alone.
#[derive(Default)]
struct Run {
    answer: Answer,
    /// The first Bind + Execute, kept while a cached statement's first Bind is checked;
    /// set when the server found the statement stale.
    stale_first: Option<(BytesMut, Vec<Oid>)>,
    /// Bytes to send again first (the first parameter set of a stale run).
    replay: Option<BytesMut>,
}

impl Run {
    /// Sends the first parameter set with Flush and reads to its BindComplete (or error).
    async fn first_alone<P: ParamSet>(
        &mut self,
        f: &mut InFlight<'_>,
        name: &str,
        types: Target<'_>,
        rows: &mut std::iter::Peekable<impl Iterator<Item = P>>,
    ) -> Result<(), Error> {
        let start = f.buf().len();
        let (bound, oids) = {
            let first = rows.next().expect("peeked");
            let refs = first.refs();
            let first = refs.as_ref();
            let bound = bind_row(name, types, first, f.buf());
            (bound, Binding::new(first).oids().collect())
        };
        if let Err(e) = bound {
            f.buf().truncate(start);
            return Err(Error::with_source(ErrorKind::Encode, encode_failed(0), e));
        }
        let bytes = BytesMut::from(&f.buf()[start..]);
        frontend::flush(f.buf());
        f.flush().await?;
        let mut reader = ManyReader::new(&mut self.answer);
        reader.stop_at_bind = true;
        f.read(&mut reader).await?;
        if f.failed() {
            self.stale_first = Some((bytes, oids));
        }
        Ok(())
    }

    /// Ends a run whose first Bind failed: Sync, and read to ReadyForQuery.
    async fn finish(&mut self, f: &mut InFlight<'_>) -> Result<u64, Error> {
        f.sync();
        f.flush().await?;
        f.read(&mut ManyReader::new(&mut self.answer)).await?;
        Err(f
            .take_error()
            .expect("the run failed")
            .context(failed_set(0, 1)))
    }
}

/// Reads the answers of a run: rows affected, and (for the cache) what Parse said.
struct ManyReader<'a> {
    answer: &'a mut Answer,
    affected: u64,
    /// Parameter sets whose Execute completed: the index of the one an error belongs to.
    done: usize,
    stop_at_bind: bool,
}

impl<'a> ManyReader<'a> {
    fn new(answer: &'a mut Answer) -> Self {
        ManyReader {
            answer,
            affected: 0,
            done: 0,
            stop_at_bind: false,
        }
    }
}

impl Handler for ManyReader<'_> {
    fn message(&mut self, msg: BackendMessage) -> Result<Flow, BackendMessage> {
        let a = &mut *self.answer;
        match msg {
            BackendMessage::ParseComplete => a.parsed = true,
            BackendMessage::ParameterDescription(oids) => a.param_types = Some(oids),
            BackendMessage::RowDescription(fields) => {
                a.columns = Some(fields.into_iter().map(Column::from_field).collect())
            }
            BackendMessage::BindComplete if self.stop_at_bind => return Ok(Flow::Stop),
            BackendMessage::NoData
            | BackendMessage::BindComplete
            | BackendMessage::CloseComplete
            | BackendMessage::DataRow(_) => {}
            BackendMessage::EmptyQueryResponse => self.done += 1,
            BackendMessage::CommandComplete(tag) => {
                self.affected += rows_affected(&tag);
                self.done += 1;
            }
            msg => return Err(msg),
        }
        Ok(Flow::Continue)
    }

    fn error(&mut self) -> Flow {
        match self.stop_at_bind {
            true => Flow::Stop,
            false => Flow::Continue,
        }
    }
}

/// Appends Bind + Execute for parameter sets until [`CHUNK_BYTES`] are buffered or the
/// sets run out, counting them in `sent`; on an error, nothing of this chunk stays in
/// the buffer (and `sent` counts only the earlier chunks).
fn write_chunk<P: ParamSet>(
    name: &str,
    types: Target<'_>,
    rows: &mut impl Iterator<Item = P>,
    sent: &mut usize,
    buf: &mut BytesMut,
) -> Result<(), Error> {
    let start = buf.len();
    let mut n = 0;
    while buf.len() - start < CHUNK_BYTES {
        let Some(params) = rows.next() else { break };
        if let Err(e) = bind_row(name, types, params.refs().as_ref(), buf) {
            buf.truncate(start);
            let msg = encode_failed(*sent + n);
            return Err(Error::with_source(ErrorKind::Encode, msg, e));
        }
        n += 1;
    }
    *sent += n;
    Ok(())
}

/// The message of an encoding failure: which parameter set (from 0) could not be sent.
fn encode_failed(index: usize) -> String {
    format!("execute_many parameter set {index} (counting from 0) could not be encoded")
}

/// The context of a server error in a run: the parameter set (from 0) it belongs to, or
/// the end of the run (a deferred constraint checked at the implicit commit).
fn failed_set(done: usize, sent: usize) -> String {
    match done < sent {
        true => format!("execute_many parameter set {done} (counting from 0)"),
        false => format!("execute_many, after all {sent} parameter sets ran"),
    }
}

/// What the parameter sets of a run must fit: the types of a statement on the server,
/// or the OIDs the run's own Parse named.
#[derive(Clone, Copy)]
enum Target<'a> {
    Types(&'a [Type]),
    Oids(&'a [Oid]),
}

fn bind_row(
    name: &str,
    target: Target<'_>,
    params: Params<'_>,
    buf: &mut BytesMut,
) -> Result<(), Error> {
    let b = Binding::new(params);
    let known = match target {
        Target::Types(types) => {
            check_count(types, params)?;
            check_types(types, b)?;
            Some(types)
        }
        Target::Oids(oids) => {
            check_oids(oids, b)?;
            None
        }
    };
    write_bind(name, b, known, buf)?;
    frontend::execute("", 0, buf)?;
    Ok(())
}

/// Makes the server fail the run (so its implicit transaction rolls back, or the
/// enclosing one fails), ends it, and returns the encoding error that stopped it.
async fn abort(f: &mut InFlight<'_>, reader: &mut ManyReader<'_>, e: Error) -> Result<u64, Error> {
    frontend::parse("", ABORT_SQL, &[], f.buf())?;
    f.sync();
    f.flush_reading(reader).await?;
    if !f.is_finished() {
        f.read(reader).await?;
    }
    let _ = f.take_error();
    Err(e)
}
