//! [`CopyOut`]: COPY TO STDOUT as a stream of byte chunks, holding the wire while open.
//!
//! Data is read in batches of at most about [`BATCH_BYTES`], each handed out as soon as
//! the socket has nothing more ready. The server is not asked to pause between them
//! (COPY has no flow control but TCP's), so it waits on the socket while the caller is
//! slow, and memory stays flat. What a drop costs, by where the stream is:
//! - **between batches**: the rest of the data is read and dropped before the wire's
//!   next exchange (in a spawned cleanup task within its deadline for a COPY on its own
//!   wire lock, else the connection is given up; or before the transaction's next
//!   statement). The connection stays usable.
//! - **while a batch is being read**: the connection is broken and the server is sent a
//!   CancelRequest, as for any abandoned exchange.
//! - **after the last chunk**: nothing.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::Stream;

use super::copy::{Direction, Ending};
use super::ledger::State;
use super::stream::WireSlot;
use super::wire::{Ended, Flow, Handler, HolderMark, Wire, spawn_cleanup};
use crate::error::Error;
use crate::protocol::BackendMessage;

/// About how many bytes of COPY data are read before the stream hands them out.
pub(crate) const BATCH_BYTES: usize = 64 * 1024;

type Fetched<'a> = (WireSlot<'a>, VecDeque<Bytes>, Result<Option<u64>, Error>);
type Job<'a> = Pin<Box<dyn Future<Output = Fetched<'a>> + Send + 'a>>;

enum Phase<'a> {
    /// Between batches: the wire is in [`State::CopyOut`].
    Idle(WireSlot<'a>),
    Busy(Job<'a>),
    /// The COPY ended (or failed); the wire is released.
    Done,
}

/// A COPY TO STDOUT in progress: a [`Stream`] of the data's byte chunks (text, CSV or
/// binary, split anywhere) that holds its connection's wire until it ends or is
/// dropped; see the module docs for what an early drop costs.
pub struct CopyOut<'a> {
    phase: Phase<'a>,
    chunks: VecDeque<Bytes>,
    rows: Option<u64>,
    /// An error that ended the COPY, yielded after the data that came before it.
    error: Option<Error>,
    _holder: Option<HolderMark>,
}

impl<'a> CopyOut<'a> {
    pub(crate) async fn start(
        mut slot: WireSlot<'a>,
        holder: Option<HolderMark>,
        sql: &str,
    ) -> Result<CopyOut<'a>, Error> {
        slot.wire().start_copy(sql, Direction::Out).await?;
        Ok(CopyOut {
            phase: Phase::Idle(slot),
            chunks: VecDeque::new(),
            rows: None,
            error: None,
            _holder: holder,
        })
    }

    /// The number of rows the server reported, once the stream has ended.
    pub fn rows(&self) -> Option<u64> {
        self.rows
    }

    fn start_fetch(&mut self) {
        let Phase::Idle(slot) = std::mem::replace(&mut self.phase, Phase::Done) else {
            return;
        };
        self.phase = Phase::Busy(Box::pin(async move {
            let mut slot = slot;
            let mut chunks = VecDeque::new();
            let result = fetch(slot.wire(), &mut chunks).await;
            (slot, chunks, result)
        }));
    }

    fn fetched(&mut self, (slot, chunks, result): Fetched<'a>) {
        self.chunks = chunks;
        match result {
            Ok(None) => return self.phase = Phase::Idle(slot),
            Ok(Some(n)) => self.rows = Some(n),
            Err(e) => self.error = Some(e),
        }
        self.phase = Phase::Done;
        self._holder = None;
    }
}

/// Reads the next batch; `Some(rows)` once the COPY has ended.
async fn fetch(wire: &mut Wire, chunks: &mut VecDeque<Bytes>) -> Result<Option<u64>, Error> {
    let mut f = wire.resume_copy("reading COPY TO STDOUT data")?;
    let mut h = Reading {
        chunks,
        bytes: 0,
        done: false,
        end: Ending::default(),
    };
    loop {
        // The data already buffered is taken in bulk; the reader handles the rest (and
        // reads the socket) one message at a time.
        if !h.done {
            f.take_copy_data(|data| h.data(data) == Flow::Continue);
        }
        let step = match (h.full(), h.chunks.is_empty()) {
            // The server's error is in: the COPY is over, and its end (ReadyForQuery) is
            // read now, so the error is not lost with this exchange.
            _ if f.failed() => f.read_one(&mut h).await?,
            (true, _) => Some(Ended::Stopped),
            // Nothing to hand out yet: wait for the server.
            (false, true) => f.read_one(&mut h).await?,
            // Data in hand: handed out now if the server has sent nothing more, so the
            // caller works while the server produces.
            (false, false) => f.read_one_arrived(&mut h).await?,
        };
        let Some(ended) = step else { continue };
        return match ended {
            Ended::Stopped => {
                f.park(State::CopyOut);
                Ok(None)
            }
            Ended::Ready => match f.take_error() {
                Some(e) => Err(e),
                None => Ok(Some(h.end.rows.unwrap_or(0))),
            },
        };
    }
}

/// Collects CopyData until a batch is full; after CopyDone, reads the COPY's end.
struct Reading<'c> {
    chunks: &'c mut VecDeque<Bytes>,
    bytes: usize,
    done: bool,
    end: Ending,
}

impl Reading<'_> {
    fn data(&mut self, data: Bytes) -> Flow {
        self.bytes += data.len();
        self.chunks.push_back(data);
        match self.full() {
            true => Flow::Stop,
            false => Flow::Continue,
        }
    }

    fn full(&self) -> bool {
        self.bytes >= BATCH_BYTES
    }
}

impl Handler for Reading<'_> {
    fn message(&mut self, msg: BackendMessage) -> Result<Flow, BackendMessage> {
        match msg {
            BackendMessage::CopyData(data) if !self.done => Ok(self.data(data)),
            BackendMessage::CopyDone if !self.done => {
                self.done = true;
                Ok(Flow::Continue)
            }
            msg => self.end.message(msg),
        }
    }
}

impl Stream for CopyOut<'_> {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        // The stream may have moved to another task: its mark follows it from the first
        // chunk taken there, buffered or not.
        if let Some(holder) = &mut this._holder {
            holder.follow();
        }
        loop {
            if let Some(chunk) = this.chunks.pop_front() {
                return Poll::Ready(Some(Ok(chunk)));
            }
            match &mut this.phase {
                Phase::Done => return Poll::Ready(this.error.take().map(Err)),
                Phase::Idle(_) => this.start_fetch(),
                Phase::Busy(job) => {
                    let fetched = ready!(job.as_mut().poll(cx));
                    this.fetched(fetched);
                }
            }
        }
    }
}

impl Drop for CopyOut<'_> {
    fn drop(&mut self) {
        self._holder = None;
        if let Phase::Idle(WireSlot::Owned(guard)) = std::mem::replace(&mut self.phase, Phase::Done)
            && guard.ledger.is_copying()
        {
            spawn_cleanup(guard, false);
        }
    }
}

impl std::fmt::Debug for CopyOut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let phase = match self.phase {
            Phase::Idle(_) => "between batches",
            Phase::Busy(_) => "reading",
            Phase::Done => "ended",
        };
        f.debug_struct("CopyOut")
            .field("phase", &phase)
            .field("buffered", &self.chunks.len())
            .finish()
    }
}
