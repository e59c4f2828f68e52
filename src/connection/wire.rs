//! The wire: the socket behind the wire lock, and the three small types that keep it
//! honest.
//!
//! - [`Shared`] holds the **broken flag**: set once, never cleared. Every call checks it
//!   first and fails with [`ErrorKind::Broken`] at once; a pool evicts on sight.
//! - [`WireGuard`] is a **wire lock acquisition that names its purpose**. Whoever holds it
//!   owns the socket; requests from different tasks never interleave.
//! - [`InFlight`] is the **in-flight guard**: armed when the first byte of a request is
//!   written, disarmed only at the ReadyForQuery that ends the exchange. Dropped while
//!   armed (the caller's future was dropped mid-exchange), it marks the connection broken,
//!   takes the socket away, and sends the server a CancelRequest before closing it.
//!
//! Cancel safety: taking the lock (`tokio::sync::Mutex::lock_owned`) and reading the next
//! message (bytes stay in the codec buffer until a frame is whole) are cancel safe. The
//! exchange between the first write and ReadyForQuery is not: the server's reply would be
//! left on the socket for the next caller. That span is exactly where [`InFlight`] is armed.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use tokio::sync::OwnedMutexGuard;
use tokio_util::codec::Framed;

use super::cache::StatementCache;
use crate::cancel::CancelToken;
use crate::codec::{Frontend, PgCodec};
use crate::error::{DbError, Error, ErrorKind};
use crate::protocol::frontend::{self, Target};
use crate::protocol::{BackendMessage, ProtocolError, TransactionStatus};
use crate::statement::Column;
use crate::transport::{Killswitch, Peek, Stream};

/// The socket as the codec sees it.
pub(crate) type Io = Framed<Stream, PgCodec>;

/// State every handle of a connection can read without the wire lock.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) id: u64,
    /// Set once when an exchange is abandoned or fails mid-way; never cleared.
    broken: AtomicBool,
    /// Set by `close()`; never cleared.
    closed: AtomicBool,
    /// Opt-in (a pool's recovery policy): an abandoned exchange whose request went out
    /// whole is drained after a confirmed cancel instead of breaking the connection.
    recoverable: AtomicBool,
    /// An exchange was abandoned and awaits recovery; calls fail as if broken until then.
    abandoned: AtomicBool,
    /// The status byte of the last ReadyForQuery.
    tx_status: AtomicU8,
    /// The task that holds the wire for a transaction or an open row stream, if any.
    holder: StdMutex<Option<Caller>>,
    pub(crate) params: StdMutex<HashMap<String, String>>,
    pub(crate) cancel: CancelToken,
    killswitch: Killswitch,
    /// Names of user statements dropped since the last exchange; closed on the next one.
    dropped_statements: StdMutex<Vec<String>>,
    has_dropped_statements: AtomicBool,
    /// The task sending the cancel and closing the socket of a broken connection.
    drain: StdMutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Shared {
    pub(crate) fn new(
        id: u64,
        params: HashMap<String, String>,
        cancel: CancelToken,
        killswitch: Killswitch,
    ) -> Shared {
        Shared {
            id,
            broken: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            recoverable: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            tx_status: AtomicU8::new(TransactionStatus::Idle.as_byte()),
            holder: StdMutex::new(None),
            params: StdMutex::new(params),
            cancel,
            killswitch,
            dropped_statements: StdMutex::new(Vec::new()),
            has_dropped_statements: AtomicBool::new(false),
            drain: StdMutex::new(None),
        }
    }

    /// Fails at once if the connection is closed or broken.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::closed());
        }
        if self.broken.load(Ordering::Acquire) || self.abandoned.load(Ordering::Acquire) {
            return Err(Error::broken());
        }
        Ok(())
    }

    /// Opts in to recovery of abandoned exchanges (see [`Wire::recover`]).
    pub(crate) fn set_recoverable(&self, on: bool) {
        self.recoverable.store(on, Ordering::Release);
    }

    /// Whether an abandoned exchange awaits [`Wire::recover`].
    pub(crate) fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    /// Whether calls fail as broken: broken for good, or abandoned awaiting recovery.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire) || self.abandoned.load(Ordering::Acquire)
    }

    /// Whether the broken flag is set (abandoned connections may still be recovered).
    pub(crate) fn is_broken_for_good(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn mark_broken(&self) {
        self.broken.store(true, Ordering::Release);
    }

    /// Marks the connection closed; returns whether it already was.
    pub(crate) fn mark_closed(&self) -> bool {
        self.closed.swap(true, Ordering::AcqRel)
    }

    /// Shuts the socket down from outside the wire lock.
    pub(crate) fn kill_socket(&self) {
        self.killswitch.trip();
    }

    /// Ends our side of the session and waits (at most `limit`) until the server closes
    /// its side: the backend has then exited, so a pool slot can be reused without ever
    /// running more backends than its size.
    async fn wait_server_gone(&self, io: &mut Io, limit: Duration) {
        use tokio::io::AsyncReadExt;
        self.killswitch.shutdown_write();
        let mut sink = [0u8; 1024];
        let until_eof =
            async { while matches!(io.get_mut().read(&mut sink).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(limit, until_eof).await;
        self.killswitch.trip();
    }

    pub(crate) fn transaction_status(&self) -> TransactionStatus {
        let b = self.tx_status.load(Ordering::Acquire);
        TransactionStatus::from_byte(b).unwrap_or(TransactionStatus::Failed)
    }

    fn set_transaction_status(&self, status: TransactionStatus) {
        self.tx_status.store(status.as_byte(), Ordering::Release);
    }

    /// Records the task that now holds the wire for a long-lived guard.
    pub(crate) fn set_holder(&self, task: Option<Caller>) {
        *self.holder.lock().unwrap_or_else(|e| e.into_inner()) = task;
    }

    /// Fails when the current task already holds the wire through a long-lived guard:
    /// waiting for the lock would wait for itself.
    pub(crate) fn check_not_holder(&self, what: &str) -> Result<(), Error> {
        let me = Caller::current();
        let holder = *self.holder.lock().unwrap_or_else(|e| e.into_inner());
        match holder == Some(me) {
            false => Ok(()),
            true => Err(Error::new(
                ErrorKind::Misuse,
                format!(
                    "this task holds the connection through an open transaction or row \
                     stream and called {what} on the connection directly, which would wait \
                     for itself forever; run it through the transaction, or finish the \
                     stream first"
                ),
            )),
        }
    }

    /// Takes the task that cancels and closes a broken connection, if one runs.
    pub(crate) fn take_drain(&self) -> Option<tokio::task::JoinHandle<()>> {
        self.drain.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Queues a dropped user statement to be closed on the next exchange.
    pub(crate) fn statement_dropped(&self, name: String) {
        let mut names = self
            .dropped_statements
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        names.push(name);
        self.has_dropped_statements.store(true, Ordering::Release);
    }

    fn take_dropped_statements(&self) -> Vec<String> {
        if !self.has_dropped_statements.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        std::mem::take(
            &mut *self
                .dropped_statements
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }
}

/// The socket and what lives with it; only ever touched under the wire lock.
#[derive(Debug)]
pub(crate) struct Wire {
    io: Option<Io>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) cache: StatementCache,
    /// Statements to Close on the next exchange (cache evictions and dropped statements).
    pub(crate) to_close: Vec<String>,
    /// A row stream stopped between batches: its portal is open and no Sync was sent.
    pending_sync: bool,
    /// The columns of the statement a paused row stream is reading.
    pub(crate) stream_columns: Option<Arc<[Column]>>,
    next_name: u64,
}

impl Wire {
    pub(crate) fn new(io: Io, shared: Arc<Shared>, cache_capacity: usize) -> Wire {
        Wire {
            io: Some(io),
            shared,
            cache: StatementCache::new(cache_capacity),
            to_close: Vec::new(),
            pending_sync: false,
            stream_columns: None,
            next_name: 0,
        }
    }

    /// A fresh server-side statement name, unique on this connection.
    pub(crate) fn next_statement_name(&mut self, prefix: &str) -> String {
        self.next_name += 1;
        format!("pgkeel_{prefix}{}", self.next_name)
    }

    /// Arms the in-flight guard for a new exchange, after settling a portal that an
    /// early-dropped row stream left open.
    ///
    /// # Errors
    /// [`ErrorKind::Closed`] or [`ErrorKind::Broken`] when the socket can no longer be used.
    pub(crate) async fn start(&mut self) -> Result<InFlight<'_>, Error> {
        if self.pending_sync {
            self.settle().await?;
        }
        self.start_now()
    }

    fn start_now(&mut self) -> Result<InFlight<'_>, Error> {
        self.shared.check()?;
        if self.io.is_none() {
            return Err(Error::closed());
        }
        let dropped = self.shared.take_dropped_statements();
        self.to_close.extend(dropped);
        Ok(InFlight {
            wire: self,
            armed: true,
            awaiting_ready: false,
        })
    }

    /// Ends an extended-protocol exchange that a row stream left paused between batches:
    /// Close the portal, Sync, and read to ReadyForQuery.
    pub(crate) async fn settle(&mut self) -> Result<(), Error> {
        if !self.pending_sync {
            return Ok(());
        }
        self.pending_sync = false;
        let mut f = self.start_now()?;
        // Names are ours and NUL-free, so this cannot fail.
        let _ = frontend::close(Target::Portal, "", f.buf());
        f.sync();
        f.flush().await?;
        loop {
            match f.recv().await? {
                BackendMessage::ReadyForQuery(status) => {
                    f.finish(status);
                    break;
                }
                BackendMessage::CloseComplete | BackendMessage::ErrorResponse(_) => {}
                other => return Err(f.unexpected(&other, "closing a paused row stream")),
            }
        }
        Ok(())
    }

    /// Settles a paused portal and, with `rollback`, ends an open transaction.
    pub(crate) async fn cleanup(&mut self, rollback: bool) -> Result<(), Error> {
        self.settle().await?;
        if rollback && self.transaction_status() != TransactionStatus::Idle {
            self.simple_query("ROLLBACK").await?;
        }
        Ok(())
    }

    /// The status byte of the last ReadyForQuery.
    pub(crate) fn transaction_status(&self) -> TransactionStatus {
        self.shared.transaction_status()
    }

    /// Whether a transaction is open or a portal paused, by the server's last word.
    pub(crate) fn needs_cleanup(&self) -> bool {
        self.pending_sync || self.transaction_status() != TransactionStatus::Idle
    }

    /// Whether the socket can still carry an exchange.
    pub(crate) fn is_usable(&self) -> bool {
        self.io.is_some() && self.shared.check().is_ok()
    }

    /// Gives the socket up: marks the connection broken, then (when a runtime is there)
    /// sends a CancelRequest so an abandoned query stops on the server, and closes the
    /// socket. A session that may have been sent a cancel is never used again: a late
    /// cancel would hit whatever query ran next.
    pub(crate) fn break_off(&mut self, why: &str) {
        self.shared.mark_broken();
        let Some(io) = self.io.take() else { return };
        tracing::debug!(conn = self.shared.id, why, "connection broken");
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let shared = self.shared.clone();
                let drain = rt.spawn(async move {
                    let mut io = io;
                    if let Err(e) = shared.cancel.cancel_query().await {
                        tracing::debug!(error = %e, "cancel request failed");
                    }
                    shared
                        .wait_server_gone(&mut io, shared.cancel.timeout)
                        .await;
                });
                *self.shared.drain.lock().unwrap_or_else(|e| e.into_inner()) = Some(drain);
            }
            Err(_) => {
                self.shared.kill_socket();
                drop(io)
            }
        }
    }

    /// Recovers a connection whose exchange was abandoned (opt-in): sends a CancelRequest
    /// and waits until the server has closed the cancel socket (by then the backend has
    /// been signalled; a signal that finds it idle is discarded), then reads the
    /// abandoned exchange to its ReadyForQuery. On any failure the connection is broken.
    ///
    /// # Errors
    /// The failure that made recovery impossible; the connection is then broken.
    pub(crate) async fn recover(&mut self) -> Result<(), Error> {
        if !self.shared.is_abandoned() {
            return Ok(());
        }
        let result = self.drain_abandoned().await;
        match &result {
            Ok(()) => self.shared.abandoned.store(false, Ordering::Release),
            Err(e) => self.break_off(&e.to_string()),
        }
        result
    }

    async fn drain_abandoned(&mut self) -> Result<(), Error> {
        self.shared.cancel.cancel_query().await?;
        let io = self.io.as_mut().ok_or_else(Error::closed)?;
        loop {
            match io.next().await {
                Some(Ok(BackendMessage::ReadyForQuery(status))) => {
                    self.shared.set_transaction_status(status);
                    return Ok(());
                }
                Some(Ok(
                    m @ (BackendMessage::CopyInResponse(_) | BackendMessage::CopyBothResponse(_)),
                )) => {
                    return Err(ProtocolError::Unexpected {
                        got: m.name(),
                        during: "recovering an abandoned exchange",
                    }
                    .into());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Err(Error::closed()),
            }
        }
    }

    /// Checks an idle connection without waiting: an idle session should have nothing to
    /// say, so end-of-file or an error (a server shutdown or an idle-session timeout sends
    /// a FATAL error, then closes) means it is dead. Returns whether it is still usable.
    pub(crate) fn check_idle(&mut self) -> bool {
        use futures::FutureExt;
        loop {
            let Some(io) = self.io.as_mut().filter(|_| self.shared.check().is_ok()) else {
                return false;
            };
            if io.read_buffer().is_empty() {
                match self.shared.killswitch.peek() {
                    Peek::Empty => return true,
                    Peek::Closed => break,
                    Peek::Data => {}
                }
            }
            match io.next().now_or_never() {
                Some(Some(Ok(BackendMessage::NoticeResponse(fields)))) => log_notice(fields),
                Some(Some(Ok(BackendMessage::ParameterStatus { name, value }))) => {
                    let mut params = self.shared.params.lock().unwrap_or_else(|e| e.into_inner());
                    params.insert(name, value);
                }
                Some(Some(Ok(BackendMessage::NotificationResponse { .. }))) => {}
                // An error (a FATAL before the server hung up), end-of-file, or bytes the
                // runtime has not seen yet: none of it belongs on an idle session.
                _ => break,
            }
        }
        self.break_off("the idle session was closed by the server");
        false
    }

    /// Sends Terminate and closes the socket once the server has, for a clean `close()`.
    pub(crate) async fn terminate(&mut self) {
        if let Some(mut io) = self.io.take() {
            let _ = io.send(Frontend::Terminate).await;
            let shared = self.shared.clone();
            shared
                .wait_server_gone(&mut io, shared.cancel.timeout)
                .await;
        }
    }

    /// Writes Terminate without waiting and closes the socket; for `Drop`.
    pub(crate) fn terminate_nowait(&mut self) {
        if let Some(io) = self.io.take() {
            let mut buf = BytesMut::with_capacity(5);
            frontend::terminate(&mut buf);
            if io.write_buffer().is_empty() {
                let _ = io.get_ref().try_write(&buf);
            }
        }
    }
}

/// How long a cleanup step (rollback of a dropped transaction, closing a dropped stream's
/// portal) may take before the connection is given up instead.
pub(crate) const CLEANUP_DEADLINE: Duration = Duration::from_secs(5);

/// Cleans up after a guard dropped with work outstanding: settles a paused portal and,
/// with `rollback`, ends an open transaction. Runs in a spawned task that keeps the wire
/// lock until done, so no one else sees the state in between; on failure or past
/// [`CLEANUP_DEADLINE`], the connection is broken instead. With no runtime, a rollback
/// cannot run, so the connection is broken (the server rolls back when the socket closes).
pub(crate) fn spawn_cleanup(mut guard: WireGuard, rollback: bool) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        if rollback {
            guard.break_off("dropped with an open transaction and no runtime to roll it back");
        }
        return;
    };
    rt.spawn(async move {
        let done = tokio::time::timeout(CLEANUP_DEADLINE, guard.cleanup(rollback)).await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(conn = guard.shared.id, error = %e, "cleanup failed; connection given up");
                guard.break_off("cleanup failed");
            }
            Err(_) => {
                tracing::warn!(conn = guard.shared.id, "cleanup timed out; connection given up");
                guard.break_off("cleanup timed out");
            }
        }
    });
}

/// Marks the current task as the holder of a connection's wire for a long-lived guard
/// (a transaction or a row stream); clears the mark when dropped.
#[derive(Debug)]
pub(crate) struct HolderMark(Arc<Shared>);

impl HolderMark {
    pub(crate) fn new(shared: Arc<Shared>) -> HolderMark {
        shared.set_holder(Some(Caller::current()));
        HolderMark(shared)
    }

    /// Moves the mark to the current task (the guard may have moved between tasks).
    pub(crate) fn refresh(&self) {
        self.0.set_holder(Some(Caller::current()));
    }
}

impl Drop for HolderMark {
    fn drop(&mut self) {
        self.0.set_holder(None);
    }
}

/// The wire lock, held: exclusive use of one connection's socket.
pub(crate) struct WireGuard {
    guard: OwnedMutexGuard<Wire>,
    purpose: &'static str,
}

impl WireGuard {
    pub(crate) fn new(guard: OwnedMutexGuard<Wire>, purpose: &'static str) -> WireGuard {
        tracing::trace!(conn = guard.shared.id, purpose, "wire lock taken");
        WireGuard { guard, purpose }
    }
}

impl Drop for WireGuard {
    fn drop(&mut self) {
        tracing::trace!(
            conn = self.guard.shared.id,
            purpose = self.purpose,
            "wire lock released"
        );
    }
}

impl Deref for WireGuard {
    type Target = Wire;
    fn deref(&self) -> &Wire {
        &self.guard
    }
}

impl DerefMut for WireGuard {
    fn deref_mut(&mut self) -> &mut Wire {
        &mut self.guard
    }
}

/// One exchange in progress. Dropped before [`InFlight::finish`], it breaks the connection.
pub(crate) struct InFlight<'a> {
    wire: &'a mut Wire,
    armed: bool,
    /// A Sync (or simple Query) went into the buffer: the server will end this exchange
    /// with ReadyForQuery by itself, which is what makes recovery possible.
    awaiting_ready: bool,
}

impl InFlight<'_> {
    fn io(&mut self) -> &mut Io {
        // `start` checked that the socket is there, and only `break_off` (which also
        // disarms this guard's purpose) takes it away.
        self.wire
            .io
            .as_mut()
            .expect("in-flight exchange without a socket")
    }

    /// The write buffer: messages appended here go out with the next flush.
    pub(crate) fn buf(&mut self) -> &mut BytesMut {
        self.io().write_buffer_mut()
    }

    /// Appends Sync: the server answers the exchange with ReadyForQuery.
    pub(crate) fn sync(&mut self) {
        frontend::sync(self.buf());
        self.awaiting_ready = true;
    }

    /// Notes that the request written (a simple Query) ends with ReadyForQuery.
    pub(crate) fn expect_ready(&mut self) {
        self.awaiting_ready = true;
    }

    /// The wire, for the statement cache and names.
    pub(crate) fn wire(&mut self) -> &mut Wire {
        self.wire
    }

    /// Abandons an exchange that has written nothing yet, leaving the connection as it was.
    pub(crate) fn abandon_unsent(mut self, from: usize) {
        self.buf().truncate(from);
        self.armed = false;
    }

    /// Sends everything buffered.
    pub(crate) async fn flush(&mut self) -> Result<(), Error> {
        match SinkExt::<Frontend<'_>>::flush(self.io()).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The next message of this exchange; notices, parameter changes and notifications
    /// are handled on the way.
    pub(crate) async fn recv(&mut self) -> Result<BackendMessage, Error> {
        loop {
            let msg = match self.io().next().await {
                Some(Ok(msg)) => msg,
                Some(Err(e)) => return Err(self.fail(e)),
                None => return Err(self.fail(self.eof_error())),
            };
            match msg {
                BackendMessage::NoticeResponse(fields) => log_notice(fields),
                BackendMessage::ParameterStatus { name, value } => self.set_param(name, value),
                BackendMessage::NotificationResponse { channel, .. } => {
                    tracing::debug!(conn = self.wire.shared.id, channel, "notification received");
                }
                msg => return Ok(msg),
            }
        }
    }

    /// As `recv`, but when the socket fails right after the server sent a FATAL error
    /// (`kept`), that error is the one returned: it says why (e.g. 57P01 admin shutdown).
    pub(crate) async fn recv_after(
        &mut self,
        kept: &mut Option<Error>,
    ) -> Result<BackendMessage, Error> {
        match self.recv().await {
            Ok(msg) => Ok(msg),
            Err(e) => match kept.take() {
                Some(fatal) if fatal.is_connection_fatal() => Err(fatal),
                other => {
                    *kept = other;
                    Err(e)
                }
            },
        }
    }

    fn eof_error(&self) -> Error {
        match self.wire.shared.is_closed() {
            true => Error::closed(),
            false => Error::new(
                ErrorKind::Closed,
                "the server closed the connection unexpectedly",
            ),
        }
    }

    fn set_param(&mut self, name: String, value: String) {
        let mut params = self
            .wire
            .shared
            .params
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        params.insert(name, value);
    }

    /// Disarms between batches of a row stream: the portal stays open, and the next
    /// exchange on this wire settles it first unless the stream fetches more.
    pub(crate) fn pause(&mut self) {
        self.wire.pending_sync = true;
        self.armed = false;
    }

    /// Resumes a paused exchange (the stream fetches its next batch).
    pub(crate) fn resume(wire: &mut Wire) -> Result<InFlight<'_>, Error> {
        let f = wire.start_now()?;
        f.wire.pending_sync = false;
        Ok(f)
    }

    /// Ends the exchange at ReadyForQuery: records the transaction status, disarms.
    pub(crate) fn finish(&mut self, status: TransactionStatus) {
        self.wire.shared.set_transaction_status(status);
        self.armed = false;
    }

    /// Breaks the connection because of `err` (a socket or protocol failure) and returns it.
    pub(crate) fn fail(&mut self, err: Error) -> Error {
        self.armed = false;
        self.wire.break_off(&err.to_string());
        err
    }

    /// Breaks the connection because the server sent `msg` where it is not allowed.
    pub(crate) fn unexpected(&mut self, msg: &BackendMessage, during: &'static str) -> Error {
        let got = msg.name();
        self.fail(ProtocolError::Unexpected { got, during }.into())
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let io = self.wire.io.as_ref();
        let whole_request_sent = io.is_some_and(|io| io.write_buffer().is_empty());
        let recoverable = self.wire.shared.recoverable.load(Ordering::Acquire);
        match recoverable && self.awaiting_ready && whole_request_sent {
            // Left for `Wire::recover`; calls fail as broken until it has run.
            true => self.wire.shared.abandoned.store(true, Ordering::Release),
            false => self
                .wire
                .break_off("the caller's future was dropped mid-exchange"),
        }
    }
}

fn log_notice(fields: Vec<(u8, String)>) {
    let notice = DbError::from_fields(fields);
    match notice.severity() {
        "WARNING" => tracing::warn!(code = notice.code(), "{}", notice.message()),
        "DEBUG" | "LOG" => tracing::debug!(code = notice.code(), "{}", notice.message()),
        _ => tracing::info!(code = notice.code(), "{}", notice.message()),
    }
}

/// Who is calling: a tokio task, or (outside any task, e.g. a `block_on` main future) a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    Task(tokio::task::Id),
    Thread(std::thread::ThreadId),
}

impl Caller {
    fn current() -> Caller {
        match tokio::task::try_id() {
            Some(id) => Caller::Task(id),
            None => Caller::Thread(std::thread::current().id()),
        }
    }
}
