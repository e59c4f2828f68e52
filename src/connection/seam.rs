//! The narrow seam between a pool and a connection: the few questions a pool asks of a
//! connection it gets back, and the few things it asks it to do. A pool never touches
//! the wire's insides.

use std::sync::Arc;

use super::Connection;
use crate::error::Error;
use crate::protocol::TransactionStatus;

/// What a returned connection needs before anyone else may have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReturnState {
    /// Idle on the server, nothing owed: ready for the next user.
    Clean,
    /// A transaction is open or a row stream's portal paused: it must be cleaned.
    NeedsCleanup,
    /// An exchange was abandoned and awaits recovery (the Recover policy).
    Abandoned,
    /// Broken or closed: never reused.
    Dead,
    /// Someone still holds its wire (a leaked transaction or stream guard).
    Busy,
}

/// What [`Connection::restore`] did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Restored {
    /// An abandoned exchange was read to its end.
    pub(crate) recovered: bool,
    /// An open transaction was rolled back.
    pub(crate) rolled_back: bool,
}

impl Connection {
    /// Where the connection stands, judged without waiting.
    pub(crate) fn return_state(&self) -> ReturnState {
        let shared = &self.inner.shared;
        if shared.is_closed() || shared.is_broken_for_good() {
            return ReturnState::Dead;
        }
        if shared.is_abandoned() {
            return ReturnState::Abandoned;
        }
        match self.inner.wire.try_lock() {
            Ok(wire) if !wire.is_usable() => ReturnState::Dead,
            Ok(wire) if wire.needs_cleanup() => ReturnState::NeedsCleanup,
            Ok(_) => ReturnState::Clean,
            Err(_) => ReturnState::Busy,
        }
    }

    /// Whether a handle other than this one is still alive (a clone the user kept).
    pub(crate) fn has_other_handles(&self) -> bool {
        Arc::strong_count(&self.inner) > 1
    }

    /// Makes a returned connection fit for the next user, under one hold of its wire:
    /// recovers an abandoned exchange, settles a paused portal, rolls back an open
    /// transaction, and runs `reset` (closing every cached statement first, since a
    /// reset may or may not drop them on the server).
    ///
    /// # Errors
    /// Any failure; the connection must then be evicted.
    pub(crate) async fn restore(&self, reset: Option<&str>) -> Result<Restored, Error> {
        let mut wire = self.inner.wire.clone().lock_owned().await;
        let mut done = Restored::default();
        if self.inner.shared.is_abandoned() {
            wire.recover().await?;
            done.recovered = true;
        }
        done.rolled_back = wire.transaction_status() != TransactionStatus::Idle;
        wire.cleanup(true).await?;
        if let Some(sql) = reset {
            let names = wire.shared.pipe.lock().cache.drain_names();
            wire.to_close.extend(names);
            wire.simple_query(sql).await?;
        }
        Ok(done)
    }

    /// Checks an idle connection without waiting (see `Wire::check_idle`); false when it
    /// is dead or busy.
    pub(crate) fn quick_check(&self, look_at_socket: bool) -> bool {
        match self.inner.wire.try_lock() {
            Ok(mut wire) => wire.check_idle(look_at_socket),
            Err(_) => false,
        }
    }

    /// Whether a statement on this connection failed with SQLSTATE 25006
    /// (read_only_sql_transaction): the server it reached is read-only now.
    pub(crate) fn hit_read_only(&self) -> bool {
        self.inner.shared.read_only_seen()
    }

    /// Opts this connection in to recovery of abandoned exchanges.
    pub(crate) fn set_recoverable(&self, on: bool) {
        self.inner.shared.set_recoverable(on);
    }

    /// Whether the connection broke mid-exchange, so CancelRequests were sent.
    pub(crate) fn was_cancelled(&self) -> bool {
        self.inner
            .shared
            .cancelled
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The task that cancels and closes a broken connection, if one runs; it yields
    /// whether the backend was seen gone.
    pub(crate) fn take_drain(&self) -> Option<tokio::task::JoinHandle<bool>> {
        self.inner.shared.take_drain()
    }
}
