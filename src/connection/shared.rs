//! [`Shared`]: what every handle of a connection can read without the wire lock, above
//! all the **broken flag** (set once, never cleared) and the holder mark that turns a
//! same-task re-entry into an error instead of a deadlock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use super::wire::Io;
use crate::cancel::CancelToken;
use crate::error::{Error, ErrorKind};
use crate::protocol::TransactionStatus;
use crate::transport::Killswitch;

/// [`Shared::health`]: usable.
const HEALTHY: u8 = 0;
/// [`Shared::health`]: an exchange was abandoned and awaits recovery.
const ABANDONED: u8 = 1;
/// [`Shared::health`]: broken for good.
const BROKEN: u8 = 2;

/// State every handle of a connection can read without the wire lock.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The connection's own time limits.
    pub(crate) limits: Limits,
    pub(crate) id: u64,
    /// The wire's health as other handles see it, mirrored from the ledger ([`HEALTHY`],
    /// [`ABANDONED`], [`BROKEN`]). Broken is set once and never cleared; abandoned is
    /// cleared only by a recovery that read everything the wire owed.
    health: AtomicU8,
    /// Set by `close()`; never cleared.
    closed: AtomicBool,
    /// Opt-in (a pool's recovery policy): an abandoned exchange whose request went out
    /// whole is drained after a confirmed cancel instead of breaking the connection.
    pub(super) recoverable: AtomicBool,
    /// The status byte of the last ReadyForQuery.
    tx_status: AtomicU8,
    /// The guard that holds the wire for a transaction or an open row stream, if any:
    /// its token and the task that last used it.
    holder: StdMutex<Option<(u64, Caller)>>,
    next_holder_token: AtomicU64,
    /// Set when the connection broke mid-exchange and CancelRequests went out.
    pub(crate) cancelled: AtomicBool,
    /// Set once a statement failed with SQLSTATE 25006: the server is read-only (a
    /// standby, or `default_transaction_read_only` turned on). Never cleared.
    read_only_seen: AtomicBool,
    /// Behind a connection pooler (pooler mode): a broken session is sent one
    /// CancelRequest, never repeats. The pooler forwards a cancel only for a client it
    /// still has, and a repeat racing its own cancel connection has crashed PgBouncer
    /// (1.18: "bad client state: 0").
    one_cancel: bool,
    /// The task repeating CancelRequests for an abandoned exchange (Recover policy).
    pub(super) canceller: StdMutex<Option<tokio::task::JoinHandle<Result<(), Error>>>>,
    pub(crate) params: StdMutex<HashMap<String, String>>,
    pub(crate) cancel: CancelToken,
    pub(super) killswitch: Killswitch,
    /// Names of user statements dropped since the last exchange; closed on the next one.
    dropped_statements: StdMutex<Vec<String>>,
    has_dropped_statements: AtomicBool,
    /// The task sending the cancel and closing the socket of a broken connection.
    pub(super) drain: StdMutex<Option<tokio::task::JoinHandle<bool>>>,
    /// Types of this database looked up by OID (enums, composites, domains, extensions).
    pub(crate) types: StdMutex<crate::types::catalog::TypeCatalog>,
    /// Notifications read and not yet taken; the notice callback.
    pub(crate) notifications: super::notify::NotificationQueue,
    /// The statement cache and the pipelined requests of every task.
    pub(crate) pipe: super::pipeline::Pipe,
    /// The server and database its spans name.
    pub(crate) telemetry: crate::telemetry::Peer,
    /// What the socket's read spins found (see [`crate::Config::read_spin`]).
    pub(crate) read_spin: Arc<crate::transport::spin::SpinCounter>,
}

impl Shared {
    pub(crate) fn new(
        id: u64,
        params: HashMap<String, String>,
        cancel: CancelToken,
        killswitch: Killswitch,
        limits: Limits,
        one_cancel: bool,
        cache_capacity: usize,
    ) -> Shared {
        Shared {
            pipe: super::pipeline::Pipe::new(cache_capacity),
            one_cancel,
            id,
            limits,
            health: AtomicU8::new(HEALTHY),
            closed: AtomicBool::new(false),
            recoverable: AtomicBool::new(false),
            tx_status: AtomicU8::new(TransactionStatus::Idle.as_byte()),
            holder: StdMutex::new(None),
            next_holder_token: AtomicU64::new(1),
            canceller: StdMutex::new(None),
            cancelled: AtomicBool::new(false),
            read_only_seen: AtomicBool::new(false),
            params: StdMutex::new(params),
            cancel,
            killswitch,
            dropped_statements: StdMutex::new(Vec::new()),
            has_dropped_statements: AtomicBool::new(false),
            drain: StdMutex::new(None),
            types: StdMutex::default(),
            notifications: Default::default(),
            telemetry: Default::default(),
            read_spin: Default::default(),
        }
    }

    /// Notes a server error the pool may act on (25006: the server is read-only).
    pub(super) fn note_error(&self, e: &Error) {
        if e.code() == Some(crate::error::sqlstate::READ_ONLY_SQL_TRANSACTION) {
            self.read_only_seen.store(true, Ordering::Release);
        }
    }

    /// Whether calls of different tasks may share writes and reads (see
    /// [`super::pipeline`]): not behind a pooler (where every statement is parsed
    /// afresh), and not with a `lock_timeout`, which bounds waiting for the wire lock.
    pub(crate) fn pipelining(&self) -> bool {
        !self.one_cancel && self.limits.lock.is_none()
    }

    /// Whether a statement failed with SQLSTATE 25006 on this connection.
    pub(crate) fn read_only_seen(&self) -> bool {
        self.read_only_seen.load(Ordering::Acquire)
    }

    /// Whether the connection was opened in pooler mode (`Config::pooler_mode`).
    pub(crate) fn pooler_mode(&self) -> bool {
        self.one_cancel
    }

    /// Fails at once if the connection is closed or broken.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::closed());
        }
        if self.health.load(Ordering::Acquire) != HEALTHY {
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
        self.health.load(Ordering::Acquire) == ABANDONED
    }

    /// Whether calls fail as broken: broken for good, or abandoned awaiting recovery.
    pub(crate) fn is_broken(&self) -> bool {
        self.health.load(Ordering::Acquire) != HEALTHY
    }

    /// Whether the broken flag is set (abandoned connections may still be recovered).
    pub(crate) fn is_broken_for_good(&self) -> bool {
        self.health.load(Ordering::Acquire) == BROKEN
    }

    /// Marks an exchange abandoned (never over broken).
    pub(super) fn mark_abandoned(&self) {
        let _ =
            self.health
                .compare_exchange(HEALTHY, ABANDONED, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Clears the abandoned mark after a recovery (never clears broken).
    pub(super) fn mark_recovered(&self) {
        let _ =
            self.health
                .compare_exchange(ABANDONED, HEALTHY, Ordering::AcqRel, Ordering::Acquire);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(super) fn mark_broken(&self) {
        self.health.store(BROKEN, Ordering::Release);
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
    /// running more backends than its size. Returns whether it did.
    ///
    /// With `cancel`, a CancelRequest goes out first and is repeated every
    /// [`CANCEL_REPEAT`] until then (not in pooler mode): PostgreSQL drops a cancel that
    /// lands between the messages of an extended-protocol exchange, and a session that is
    /// never reused cannot have a later query hit by a repeat.
    ///
    /// In pooler mode, the `owed` ReadyForQuery messages of the abandoned exchange are
    /// read first (within the same limit): a pooler that sees its client leave while
    /// answers are still due may hand the server connection to another client as soon
    /// as the first of them arrives (PgBouncer in transaction mode), and the rest would
    /// reach that client.
    pub(super) async fn close_until_gone(
        &self,
        io: &mut Io,
        limit: Duration,
        cancel: bool,
        owed: u32,
    ) -> bool {
        use futures::StreamExt;
        use tokio::io::AsyncReadExt;
        let deadline = crate::transport::blocking::tokio_instant_after(limit);
        // The first cancel goes out while the session is still open: a pooler in between
        // (PgBouncer) forwards a cancel only for a client it still has.
        let mut first = cancel;
        if first {
            self.send_cancel(deadline).await;
        }
        if self.pooler_mode() && owed > 0 {
            let mut left = owed;
            let drain = async {
                while left > 0 {
                    match io.next().await {
                        Some(Ok(crate::protocol::BackendMessage::ReadyForQuery(_))) => left -= 1,
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => break,
                    }
                }
            };
            if tokio::time::timeout_at(deadline, drain).await.is_err() {
                tracing::debug!(conn = self.id, "owed answers not all read before closing");
            }
        }
        self.killswitch.shutdown_write();
        let mut sink = [0u8; 1024];
        let gone = loop {
            if cancel && !self.one_cancel && !std::mem::take(&mut first) {
                self.send_cancel(deadline).await;
            }
            let until = deadline.min(tokio::time::Instant::now() + CANCEL_REPEAT);
            let read =
                async { while matches!(io.get_mut().read(&mut sink).await, Ok(n) if n > 0) {} };
            match tokio::time::timeout_at(until, read).await {
                Ok(()) => break true,
                Err(_) if tokio::time::Instant::now() >= deadline => break false,
                Err(_) => {}
            }
        };
        self.killswitch.trip();
        if !gone {
            tracing::warn!(
                conn = self.id,
                pid = self.cancel.process_id,
                ?limit,
                "the backend did not end within the cancel timeout; it may still be running"
            );
        }
        gone
    }

    /// Sends one CancelRequest, giving up at `deadline`.
    async fn send_cancel(&self, deadline: tokio::time::Instant) {
        let send = tokio::time::timeout_at(deadline, self.cancel.cancel_query());
        if let Ok(Err(e)) = send.await {
            tracing::debug!(conn = self.id, error = %e, "cancel request failed");
        }
    }

    pub(crate) fn transaction_status(&self) -> TransactionStatus {
        let b = self.tx_status.load(Ordering::Acquire);
        TransactionStatus::from_byte(b).unwrap_or(TransactionStatus::Failed)
    }

    pub(super) fn set_transaction_status(&self, status: TransactionStatus) {
        self.tx_status.store(status.as_byte(), Ordering::Release);
    }

    fn holder(&self) -> std::sync::MutexGuard<'_, Option<(u64, Caller)>> {
        self.holder.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails when the current task already holds the wire through a long-lived guard:
    /// waiting for the lock would wait for itself.
    pub(crate) fn check_not_holder(&self, what: &str) -> Result<(), Error> {
        let me = Caller::current();
        let holder = *self.holder();
        match holder.is_some_and(|(_, task)| task == me) {
            false => Ok(()),
            true => Err(Error::new(
                ErrorKind::Misuse,
                format!(
                    "this task holds the connection through an open transaction, row \
                     stream or COPY and called {what} on the connection directly, which would \
                     wait for itself forever; run it through the transaction, or finish (or \
                     drop) the stream or COPY first"
                ),
            )),
        }
    }

    /// Takes the task that cancels and closes a broken connection, if one runs.
    pub(crate) fn take_drain(&self) -> Option<tokio::task::JoinHandle<bool>> {
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

    pub(super) fn take_dropped_statements(&self) -> Vec<String> {
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

/// How often a CancelRequest is repeated while an abandoned backend keeps running.
pub(crate) const CANCEL_REPEAT: Duration = Duration::from_millis(75);

/// Time limits a connection applies to its own calls (none by default).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Limits {
    /// Bounds a whole call: waiting for the wire lock and the exchange.
    pub(crate) query: Option<Duration>,
    /// Bounds the wait for another task to release the wire lock.
    pub(crate) lock: Option<Duration>,
}

/// Marks the current task as the holder of a connection's wire for a long-lived guard
/// (a transaction or a row stream).
///
/// Invariant: the mark names the task that last used the guard. It carries a token, so
/// it is re-stamped ([`HolderMark::refresh`], on every use) and cleared (on drop) only
/// while it is still this guard's: a guard moved to another task moves its mark with its
/// next use, and a late drop never wipes the next holder's mark.
#[derive(Debug)]
pub(crate) struct HolderMark {
    shared: Arc<Shared>,
    token: u64,
    /// The caller this mark last stamped.
    last: Caller,
}

impl HolderMark {
    pub(crate) fn new(shared: Arc<Shared>) -> HolderMark {
        let token = shared.next_holder_token.fetch_add(1, Ordering::Relaxed);
        let last = Caller::current();
        *shared.holder() = Some((token, last));
        HolderMark {
            shared,
            token,
            last,
        }
    }

    /// [`HolderMark::refresh`] for a guard polled once per row: takes the lock only when
    /// the caller differs from the one this mark last stamped (the stamp is then still
    /// current, or another mark has replaced it, which a refresh would not change). A
    /// mark moved this way must be moved only this way: a `refresh` in between would
    /// leave `last` stale.
    pub(crate) fn follow(&mut self) {
        let now = Caller::current();
        if now != self.last {
            self.last = now;
            self.refresh();
        }
    }

    /// Moves the mark to the current task (the guard may have moved between tasks).
    pub(crate) fn refresh(&self) {
        let mut holder = self.shared.holder();
        if holder.is_some_and(|(token, _)| token == self.token) {
            *holder = Some((self.token, Caller::current()));
        }
    }
}

impl Drop for HolderMark {
    fn drop(&mut self) {
        let mut holder = self.shared.holder();
        if holder.is_some_and(|(token, _)| token == self.token) {
            *holder = None;
        }
    }
}

/// Who is calling: a tokio task, or (outside any task, e.g. a `block_on` main future) a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    Task(tokio::task::Id),
    Thread(std::thread::ThreadId),
}

impl Caller {
    pub(crate) fn current() -> Caller {
        match tokio::task::try_id() {
            Some(id) => Caller::Task(id),
            None => Caller::Thread(std::thread::current().id()),
        }
    }
}
