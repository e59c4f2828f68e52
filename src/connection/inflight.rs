//! [`InFlight`], the **in-flight guard**: armed when the first byte of a request is
//! written, disarmed only at the ReadyForQuery that ends the exchange. Dropped while
//! armed (the caller's future was dropped mid-exchange), it marks the connection broken,
//! takes the socket away and sends the server a CancelRequest before closing it; or,
//! when a pool opted in to recovery and the whole request went out, leaves the exchange
//! for [`Wire::recover`].
//!
//! Cancel safety: everything between the first write and ReadyForQuery is *not* cancel
//! safe (the server's reply would be left on the socket for the next caller); that span
//! is exactly where this guard is armed.

use std::sync::atomic::Ordering;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};

use super::wire::{Io, Wire};
use crate::codec::Frontend;
use crate::error::{DbError, Error, ErrorKind};
use crate::protocol::frontend;
use crate::protocol::{BackendMessage, ProtocolError, TransactionStatus};

/// One exchange in progress. Dropped before [`InFlight::finish`], it breaks the connection.
pub(crate) struct InFlight<'a> {
    pub(super) wire: &'a mut Wire,
    pub(super) armed: bool,
    /// A Sync (or simple Query) went into the buffer: the server will end this exchange
    /// with ReadyForQuery by itself, which is what makes recovery possible.
    pub(super) awaiting_ready: bool,
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

    /// As `pause`, with the next batch already requested.
    pub(crate) fn pause_with_batch_in_flight(&mut self) {
        self.wire.batch_in_flight = true;
        self.pause();
    }

    /// Resumes a paused exchange (the stream fetches its next batch).
    pub(crate) fn resume(wire: &mut Wire) -> Result<InFlight<'_>, Error> {
        let f = wire.start_now()?;
        f.wire.pending_sync = false;
        Ok(f)
    }

    /// Whether the exchange has reached its ReadyForQuery.
    pub(crate) fn is_finished(&self) -> bool {
        !self.armed
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

pub(super) fn log_notice(fields: Vec<(u8, String)>) {
    let notice = DbError::from_fields(fields);
    match notice.severity() {
        "WARNING" => tracing::warn!(code = notice.code(), "{}", notice.message()),
        "DEBUG" | "LOG" => tracing::debug!(code = notice.code(), "{}", notice.message()),
        _ => tracing::info!(code = notice.code(), "{}", notice.message()),
    }
}
