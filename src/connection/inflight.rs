//! [`InFlight`], the **in-flight guard**, and the one reader every exchange uses.
//!
//! An exchange begins when [`Wire::begin`] puts the ledger in [`State::Exchange`]: from
//! then on the wire owes the server's answer. The guard writes requests (counting every
//! Sync and Query in the ledger) and reads answers through [`InFlight::read`], which
//! handles everything that is the same for every exchange (ReadyForQuery and the owed
//! count, errors, queued Closes, a COPY nobody asked for, notices) and hands the rest to
//! a [`Handler`]. The exchange ends when a ReadyForQuery brings the owed count to zero.
//!
//! Dropped before that (the caller's future was dropped mid-exchange), the guard either
//! leaves the exchange [`State::Abandoned`] for recovery (a pool opted in, and the whole
//! request went out) with a CancelRequest already on its way, or breaks the connection,
//! which sends the cancel and closes the socket.
//!
//! Cancel safety: everything between the first write and the last owed ReadyForQuery is
//! *not* cancel safe (the server's reply would be left on the socket for the next
//! caller); that span is exactly where this guard is armed.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use futures::{Sink, SinkExt, Stream, StreamExt};

use super::ledger::{Ledger, State};
use super::wire::{Io, Wire};
use crate::codec::Frontend;
use crate::error::{DbError, Error, ErrorKind};
use crate::protocol::frontend;
use crate::protocol::{BackendMessage, ProtocolError, TransactionStatus};

/// What the reader does after a handler has seen a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Read on.
    Continue,
    /// Return to the caller now (a batch of a row stream is complete); the exchange
    /// stays open.
    Stop,
    /// Send Sync now and read on: a streamed batch ended with Flush, and its command has
    /// completed or failed, so the exchange must be ended.
    Sync,
}

/// How [`InFlight::read`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The last owed ReadyForQuery was read; the exchange is over.
    Ready,
    /// The handler stopped the reader; the exchange goes on.
    Stopped,
}

/// What a caller does with the messages of its exchange that only it understands: rows,
/// descriptions, completions. Errors are kept by the reader (the first one wins); the
/// handler is told of each so a streamed batch can send its Sync.
pub(crate) trait Handler {
    /// Handles `msg`; `Err(msg)` gives it back as not allowed here (a protocol error).
    fn message(&mut self, msg: BackendMessage) -> Result<Flow, BackendMessage>;

    /// The server reported an error (already kept by the reader).
    fn error(&mut self) -> Flow {
        Flow::Continue
    }

    /// Offered each server error first: a handler that answers many statements keeps
    /// each one's error itself (`None`); by default the reader keeps the first.
    fn keep_error(&mut self, e: Error) -> Option<Error> {
        Some(e)
    }

    /// A ReadyForQuery of this exchange was read (one Sync's unit of work is over).
    fn ready(&mut self, _status: TransactionStatus) {}
}

/// One exchange in progress. Dropped before its last owed ReadyForQuery, it abandons
/// or breaks the connection.
pub(crate) struct InFlight<'a> {
    pub(super) wire: &'a mut Wire,
    /// The first server error of the exchange; it still runs to its end.
    error: Option<Error>,
    /// Statements whose Close went out first in this exchange.
    closes: Vec<String>,
    closes_done: usize,
    /// Whether the exchange uses the extended protocol (a COPY refusal then needs Sync).
    extended: bool,
    what: &'static str,
    /// The write buffer's length and the ledger before `begin`, for `abandon_unsent`.
    before: Option<(usize, Ledger)>,
    /// Whether a drop may leave the exchange for recovery (not during recovery itself).
    recoverable: bool,
    /// Whether the handler takes COPY messages (a COPY exchange) instead of the reader
    /// refusing or dropping them.
    copy: bool,
    /// Whether a COPY FROM STDIN breaks the connection instead of being refused: with
    /// several Syncs in flight the server swallows an unknown number of them while it
    /// waits for data, so the owed answers can no longer be counted.
    copy_in_breaks: bool,
}

impl<'a> InFlight<'a> {
    pub(super) fn new(
        wire: &'a mut Wire,
        closes: Vec<String>,
        what: &'static str,
        before: (usize, Ledger),
    ) -> Self {
        InFlight {
            before: Some(before),
            recoverable: true,
            wire,
            error: None,
            closes,
            closes_done: 0,
            extended: true,
            what,
            copy: false,
            copy_in_breaks: false,
        }
    }

    fn io(&mut self) -> &mut Io {
        // `Wire::begin` checked that the socket is there, and only `break_off` (which
        // also ends this exchange) takes it away.
        self.wire
            .io
            .as_mut()
            .expect("in-flight exchange without a socket")
    }

    /// The write buffer: messages appended here go out with the next flush.
    pub(crate) fn buf(&mut self) -> &mut BytesMut {
        self.io().write_buffer_mut()
    }

    /// Appends Sync: the server answers with one more ReadyForQuery.
    pub(crate) fn sync(&mut self) {
        frontend::sync(self.buf());
        self.wire.ledger.owe();
    }

    /// Appends a simple Query (which ends with its own ReadyForQuery).
    ///
    /// # Errors
    /// [`ErrorKind::Encode`] when the SQL cannot be sent (a NUL byte); nothing is written.
    pub(crate) fn query(&mut self, sql: &str) -> Result<(), Error> {
        frontend::query(sql, self.buf())?;
        self.wire.ledger.owe();
        self.extended = false;
        Ok(())
    }

    /// A drop breaks the connection instead of leaving it for recovery.
    pub(super) fn no_recovery(&mut self) {
        self.recoverable = false;
    }

    /// COPY messages go to the handler, and a drop breaks the connection: a server in
    /// copy-in mode waits for data and would never answer a recovery.
    pub(super) fn copy_exchange(&mut self) {
        self.copy = true;
        self.recoverable = false;
    }

    /// A COPY FROM STDIN reached in this exchange breaks the connection (see the field).
    pub(super) fn copy_in_breaks(&mut self) {
        self.copy_in_breaks = true;
    }

    /// Leaves the exchange between the caller's calls in `state` (a COPY in progress).
    pub(super) fn park(&mut self, state: State) {
        self.wire.ledger.state = state;
        self.settle_closes();
    }

    /// The wire, for the statement cache and names.
    pub(crate) fn wire(&mut self) -> &mut Wire {
        self.wire
    }

    /// Takes the first server error of the exchange.
    pub(crate) fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }

    /// Whether the server has reported an error in this exchange.
    pub(crate) fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// Ends an exchange that has sent nothing, leaving the connection exactly as it was
    /// before [`Wire::begin`] (queued Closes go back to the queue, a paused portal stays
    /// paused).
    pub(crate) fn abandon_unsent(mut self) {
        let (len, ledger) = self.before.take().expect("taken once");
        if !matches!(self.wire.ledger.state, State::Exchange) {
            return; // broken on the way: nothing to restore
        }
        self.buf().truncate(len);
        self.wire.ledger = ledger;
        self.closes_done = 0;
        self.settle_closes();
    }

    /// Sends everything buffered.
    pub(crate) async fn flush(&mut self) -> Result<(), Error> {
        match SinkExt::<Frontend<'_>>::flush(self.io()).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Sends everything buffered while reading (and handling) what the server sends
    /// meanwhile, so a long request whose answers are long too can never fill both
    /// directions of the socket and stall.
    pub(crate) async fn flush_reading(&mut self, h: &mut impl Handler) -> Result<(), Error> {
        loop {
            let step = poll_fn(|cx| {
                let io = self.io();
                match Sink::<Frontend<'_>>::poll_flush(Pin::new(&mut *io), cx) {
                    Poll::Ready(r) => return Poll::Ready(Err(r)),
                    Poll::Pending => {}
                }
                match Pin::new(io).poll_next(cx) {
                    Poll::Ready(msg) => Poll::Ready(Ok(msg)),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            match step {
                Err(Ok(())) => return Ok(()),
                Err(Err(e)) => return Err(self.fail(e)),
                Ok(msg) => {
                    let msg = self.accept(msg)?;
                    if let Some(Ended::Ready) = self.dispatch(msg, h)? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Handles what the server has already sent, without waiting for more (a Sync a
    /// handler queues is sent, as by [`InFlight::read`]); `true` when that ended the
    /// exchange (its last ReadyForQuery was read).
    pub(crate) async fn read_arrived(&mut self, h: &mut impl Handler) -> Result<bool, Error> {
        loop {
            let Some(msg) = self.next_arrived().await else {
                return Ok(false);
            };
            if let Some(ended) = self.handle(msg, h).await? {
                return Ok(ended == Ended::Ready);
            }
        }
    }

    /// Reads the exchange's answers until the last owed ReadyForQuery (the exchange is
    /// then over) or until the handler stops; see the module docs for what the reader
    /// handles itself.
    ///
    /// # Errors
    /// A socket or protocol failure, which has broken the connection. Server errors are
    /// not returned here but kept ([`InFlight::take_error`]).
    pub(crate) async fn read(&mut self, h: &mut impl Handler) -> Result<Ended, Error> {
        loop {
            if let Some(ended) = self.read_one(h).await? {
                return Ok(ended);
            }
        }
    }

    /// Reads and handles one message (waiting for the socket only when no whole message
    /// is buffered); `Some` when the reader should return, as [`InFlight::read`].
    pub(crate) async fn read_one(&mut self, h: &mut impl Handler) -> Result<Option<Ended>, Error> {
        let msg = self.io().next().await;
        self.handle(msg, h).await
    }

    /// Like [`InFlight::read_one`], but only when a message has already arrived: when
    /// nothing has, returns `Some(Ended::Stopped)` at once, so a caller holding data can
    /// hand it out while the server produces more.
    pub(crate) async fn read_one_arrived(
        &mut self,
        h: &mut impl Handler,
    ) -> Result<Option<Ended>, Error> {
        match self.next_arrived().await {
            Some(msg) => self.handle(msg, h).await,
            None => Ok(Some(Ended::Stopped)),
        }
    }

    /// The next message if one has already arrived (whole in the read buffer, or bytes
    /// ready on the socket), without waiting; `None` when nothing has.
    async fn next_arrived(&mut self) -> Option<Option<Result<BackendMessage, Error>>> {
        poll_fn(|cx| match Pin::new(self.io()).poll_next(cx) {
            Poll::Ready(msg) => Poll::Ready(Some(msg)),
            Poll::Pending => Poll::Ready(None),
        })
        .await
    }

    /// Accepts and handles what the codec gave, then sends what the handler queued (a
    /// Sync); `Some` when the reader should return.
    async fn handle(
        &mut self,
        msg: Option<Result<BackendMessage, Error>>,
        h: &mut impl Handler,
    ) -> Result<Option<Ended>, Error> {
        let msg = self.accept(msg)?;
        let ended = self.dispatch(msg, h)?;
        if ended.is_none() && !self.io().write_buffer().is_empty() {
            self.flush().await?;
        }
        Ok(ended)
    }

    /// Hands the bodies of the CopyData messages already whole in the read buffer to
    /// `take`, in order, until it returns `false` or another kind of message (or a part
    /// of one) is next; nothing is read from the socket. This is the bulk path of a
    /// COPY TO STDOUT: what it skips (a [`BackendMessage`] and the reader's dispatch per
    /// message) is exactly what a CopyData in a COPY exchange does not need. Anything it
    /// leaves, including a frame the codec refuses, goes through [`InFlight::read`].
    pub(crate) fn take_copy_data(&mut self, mut take: impl FnMut(Bytes) -> bool) {
        if !self.copy || self.wire.ledger.discard > 0 {
            return;
        }
        let codec = self.io().codec().clone();
        while let Some(body) = codec.split_copy_data(self.io().read_buffer_mut()) {
            if !take(body) {
                return;
            }
        }
    }

    /// Turns what the codec gave into a message, or breaks the connection. When the
    /// socket fails right after the server sent a FATAL error, that error is the one
    /// returned: it says why (e.g. 57P01 admin shutdown).
    fn accept(
        &mut self,
        msg: Option<Result<BackendMessage, Error>>,
    ) -> Result<BackendMessage, Error> {
        let failure = match msg {
            Some(Ok(msg)) => return Ok(msg),
            Some(Err(e)) => e,
            None => self.eof_error(),
        };
        let failure = match self.error.take() {
            Some(fatal) if fatal.is_connection_fatal() => fatal,
            other => {
                self.error = other;
                failure
            }
        };
        Err(self.fail(failure))
    }

    /// Handles one message; `Some` when the reader should return.
    fn dispatch(
        &mut self,
        msg: BackendMessage,
        h: &mut impl Handler,
    ) -> Result<Option<Ended>, Error> {
        if self.wire.ledger.discard > 0 {
            return self.discarding(msg);
        }
        let Some(msg) = self.wire.unsolicited(msg) else {
            return Ok(None);
        };
        let flow = match msg {
            BackendMessage::ReadyForQuery(status) => {
                let ended = self.ready(status)?;
                h.ready(status);
                return Ok(ended);
            }
            BackendMessage::CloseComplete if self.closes_done < self.closes.len() => {
                self.closes_done += 1;
                return Ok(None);
            }
            BackendMessage::ErrorResponse(fields) => {
                let e = Error::db(DbError::from_fields(fields));
                self.wire.shared.note_error(&e);
                if let Some(e) = h.keep_error(e) {
                    keep_first(&mut self.error, e);
                }
                h.error()
            }
            msg @ (BackendMessage::CopyInResponse(_)
            | BackendMessage::CopyOutResponse(_)
            | BackendMessage::CopyData(_)
            | BackendMessage::CopyDone)
                if self.copy =>
            {
                match h.message(msg) {
                    Ok(flow) => flow,
                    Err(msg) => return Err(self.unexpected(&msg)),
                }
            }
            msg @ BackendMessage::CopyInResponse(_) if self.copy_in_breaks => {
                return Err(self.unexpected(&msg));
            }
            BackendMessage::CopyInResponse(_) => {
                self.refuse_copy_in();
                return Ok(None);
            }
            // A COPY TO STDOUT reached through a plain query: its data is not wanted.
            BackendMessage::CopyOutResponse(_)
            | BackendMessage::CopyData(_)
            | BackendMessage::CopyDone => return Ok(None),
            msg => match h.message(msg) {
                Ok(flow) => flow,
                Err(msg) => return Err(self.unexpected(&msg)),
            },
        };
        match flow {
            Flow::Continue => Ok(None),
            Flow::Stop => Ok(Some(Ended::Stopped)),
            Flow::Sync => {
                self.sync();
                Ok(None)
            }
        }
    }

    /// A message of settled work (a paused portal's last batch, its Close): dropped.
    fn discarding(&mut self, msg: BackendMessage) -> Result<Option<Ended>, Error> {
        match self.wire.unsolicited(msg) {
            Some(BackendMessage::ReadyForQuery(status)) => {
                self.wire.ledger.discard -= 1;
                self.ready(status)
            }
            Some(
                msg @ (BackendMessage::CopyInResponse(_) | BackendMessage::CopyBothResponse(_)),
            ) => Err(self.unexpected(&msg)),
            _ => Ok(None),
        }
    }

    /// A ReadyForQuery: one less owed; the exchange ends when none is.
    fn ready(&mut self, status: TransactionStatus) -> Result<Option<Ended>, Error> {
        if !self.wire.ledger.paid() {
            let msg = BackendMessage::ReadyForQuery(status);
            return Err(self.unexpected(&msg));
        }
        self.wire.shared.set_transaction_status(status);
        if self.wire.ledger.owed > 0 {
            return Ok(None);
        }
        self.wire.ledger.state = State::Ready;
        Ok(Some(Ended::Ready))
    }

    /// A COPY FROM STDIN reached through a plain query: tell the server it gets no data.
    /// In the extended protocol the server swallows Syncs while in copy mode, so the
    /// Sync already sent is gone and a new one follows the CopyFail (the owed count
    /// stays the same).
    fn refuse_copy_in(&mut self) {
        let msg = "COPY FROM STDIN is not supported through this call";
        let _ = frontend::copy_fail(msg, self.buf());
        if self.extended {
            frontend::sync(self.buf());
        }
        keep_first(
            &mut self.error,
            Error::new(
                ErrorKind::Misuse,
                "COPY FROM STDIN cannot run through query/execute/simple_query; it was refused",
            ),
        );
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

    /// Pauses between batches of a row stream: the portal stays open, and the next
    /// exchange on this wire settles it first unless the stream fetches more.
    pub(crate) fn pause(
        &mut self,
        prefetched: bool,
        columns: std::sync::Arc<[crate::statement::Column]>,
    ) {
        self.wire.ledger.state = State::PortalPaused {
            prefetched,
            columns,
        };
        self.settle_closes();
    }

    /// Whether the exchange is over (its last ReadyForQuery read, or paused).
    pub(crate) fn is_finished(&self) -> bool {
        !matches!(self.wire.ledger.state, State::Exchange)
    }

    /// Ends the exchange's Close bookkeeping: those the server skipped (an error came
    /// first) go back to the queue.
    fn settle_closes(&mut self) {
        let done = self.closes_done;
        let closes = std::mem::take(&mut self.closes);
        self.wire.to_close.extend(closes.into_iter().skip(done));
    }

    /// Breaks the connection because of `err` (a socket or protocol failure) and returns it.
    pub(crate) fn fail(&mut self, err: Error) -> Error {
        self.closes.clear();
        self.wire.break_off(&err.to_string());
        err
    }

    /// Breaks the connection because the server sent `msg` where it is not allowed.
    pub(crate) fn unexpected(&mut self, msg: &BackendMessage) -> Error {
        let got = msg.name();
        let during = self.what;
        self.fail(ProtocolError::Unexpected { got, during }.into())
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        match self.wire.ledger.state {
            State::Exchange => {
                self.settle_closes();
                self.wire.abandon(self.recoverable)
            }
            State::Ready | State::PortalPaused { .. } | State::CopyIn | State::CopyOut => {
                self.settle_closes()
            }
            State::Abandoned | State::Broken | State::Pipelined => {}
        }
    }
}

pub(crate) fn keep_first(slot: &mut Option<Error>, e: Error) {
    if slot.is_none() {
        *slot = Some(e);
    }
}

pub(super) fn log_notice(shared: &super::shared::Shared, fields: Vec<(u8, String)>) {
    let notice = DbError::from_fields(fields);
    shared.notifications.notice(&notice);
    match notice.severity() {
        "WARNING" => tracing::warn!(code = notice.code(), "{}", notice.message()),
        "DEBUG" | "LOG" => tracing::debug!(code = notice.code(), "{}", notice.message()),
        _ => tracing::info!(code = notice.code(), "{}", notice.message()),
    }
}
