//! Pipelining across tasks: many callers' statements share one write and one read.
//!
//! A call that can go out as a plain Bind/Execute/Sync (a statement already prepared on
//! this connection, outside any guard) does not wait for the wire lock to encode. It
//! encodes its request into a [`Slot`] and queues the slot here. Then it either finds
//! its answer already delivered or takes the wire lock; whoever holds the lock writes
//! every queued request in one write, reads answers in order and hands each to its
//! slot, waking its owner, until its own answer is in. Callers that wait on the lock
//! therefore usually find their answer ready when they get it.
//!
//! The ledger sees this as [`State::Pipelined`]: every written request owes one
//! ReadyForQuery, and its slot sits in the written queue in the order the server answers.
//! An exclusive exchange (a transaction, a row stream, COPY, a statement not yet
//! prepared) reads every pipelined answer first, so it always starts on a wire that
//! owes nothing.
//!
//! The promises, per slot:
//! - A call dropped before its request was written takes it out of the queue: nothing
//!   is sent.
//! - A call dropped after its request was written marks its slot abandoned: its rows are
//!   dropped as they arrive and never reach anyone.
//! - A CancelRequest names no query, so it is sent only when every request still owed
//!   is abandoned and nothing new is written until the server has taken it: it can only
//!   stop abandoned work. While a live caller waits behind an abandoned request, the
//!   server finishes the abandoned one.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use futures::{FutureExt, SinkExt, StreamExt};

use super::bind::{Binding, check_count, check_types, write_bind};
use super::cache::StatementCache;
use super::ledger::State;
use super::query::{Params, is_stale_statement};
use super::shared::CANCEL_REPEAT;
use super::wire::{Wire, WireGuard};
use super::{Inner, StatementRef, ToStatement};
use crate::codec::Frontend;
use crate::error::{DbError, Error, ErrorKind};
use crate::protocol::backend::rows_affected;
use crate::protocol::frontend;
use crate::protocol::{BackendMessage, ProtocolError, TransactionStatus};
use crate::row::Row;
use crate::statement::{Column, Statement};
use crate::types::Type;

/// How long a holder waits for an abandoned request to finish by itself before it asks
/// the server to cancel it (a CancelRequest costs the server a process).
const CANCEL_GRACE: Duration = Duration::from_millis(5);

/// The statement cache and the queues of pipelined requests, shared by every handle of
/// one connection.
#[derive(Debug)]
pub(crate) struct Pipe {
    state: StdMutex<PipeState>,
    /// Requests written through the pipeline, and the writes that carried them.
    requests: AtomicU64,
    writes: AtomicU64,
}

/// What [`Pipe`] guards.
#[derive(Debug)]
pub(crate) struct PipeState {
    /// Statements prepared from SQL text, by SQL and parameter types.
    pub(crate) cache: StatementCache,
    /// Requests encoded and not yet written.
    queue: VecDeque<Arc<Slot>>,
    /// Requests written and not yet answered, in the order the server answers them.
    written: VecDeque<Arc<Slot>>,
}

impl Pipe {
    pub(crate) fn new(cache_capacity: usize) -> Pipe {
        Pipe {
            state: StdMutex::new(PipeState {
                cache: StatementCache::new(cache_capacity),
                queue: VecDeque::new(),
                written: VecDeque::new(),
            }),
            requests: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
    }

    /// Requests written through the pipeline, and the writes that carried them.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }

    /// The cache and queues, locked (briefly: never held across an await).
    pub(crate) fn lock(&self) -> MutexGuard<'_, PipeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether every written request is abandoned (true when none is written).
    fn all_written_abandoned(&self) -> bool {
        self.lock().written.iter().all(|s| s.lock().abandoned)
    }

    /// The owner of `slot` is gone: a queued request is withdrawn, a written one is
    /// marked abandoned. Returns whether every written request is now abandoned.
    fn abandon(&self, slot: &Arc<Slot>) -> bool {
        let mut p = self.lock();
        let mut s = slot.lock();
        match s.phase {
            Phase::Queued => {
                drop(s);
                p.queue.retain(|q| !Arc::ptr_eq(q, slot));
                false
            }
            Phase::Written => {
                s.abandoned = true;
                s.rows = Vec::new();
                drop(s);
                p.written.iter().all(|w| w.lock().abandoned)
            }
            Phase::Done => false,
        }
    }
}

/// Where a pipelined request stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    #[default]
    Queued,
    Written,
    Done,
}

/// One pipelined request and, once read, its answer.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    m: StdMutex<SlotState>,
}

#[derive(Debug, Default)]
struct SlotState {
    phase: Phase,
    /// The encoded Bind, Execute and Sync, until written.
    request: BytesMut,
    /// The owner is gone: the answer is read and dropped.
    abandoned: bool,
    /// Whether rows are kept (`query`) or only counted (`execute`).
    keep_rows: bool,
    /// The statement it runs (its columns type the rows).
    stmt: Option<Statement>,
    rows: Vec<Row>,
    affected: u64,
    /// The first server error of the answer.
    error: Option<Error>,
    /// The transaction status the answer ended with.
    status: Option<TransactionStatus>,
    waker: Option<Waker>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ready with the answer once it is complete; registers the waker otherwise.
    fn poll_done(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.lock();
        match s.phase {
            Phase::Done => Poll::Ready(()),
            _ => {
                if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    s.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    fn is_done(&self) -> bool {
        self.lock().phase == Phase::Done
    }

    /// Ends the answer (its rows are dropped if the call is gone); wakes the owner, if
    /// one waits (`true` then).
    fn finish(
        &self,
        rows: Vec<Row>,
        affected: u64,
        error: Option<Error>,
        status: Option<TransactionStatus>,
    ) -> bool {
        let mut s = self.lock();
        if !s.abandoned {
            s.rows = rows;
        }
        s.affected = affected;
        s.error = error;
        s.status = status;
        s.phase = Phase::Done;
        match s.waker.take() {
            Some(w) => {
                drop(s);
                w.wake();
                true
            }
            None => false,
        }
    }
}

/// The answer being read, kept with the wire (not the reader) so that a reader dropped
/// mid-answer leaves it for the next one; handed to its slot whole at its ReadyForQuery.
#[derive(Debug, Default)]
pub(crate) struct Reading {
    slot: Option<Arc<Slot>>,
    /// The columns of kept rows; `None` when rows are only counted or the call is gone.
    columns: Option<Arc<[Column]>>,
    rows: Vec<Row>,
    affected: u64,
    error: Option<Error>,
}

impl Reading {
    fn start(&mut self, slot: Arc<Slot>) {
        let s = slot.lock();
        self.columns = match (&s.stmt, s.keep_rows && !s.abandoned) {
            (Some(stmt), true) => Some(stmt.columns_arc().clone()),
            _ => None,
        };
        drop(s);
        self.slot = Some(slot);
    }

    /// Hands the answer to its slot (dropped if its call is gone) and wakes the owner;
    /// whether an owner was woken.
    fn finish(&mut self, status: TransactionStatus) -> bool {
        let done = std::mem::take(self);
        done.slot
            .is_some_and(|slot| slot.finish(done.rows, done.affected, done.error, Some(status)))
    }
}

/// What a pipelined call came to.
pub(crate) enum Piped {
    /// The answer: rows (when kept) and the count of rows affected.
    Done(Vec<Row>, u64),
    /// The cached statement is gone or stale on the server and nothing ran: take the
    /// locked path, which prepares it again.
    Stale,
}

/// Whether SQL text may run pipelined: anything but COPY (whose FROM STDIN form would
/// wait for data). Leading comments make the check give up: such SQL takes the lock.
pub(super) fn pipelinable_sql(sql: &str) -> bool {
    first_keyword(sql).is_some_and(|word| !word.eq_ignore_ascii_case("copy"))
}

/// The first word of SQL text (its leading letters), without allocating; `None` when
/// the text starts with a comment, whose contents the check would have to parse.
pub(crate) fn first_keyword(sql: &str) -> Option<&str> {
    let head = sql.trim_start();
    if head.starts_with("--") || head.starts_with("/*") {
        return None;
    }
    let end = head
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(head.len());
    Some(&head[..end])
}

impl Inner {
    /// Encodes a call as a pipelined request and queues it; `None` when it must take
    /// the locked path instead (the statement is not prepared yet, or its rows need
    /// more than a plain Bind/Execute).
    pub(crate) fn enqueue<T: ToStatement + ?Sized>(
        &self,
        statement: &T,
        params: Params<'_>,
        keep_rows: bool,
    ) -> Result<Option<Arc<Slot>>, Error> {
        let shared = &self.shared;
        if !shared.pipelining() {
            return Ok(None);
        }
        shared.check()?;
        shared.check_not_holder("a query")?;
        let b = Binding::new(params);
        let stmt = match statement.statement_ref() {
            StatementRef::Sql(sql) if pipelinable_sql(sql) => {
                let found = shared.pipe.lock().cache.get_with(sql, b.oids());
                let Some(stmt) = found else { return Ok(None) };
                check_count(stmt.params(), params)?;
                if b.needs_check() {
                    check_types(stmt.params(), b)?;
                }
                stmt
            }
            StatementRef::Sql(_) => return Ok(None),
            StatementRef::Prepared(stmt) if stmt.reparse_sql().is_none() && stmt.pipelinable() => {
                super::query::check_prepared(shared.id, stmt, params)?;
                stmt.clone()
            }
            StatementRef::Prepared(_) => return Ok(None),
        };
        if stmt.columns().iter().any(|c| *c.type_() == Type::RECORD) {
            return Ok(None); // records may need their field types looked up per answer
        }
        let mut request = BytesMut::with_capacity(64);
        write_bind(stmt.name(), b, Some(stmt.params()), &mut request)?;
        frontend::execute("", 0, &mut request)?;
        frontend::sync(&mut request);
        let slot = Arc::new(Slot {
            m: StdMutex::new(SlotState {
                request,
                keep_rows,
                stmt: Some(stmt),
                ..SlotState::default()
            }),
        });
        shared.pipe.lock().queue.push_back(slot.clone());
        Ok(Some(slot))
    }
}

impl super::Connection {
    /// Whether a call of `statement` would go through the pipeline now (its statement is
    /// prepared on this connection), so that it never holds the wire exclusively.
    pub(crate) fn would_pipeline<T: ToStatement + ?Sized>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> bool {
        let shared = &self.inner.shared;
        let StatementRef::Sql(sql) = statement.statement_ref() else {
            return false;
        };
        if !shared.pipelining() || !pipelinable_sql(sql) || shared.check().is_err() {
            return false;
        }
        let found = shared
            .pipe
            .lock()
            .cache
            .get_with(sql, Binding::new(params).oids());
        found.is_some_and(|s| s.columns().iter().all(|c| *c.type_() != Type::RECORD))
    }
}

/// A queued request's call: waits for its answer or for the wire, whichever comes
/// first, and leads the pipeline while it holds the wire.
pub(crate) struct PipedCall<'c> {
    inner: &'c Inner,
    slot: Arc<Slot>,
    guard: Option<WireGuard>,
}

impl<'c> PipedCall<'c> {
    pub(crate) fn new(inner: &'c Inner, slot: Arc<Slot>) -> Self {
        PipedCall {
            inner,
            slot,
            guard: None,
        }
    }

    /// Runs the call to its answer.
    ///
    /// # Errors
    /// The server's error for this request, or the failure that broke the connection.
    pub(crate) async fn run(&mut self) -> Result<Piped, Error> {
        loop {
            if self.slot.is_done() {
                return self.answer();
            }
            let guard = match self.inner.wire.clone().try_lock_owned() {
                Ok(g) => g,
                Err(_) => {
                    let lock = self.inner.wire.clone().lock_owned();
                    let mut lock = std::pin::pin!(lock);
                    let slot = &self.slot;
                    let got = poll_fn(|cx| match slot.poll_done(cx) {
                        Poll::Ready(()) => Poll::Ready(None),
                        Poll::Pending => lock.as_mut().poll(cx).map(Some),
                    })
                    .await;
                    match got {
                        Some(g) => g,
                        None => continue,
                    }
                }
            };
            let guard = self.guard.insert(WireGuard::new(guard, "pipelined query"));
            guard.pump(&self.slot).await?;
            self.guard = None;
        }
    }

    /// The answer of a finished slot.
    fn answer(&mut self) -> Result<Piped, Error> {
        let mut s = self.slot.lock();
        match s.error.take() {
            Some(e)
                if is_stale_statement(Some(&e)) && s.status == Some(TransactionStatus::Idle) =>
            {
                let stmt = s.stmt.take();
                drop(s);
                match stmt {
                    // A statement the user prepared is theirs to prepare again.
                    Some(stmt) if stmt.is_user_prepared() => Err(e),
                    Some(stmt) => {
                        // Parsed again under the same name (closed first in that batch).
                        let _ = self
                            .inner
                            .shared
                            .pipe
                            .lock()
                            .cache
                            .remove_statement(stmt.name());
                        Ok(Piped::Stale)
                    }
                    None => Err(e),
                }
            }
            Some(e) => Err(e),
            None => Ok(Piped::Done(std::mem::take(&mut s.rows), s.affected)),
        }
    }
}

impl Drop for PipedCall<'_> {
    fn drop(&mut self) {
        let all_abandoned = self.inner.shared.pipe.abandon(&self.slot);
        if all_abandoned && self.guard.is_none() {
            // Nobody may hold the wire to read what the abandoned requests owe: take it,
            // and the guard's drop drains them (see `WireGuard`'s drop).
            if let Ok(g) = self.inner.wire.clone().try_lock_owned() {
                self.guard = Some(WireGuard::new(g, "draining abandoned pipelined requests"));
            }
        }
    }
}

impl Wire {
    /// Leads the pipeline until `mine` is answered: writes every queued request in one
    /// write, reads answers in order and hands each to its slot. Then hands on whatever
    /// else has already arrived, without waiting.
    pub(crate) async fn pump(&mut self, mine: &Slot) -> Result<(), Error> {
        self.shared.check()?;
        if self.io.is_none() {
            return Err(Error::closed());
        }
        if self.ledger.is_paused() || self.ledger.is_copying() {
            self.settle().await?;
        }
        if !matches!(self.ledger.state, State::Ready | State::Pipelined) {
            return Err(Error::broken());
        }
        if self.owes_only_abandoned() {
            // Stop abandoned work before anything live is written behind it.
            self.drain_pipeline().await?;
        }
        // Answers already buffered are handed on before anything is written, so the
        // requests other tasks queue meanwhile go out together, in one write, when the
        // leader would otherwise wait for the socket. With nothing owed, whatever the
        // server said meanwhile (a FATAL error before it closed an idle session) is read
        // as the answer to what is written first, as on the locked path.
        while !mine.is_done() {
            if matches!(self.ledger.state, State::Pipelined) {
                if let Some(msg) = self.io_mut().next().now_or_never() {
                    self.dispatch_piped(msg)?;
                    continue;
                }
                if std::mem::take(&mut self.owners_woken) {
                    // Owners woken since the last yield (by this leader or the one before)
                    // are runnable: let them queue their next requests before this write,
                    // while the server still has owed work.
                    tokio::task::yield_now().await;
                    continue;
                }
            }
            self.queue_closes();
            self.write_queued();
            self.flush_piped().await?;
            if mine.is_done() {
                break;
            }
            let msg = self.io_mut().next().await;
            self.dispatch_piped(msg)?;
        }
        self.read_arrived_piped()
    }

    /// Reads every pipelined answer still owed (an exclusive exchange is about to
    /// begin). When all of them are abandoned, the one running is cancelled after a
    /// short grace (none on a pooled connection under the Recover policy, which is out
    /// of its pool until this ends), and the cancel is repeated every
    /// [`CANCEL_REPEAT`] while that request still runs: PostgreSQL drops a cancel that
    /// lands between the messages of an exchange. Each cancel is confirmed before
    /// anything else is done and nothing is written meanwhile, so a cancel can stop
    /// abandoned work only.
    pub(crate) async fn drain_pipeline(&mut self) -> Result<(), Error> {
        let grace = match self.shared.recoverable.load(Ordering::Acquire) {
            true => Duration::ZERO,
            false => CANCEL_GRACE,
        };
        let mut cancelled: Option<(Arc<Slot>, tokio::time::Instant)> = None;
        while matches!(self.ledger.state, State::Pipelined) {
            self.flush_piped().await?;
            let head = self.shared.pipe.lock().written.front().cloned();
            let wait = match (&head, &cancelled) {
                (Some(h), Some((c, at))) if Arc::ptr_eq(h, c) => {
                    Some(CANCEL_REPEAT.saturating_sub(at.elapsed()))
                }
                (Some(_), _) => Some(grace),
                (None, _) => None,
            };
            if let Some(wait) = wait.filter(|_| self.shared.pipe.all_written_abandoned()) {
                match tokio::time::timeout(wait, self.io_mut().next()).await {
                    Ok(msg) => self.dispatch_piped(msg)?,
                    Err(_) => {
                        if let Err(e) = self.shared.cancel.cancel_query().await {
                            self.break_off(&e.to_string());
                            return Err(e);
                        }
                        cancelled = head.map(|h| (h, tokio::time::Instant::now()));
                    }
                }
                continue;
            }
            let msg = self.io_mut().next().await;
            self.dispatch_piped(msg)?;
        }
        Ok(())
    }

    /// Whether abandoned pipelined requests are all the wire owes (someone must read them).
    pub(crate) fn owes_only_abandoned(&self) -> bool {
        matches!(self.ledger.state, State::Pipelined) && self.shared.pipe.all_written_abandoned()
    }

    fn io_mut(&mut self) -> &mut super::wire::Io {
        self.io
            .as_mut()
            .expect("pipelined reads happen on an open socket")
    }

    /// Queues the Closes of statements dropped by the user or evicted from the cache,
    /// first, as a request of their own that nobody waits for.
    fn queue_closes(&mut self) {
        let dropped = self.shared.take_dropped_statements();
        self.to_close.extend(dropped);
        if self.to_close.is_empty() {
            return;
        }
        let mut request = BytesMut::new();
        for name in std::mem::take(&mut self.to_close) {
            // Names are ours and NUL-free, so this cannot fail.
            let _ = frontend::close(super::portal::close_target(&name), &name, &mut request);
        }
        frontend::sync(&mut request);
        let slot = Arc::new(Slot {
            m: StdMutex::new(SlotState {
                request,
                abandoned: true,
                ..SlotState::default()
            }),
        });
        self.shared.pipe.lock().queue.push_front(slot);
    }

    /// Moves every queued request into the write buffer.
    fn write_queued(&mut self) {
        let Some(io) = self.io.as_mut() else { return };
        let mut p = self.shared.pipe.lock();
        if p.queue.is_empty() {
            return;
        }
        let buf = io.write_buffer_mut();
        let n = p.queue.len() as u64;
        self.shared.pipe.requests.fetch_add(n, Ordering::Relaxed);
        self.shared.pipe.writes.fetch_add(1, Ordering::Relaxed);
        while let Some(slot) = p.queue.pop_front() {
            let mut s = slot.lock();
            buf.extend_from_slice(&s.request);
            s.request = BytesMut::new();
            s.phase = Phase::Written;
            drop(s);
            self.ledger.owe();
            p.written.push_back(slot);
        }
        self.ledger.state = State::Pipelined;
    }

    /// Sends what is buffered; a failure breaks the connection and every written slot.
    async fn flush_piped(&mut self) -> Result<(), Error> {
        let io = self.io_mut();
        if io.write_buffer().is_empty() {
            return Ok(());
        }
        match SinkExt::<Frontend<'_>>::flush(io).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail_piped(e)),
        }
    }

    /// Hands on the answers that have already arrived, without waiting for more.
    fn read_arrived_piped(&mut self) -> Result<(), Error> {
        while matches!(self.ledger.state, State::Pipelined) {
            match self.io_mut().next().now_or_never() {
                Some(msg) => self.dispatch_piped(msg)?,
                None => break,
            }
        }
        Ok(())
    }

    /// Handles one message of a pipelined answer.
    fn dispatch_piped(&mut self, msg: Option<Result<BackendMessage, Error>>) -> Result<(), Error> {
        let msg = match msg {
            Some(Ok(msg)) => msg,
            Some(Err(e)) => return Err(self.fail_piped(e)),
            None => {
                let e = Error::new(
                    ErrorKind::Closed,
                    "the server closed the connection unexpectedly",
                );
                return Err(self.fail_piped(e));
            }
        };
        // What the server sends on its own belongs to no answer.
        let Some(msg) = self.unsolicited(msg) else {
            return Ok(());
        };
        if self.reading.slot.is_none() {
            let head = self.shared.pipe.lock().written.front().cloned();
            match head {
                Some(head) => self.reading.start(head),
                None => return Err(self.unexpected_piped(&msg)),
            }
        }
        let r = &mut self.reading;
        match msg {
            BackendMessage::ReadyForQuery(status) => {
                if !self.ledger.paid() {
                    return Err(self.unexpected_piped(&BackendMessage::ReadyForQuery(status)));
                }
                self.shared.set_transaction_status(status);
                let mut p = self.shared.pipe.lock();
                p.written.pop_front();
                if p.written.is_empty() && self.ledger.owed == 0 {
                    self.ledger.state = State::Ready;
                }
                drop(p);
                self.owners_woken |= self.reading.finish(status);
            }
            BackendMessage::DataRow(row) => match &r.columns {
                Some(columns) if columns.len() == row.len() => {
                    r.rows.push(Row::new(columns.clone(), row))
                }
                Some(_) => return Err(self.unexpected_piped(&BackendMessage::DataRow(row))),
                None => {} // counted only, or abandoned
            },
            BackendMessage::CommandComplete(tag) => r.affected = rows_affected(&tag),
            BackendMessage::BindComplete
            | BackendMessage::CloseComplete
            | BackendMessage::EmptyQueryResponse
            | BackendMessage::CopyOutResponse(_)
            | BackendMessage::CopyData(_)
            | BackendMessage::CopyDone => {}
            BackendMessage::ErrorResponse(fields) => {
                let e = Error::db(DbError::from_fields(fields));
                self.shared.note_error(&e);
                r.error.get_or_insert(e);
            }
            msg => return Err(self.unexpected_piped(&msg)),
        }
        Ok(())
    }

    /// Breaks the connection because the server sent `msg` where it is not allowed.
    fn unexpected_piped(&mut self, msg: &BackendMessage) -> Error {
        let got = msg.name();
        let e: Error = ProtocolError::Unexpected {
            got,
            during: "reading pipelined answers",
        }
        .into();
        self.fail_piped(e)
    }

    /// Breaks the connection because of `err`; every written request learns that its
    /// answer is lost with it. Returns `err`.
    fn fail_piped(&mut self, err: Error) -> Error {
        self.reading = Reading::default();
        let written: Vec<Arc<Slot>> = self.shared.pipe.lock().written.drain(..).collect();
        self.break_off(&err.to_string());
        for slot in written {
            let lost = Error::new(
                ErrorKind::Broken,
                format!(
                    "the connection broke before this pipelined statement's answer arrived: {err}"
                ),
            );
            let _ = slot.finish(Vec::new(), 0, Some(lost), None);
        }
        err
    }
}
