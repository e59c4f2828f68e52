//! The exchanges behind named portals and cursors: Bind to a named portal, Execute it
//! with a row limit, DECLARE a cursor with parameters, and run FETCH/MOVE commands.
//!
//! Every one is an ordinary extended-protocol exchange (its own Sync, read to
//! ReadyForQuery through [`InFlight`](super::wire::InFlight)), so the wire lock and the
//! drop rules are those of any query: dropped mid-exchange, the connection is broken or
//! left for recovery. FETCH and MOVE go through the unnamed statement and portal with
//! binary results, so their rows decode exactly as a query's rows do.
//!
//! A portal or cursor dropped open is closed lazily: its name joins the queue of
//! statements to close, and [`close_target`] makes the next exchange's Close name a
//! portal. Reference: PostgreSQL manual, "Extended Query" and "FETCH".

use std::sync::Arc;

use bytes::BytesMut;

use super::bind::{self, Binding, check_count, check_types, write_bind_to};
use super::query::{Answer, AnswerReader, Discard, Plan, Step, check_prepared, write_statement};
use super::wire::{Closes, Flow, Handler, Wire};
use super::{StatementRef, ToStatement};
use crate::error::Error;
use crate::protocol::BackendMessage;
use crate::protocol::backend::{DataRow, rows_affected};
use crate::protocol::frontend::{self, Format, Target};
use crate::row::Row;
use crate::statement::{Column, Statement};
use crate::types::Oid;

/// The prefix of the names of portals bound by [`crate::Transaction::bind`].
pub(crate) const PORTAL_PREFIX: &str = "pgkeel_portal_";
/// The prefix of the names of cursors declared by `declare_cursor`.
pub(crate) const CURSOR_PREFIX: &str = "pgkeel_cursor_";

/// What a queued Close names: our portals and cursors by their prefix, anything else is
/// a statement.
pub(super) fn close_target(name: &str) -> Target {
    match name.starts_with(PORTAL_PREFIX) || name.starts_with(CURSOR_PREFIX) {
        true => Target::Portal,
        false => Target::Statement,
    }
}

/// What one FETCH or MOVE answered: its rows (none for MOVE) and its count.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) rows: Vec<Row>,
    pub(crate) count: u64,
}

/// One cursor command of a pipeline; `rows` when it returns rows (FETCH, not MOVE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    pub(crate) sql: String,
    pub(crate) rows: bool,
}

impl Wire {
    /// A portal or cursor name no other portal of this connection has.
    pub(crate) fn portal_name(&mut self, prefix: &str) -> String {
        format!("{prefix}{}", self.next_statement_number())
    }

    /// Binds `statement` with `b` to the portal `portal` (Bind + Sync, after a Parse for
    /// a statement parsed afresh at each use); returns the portal's columns, resolved.
    ///
    /// # Errors
    /// A server error (the transaction is then failed); an encode error naming the
    /// parameter (nothing was sent).
    pub(crate) async fn bind_portal<T: ToStatement + ?Sized>(
        &mut self,
        portal: &str,
        statement: &T,
        b: Binding<'_>,
    ) -> Result<Arc<[Column]>, Error> {
        let stmt = match statement.statement_ref() {
            StatementRef::Sql(sql) => match self.plan_sql(sql, b, true).await? {
                Plan::Prepared(stmt) => stmt,
                Plan::Parse { .. } => unreachable!("a described plan is prepared"),
            },
            StatementRef::Prepared(stmt) => {
                check_prepared(self.shared.id, stmt, b.params)?;
                stmt.clone()
            }
        };
        let columns = stmt.columns_arc().clone();
        let plan = Plan::Prepared(stmt.clone());
        let mut f = self.begin("binding a portal", Closes::Inline)?;
        if let Err(e) = write_portal_bind(&plan, portal, b, f.buf()) {
            f.abandon_unsent();
            return Err(e);
        }
        f.sync();
        f.flush().await?;
        let mut discard = Discard;
        let mut reader = AnswerReader::new(&mut discard, Some(columns.clone()), false);
        f.read(&mut reader).await?;
        let error = f.take_error();
        drop(f);
        self.settle_cache(plan, &reader.a, error.as_ref());
        match error {
            Some(e) => Err(bind::name_parameter(
                e,
                stmt.reparse_sql(),
                b,
                stmt.params(),
            )),
            None => Ok(columns),
        }
    }

    /// Execute of the portal `portal` for at most `max_rows` rows (0: all), then Sync;
    /// rows go to `rows`.
    ///
    /// # Errors
    /// A server error (34000 when the portal does not exist: its transaction ended).
    pub(crate) async fn execute_portal(
        &mut self,
        portal: &str,
        max_rows: i32,
        columns: &Arc<[Column]>,
        rows: &mut Vec<Row>,
    ) -> Result<Step, Error> {
        let mut f = self.begin("reading a portal", Closes::Inline)?;
        if let Err(e) = frontend::execute(portal, max_rows.max(0), f.buf()) {
            f.abandon_unsent();
            return Err(e.into());
        }
        f.sync();
        f.flush().await?;
        let mut reader = CommandReader::new(Some(columns.clone()));
        f.read(&mut reader).await?;
        if let Some(e) = f.take_error() {
            return Err(e);
        }
        let mut count = 0;
        for o in reader.outcomes {
            rows.extend(o.rows);
            count = o.count;
        }
        rows.append(&mut reader.current);
        match reader.suspended {
            true => Ok(Step::Suspended),
            false => Ok(Step::Done(count)),
        }
    }

    /// Runs `DECLARE …` (`sql`) with parameters: Parse, Bind and Execute of the unnamed
    /// statement, then Sync. A parameter whose type the server must infer makes the
    /// statement be described first.
    ///
    /// # Errors
    /// A server error (invalid SQL, or 25P02 in a failed transaction); an encode error
    /// naming the parameter.
    pub(crate) async fn declare(&mut self, sql: &str, b: Binding<'_>) -> Result<(), Error> {
        let oids: Vec<Oid> = b.oids().collect();
        let plan = match b.needs_describe() {
            false => Plan::Parse {
                sql,
                types: oids,
                name: String::new(),
            },
            true => {
                let (params, columns) = self.parse_describe("", sql, &oids).await?;
                check_types(&params, b)?;
                Plan::Prepared(Statement::reparsed(sql, params, columns, self.shared.id))
            }
        };
        let mut f = self.begin("declaring a cursor", Closes::Inline)?;
        if let Err(e) = write_declare(&plan, b, f.buf()) {
            f.abandon_unsent();
            return Err(e);
        }
        f.sync();
        f.flush().await?;
        let mut discard = Discard;
        let mut reader = AnswerReader::new(&mut discard, None, false);
        f.read(&mut reader).await?;
        let error = f.take_error();
        drop(f);
        match error {
            None => Ok(()),
            Some(e) => {
                let oids = reader.a.param_types.unwrap_or_default();
                let types = self.known_types(&oids);
                Err(bind::name_parameter(e, Some(sql), b, &types))
            }
        }
    }

    /// Runs cursor commands (FETCH, MOVE) in one round trip, each through the unnamed
    /// statement and portal with binary results, and returns what each answered. The
    /// first FETCH is described when `columns` is not known yet; they are then resolved
    /// and kept there.
    ///
    /// # Errors
    /// The first server error (the commands after it did not run).
    pub(crate) async fn cursor_commands(
        &mut self,
        commands: &[Command],
        columns: &mut Option<Arc<[Column]>>,
    ) -> Result<Vec<Outcome>, Error> {
        let mut f = self.begin("moving a cursor", Closes::Inline)?;
        let mut describe = columns.is_none();
        for c in commands {
            let described = describe && c.rows;
            describe &= !described;
            if let Err(e) = write_command(&c.sql, described, f.buf()) {
                f.abandon_unsent();
                return Err(e);
            }
        }
        f.sync();
        f.flush().await?;
        let mut reader = CommandReader::new(columns.clone());
        f.read(&mut reader).await?;
        if let Some(e) = f.take_error() {
            return Err(e);
        }
        drop(f);
        if columns.is_none() {
            let fresh = reader.columns.take();
            *columns = self.resolve_columns(fresh, &mut reader.outcomes).await?;
        }
        Ok(reader.outcomes)
    }

    /// Resolves the types of freshly described columns (one lookup for types this
    /// connection has not met) and puts them into the rows already read.
    async fn resolve_columns(
        &mut self,
        fresh: Option<Arc<[Column]>>,
        outcomes: &mut [Outcome],
    ) -> Result<Option<Arc<[Column]>>, Error> {
        let mut answer = Answer {
            columns: fresh,
            ..Answer::default()
        };
        if let Some(resolved) = self.resolve_answer(&mut answer).await? {
            for o in outcomes.iter_mut() {
                let rows = std::mem::take(&mut o.rows);
                o.rows = rows
                    .into_iter()
                    .map(|r| r.with_columns(resolved.clone()))
                    .collect();
            }
        }
        Ok(answer.columns)
    }
}

/// Appends Parse (for a statement parsed afresh), Bind to `portal`.
fn write_portal_bind(
    plan: &Plan<'_>,
    portal: &str,
    b: Binding<'_>,
    buf: &mut BytesMut,
) -> Result<(), Error> {
    if let Plan::Prepared(stmt) = plan {
        check_count(stmt.params(), b.params)?;
    }
    let (name, known) = write_statement(plan, b.typed, buf)?;
    write_bind_to(portal, name, b, known, buf)
}

/// Appends Parse, Describe, Bind and Execute of a DECLARE.
fn write_declare(plan: &Plan<'_>, b: Binding<'_>, buf: &mut BytesMut) -> Result<(), Error> {
    let (name, known) = write_statement(plan, b.typed, buf)?;
    write_bind_to("", name, b, known, buf)?;
    frontend::execute("", 0, buf)?;
    Ok(())
}

/// Appends Parse, Bind (binary results), Describe (with `describe`) and Execute of one
/// parameterless cursor command.
fn write_command(sql: &str, describe: bool, buf: &mut BytesMut) -> Result<(), Error> {
    frontend::parse("", sql, &[], buf)?;
    let none = |_: usize, _: &mut BytesMut| Ok::<bool, Error>(false);
    frontend::bind("", "", 0, Format::Binary, none, Format::Binary, buf)?;
    if describe {
        frontend::describe(Target::Portal, "", buf)?;
    }
    frontend::execute("", 0, buf)?;
    Ok(())
}

/// Reads the answers of portal and cursor commands: rows per command, each command's
/// count, and whether a limited Execute stopped at PortalSuspended.
struct CommandReader {
    columns: Option<Arc<[Column]>>,
    current: Vec<Row>,
    outcomes: Vec<Outcome>,
    suspended: bool,
}

impl CommandReader {
    fn new(columns: Option<Arc<[Column]>>) -> CommandReader {
        CommandReader {
            columns,
            current: Vec::new(),
            outcomes: Vec::new(),
            suspended: false,
        }
    }

    fn row(&mut self, row: DataRow) -> Result<(), BackendMessage> {
        match &self.columns {
            Some(cols) if cols.len() == row.len() => {
                self.current.push(Row::new(cols.clone(), row));
                Ok(())
            }
            _ => Err(BackendMessage::DataRow(row)),
        }
    }

    fn complete(&mut self, count: u64) {
        let rows = std::mem::take(&mut self.current);
        self.outcomes.push(Outcome { rows, count });
    }
}

impl Handler for CommandReader {
    fn message(&mut self, msg: BackendMessage) -> Result<Flow, BackendMessage> {
        match msg {
            BackendMessage::DataRow(row) => self.row(row)?,
            BackendMessage::RowDescription(fields) => {
                self.columns = Some(fields.into_iter().map(Column::from_field).collect())
            }
            BackendMessage::ParseComplete
            | BackendMessage::BindComplete
            | BackendMessage::CloseComplete
            | BackendMessage::NoData => {}
            BackendMessage::PortalSuspended => self.suspended = true,
            BackendMessage::CommandComplete(tag) => self.complete(rows_affected(&tag)),
            BackendMessage::EmptyQueryResponse => self.complete(0),
            msg => return Err(msg),
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portals_and_cursors_are_closed_as_portals_and_the_rest_as_statements() {
        assert_eq!(close_target("pgkeel_portal_7"), Target::Portal);
        assert_eq!(close_target("pgkeel_cursor_12"), Target::Portal);
        assert_eq!(close_target("pgkeel_p3_ab12"), Target::Statement);
        assert_eq!(close_target("pgkeel_sab12"), Target::Statement);
    }
}
