//! Asynchronous messages: notifications (LISTEN/NOTIFY) and notices.
//!
//! A NotificationResponse can arrive in the middle of any exchange, or while the
//! connection is idle (PostgreSQL manual, "Asynchronous Operations"). Whichever reader
//! meets one puts it in the connection's bounded [`NotificationQueue`]; when the queue is
//! full the oldest is dropped, counted, and reported through `tracing`. A plain
//! connection reads only during exchanges, so an idle one sees nothing new until its next
//! call; a [`super::Listener`] owns its connection and reads it while idle.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use futures::StreamExt;
use tokio::sync::Notify;

use super::ledger::State;
use super::wire::Wire;
use crate::error::{DbError, Error, ErrorKind};
use crate::protocol::BackendMessage;

/// How many notifications a connection keeps unread by default.
pub const DEFAULT_NOTIFICATION_CAPACITY: usize = 1024;

/// A notification sent with `NOTIFY channel, 'payload'` (or `pg_notify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    process_id: i32,
    channel: String,
    payload: String,
}

impl Notification {
    /// The backend process id of the session that sent it.
    pub fn process_id(&self) -> i32 {
        self.process_id
    }

    /// The channel it was sent on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Its payload ("" when none was given).
    pub fn payload(&self) -> &str {
        &self.payload
    }
}

/// A callback for the server's notices (warnings, `RAISE NOTICE`, …).
pub type NoticeHandler = Arc<dyn Fn(&DbError) + Send + Sync>;

/// The notifications a connection has read and nobody has taken yet, and what else
/// asynchronous messages need: the notice callback.
pub(crate) struct NotificationQueue {
    queue: StdMutex<VecDeque<Notification>>,
    capacity: AtomicUsize,
    dropped: AtomicU64,
    arrived: Notify,
    notice_handler: StdMutex<Option<NoticeHandler>>,
}

impl Default for NotificationQueue {
    fn default() -> Self {
        NotificationQueue {
            queue: StdMutex::new(VecDeque::new()),
            capacity: AtomicUsize::new(DEFAULT_NOTIFICATION_CAPACITY),
            dropped: AtomicU64::new(0),
            arrived: Notify::new(),
            notice_handler: StdMutex::new(None),
        }
    }
}

impl std::fmt::Debug for NotificationQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationQueue")
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish()
    }
}

impl NotificationQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Notification>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a notification; a full queue drops its oldest.
    pub(crate) fn push(&self, conn: u64, process_id: i32, channel: String, payload: String) {
        let capacity = self.capacity.load(Ordering::Relaxed);
        {
            let mut queue = self.lock();
            while queue.len() >= capacity.max(1) {
                queue.pop_front();
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    conn,
                    dropped,
                    capacity,
                    "notification queue full; the oldest was dropped"
                );
            }
            queue.push_back(Notification {
                process_id,
                channel,
                payload,
            });
        }
        self.arrived.notify_waiters();
    }

    pub(crate) fn take(&self) -> Vec<Notification> {
        self.lock().drain(..).collect()
    }

    fn pop(&self) -> Option<Notification> {
        self.lock().pop_front()
    }

    /// Passes a notice to the callback, if one is set.
    pub(crate) fn notice(&self, notice: &DbError) {
        let handler = self
            .notice_handler
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(handler) = handler {
            handler(notice);
        }
    }
}

impl super::Connection {
    fn queue(&self) -> &NotificationQueue {
        &self.inner.shared.notifications
    }

    /// Takes every notification this connection has read so far (oldest first).
    ///
    /// A connection reads from its socket only while it runs an exchange, so
    /// notifications sent while it sits idle are taken after its next call; a
    /// [`super::Listener`] reads while idle.
    pub fn take_notifications(&self) -> Vec<Notification> {
        self.queue().take()
    }

    /// Waits for the next notification this connection reads (during any exchange,
    /// on any task sharing it), oldest first.
    ///
    /// # Cancel safety
    /// Cancel safe: a notification is taken only when returned.
    pub async fn next_notification(&self) -> Notification {
        loop {
            let arrived = self.queue().arrived.notified();
            if let Some(n) = self.queue().pop() {
                return n;
            }
            arrived.await;
        }
    }

    /// A stream of the notifications this connection reads; see
    /// [`super::Connection::next_notification`].
    pub fn notifications(&self) -> impl futures::Stream<Item = Notification> + Send + '_ {
        futures::stream::unfold(self, |conn| async move {
            Some((conn.next_notification().await, conn))
        })
    }

    /// How many notifications the queue has dropped, oldest first, because it was full.
    pub fn notifications_dropped(&self) -> u64 {
        self.queue().dropped.load(Ordering::Relaxed)
    }

    /// Sets how many unread notifications the connection keeps (at least one; default
    /// [`DEFAULT_NOTIFICATION_CAPACITY`]).
    pub fn set_notification_capacity(&self, capacity: usize) {
        self.queue()
            .capacity
            .store(capacity.max(1), Ordering::Relaxed);
    }

    /// Calls `handler` with every notice the server sends on this connection (they go
    /// to `tracing` as well); `None` removes it. It runs on the reading task: keep it short.
    pub fn set_notice_handler(&self, handler: Option<NoticeHandler>) {
        *self
            .queue()
            .notice_handler
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = handler;
    }
}

impl Wire {
    /// Waits for the next message on an idle wire and handles it (a notification, a
    /// notice, a parameter change). Anything else, an error or end-of-file, means the
    /// session is gone: the connection is broken.
    ///
    /// # Cancel safety
    /// Cancel safe: a message is taken from the codec's buffer only when whole, and
    /// handled before the next await.
    pub(crate) async fn read_idle(&mut self) -> Result<(), Error> {
        if !matches!(self.ledger.state, State::Ready) {
            return Err(Error::broken());
        }
        let Some(io) = self.io.as_mut() else {
            return Err(Error::closed());
        };
        let msg = io.next().await;
        self.idle_message(msg)
    }

    fn idle_message(&mut self, msg: Option<Result<BackendMessage, Error>>) -> Result<(), Error> {
        let err = match msg.map(|m| m.map(|m| self.unsolicited(m))) {
            Some(Ok(None)) => return Ok(()),
            Some(Ok(Some(BackendMessage::ErrorResponse(fields)))) => {
                Error::db(DbError::from_fields(fields))
            }
            Some(Ok(Some(msg))) => Error::new(
                ErrorKind::Protocol,
                format!("{} on an idle connection", msg.name()),
            ),
            Some(Err(e)) => e,
            None => Error::new(ErrorKind::Closed, "the server closed the connection"),
        };
        self.break_off(&err.to_string());
        Err(err)
    }
}
