//! The wire: the socket behind the wire lock, and the three small types that keep it
//! honest.
//!
//! - [`Shared`] holds the **broken flag**: set once, never cleared. Every call checks it
//!   first and fails with [`crate::ErrorKind::Broken`] at once; a pool evicts on sight.
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

use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use tokio::sync::OwnedMutexGuard;
use tokio_util::codec::Framed;

use super::cache::StatementCache;
use super::inflight::log_notice;
pub(crate) use super::inflight::InFlight;
pub(crate) use super::shared::{HolderMark, Shared};
use crate::cancel::CancelOnDrop;
use crate::codec::{Frontend, PgCodec};
use crate::error::Error;
use crate::protocol::frontend::{self, Target};
use crate::protocol::{BackendMessage, ProtocolError, TransactionStatus};
use crate::statement::Column;
use crate::transport::{Peek, Stream};

/// The socket as the codec sees it.
pub(crate) type Io = Framed<Stream, PgCodec>;

/// The socket and what lives with it; only ever touched under the wire lock.
#[derive(Debug)]
pub(crate) struct Wire {
    pub(super) io: Option<Io>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) cache: StatementCache,
    /// Statements to Close on the next exchange (cache evictions and dropped statements).
    pub(crate) to_close: Vec<String>,
    /// A row stream stopped between batches: its portal is open and no Sync was sent.
    pub(super) pending_sync: bool,
    /// A prefetched Execute of a paused stream is outstanding: its rows come first.
    pub(super) batch_in_flight: bool,
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
            batch_in_flight: false,
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

    pub(super) fn start_now(&mut self) -> Result<InFlight<'_>, Error> {
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
        let prefetched = std::mem::take(&mut self.batch_in_flight);
        let mut f = self.start_now()?;
        if prefetched {
            drain_batch(&mut f).await?;
        }
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

    /// Sends the next Execute of a paused stream ahead of need, so the server produces
    /// the next batch while the caller consumes this one.
    pub(crate) async fn stream_prefetch(&mut self, max_rows: i32) -> Result<(), Error> {
        let mut f = InFlight::resume(self)?;
        frontend::execute("", max_rows, f.buf())?;
        frontend::flush(f.buf());
        f.flush().await?;
        f.pause_with_batch_in_flight();
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
                let mut fallback = CancelOnDrop(Some(shared.cancel.clone()));
                let drain = rt.spawn(async move {
                    let mut io = io;
                    // Polled at least once: the runtime is alive, the async cancel goes.
                    fallback.disarm();
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
    ///
    /// With `look_at_socket`, the socket itself is peeked (one syscall): the runtime's
    /// readiness is stale until it next polls the socket, which matters after a long idle
    /// spell (a server restart). Without it, only what the runtime already knows is used,
    /// which costs no syscall on a hot connection.
    pub(crate) fn check_idle(&mut self, look_at_socket: bool) -> bool {
        use futures::FutureExt;
        loop {
            let Some(io) = self.io.as_mut().filter(|_| self.shared.check().is_ok()) else {
                return false;
            };
            if look_at_socket && io.read_buffer().is_empty() {
                match self.shared.killswitch.peek() {
                    Peek::Empty => return true,
                    Peek::Closed => break,
                    Peek::Data => {}
                }
            }
            match io.next().now_or_never() {
                None if !look_at_socket => return true,
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

/// Reads and drops the rest of a prefetched batch nobody wants any more.
async fn drain_batch(f: &mut InFlight<'_>) -> Result<(), Error> {
    loop {
        match f.recv().await? {
            BackendMessage::DataRow(_) => {}
            BackendMessage::PortalSuspended
            | BackendMessage::CommandComplete(_)
            | BackendMessage::EmptyQueryResponse
            | BackendMessage::ErrorResponse(_) => return Ok(()),
            other => return Err(f.unexpected(&other, "draining a prefetched batch")),
        }
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
