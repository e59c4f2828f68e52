//! [`Shared`]: what every handle of a connection can read without the wire lock, above
//! all the **broken flag** (set once, never cleared) and the holder mark that turns a
//! same-task re-entry into an error instead of a deadlock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use super::wire::Io;
use crate::cancel::CancelToken;
use crate::error::{Error, ErrorKind};
use crate::protocol::TransactionStatus;
use crate::transport::Killswitch;

/// State every handle of a connection can read without the wire lock.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The connection's own time limits.
    pub(crate) limits: Limits,
    pub(crate) id: u64,
    /// Set once when an exchange is abandoned or fails mid-way; never cleared.
    broken: AtomicBool,
    /// Set by `close()`; never cleared.
    closed: AtomicBool,
    /// Opt-in (a pool's recovery policy): an abandoned exchange whose request went out
    /// whole is drained after a confirmed cancel instead of breaking the connection.
    pub(super) recoverable: AtomicBool,
    /// An exchange was abandoned and awaits recovery; calls fail as if broken until then.
    pub(super) abandoned: AtomicBool,
    /// The status byte of the last ReadyForQuery.
    tx_status: AtomicU8,
    /// The task that holds the wire for a transaction or an open row stream, if any.
    holder: StdMutex<Option<Caller>>,
    pub(crate) params: StdMutex<HashMap<String, String>>,
    pub(crate) cancel: CancelToken,
    pub(super) killswitch: Killswitch,
    /// Names of user statements dropped since the last exchange; closed on the next one.
    dropped_statements: StdMutex<Vec<String>>,
    has_dropped_statements: AtomicBool,
    /// The task sending the cancel and closing the socket of a broken connection.
    pub(super) drain: StdMutex<Option<tokio::task::JoinHandle<()>>>,
    /// Types of this database looked up by OID (enums, composites, domains, extensions).
    pub(crate) types: StdMutex<crate::types::catalog::TypeCatalog>,
}

impl Shared {
    pub(crate) fn new(
        id: u64,
        params: HashMap<String, String>,
        cancel: CancelToken,
        killswitch: Killswitch,
        limits: Limits,
    ) -> Shared {
        Shared {
            id,
            limits,
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
            types: StdMutex::default(),
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

    pub(super) fn mark_broken(&self) {
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
    pub(super) async fn wait_server_gone(&self, io: &mut Io, limit: Duration) {
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

    pub(super) fn set_transaction_status(&self, status: TransactionStatus) {
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

/// Time limits a connection applies to its own calls (none by default).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Limits {
    /// Bounds a whole call: waiting for the wire lock and the exchange.
    pub(crate) query: Option<Duration>,
    /// Bounds the wait for another task to release the wire lock.
    pub(crate) lock: Option<Duration>,
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
