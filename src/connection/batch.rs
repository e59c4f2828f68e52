//! Batches: many different statements in one write, answered in order.
//!
//! A [`Batch`] queues statements (each its own Bind and Execute, with a Parse for SQL
//! not prepared yet), and [`crate::Connection::run_batch`] writes them all at once and
//! reads the answers in order. Where a Sync goes decides what fails together: after
//! every statement ([`Batch::new`]), each statement is its own unit, as if run one by
//! one; once at the end ([`Batch::all_or_nothing`], with [`Batch::sync`] to cut it
//! into several units), a unit's statements run as one implicit transaction outside a
//! transaction block, so an error undoes the whole unit and the server skips the rest
//! of it.
//!
//! Everything is encoded before anything is sent, so a parameter that cannot be
//! encoded fails the run with nothing sent. While the requests go out, whatever the
//! server answers meanwhile is read, so a long batch with long answers can never fill
//! both directions of the socket and stall.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::bind::{Binding, check_oids, check_types, write_bind};
use super::query::{Answer, Params, Plan, RowSink as _, check_prepared, write_plan};
use super::wire::{Closes, Flow, Handler, Wire};
use super::{StatementRef, ToStatement, at_most_one};
use crate::error::{Error, ErrorKind, sqlstate};
use crate::protocol::backend::rows_affected;
use crate::protocol::frontend;
use crate::protocol::{BackendMessage, TransactionStatus};
use crate::row::Row;
use crate::statement::{Column, Statement};
use crate::types::{Oid, ToSql};

/// Tells batches apart, so a ticket is only ever redeemed against its own batch's results.
static BATCH_IDS: AtomicU64 = AtomicU64::new(1);

/// What a queued statement returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Rows,
    One,
    Opt,
    Count,
}

struct Item<'a> {
    statement: StatementRef<'a>,
    /// Its parameters' place in [`Batch::params`].
    params: std::ops::Range<usize>,
    want: Want,
    /// A Sync follows this statement: it ends a unit.
    sync_after: bool,
}

/// Statements to run in one write, answers back in order; see the module docs of
/// [`crate::Connection::run_batch`].
///
/// ```no_run
/// # async fn demo(conn: pgkeel::Connection) -> Result<(), pgkeel::Error> {
/// use pgkeel::Batch;
///
/// let mut batch = Batch::new();
/// let user = batch.query_one("SELECT name FROM users WHERE id = $1", &[&7i64]);
/// let moved = batch.execute("UPDATE jobs SET owner = $1 WHERE owner = $2", &[&7i64, &3i64]);
/// let open = batch.query("SELECT id FROM jobs WHERE owner = $1", &[&7i64]);
/// let mut results = conn.run_batch(&batch).await?;
/// let name: String = results.take(user)?.get(0);
/// println!("{name} took {} jobs, {} open", results.take(moved)?, results.take(open)?.len());
/// # Ok(()) }
/// ```
pub struct Batch<'a> {
    id: u64,
    items: Vec<Item<'a>>,
    /// Every statement's parameters, one after another: the caller's slice may be a
    /// temporary (`&[&id]`), only the values must outlive the batch.
    params: Vec<&'a (dyn ToSql + Sync)>,
    /// Whether every statement is its own unit (a Sync after each).
    each_alone: bool,
}

impl<'a> Batch<'a> {
    /// A batch whose statements are independent: a Sync follows each one, so each runs
    /// (and, outside a transaction block, commits) as if run alone, and one that fails
    /// does not stop the others.
    pub fn new() -> Batch<'a> {
        Batch {
            id: BATCH_IDS.fetch_add(1, Ordering::Relaxed),
            items: Vec::new(),
            params: Vec::new(),
            each_alone: true,
        }
    }

    /// A batch that is one unit until [`Batch::sync`] cuts it: one Sync ends each unit,
    /// so outside a transaction block a unit commits entirely or not at all, and after
    /// an error the server skips the rest of its unit.
    pub fn all_or_nothing() -> Batch<'a> {
        Batch {
            each_alone: false,
            ..Batch::new()
        }
    }

    /// Ends the current unit here (in a [`Batch::new`] batch, every statement already
    /// ends one).
    pub fn sync(&mut self) {
        if let Some(last) = self.items.last_mut() {
            last.sync_after = true;
        }
    }

    fn push<T, O>(
        &mut self,
        statement: &'a T,
        params: &[&'a (dyn ToSql + Sync)],
        want: Want,
    ) -> Ticket<O>
    where
        T: ToStatement + ?Sized,
    {
        let start = self.params.len();
        self.params.extend_from_slice(params);
        self.items.push(Item {
            statement: statement.statement_ref(),
            params: start..self.params.len(),
            want,
            sync_after: self.each_alone,
        });
        Ticket {
            batch: self.id,
            index: self.items.len() - 1,
            _out: PhantomData,
        }
    }

    /// Queues a statement whose rows are all wanted.
    pub fn query<T: ToStatement + ?Sized>(
        &mut self,
        statement: &'a T,
        params: &[&'a (dyn ToSql + Sync)],
    ) -> Ticket<Vec<Row>> {
        self.push(statement, params, Want::Rows)
    }

    /// Queues a statement that must return exactly one row.
    pub fn query_one<T: ToStatement + ?Sized>(
        &mut self,
        statement: &'a T,
        params: &[&'a (dyn ToSql + Sync)],
    ) -> Ticket<Row> {
        self.push(statement, params, Want::One)
    }

    /// Queues a statement that returns at most one row.
    pub fn query_opt<T: ToStatement + ?Sized>(
        &mut self,
        statement: &'a T,
        params: &[&'a (dyn ToSql + Sync)],
    ) -> Ticket<Option<Row>> {
        self.push(statement, params, Want::Opt)
    }

    /// Queues a statement whose count of rows affected is wanted (rows it returns are
    /// dropped).
    pub fn execute<T: ToStatement + ?Sized>(
        &mut self,
        statement: &'a T,
        params: &[&'a (dyn ToSql + Sync)],
    ) -> Ticket<u64> {
        self.push(statement, params, Want::Count)
    }

    fn params_of(&self, item: &Item<'a>) -> Params<'_> {
        &self.params[item.params.clone()]
    }

    /// How many statements are queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no statement is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl Default for Batch<'_> {
    fn default() -> Self {
        Batch::new()
    }
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("statements", &self.items.len())
            .field("each_alone", &self.each_alone)
            .finish()
    }
}

/// Redeems one statement's result from [`BatchResults::take`]; typed by what was queued
/// (`Vec<Row>`, `Row`, `Option<Row>` or a `u64` count).
#[must_use = "a ticket is how the statement's result is read"]
pub struct Ticket<T> {
    batch: u64,
    index: usize,
    _out: PhantomData<fn() -> T>,
}

impl<T> Ticket<T> {
    /// The statement's position in its batch, from 0 (the index errors name).
    pub fn index(&self) -> usize {
        self.index
    }
}

impl<T> Clone for Ticket<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Ticket<T> {}

impl<T> std::fmt::Debug for Ticket<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("index", &self.index)
            .finish()
    }
}

/// What one statement of a batch came to.
struct Outcome {
    rows: Vec<Row>,
    affected: u64,
    error: Option<Error>,
    /// Whether its CommandComplete (or EmptyQueryResponse) was read.
    done: bool,
}

/// The results of a batch, one per statement, taken with the tickets [`Batch`] gave.
pub struct BatchResults {
    batch: u64,
    outcomes: Vec<Option<Outcome>>,
}

mod sealed {
    pub trait Sealed {}
}

/// What a [`Ticket`] yields: the forms `query`, `query_one`, `query_opt` and `execute`
/// return. Sealed.
pub trait BatchOutput: sealed::Sealed + Sized {
    #[doc(hidden)]
    fn from_outcome(rows: Vec<Row>, affected: u64) -> Result<Self, Error>;
}

impl sealed::Sealed for Vec<Row> {}
impl BatchOutput for Vec<Row> {
    fn from_outcome(rows: Vec<Row>, _: u64) -> Result<Self, Error> {
        Ok(rows)
    }
}

impl sealed::Sealed for Row {}
impl BatchOutput for Row {
    fn from_outcome(rows: Vec<Row>, _: u64) -> Result<Self, Error> {
        at_most_one(rows, false).map(|row| row.expect("exactly one row"))
    }
}

impl sealed::Sealed for Option<Row> {}
impl BatchOutput for Option<Row> {
    fn from_outcome(rows: Vec<Row>, _: u64) -> Result<Self, Error> {
        at_most_one(rows, true)
    }
}

impl sealed::Sealed for u64 {}
impl BatchOutput for u64 {
    fn from_outcome(_: Vec<Row>, affected: u64) -> Result<Self, Error> {
        Ok(affected)
    }
}

impl BatchResults {
    /// Takes one statement's result. A server error, a statement the server skipped
    /// (an earlier one of its unit failed: [`ErrorKind::Skipped`]) and one whose work
    /// was undone with its unit ([`ErrorKind::RolledBack`]) each name the statement's
    /// index.
    ///
    /// # Errors
    /// As above; [`ErrorKind::RowCount`] for a `query_one`/`query_opt` whose row count
    /// does not fit; [`ErrorKind::Misuse`] for a ticket of another batch, or one taken
    /// twice.
    pub fn take<T: BatchOutput>(&mut self, ticket: Ticket<T>) -> Result<T, Error> {
        let slot = match ticket.batch == self.batch {
            true => self.outcomes.get_mut(ticket.index),
            false => None,
        };
        let Some(outcome) = slot else {
            return Err(Error::new(
                ErrorKind::Misuse,
                "this ticket belongs to another batch",
            ));
        };
        let Some(outcome) = outcome.take() else {
            return Err(Error::new(
                ErrorKind::Misuse,
                format!(
                    "the result of batch statement {} was already taken",
                    ticket.index
                ),
            ));
        };
        if let Some(e) = outcome.error {
            return Err(e);
        }
        T::from_outcome(outcome.rows, outcome.affected)
            .map_err(|e| e.context(format_args!("batch statement {}", ticket.index)))
    }

    /// The first statement that failed (by index) and its error, if any did: the cause,
    /// not the statements undone ([`ErrorKind::RolledBack`]) or skipped
    /// ([`ErrorKind::Skipped`]) because of it.
    pub fn first_error(&self) -> Option<(usize, &Error)> {
        self.outcomes.iter().enumerate().find_map(|(i, o)| {
            let e = o.as_ref()?.error.as_ref()?;
            match e.kind() {
                ErrorKind::RolledBack | ErrorKind::Skipped => None,
                _ => Some((i, e)),
            }
        })
    }

    /// How many statements the batch had.
    pub fn len(&self) -> usize {
        self.outcomes.len()
    }

    /// Whether the batch had no statement.
    pub fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }
}

impl std::fmt::Debug for BatchResults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchResults")
            .field("statements", &self.outcomes.len())
            .field("first_error", &self.first_error())
            .finish()
    }
}

/// How one statement gets to the server.
struct Planned<'a> {
    /// Its own plan, or `None` when it binds a statement an earlier one of this batch
    /// parses (`parsed_by`).
    plan: Option<Plan<'a>>,
    /// The statement of this batch that parses its SQL (itself, or an earlier one).
    parsed_by: Option<usize>,
    /// Its columns, when known before the answer (a prepared or cached statement).
    columns: Option<Arc<[Column]>>,
    /// The last statement of its unit.
    unit_end: usize,
    /// Whether its rows are wanted (not for `execute`).
    keep_rows: bool,
}

impl Wire {
    /// Runs a batch; per-statement failures are in the results.
    pub(crate) async fn run_batch(&mut self, batch: &Batch<'_>) -> Result<BatchResults, Error> {
        if batch.items.is_empty() {
            return Ok(BatchResults {
                batch: batch.id,
                outcomes: Vec::new(),
            });
        }
        let mut planned = self.plan_batch(batch).await?;
        let mut f = self.begin("running a batch", Closes::Inline)?;
        f.copy_in_breaks();
        let start = f.buf().len();
        for (i, (item, p)) in batch.items.iter().zip(&planned).enumerate() {
            if let Err(e) = write_item(batch.params_of(item), p, &planned, f.buf()) {
                f.buf().truncate(start);
                f.abandon_unsent();
                return Err(e.context(format_args!("batch statement {i}")));
            }
            if p.unit_end == i {
                f.sync();
            }
        }
        let status = f.wire().transaction_status();
        let mut reader = BatchReader::new(&planned, status);
        f.flush_reading(&mut reader).await?;
        if !f.is_finished() {
            f.read(&mut reader).await?;
        }
        if let Some(fatal) = f.take_error() {
            return Err(fatal);
        }
        drop(f);
        let mut parsed = std::mem::take(&mut reader.parsed);
        let mut outcomes = reader.outcomes;
        self.settle_batch(batch, &mut planned, &mut parsed, &mut outcomes)
            .await?;
        Ok(BatchResults {
            batch: batch.id,
            outcomes: outcomes.into_iter().map(Some).collect(),
        })
    }

    /// Finds each statement: prepared, cached, parsed by an earlier statement of this
    /// batch, or to be parsed now. A statement whose parameters need the server's
    /// inferred types is described first (one round trip each, before anything of the
    /// batch is written).
    async fn plan_batch<'b>(&mut self, batch: &Batch<'b>) -> Result<Vec<Planned<'b>>, Error> {
        // Statements described here: cached when the cache is on; without a cache (pooler
        // mode, capacity 0) kept for this batch, to be parsed again with their types.
        let mut described: HashMap<(&'b str, Vec<Oid>), Statement> = HashMap::new();
        for (i, item) in batch.items.iter().enumerate() {
            let b = Binding::new(batch.params_of(item));
            if let StatementRef::Sql(sql) = item.statement {
                refuse_copy(sql, i)?;
                if !b.needs_describe() {
                    continue;
                }
                let key = (sql, b.oids().collect::<Vec<Oid>>());
                let cached = self.shared.pipe.lock().cache.get_with(sql, b.oids());
                if cached.is_none() && !described.contains_key(&key) {
                    let plan = self.plan_sql(sql, b, true).await;
                    match plan.map_err(|e| e.context(format_args!("batch statement {i}")))? {
                        Plan::Prepared(stmt) => drop(described.insert(key, stmt)),
                        Plan::Parse { .. } => {}
                    }
                }
            }
        }
        let mut parses: HashMap<(&'b str, Vec<Oid>), usize> = HashMap::new();
        let mut planned = Vec::with_capacity(batch.items.len());
        let mut unit_start = 0;
        for (i, item) in batch.items.iter().enumerate() {
            let b = Binding::new(batch.params_of(item));
            let mut p = Planned {
                plan: None,
                parsed_by: None,
                columns: None,
                unit_end: i,
                keep_rows: item.want != Want::Count,
            };
            match item.statement {
                StatementRef::Prepared(stmt) => {
                    check_prepared(self.shared.id, stmt, batch.params_of(item))
                        .map_err(|e| e.context(format_args!("batch statement {i}")))?;
                    p.columns = Some(stmt.columns_arc().clone());
                    p.plan = Some(Plan::Prepared(stmt.clone()));
                }
                StatementRef::Sql(sql) => {
                    // On a warm connection the cache has the statement: no key of
                    // parameter types is built. On a miss the key is built once.
                    let cached = self.shared.pipe.lock().cache.get_with(sql, b.oids());
                    let found = match cached {
                        Some(stmt) => Ok(stmt),
                        None => {
                            let key: (&str, Vec<Oid>) = (sql, b.oids().collect());
                            described.get(&key).cloned().ok_or(key)
                        }
                    };
                    match found {
                        Ok(stmt) => {
                            if b.needs_check() {
                                check_types(stmt.params(), b)
                                    .map_err(|e| e.context(format_args!("batch statement {i}")))?;
                            }
                            p.columns = Some(stmt.columns_arc().clone());
                            p.plan = Some(Plan::Prepared(stmt));
                        }
                        Err(key) => match parses.get(&key) {
                            Some(&by) => p.parsed_by = Some(by),
                            None => {
                                let plan = self.plan_sql_oids(sql, key.1.clone());
                                if matches!(&plan, Plan::Parse { name, .. } if !name.is_empty()) {
                                    parses.insert(key, i);
                                }
                                p.parsed_by = Some(i);
                                p.plan = Some(plan);
                            }
                        },
                    }
                }
            }
            planned.push(p);
            if item.sync_after || i + 1 == batch.items.len() {
                for q in &mut planned[unit_start..] {
                    q.unit_end = i;
                }
                unit_start = i + 1;
            }
        }
        Ok(planned)
    }

    /// After the answers: caches what was parsed (types resolved), forgets stale cached
    /// statements, names each error's statement and parameter, and marks work skipped or
    /// undone with its unit.
    async fn settle_batch(
        &mut self,
        batch: &Batch<'_>,
        planned: &mut [Planned<'_>],
        parsed: &mut HashMap<usize, Answer>,
        outcomes: &mut [Outcome],
    ) -> Result<(), Error> {
        // A statement that binds what an earlier one parses finds nothing when that
        // parse failed or was skipped with its own unit: say so, not "does not exist".
        for (j, p) in planned.iter().enumerate() {
            let Some(by) = p.parsed_by.filter(|&by| by != j) else {
                continue;
            };
            let missing = outcomes[j].error.as_ref().is_some_and(|e| {
                e.code() == Some(sqlstate::INVALID_SQL_STATEMENT_NAME)
                    && !parsed.get(&by).is_some_and(|a| a.parsed)
            });
            if missing {
                outcomes[j].error = Some(Error::new(
                    ErrorKind::Skipped,
                    format!(
                        "batch statement {j} was not run: statement {by}, which prepares \
                         the same SQL, failed"
                    ),
                ));
            }
        }
        for i in 0..planned.len() {
            let Some(plan) = planned[i].plan.take() else {
                continue;
            };
            let mut answer = parsed.remove(&i).unwrap_or_default();
            if outcomes[i].error.is_none()
                && let Some(columns) = self.resolve_answer(&mut answer).await?
            {
                for (j, p) in planned.iter().enumerate().skip(i) {
                    if p.parsed_by == Some(i) {
                        outcomes[j].rows.retype(&columns);
                    }
                }
            }
            if let Some(e) = outcomes[i].error.take() {
                let item = &batch.items[i];
                let e = self.name_parameter(e, &plan, Binding::new(batch.params_of(item)), &answer);
                outcomes[i].error = Some(e);
            }
            self.settle_cache(plan, &answer, outcomes[i].error.as_ref());
        }
        for (i, outcome) in outcomes.iter_mut().enumerate() {
            let Some(e) = outcome.error.take() else {
                if let Some(columns) = outcome.rows.first().map(|r| r.columns_arc().clone())
                    && let Some(records) = self.resolve_records(&columns, &outcome.rows).await?
                {
                    outcome.rows.retype(&records);
                }
                continue;
            };
            outcome.error = Some(match e.kind() {
                ErrorKind::Skipped | ErrorKind::RolledBack => e,
                _ => e.context(format_args!("batch statement {i}")),
            });
        }
        Ok(())
    }
}

/// Refuses COPY in a batch: its data has no place in one, and a COPY FROM STDIN would
/// stop the server reading the statements behind it.
fn refuse_copy(sql: &str, i: usize) -> Result<(), Error> {
    match crate::telemetry::operation_name(sql) {
        Some("COPY") => Err(Error::new(
            ErrorKind::Misuse,
            format!("batch statement {i} is a COPY; use copy_in or copy_out instead"),
        )),
        _ => Ok(()),
    }
}

/// Appends one statement's messages.
fn write_item(
    params: Params<'_>,
    p: &Planned<'_>,
    planned: &[Planned<'_>],
    buf: &mut bytes::BytesMut,
) -> Result<(), Error> {
    let b = Binding::new(params);
    if let Some(plan) = &p.plan {
        return write_plan(plan, b, 0, buf);
    }
    let by = p
        .parsed_by
        .expect("a statement without a plan is parsed by another");
    let Some(Plan::Parse { name, types, .. }) = &planned[by].plan else {
        unreachable!("only a parse is shared");
    };
    check_oids(types, b)?;
    write_bind(name, b, None, buf)?;
    frontend::execute("", 0, buf)?;
    Ok(())
}

/// Reads a batch's answers, statement by statement.
struct BatchReader<'p, 'a> {
    planned: &'p [Planned<'a>],
    outcomes: Vec<Outcome>,
    /// What Parse and Describe said, for the statements that parse.
    parsed: HashMap<usize, Answer>,
    /// The statement being answered.
    pos: usize,
    /// Its columns, once known (set at its BindComplete).
    columns: Option<Arc<[Column]>>,
    /// The first statement of the unit being answered, and whether the unit failed.
    unit_start: usize,
    unit_failed: bool,
    /// The transaction status before the unit being answered.
    status: TransactionStatus,
}

impl<'p, 'a> BatchReader<'p, 'a> {
    fn new(planned: &'p [Planned<'a>], status: TransactionStatus) -> Self {
        let outcomes = planned
            .iter()
            .map(|_| Outcome {
                rows: Vec::new(),
                affected: 0,
                error: None,
                done: false,
            })
            .collect();
        BatchReader {
            planned,
            outcomes,
            parsed: HashMap::new(),
            pos: 0,
            columns: None,
            unit_start: 0,
            unit_failed: false,
            status,
        }
    }

    fn answer(&mut self) -> &mut Answer {
        self.parsed.entry(self.pos).or_default()
    }

    /// The columns the statement at `pos` returns.
    fn columns_of(&self, pos: usize) -> Option<Arc<[Column]>> {
        let p = self.planned.get(pos)?;
        match (&p.columns, p.parsed_by) {
            (Some(columns), _) => Some(columns.clone()),
            (None, Some(by)) => self.parsed.get(&by)?.columns.clone(),
            (None, None) => None,
        }
    }

    fn complete(&mut self, affected: u64) {
        let o = &mut self.outcomes[self.pos];
        o.affected = affected;
        o.done = true;
        self.pos += 1;
        self.columns = None;
    }
}

impl Handler for BatchReader<'_, '_> {
    fn message(&mut self, msg: BackendMessage) -> Result<Flow, BackendMessage> {
        if self.pos >= self.planned.len() {
            return Err(msg);
        }
        match msg {
            BackendMessage::DataRow(row) => match &self.columns {
                Some(cols) if cols.len() == row.len() => {
                    if self.planned[self.pos].keep_rows {
                        let row = Row::new(cols.clone(), row);
                        self.outcomes[self.pos].rows.push(row);
                    }
                }
                _ => return Err(BackendMessage::DataRow(row)),
            },
            BackendMessage::ParseComplete => self.answer().parsed = true,
            BackendMessage::ParameterDescription(oids) => self.answer().param_types = Some(oids),
            BackendMessage::RowDescription(fields) => {
                let columns = fields.into_iter().map(Column::from_field).collect();
                self.answer().columns = Some(columns);
            }
            BackendMessage::NoData => self.answer().columns = Some(Arc::from(Vec::new())),
            BackendMessage::BindComplete => self.columns = self.columns_of(self.pos),
            // The Close of a name about to be parsed again.
            BackendMessage::CloseComplete => {}
            BackendMessage::CommandComplete(tag) => self.complete(rows_affected(&tag)),
            BackendMessage::EmptyQueryResponse => self.complete(0),
            msg => return Err(msg),
        }
        Ok(Flow::Continue)
    }

    fn keep_error(&mut self, e: Error) -> Option<Error> {
        if e.is_connection_fatal() || self.pos >= self.planned.len() {
            return Some(e);
        }
        let failed = self.pos;
        let end = self.planned[failed].unit_end;
        self.outcomes[failed].error = Some(e);
        for later in failed + 1..=end {
            self.outcomes[later].error = Some(Error::new(
                ErrorKind::Skipped,
                format!(
                    "batch statement {later} was not run: statement {failed} of its unit failed"
                ),
            ));
        }
        self.unit_failed = true;
        self.pos = end + 1;
        self.columns = None;
        None
    }

    fn ready(&mut self, status: TransactionStatus) {
        // A unit that failed outside a transaction block ran as one implicit
        // transaction, now rolled back: the work of its earlier statements is undone.
        let undone = self.unit_failed
            && self.status == TransactionStatus::Idle
            && status == TransactionStatus::Idle;
        if undone {
            let failed = (self.unit_start..self.pos)
                .find(|&i| self.outcomes[i].error.is_some())
                .unwrap_or(self.unit_start);
            for i in self.unit_start..failed {
                let o = &mut self.outcomes[i];
                o.rows.clear();
                o.error = Some(Error::new(
                    ErrorKind::RolledBack,
                    format!(
                        "the work of batch statement {i} was rolled back: statement {failed} \
                         of its unit failed"
                    ),
                ));
            }
        }
        self.unit_start = self.pos;
        self.unit_failed = false;
        self.status = status;
    }
}
