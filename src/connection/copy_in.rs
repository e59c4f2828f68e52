//! [`CopyIn`]: COPY FROM STDIN as a sink of byte chunks, holding the wire while open.
//!
//! Chunks are framed as CopyData straight into the write buffer; once it holds
//! [`FLUSH_AT`] bytes it is sent, reading whatever the server says meanwhile, so a bad
//! row's error is seen while the caller is still writing and memory stays flat. What a
//! drop costs, by where the COPY is:
//! - **between calls** (everything written is whole CopyData frames): CopyFail goes out
//!   before the wire's next exchange, in a spawned cleanup task for a COPY on its own
//!   wire lock, or before the transaction's next statement; nothing is committed and the
//!   connection stays usable.
//! - **while a write is being flushed**: part of a frame may be on the wire, so the
//!   connection is broken (the server aborts the COPY when the socket closes).
//! - **after `finish()` or an error**: nothing; the exchange already ended.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures::Sink;

use super::copy::Ending;
use super::ledger::State;
use super::stream::WireSlot;
use super::wire::{HolderMark, InFlight, Wire, spawn_cleanup};
use crate::error::{Error, ErrorKind};
use crate::protocol::frontend;

/// How many bytes the write buffer holds before a COPY sends them.
pub(crate) const FLUSH_AT: usize = 256 * 1024;

const WHAT: &str = "writing COPY FROM STDIN data";

type Job<'a> =
    Pin<Box<dyn Future<Output = (WireSlot<'a>, Result<Option<u64>, Error>)> + Send + 'a>>;

enum Phase<'a> {
    /// Between calls: the wire is in [`State::CopyIn`].
    Idle(WireSlot<'a>),
    /// A flush or the finish is under way.
    Busy(Job<'a>),
    /// Finished or failed; the wire is released.
    Done,
}

/// A COPY FROM STDIN in progress: a [`Sink`] of byte chunks (text, CSV or binary COPY
/// data, split anywhere) that holds its connection's wire until finished or dropped.
///
/// Dropped unfinished, nothing is committed (see the module docs for what it costs).
pub struct CopyIn<'a> {
    phase: Phase<'a>,
    rows: Option<u64>,
    _holder: Option<HolderMark>,
}

impl<'a> CopyIn<'a> {
    pub(crate) async fn start(
        mut slot: WireSlot<'a>,
        holder: Option<HolderMark>,
        sql: &str,
    ) -> Result<CopyIn<'a>, Error> {
        let dir = super::copy::Direction::In;
        slot.wire().start_copy(sql, dir).await?;
        Ok(CopyIn {
            phase: Phase::Idle(slot),
            rows: None,
            _holder: holder,
        })
    }

    /// Queues one chunk of COPY data; it goes out once enough is buffered (or at
    /// [`CopyIn::finish`]).
    ///
    /// # Errors
    /// The server's error if it ended the COPY (a bad row: its `where_()` names the
    /// line); [`ErrorKind::Misuse`] after the COPY ended.
    ///
    /// # Cancel safety
    /// Dropped while sending buffered data, the connection is broken.
    pub async fn send(&mut self, chunk: impl AsRef<[u8]>) -> Result<(), Error> {
        poll_fn(|cx| self.poll_room(cx)).await?;
        self.append(chunk.as_ref())
    }

    /// Sends everything buffered and ends the COPY; returns the number of rows copied.
    ///
    /// # Errors
    /// The server's error (nothing was committed); [`ErrorKind::Misuse`] after an error.
    ///
    /// # Cancel safety
    /// Dropped before the server's answer, the connection is broken and nothing of the
    /// COPY is committed.
    pub async fn finish(mut self) -> Result<u64, Error> {
        poll_fn(|cx| Pin::new(&mut self).poll_finish(cx)).await?;
        Ok(self.rows.unwrap_or(0))
    }

    /// Moves the COPY's hold on the wire to the current task (a writer that buffers on
    /// its own calls this on every use); costs no lock while the task stays the same.
    pub(crate) fn follow_task(&mut self) {
        if let Some(holder) = &mut self._holder {
            holder.follow();
        }
    }

    fn wire(&mut self) -> Result<&mut Wire, Error> {
        match &mut self.phase {
            Phase::Idle(slot) => Ok(slot.wire()),
            Phase::Busy(_) => Err(Error::new(ErrorKind::Misuse, "a COPY write is under way")),
            Phase::Done => Err(ended()),
        }
    }

    /// Frames `chunk` as CopyData into the write buffer.
    fn append(&mut self, chunk: &[u8]) -> Result<(), Error> {
        if chunk.is_empty() {
            return Ok(());
        }
        let wire = self.wire()?;
        wire.shared.check()?;
        let buf = copy_buffer(wire)?;
        frontend::copy_data(chunk, buf).map_err(Error::from)
    }

    fn buffered(&mut self) -> usize {
        self.wire()
            .ok()
            .and_then(|w| w.io.as_ref())
            .map_or(0, |io| io.write_buffer().len())
    }

    /// Waits for a running job, then sends the buffer if it has grown past [`FLUSH_AT`].
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ready!(self.poll_job(cx))?;
        if self.buffered() >= FLUSH_AT {
            self.run(false);
            ready!(self.poll_job(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_send_all(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ready!(self.poll_job(cx))?;
        if self.buffered() > 0 {
            self.run(false);
            ready!(self.poll_job(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ready!(self.poll_job(cx))?;
        if self.rows.is_none() {
            if let Phase::Done = self.phase {
                return Poll::Ready(Err(ended()));
            }
            self.run(true);
            ready!(self.poll_job(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    /// Starts a flush, or with `end` the finish, on the wire (the phase must be idle).
    fn run(&mut self, end: bool) {
        let Phase::Idle(slot) = std::mem::replace(&mut self.phase, Phase::Done) else {
            return;
        };
        self.phase = Phase::Busy(Box::pin(async move {
            let mut slot = slot;
            let wire = slot.wire();
            let result = match end {
                true => finish(wire).await,
                false => flush(wire).await,
            };
            (slot, result)
        }));
    }

    fn poll_job(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // Every call goes through here first. The COPY may have moved to another task:
        // its mark follows it, whether or not this call reaches the wire.
        self.follow_task();
        let Phase::Busy(job) = &mut self.phase else {
            return Poll::Ready(Ok(()));
        };
        let (slot, result) = ready!(job.as_mut().poll(cx));
        self.phase = Phase::Idle(slot);
        match result {
            Ok(None) => Poll::Ready(Ok(())),
            Ok(Some(n)) => {
                self.rows = Some(n);
                self.release();
                Poll::Ready(Ok(()))
            }
            Err(e) => {
                self.release();
                Poll::Ready(Err(e))
            }
        }
    }

    /// The COPY has ended (its exchange is over, or the connection broke): the wire goes.
    fn release(&mut self) {
        self.phase = Phase::Done;
        self._holder = None;
    }
}

fn ended() -> Error {
    Error::new(ErrorKind::Misuse, "the COPY has ended")
}

/// The write buffer of a wire in copy-in mode.
fn copy_buffer(wire: &mut Wire) -> Result<&mut BytesMut, Error> {
    match (&wire.ledger.state, wire.io.as_mut()) {
        (State::CopyIn, Some(io)) => Ok(io.write_buffer_mut()),
        _ => Err(Error::broken()),
    }
}

/// Sends the buffered data, reading what the server says meanwhile.
async fn flush(wire: &mut Wire) -> Result<Option<u64>, Error> {
    let mut f = wire.resume_copy(WHAT)?;
    let mut h = Ending::default();
    f.flush_reading(&mut h).await?;
    // The socket may have taken everything at once: look for an error all the same.
    if !f.is_finished() {
        f.read_arrived(&mut h).await?;
    }
    if f.failed() || f.is_finished() {
        return Err(ended_early(f, &mut h).await);
    }
    f.park(State::CopyIn);
    Ok(None)
}

/// Sends CopyDone and reads the COPY's end.
async fn finish(wire: &mut Wire) -> Result<Option<u64>, Error> {
    let mut f = wire.resume_copy(WHAT)?;
    frontend::copy_done(f.buf());
    let mut h = Ending::default();
    f.flush_reading(&mut h).await?;
    if !f.is_finished() {
        f.read(&mut h).await?;
    }
    send_rest(&mut f).await?;
    match f.take_error() {
        Some(e) => Err(e),
        None => Ok(Some(h.rows.unwrap_or(0))),
    }
}

/// The server ended the COPY (an error) while data was still going out: reads to its
/// ReadyForQuery and returns the error.
async fn ended_early(mut f: InFlight<'_>, h: &mut Ending) -> Error {
    if !f.is_finished()
        && let Err(e) = f.read(h).await
    {
        return e;
    }
    if let Err(e) = send_rest(&mut f).await {
        return e;
    }
    f.take_error()
        .unwrap_or_else(|| Error::new(ErrorKind::Misuse, "the server ended the COPY early"))
}

/// Sends what is left in the write buffer after the COPY ended: it may start with the
/// tail of a frame, so it must all go (the server drops copy messages once the COPY is
/// over). A drop meanwhile breaks the connection.
async fn send_rest(f: &mut InFlight<'_>) -> Result<(), Error> {
    if f.buf().is_empty() {
        return Ok(());
    }
    f.wire().ledger.state = State::Exchange;
    f.flush().await?;
    f.wire().ledger.state = State::Ready;
    Ok(())
}

impl Sink<Bytes> for CopyIn<'_> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_room(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Bytes) -> Result<(), Error> {
        self.get_mut().append(&item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_send_all(cx)
    }

    /// Ends the COPY ([`CopyIn::finish`] also returns the row count).
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_finish(cx)
    }
}

impl Drop for CopyIn<'_> {
    fn drop(&mut self) {
        // Busy: dropping the job drops its armed in-flight guard, which breaks the
        // connection. Idle on our own lock: CopyFail in a cleanup task. Idle in a
        // transaction: its next statement sends CopyFail first.
        self._holder = None;
        if let Phase::Idle(WireSlot::Owned(guard)) = std::mem::replace(&mut self.phase, Phase::Done)
            && guard.ledger.is_copying()
        {
            spawn_cleanup(guard, false);
        }
    }
}

impl std::fmt::Debug for CopyIn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let phase = match self.phase {
            Phase::Idle(_) => "open",
            Phase::Busy(_) => "sending",
            Phase::Done => "ended",
        };
        f.debug_struct("CopyIn")
            .field("phase", &phase)
            .field("rows", &self.rows)
            .finish()
    }
}
