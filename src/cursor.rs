//! Portals and scrollable cursors: result sets read a piece at a time, on the server.
//!
//! - A [`Portal`] is a statement bound to its parameters inside a transaction
//!   ([`Transaction::bind`]), read `max_rows` at a time with
//!   [`Transaction::query_portal`], as tokio-postgres has them.
//! - A [`Cursor`] is a SQL cursor (`DECLARE … [NO] SCROLL CURSOR [WITH HOLD]`) behind a
//!   typed API: [`Cursor::next`], [`Cursor::prior`], [`Cursor::absolute`], … Moving
//!   forward fetches [`CursorOptions::batch_rows`] rows at a time into a local window, so
//!   reading row by row costs one round trip per batch, not per row.
//!
//! Both are closed on the server when dropped: the Close goes out with the connection's
//! next exchange (no extra round trip, and `Drop` never waits). See `docs/CURSORS.md`.

mod nav;
mod portal;

use std::sync::Arc;
use std::time::Duration;

use self::nav::{Nav, Op, Span};
pub use self::portal::Portal;
use self::portal::{bind_on, query_portal_on};
use crate::connection::portal::{CURSOR_PREFIX, Command};
use crate::connection::wire::Shared;
use crate::connection::{Binding, Connection, Params, ToStatement, bounded_call};
use crate::error::{Error, ErrorKind};
use crate::row::Row;
use crate::statement::Column;
use crate::transaction::{Savepoint, Transaction};
use crate::types::{BorrowToSql, as_refs, collect_params};

/// The default number of rows a [`Cursor`] fetches per round trip when moving forward.
pub const DEFAULT_CURSOR_BATCH: u32 = 256;

/// How a [`Cursor`] is declared: scrollable or not, held past its transaction or not,
/// and how many rows it fetches per round trip.
///
/// ```
/// use pgkeel::CursorOptions;
/// let options = CursorOptions::new().scroll(true).batch_rows(500);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorOptions {
    scroll: bool,
    with_hold: bool,
    batch_rows: u32,
}

impl Default for CursorOptions {
    fn default() -> Self {
        CursorOptions {
            scroll: true,
            with_hold: false,
            batch_rows: DEFAULT_CURSOR_BATCH,
        }
    }
}

impl CursorOptions {
    /// Scrollable, not held, [`DEFAULT_CURSOR_BATCH`] rows per batch.
    pub fn new() -> CursorOptions {
        CursorOptions::default()
    }

    /// `SCROLL` (the default) or `NO SCROLL`: without scroll, a move that needs rows
    /// before the server cursor's position is refused with [`ErrorKind::Misuse`]; the
    /// server may then run the query more cheaply.
    pub fn scroll(mut self, scroll: bool) -> CursorOptions {
        self.scroll = scroll;
        self
    }

    /// `WITH HOLD`: the cursor outlives its transaction (PostgreSQL copies the whole
    /// result at COMMIT) and holds server memory until closed. Required for a cursor
    /// declared on a [`Connection`]; refused in pooler mode.
    pub fn with_hold(mut self, with_hold: bool) -> CursorOptions {
        self.with_hold = with_hold;
        self
    }

    /// Rows fetched per round trip when moving forward (at least 1).
    pub fn batch_rows(mut self, rows: u32) -> CursorOptions {
        self.batch_rows = rows.max(1);
        self
    }

    fn declare_sql(&self, name: &str, sql: &str) -> String {
        let scroll = if self.scroll { "SCROLL" } else { "NO SCROLL" };
        let hold = if self.with_hold { "WITH" } else { "WITHOUT" };
        format!("DECLARE {name} {scroll} CURSOR {hold} HOLD FOR {sql}")
    }

    fn check(&self, shared: &Shared) -> Result<(), Error> {
        match self.with_hold && shared.pooler_mode() {
            true => Err(Error::new(
                ErrorKind::Misuse,
                "CursorOptions::with_hold is refused in pooler mode: a held cursor outlives \
                 its transaction, and a transaction-mode pooler may give the next \
                 transaction another server connection, where the cursor does not exist",
            )),
            false => Ok(()),
        }
    }
}

/// The wire a cursor moves on: a transaction's, or its connection's (held cursors).
enum Access<'a> {
    Borrowed(tokio::sync::MappedMutexGuard<'a, crate::connection::wire::WireGuard>),
    Conn(Connection),
}

/// A server-side cursor over a query's rows, moved with typed calls. See the module docs
/// and `docs/CURSORS.md`.
///
/// Positions are PostgreSQL's: [`Cursor::position`] is 0 before the first row and
/// `n + 1` after the last of `n`. A cursor without `WITH HOLD` borrows the transaction
/// it was declared in; dropped, it is closed with the transaction's next statement.
///
/// ```no_run
/// # async fn demo(conn: pgkeel::Connection) -> Result<(), pgkeel::Error> {
/// use pgkeel::CursorOptions;
/// let mut tx = conn.transaction().await?;
/// let mut cursor = tx
///     .declare_cursor("SELECT g FROM generate_series(1, 10000) g", &[], CursorOptions::new())
///     .await?;
/// let last = cursor.last().await?.expect("a last row");
/// assert_eq!(last.get::<_, i32>(0), 10000);
/// while let Some(row) = cursor.next().await? {
///     // after the last row: no more rows
/// }
/// let first = cursor.absolute(1).await?;
/// cursor.close().await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
///
/// # Cancel safety
/// A move dropped mid-exchange leaves the connection broken (or, with recovery opted in,
/// recovered), as any query; the cursor then refuses further moves, since its position
/// on the server is unknown.
pub struct Cursor<'a> {
    access: Access<'a>,
    name: String,
    nav: Nav<Row>,
    columns: Option<Arc<[Column]>>,
    shared: Arc<Shared>,
    limit: Option<Duration>,
    round_trips: u64,
    /// Set while a move is under way; still set afterwards, the move failed or was
    /// dropped and the server's position is unknown.
    unsure: bool,
    closed: bool,
}

impl<'a> Cursor<'a> {
    /// Declares the cursor on `access`.
    async fn declare(
        mut access: Access<'a>,
        sql: &str,
        params: Params<'_>,
        options: CursorOptions,
    ) -> Result<Cursor<'a>, Error> {
        let shared = access.shared();
        options.check(&shared)?;
        let limit = shared.limits.query;
        let name = bounded_call!(limit, {
            let mut guard;
            let wire = match &mut access {
                Access::Borrowed(w) => &mut **w,
                Access::Conn(c) => {
                    guard = c.lock("declare_cursor").await?;
                    &mut *guard
                }
            };
            let name = wire.portal_name(CURSOR_PREFIX);
            let declare = options.declare_sql(&name, sql);
            wire.declare(&declare, Binding::new(params)).await?;
            Ok::<_, Error>(name)
        })?;
        Ok(Cursor {
            access,
            name,
            nav: Nav::new(u64::from(options.batch_rows), options.scroll),
            columns: None,
            shared,
            limit,
            round_trips: 0,
            unsure: false,
            closed: false,
        })
    }

    /// The current position: 0 before the first row, `n` on row `n`, `total + 1` after
    /// the last row.
    pub fn position(&self) -> u64 {
        self.nav.position()
    }

    /// The number of rows, once a move has reached the end of the result (`last`, a
    /// move past the end), else `None`.
    pub fn total_rows(&self) -> Option<u64> {
        self.nav.total()
    }

    /// How many round trips the cursor's moves have made to the server (the DECLARE not
    /// counted): moving forward row by row costs one per batch.
    pub fn round_trips(&self) -> u64 {
        self.round_trips
    }

    /// The cursor's name on the server.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Moves to the next row and returns it; `None` after the last row (the position is
    /// then `total + 1`).
    ///
    /// # Errors
    /// A server error (the transaction is then failed); [`ErrorKind::Misuse`] after a move
    /// that failed or was dropped; [`ErrorKind::Broken`]/[`ErrorKind::Closed`].
    ///
    /// # Cancel safety
    /// Served from the window: nothing to cancel. Dropped while fetching: see the type's
    /// docs.
    pub async fn next(&mut self) -> Result<Option<Row>, Error> {
        let t = self.nav.relative(1);
        self.go(t, Span::Ahead).await
    }

    /// Moves to the previous row and returns it; `None` before the first row.
    ///
    /// # Errors
    /// As [`Cursor::next`]; [`ErrorKind::Misuse`] for a cursor without scroll when the row
    /// is not in the window.
    pub async fn prior(&mut self) -> Result<Option<Row>, Error> {
        let t = self.nav.relative(-1);
        self.go(t, Span::Behind).await
    }

    /// Moves to the first row and returns it (`None` for an empty result).
    ///
    /// # Errors
    /// As [`Cursor::prior`].
    pub async fn first(&mut self) -> Result<Option<Row>, Error> {
        self.absolute(1).await
    }

    /// Moves to the last row and returns it (`None` for an empty result); learns the row
    /// count ([`Cursor::total_rows`]).
    ///
    /// # Errors
    /// As [`Cursor::prior`].
    pub async fn last(&mut self) -> Result<Option<Row>, Error> {
        self.absolute(-1).await
    }

    /// Moves to row `n` (`n < 0` counts from the end: −1 is the last row; 0 is before the
    /// first) and returns it; `None` with the position before the first or after the last
    /// row when `n` is out of range.
    ///
    /// # Errors
    /// As [`Cursor::prior`]; [`ErrorKind::Misuse`] past row 2³¹ − 1.
    pub async fn absolute(&mut self, n: i64) -> Result<Option<Row>, Error> {
        if n >= 0 {
            return self.go(n, Span::One).await;
        }
        if let Some(t) = self.nav.counted_from_end(n) {
            return self.go(t, Span::One).await;
        }
        let ops = self.nav.plan_from_end(n)?;
        self.run(&ops).await?;
        let t = self.nav.counted_from_end(n).unwrap_or(0);
        Ok(self.nav.settle(t).flatten())
    }

    /// Moves `n` rows from the current position (0: the current row again) and returns
    /// the row there.
    ///
    /// # Errors
    /// As [`Cursor::absolute`].
    pub async fn relative(&mut self, n: i64) -> Result<Option<Row>, Error> {
        let t = self.nav.relative(n);
        let span = if n < 0 { Span::Behind } else { Span::One };
        self.go(t, span).await
    }

    /// The next `k` rows, fewer at the end (tokio-postgres's `FETCH FORWARD k`); the
    /// position is then on the last row returned, or after the last row.
    ///
    /// # Errors
    /// As [`Cursor::next`].
    pub async fn forward(&mut self, k: u32) -> Result<Vec<Row>, Error> {
        let mut rows = Vec::new();
        for _ in 0..k {
            match self.next().await? {
                Some(row) => rows.push(row),
                None => break,
            }
        }
        Ok(rows)
    }

    /// The `k` rows before the current one, nearest first (`FETCH BACKWARD k`); the
    /// position is then on the last row returned, or before the first row.
    ///
    /// # Errors
    /// As [`Cursor::prior`].
    pub async fn backward(&mut self, k: u32) -> Result<Vec<Row>, Error> {
        let mut rows = Vec::new();
        for _ in 0..k {
            match self.prior().await? {
                Some(row) => rows.push(row),
                None => break,
            }
        }
        Ok(rows)
    }

    /// Closes the cursor on the server now (`CLOSE`), releasing what it holds.
    ///
    /// # Errors
    /// A server error; [`ErrorKind::Broken`]/[`ErrorKind::Closed`]. The cursor is closed
    /// with the connection's next exchange anyway.
    pub async fn close(mut self) -> Result<(), Error> {
        let close = Command {
            sql: format!("CLOSE {}", self.name),
            rows: false,
        };
        self.exchange(&[close]).await?;
        self.closed = true;
        Ok(())
    }

    /// Moves to `t`, from the window if it holds it, else with one round trip.
    async fn go(&mut self, t: i64, span: Span) -> Result<Option<Row>, Error> {
        self.check_sure()?;
        if let Some(row) = self.nav.settle(t) {
            return Ok(row);
        }
        let ops = self.nav.plan(t.unsigned_abs(), span)?;
        self.run(&ops).await?;
        Ok(self.nav.settle(t).flatten())
    }

    /// Runs FETCH/MOVE commands and updates the positions from their answers.
    async fn run(&mut self, ops: &[Op]) -> Result<(), Error> {
        self.check_sure()?;
        let commands: Vec<Command> = ops
            .iter()
            .map(|op| Command {
                sql: op.sql(&self.name),
                rows: op.fetches(),
            })
            .collect();
        let outcomes = self.exchange(&commands).await?;
        let answers = outcomes.into_iter().map(|o| (o.count, o.rows)).collect();
        self.nav.apply(ops, answers);
        Ok(())
    }

    /// One round trip of `commands` on the cursor's wire, under the query timeout.
    async fn exchange(
        &mut self,
        commands: &[Command],
    ) -> Result<Vec<crate::connection::portal::Outcome>, Error> {
        let limit = self.limit;
        let outcomes = bounded_call!(limit, {
            let mut guard;
            let wire = match &mut self.access {
                Access::Borrowed(w) => &mut **w,
                Access::Conn(c) => {
                    guard = c.lock("cursor").await?;
                    &mut *guard
                }
            };
            self.unsure = true;
            self.round_trips += 1;
            wire.cursor_commands(commands, &mut self.columns).await
        })?;
        self.unsure = false;
        Ok(outcomes)
    }

    fn check_sure(&self) -> Result<(), Error> {
        match self.unsure {
            false => Ok(()),
            true => Err(Error::new(
                ErrorKind::Misuse,
                "an earlier move of this cursor failed or was dropped, so where it stands \
                 on the server is unknown; close it and declare it again",
            )),
        }
    }
}

impl Access<'_> {
    fn shared(&mut self) -> Arc<Shared> {
        match self {
            Access::Borrowed(w) => w.shared.clone(),
            Access::Conn(c) => c.inner.shared.clone(),
        }
    }
}

impl Drop for Cursor<'_> {
    fn drop(&mut self) {
        if !self.closed {
            self.shared
                .statement_dropped(std::mem::take(&mut self.name));
        }
    }
}

impl std::fmt::Debug for Cursor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor")
            .field("name", &self.name)
            .field("position", &self.nav.position())
            .field("total_rows", &self.nav.total())
            .finish()
    }
}

/// Defines the portal and cursor methods [`Transaction`] and [`Savepoint`] share.
macro_rules! portal_methods {
    () => {
        /// Binds a statement and its parameters to a new named portal, to be read with
        /// [`Transaction::query_portal`] (tokio-postgres's `bind`).
        ///
        /// # Errors
        /// As [`Connection::query`]; a server error fails the transaction.
        ///
        /// # Cancel safety
        /// As [`Connection::query`].
        pub async fn bind<T: ToStatement + ?Sized>(
            &mut self,
            statement: &T,
            params: Params<'_>,
        ) -> Result<Portal, Error> {
            let limit = self.query_limit()?;
            bounded_call!(limit, {
                let mut guard = self.wire_ready().await?;
                let wire = &mut **guard;
                bind_on(wire, statement, params).await
            })
        }

        /// As `bind`, with the parameters from any iterator (tokio-postgres's
        /// `bind_raw`).
        ///
        /// # Errors
        /// As `bind`.
        pub async fn bind_raw<T, I>(&mut self, statement: &T, params: I) -> Result<Portal, Error>
        where
            T: ToStatement + ?Sized,
            I: IntoIterator,
            I::Item: BorrowToSql,
        {
            let owned = collect_params(params);
            self.bind(statement, &as_refs(&owned)).await
        }

        /// Reads at most `max_rows` more rows of `portal` (0 or less: all the rest);
        /// an empty page once it is exhausted.
        ///
        /// # Errors
        /// A server error (SQLSTATE 34000 when the portal's transaction has ended);
        /// [`ErrorKind::Misuse`] for a portal of another connection.
        ///
        /// # Cancel safety
        /// As [`Connection::query`].
        pub async fn query_portal(
            &mut self,
            portal: &Portal,
            max_rows: i32,
        ) -> Result<Vec<Row>, Error> {
            let limit = self.query_limit()?;
            bounded_call!(limit, {
                let mut guard = self.wire_ready().await?;
                let wire = &mut **guard;
                query_portal_on(wire, portal, max_rows).await
            })
        }

        /// Declares a cursor over `sql` inside this transaction; see [`Cursor`]. It
        /// borrows the transaction until dropped or closed.
        ///
        /// ```no_run
        /// # async fn demo(mut tx: pgkeel::Transaction) -> Result<(), pgkeel::Error> {
        /// let mut cursor = tx
        ///     .declare_cursor("SELECT * FROM big ORDER BY id", &[], pgkeel::CursorOptions::new())
        ///     .await?;
        /// while let Some(row) = cursor.next().await? {
        ///     // one round trip per batch of rows
        /// }
        /// # Ok(()) }
        /// ```
        ///
        /// # Errors
        /// A server error (invalid SQL; the transaction is then failed);
        /// [`ErrorKind::Misuse`] for `with_hold` in pooler mode.
        ///
        /// # Cancel safety
        /// As [`Connection::query`].
        pub async fn declare_cursor(
            &mut self,
            sql: &str,
            params: Params<'_>,
            options: CursorOptions,
        ) -> Result<Cursor<'_>, Error> {
            let wire = self.wire_ready().await?;
            Cursor::declare(Access::Borrowed(wire), sql, params, options).await
        }
    };
}

impl Transaction {
    portal_methods!();
}

impl Savepoint<'_> {
    portal_methods!();
}

impl Connection {
    /// Declares a `WITH HOLD` cursor on the connection, outside any transaction: it
    /// lives until closed (or dropped, which closes it with the connection's next
    /// exchange), holding its whole result in server memory from its first commit.
    ///
    /// ```no_run
    /// # async fn demo(conn: pgkeel::Connection) -> Result<(), pgkeel::Error> {
    /// use pgkeel::CursorOptions;
    /// let options = CursorOptions::new().with_hold(true);
    /// let mut cursor = conn.declare_cursor("SELECT 1", &[], options).await?;
    /// let row = cursor.next().await?;
    /// cursor.close().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Misuse`] unless `options` has `with_hold` (a cursor without it ends
    /// with the transaction it was declared in: declare it on a [`Transaction`]), and in
    /// pooler mode; as [`Connection::query`].
    ///
    /// # Cancel safety
    /// As [`Connection::query`].
    pub async fn declare_cursor(
        &self,
        sql: &str,
        params: Params<'_>,
        options: CursorOptions,
    ) -> Result<Cursor<'static>, Error> {
        if !options.with_hold {
            return Err(Error::new(
                ErrorKind::Misuse,
                "a cursor declared on a connection needs CursorOptions::with_hold(true); \
                 without it the cursor ends with its transaction: declare it on a Transaction",
            ));
        }
        Cursor::declare(Access::Conn(self.clone()), sql, params, options).await
    }
}

/// The examples of `docs/CURSORS.md`, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/CURSORS.md")]
struct CursorsDoc;
