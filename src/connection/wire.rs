//! The wire: the socket behind the wire lock, the ledger of what it owes, and the small
//! types that keep it honest.
//!
//! - [`Shared`] holds the **broken flag** (set once, never cleared) for handles that do
//!   not hold the lock. Every call checks it first and fails with
//!   [`crate::ErrorKind::Broken`] at once; a pool evicts on sight.
//! - [`WireGuard`] is a **wire lock acquisition that names its purpose**. Whoever holds it
//!   owns the socket; requests from different tasks never interleave.
//! - [`Ledger`] is the wire's protocol state and the count of ReadyForQuery it owes; it
//!   is only touched under the lock, by [`Wire::begin`] and the one reader in
//!   [`InFlight`], the **in-flight guard**.
//!
//! Cancel safety: taking the lock (`tokio::sync::Mutex::lock_owned`) and reading the next
//! message (bytes stay in the codec buffer until a frame is whole) are cancel safe. The
//! exchange between the first write and its last ReadyForQuery is not: the server's
//! reply would be left on the socket for the next caller. That span is exactly where
//! [`InFlight`] is armed.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use tokio::sync::OwnedMutexGuard;
use tokio_util::codec::Framed;

use super::inflight::log_notice;
pub(crate) use super::inflight::{Ended, Flow, Handler, InFlight};
use super::ledger::{Ledger, State};
use super::shared::CANCEL_REPEAT;
pub(crate) use super::shared::{Caller, HolderMark, Shared};
use crate::cancel::CancelOnDrop;
use crate::codec::{Frontend, PgCodec};
use crate::error::Error;
use crate::protocol::frontend::{self, Target};
use crate::protocol::{BackendMessage, TransactionStatus};
use crate::statement::Column;
use crate::transport::{Peek, Stream};

/// The socket as the codec sees it.
pub(crate) type Io = Framed<Stream, PgCodec>;

/// Where the Closes of queued statements go in a new exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closes {
    /// First, ahead of the request, in the same extended-protocol batch.
    Inline,
    /// First, ended by their own Sync (ahead of a simple Query, which an earlier
    /// extended-protocol error would otherwise make the server skip).
    Synced,
}

/// The socket and what lives with it; only ever touched under the wire lock.
#[derive(Debug)]
pub(crate) struct Wire {
    pub(super) io: Option<Io>,
    pub(crate) shared: Arc<Shared>,
    /// Statements to Close at the start of the next exchange (cache evictions).
    pub(crate) to_close: Vec<String>,
    /// What the wire owes the server's side of the conversation.
    pub(crate) ledger: Ledger,
    /// The pipelined answer being read, if one is under way.
    pub(super) reading: super::pipeline::Reading,
    /// A pipelined answer was handed to a waiting owner since a leader last yielded to
    /// the owners it woke before writing.
    pub(super) owners_woken: bool,
    next_name: u64,
    /// Functions resolved for fast-path calls.
    pub(crate) functions: super::fastpath::FunctionCache,
}

impl Wire {
    pub(crate) fn new(io: Io, shared: Arc<Shared>) -> Wire {
        Wire {
            io: Some(io),
            shared,
            to_close: Vec::new(),
            ledger: Ledger::default(),
            reading: Default::default(),
            owners_woken: false,
            next_name: 0,
            functions: Default::default(),
        }
    }

    /// A number unique on this connection, for the names of user-prepared statements.
    pub(crate) fn next_statement_number(&mut self) -> u64 {
        self.next_name += 1;
        self.next_name
    }

    /// The write buffer's length and the ledger now, for an exchange that may have to
    /// withdraw everything it wrote ([`InFlight::abandon_unsent`]).
    pub(super) fn mark(&self) -> (usize, Ledger) {
        let len = self.io.as_ref().map_or(0, |io| io.write_buffer().len());
        (len, self.ledger.clone())
    }

    /// Begins an exchange: settles a portal a row stream left paused, writes the Closes
    /// of queued statements first, and arms the in-flight guard. Nothing is sent until
    /// the caller flushes.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Closed`] or [`crate::ErrorKind::Broken`] when the socket can
    /// no longer be used.
    pub(crate) fn begin(
        &mut self,
        what: &'static str,
        closes: Closes,
    ) -> Result<InFlight<'_>, Error> {
        self.shared.check()?;
        let Some(io) = self.io.as_mut() else {
            return Err(Error::closed());
        };
        if !self.ledger.can_begin() {
            return Err(Error::broken());
        }
        let before = (io.write_buffer().len(), self.ledger.clone());
        let buf = io.write_buffer_mut();
        if self.ledger.is_paused() {
            // Names are ours and NUL-free, so this cannot fail.
            let _ = frontend::close(Target::Portal, "", buf);
            frontend::sync(buf);
            self.ledger.owe();
            self.ledger.discard += 1;
        }
        if self.ledger.is_copying() {
            super::copy::end_left_copy(&mut self.ledger, buf);
        }
        let dropped = self.shared.take_dropped_statements();
        self.to_close.extend(dropped);
        let names = std::mem::take(&mut self.to_close);
        for name in &names {
            let _ = frontend::close(super::portal::close_target(name), name, buf);
        }
        if closes == Closes::Synced && !names.is_empty() {
            frontend::sync(buf);
            self.ledger.owe();
        }
        self.ledger.state = State::Exchange;
        Ok(InFlight::new(self, names, what, before))
    }

    /// Resumes the exchange of a paused row stream; returns whether its next batch was
    /// already requested, and the columns it reads.
    pub(crate) fn resume(&mut self) -> Result<(InFlight<'_>, bool, Arc<[Column]>), Error> {
        self.shared.check()?;
        let State::PortalPaused {
            prefetched,
            columns,
        } = self.ledger.state.clone()
        else {
            return Err(Error::broken());
        };
        let before = self.mark();
        self.ledger.state = State::Exchange;
        Ok((
            InFlight::new(self, Vec::new(), "reading a row stream", before),
            prefetched,
            columns,
        ))
    }

    /// Ends an extended-protocol exchange that a row stream left paused between batches:
    /// Close the portal, Sync, and read to ReadyForQuery (a prefetched batch is dropped).
    pub(crate) async fn settle(&mut self) -> Result<(), Error> {
        if !self.ledger.is_paused() && !self.ledger.is_copying() {
            return Ok(());
        }
        let mut f = self.begin("closing a paused row stream", Closes::Synced)?;
        f.flush().await?;
        f.read(&mut NoAnswer).await?;
        Ok(())
    }

    /// Sends the next Execute of a paused stream ahead of need, so the server produces
    /// the next batch while the caller consumes this one.
    pub(crate) async fn stream_prefetch(&mut self, max_rows: i32) -> Result<(), Error> {
        let (mut f, prefetched, columns) = self.resume()?;
        debug_assert!(!prefetched);
        frontend::execute("", max_rows, f.buf())?;
        frontend::flush(f.buf());
        f.flush().await?;
        f.pause(true, columns);
        Ok(())
    }

    /// Reads what pipelined calls are owed, settles a paused portal and, with
    /// `rollback`, ends an open transaction.
    pub(crate) async fn cleanup(&mut self, rollback: bool) -> Result<(), Error> {
        self.drain_pipeline().await?;
        match rollback && self.transaction_status() != TransactionStatus::Idle {
            true => self.simple_query("ROLLBACK").await.map(drop),
            false => self.settle().await,
        }
    }

    /// The status byte of the last ReadyForQuery.
    pub(crate) fn transaction_status(&self) -> TransactionStatus {
        self.shared.transaction_status()
    }

    /// Whether a transaction is open or a portal paused, by the server's last word.
    pub(crate) fn needs_cleanup(&self) -> bool {
        matches!(self.ledger.state, State::Pipelined)
            || self.ledger.is_paused()
            || self.ledger.is_copying()
            || self.transaction_status() != TransactionStatus::Idle
    }

    /// Whether the socket can still carry an exchange.
    pub(crate) fn is_usable(&self) -> bool {
        self.io.is_some()
            && self.shared.check().is_ok()
            && (self.ledger.can_begin() || matches!(self.ledger.state, State::Pipelined))
    }

    /// Handles a message the server may send on its own at any time, between answers as
    /// well as within them (a notice, a parameter status, a notification): `None` once
    /// handled, else the message back.
    pub(super) fn unsolicited(&mut self, msg: BackendMessage) -> Option<BackendMessage> {
        match msg {
            BackendMessage::NoticeResponse(fields) => log_notice(&self.shared, fields),
            BackendMessage::ParameterStatus { name, value } => self.set_param(name, value),
            BackendMessage::NotificationResponse {
                process_id,
                channel,
                payload,
            } => {
                let shared = &self.shared;
                shared
                    .notifications
                    .push(shared.id, process_id, channel, payload);
            }
            msg => return Some(msg),
        }
        None
    }

    pub(super) fn set_param(&mut self, name: String, value: String) {
        let mut params = self.shared.params.lock().unwrap_or_else(|e| e.into_inner());
        params.insert(name, value);
    }

    /// An exchange was dropped mid-way. With recovery opted in and the whole request
    /// sent, it is left [`State::Abandoned`] and a CancelRequest goes out now; otherwise
    /// the connection is broken.
    pub(super) fn abandon(&mut self, recoverable: bool) {
        let whole_request_sent = self
            .io
            .as_ref()
            .is_some_and(|io| io.write_buffer().is_empty());
        let opted_in = self.shared.recoverable.load(Ordering::Acquire);
        let rt = tokio::runtime::Handle::try_current();
        match (recoverable && opted_in && whole_request_sent, rt) {
            (true, Ok(rt)) => {
                self.ledger.state = State::Abandoned;
                self.shared.mark_abandoned();
                let shared = self.shared.clone();
                let cancel = rt.spawn(async move { shared.cancel.cancel_query().await });
                *self
                    .shared
                    .canceller
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(cancel);
            }
            _ => self.break_off("the caller's future was dropped mid-exchange"),
        }
    }

    /// Gives the socket up: marks the connection broken, then (when a runtime is there)
    /// sends CancelRequests until the server ends the session, so an abandoned query
    /// stops on the server, and closes the socket. A session that may have been sent a
    /// cancel is never used again: a late cancel would hit whatever query ran next.
    pub(crate) fn break_off(&mut self, why: &str) {
        let mid_exchange = !matches!(self.ledger.state, State::Ready) || self.ledger.owed > 0;
        self.ledger.state = State::Broken;
        self.shared.mark_broken();
        let Some(io) = self.io.take() else { return };
        tracing::debug!(conn = self.shared.id, why, "connection broken");
        let shared = self.shared.clone();
        shared.cancelled.store(mid_exchange, Ordering::Release);
        let mut fallback = CancelOnDrop(mid_exchange.then(|| shared.cancel.clone()));
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            shared.kill_socket();
            return drop(io);
        };
        let limit = shared.cancel.timeout;
        // Behind a pooler, the answers still owed are read before the socket closes
        // (only when the whole request went out: a server waiting for the rest of a
        // message answers nothing).
        let owed = match io.write_buffer().is_empty() {
            true => self.ledger.owed,
            false => 0,
        };
        let drain = rt.spawn(async move {
            let mut io = io;
            // Polled at least once: the runtime is alive, the async cancel goes.
            fallback.disarm();
            shared
                .close_until_gone(&mut io, limit, mid_exchange, owed)
                .await
        });
        *self.shared.drain.lock().unwrap_or_else(|e| e.into_inner()) = Some(drain);
    }

    /// Recovers a connection whose exchange was abandoned (opt-in): waits until the
    /// CancelRequest sent at the drop has been taken by the server, then reads everything
    /// the ledger says is owed (ending a streamed batch with a Sync first) and drops it.
    /// On any failure the connection is broken.
    ///
    /// # Errors
    /// The failure that made recovery impossible; the connection is then broken.
    pub(crate) async fn recover(&mut self) -> Result<(), Error> {
        if !matches!(self.ledger.state, State::Abandoned) {
            return Ok(());
        }
        let result = self.drain_abandoned().await;
        match &result {
            Ok(()) => self.shared.mark_recovered(),
            Err(e) => self.break_off(&e.to_string()),
        }
        result
    }

    async fn drain_abandoned(&mut self) -> Result<(), Error> {
        let canceller = self
            .shared
            .canceller
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(cancel) = canceller {
            cancel
                .await
                .map_err(|e| Error::new(crate::ErrorKind::Io, e.to_string()))??;
        }
        let before = self.mark();
        self.ledger.state = State::Exchange;
        let mut f = InFlight::new(self, Vec::new(), "recovering an abandoned exchange", before);
        f.no_recovery();
        if f.wire().ledger.owed == 0 {
            // A streamed batch ended with Flush: end its exchange.
            f.sync();
            f.flush().await?;
        }
        let ledger = &mut f.wire().ledger;
        ledger.discard = ledger.owed;
        let shared = f.wire().shared.clone();
        with_repeated_cancels(&shared, async { f.read(&mut NoAnswer).await.map(drop) }).await
    }

    /// Checks an idle connection without waiting: an idle session should have nothing to
    /// say, so end-of-file or an error (a server shutdown or an idle-session timeout sends
    /// a FATAL error, then closes) means it is dead. Returns whether it is still usable.
    ///
    /// With `look_at_socket`, the socket itself is peeked (one syscall): the runtime's
    /// readiness is stale until it next polls the socket, which matters after a long idle
    /// spell (a server restart). Without it, only what the runtime already knows is used,
    /// which costs no syscall on a hot connection.
    pub(crate) fn check_idle(&mut self, look_at_socket: bool) -> bool {
        use futures::FutureExt;
        loop {
            let usable = self.shared.check().is_ok() && matches!(self.ledger.state, State::Ready);
            let Some(io) = self.io.as_mut().filter(|_| usable) else {
                return false;
            };
            if look_at_socket && io.read_buffer().is_empty() {
                match self.shared.killswitch.peek() {
                    Peek::Empty => return true,
                    Peek::Closed => break,
                    Peek::Data => {}
                }
            }
            let unsolicited = match io.next().now_or_never() {
                None if !look_at_socket => return true,
                Some(Some(Ok(msg))) => self.unsolicited(msg).is_none(),
                _ => false,
            };
            // Else an error (a FATAL before the server hung up), end-of-file, or bytes the
            // runtime has not seen yet: none of it belongs on an idle session.
            if !unsolicited {
                break;
            }
        }
        self.break_off("the idle session was closed by the server");
        false
    }

    /// Sends Terminate and closes the socket once the server has, for a clean `close()`.
    pub(crate) async fn terminate(&mut self) {
        self.ledger.state = State::Broken;
        if let Some(mut io) = self.io.take() {
            let _ = io.send(Frontend::Terminate).await;
            let shared = self.shared.clone();
            shared
                .close_until_gone(&mut io, shared.cancel.timeout, false, 0)
                .await;
        }
    }

    /// Writes Terminate without waiting and closes the socket; for `Drop`.
    pub(crate) fn terminate_nowait(&mut self) {
        self.ledger.state = State::Broken;
        if let Some(io) = self.io.take() {
            let mut buf = BytesMut::with_capacity(5);
            frontend::terminate(&mut buf);
            if io.write_buffer().is_empty() {
                let _ = io.get_ref().try_write(&buf);
            }
        }
    }
}

/// A handler for exchanges that expect nothing of their own (settling, recovery).
struct NoAnswer;

impl Handler for NoAnswer {
    fn message(&mut self, msg: BackendMessage) -> Result<Flow, BackendMessage> {
        match msg {
            BackendMessage::CommandComplete(_) => Ok(Flow::Continue),
            msg => Err(msg),
        }
    }
}

/// How long a cleanup step (rollback of a dropped transaction, closing a dropped stream's
/// portal) may take before the connection is given up instead.
pub(crate) const CLEANUP_DEADLINE: Duration = Duration::from_secs(5);

/// Cleans up after a guard dropped with work outstanding: settles a paused portal and,
/// with `rollback`, ends an open transaction. Runs in a spawned task that keeps the wire
/// lock until done, so no one else sees the state in between; on failure, past
/// [`CLEANUP_DEADLINE`], or if the task itself is dropped unfinished (the runtime shut
/// down), the connection is broken instead. With no runtime, a rollback cannot run, so
/// the connection is broken (the server rolls back when the socket closes).
pub(crate) fn spawn_cleanup(mut guard: WireGuard, rollback: bool) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        if rollback {
            guard.break_off("dropped with an open transaction and no runtime to roll it back");
        }
        return;
    };
    let mut cleanup = CleanupGuard(Some(guard));
    rt.spawn(async move {
        let guard = cleanup.0.as_mut().expect("set until done");
        let done = tokio::time::timeout(CLEANUP_DEADLINE, guard.cleanup(rollback)).await;
        let why = match done {
            Ok(Ok(())) => return cleanup.done(),
            Ok(Err(e)) => format!("cleanup failed: {e}"),
            Err(_) => "cleanup timed out".to_owned(),
        };
        tracing::warn!(conn = guard.shared.id, why, "connection given up");
        guard.break_off(&why);
        cleanup.done();
    });
}

/// Holds the wire for a cleanup; dropped before [`CleanupGuard::done`] (the cleanup task
/// was dropped unfinished), it breaks the connection, so nobody sees a half-cleaned one.
struct CleanupGuard(Option<WireGuard>);

impl CleanupGuard {
    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        if let Some(guard) = self.0.as_mut()
            && (guard.needs_cleanup() || !guard.ledger.can_begin())
        {
            guard.break_off("the cleanup task was dropped unfinished");
        }
    }
}

/// The wire lock, held: exclusive use of one connection's socket.
///
/// Released while the wire owes only the answers of abandoned pipelined calls, it hands
/// itself to a task that reads them (see [`Wire::drain_pipeline`]): nobody else may be
/// waiting for the wire to do it.
pub(crate) struct WireGuard {
    /// Always set until dropped.
    guard: Option<OwnedMutexGuard<Wire>>,
    purpose: &'static str,
}

impl WireGuard {
    pub(crate) fn new(guard: OwnedMutexGuard<Wire>, purpose: &'static str) -> WireGuard {
        tracing::trace!(conn = guard.shared.id, purpose, "wire lock taken");
        WireGuard {
            guard: Some(guard),
            purpose,
        }
    }
}

impl Drop for WireGuard {
    fn drop(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        tracing::trace!(
            conn = guard.shared.id,
            purpose = self.purpose,
            "wire lock released"
        );
        if guard.owes_only_abandoned() {
            spawn_pipeline_drain(guard);
        }
    }
}

/// Reads the answers of abandoned pipelined calls in a spawned task holding the wire,
/// within [`CLEANUP_DEADLINE`]; past it, or with no runtime, the connection is broken.
fn spawn_pipeline_drain(mut wire: OwnedMutexGuard<Wire>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return wire.break_off("abandoned pipelined calls and no runtime to read their answers");
    };
    rt.spawn(async move {
        if tokio::time::timeout(CLEANUP_DEADLINE, wire.drain_pipeline())
            .await
            .is_err()
        {
            wire.break_off("reading the answers of abandoned pipelined calls timed out");
        }
    });
}

impl Deref for WireGuard {
    type Target = Wire;
    fn deref(&self) -> &Wire {
        self.guard.as_ref().expect("set until dropped")
    }
}

impl DerefMut for WireGuard {
    fn deref_mut(&mut self) -> &mut Wire {
        self.guard.as_mut().expect("set until dropped")
    }
}

/// Runs the drain of an abandoned exchange while repeating the CancelRequest every
/// [`CANCEL_REPEAT`]: PostgreSQL drops a cancel that lands between the messages of an
/// extended-protocol exchange (or before the query starts), and a CPU-bound query would
/// otherwise run to its end. Every cancel sent is confirmed (the server closes the cancel
/// socket after signalling the backend) before this returns, and a signal the backend
/// takes while waiting for its next command is ignored, so no repeat can hit a later
/// query. Recovery runs only on direct connections: behind a pooler a cancel may reach
/// another client's query.
async fn with_repeated_cancels(
    shared: &Arc<Shared>,
    read: impl std::future::Future<Output = Result<(), Error>>,
) -> Result<(), Error> {
    let join = |r: Result<Result<(), Error>, tokio::task::JoinError>| {
        r.map_err(|e| Error::new(crate::ErrorKind::Io, e.to_string()))?
    };
    let mut read = std::pin::pin!(read);
    let mut pending: Option<tokio::task::JoinHandle<Result<(), Error>>> = None;
    let drained = loop {
        tokio::select! {
            r = &mut read => break r,
            () = tokio::time::sleep(CANCEL_REPEAT) => {
                if pending.as_ref().is_some_and(|h| !h.is_finished()) {
                    continue;
                }
                if let Some(h) = pending.take() {
                    join(h.await)?;
                }
                let shared = shared.clone();
                pending = Some(tokio::spawn(async move { shared.cancel.cancel_query().await }));
            }
        }
    };
    if let Some(h) = pending {
        join(h.await)?;
    }
    drained
}
