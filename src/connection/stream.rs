//! [`RowStream`]: rows read in bounded batches from a portal, holding the wire lock while
//! open.
//!
//! Each batch is one `Execute(portal, batch_size)` + `Flush`; the server answers with at
//! most `batch_size` rows and PortalSuspended, so memory stays flat for any result size.
//! As soon as a batch is in, the next one is requested (a prefetch), so the server works
//! while the caller reads. What a drop costs, by where the stream is:
//! - **between batches** (rows handed out or buffered; the prefetched batch on its way):
//!   the prefetched batch is read and dropped, the portal closed and the exchange ended
//!   with Sync, in a spawned task within the cleanup deadline (or by the next user of the
//!   wire when no runtime is there). The connection stays usable.
//! - **while a batch is in flight**: the in-flight guard breaks the connection and the
//!   server is sent a CancelRequest, exactly as for any other abandoned exchange.
//! - **after the last row**: nothing; the exchange already ended at ReadyForQuery.
//!
//! A stream can move to another task. The task that uses it last is the one that holds
//! the connection: from its first `next()` there, that task calling the connection
//! directly gets [`crate::ErrorKind::Misuse`] at once (it would wait for itself), and the
//! task the stream came from waits its turn like any other.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;

use super::query::{RowSink, Step};
use super::wire::{HolderMark, Wire, WireGuard, spawn_cleanup};
use crate::error::Error;
use crate::protocol::backend::DataRow;
use crate::row::Row;
use crate::statement::Column;

/// The default number of rows fetched per batch.
pub const DEFAULT_BATCH_ROWS: i32 = 8192;

impl RowSink for VecDeque<Row> {
    fn row(&mut self, columns: &Arc<[Column]>, row: DataRow) {
        self.push_back(Row::new(columns.clone(), row));
    }

    fn retype(&mut self, columns: &Arc<[Column]>) {
        let rows = std::mem::take(self);
        self.extend(rows.into_iter().map(|r| r.with_columns(columns.clone())));
    }
}

/// The wire a stream reads from: its own lock, or a transaction's.
pub(crate) enum WireSlot<'a> {
    Owned(WireGuard),
    /// A transaction's wire, lent for the stream's life (a `&mut Wire` is one too).
    Lent(Box<dyn std::ops::DerefMut<Target = Wire> + Send + 'a>),
}

impl WireSlot<'_> {
    /// The wire the slot gives access to.
    pub(super) fn wire(&mut self) -> &mut Wire {
        match self {
            WireSlot::Owned(g) => g,
            WireSlot::Lent(w) => w,
        }
    }
}

type Fetched<'a> = (WireSlot<'a>, VecDeque<Row>, Result<Step, Error>);

enum State<'a> {
    Paused(WireSlot<'a>),
    Fetching(Pin<Box<dyn Future<Output = Fetched<'a>> + Send + 'a>>),
    Done,
}

/// A stream of rows that holds its connection's wire while open; see the module docs for
/// what dropping it early costs.
pub struct RowStream<'a> {
    state: State<'a>,
    rows: VecDeque<Row>,
    batch_rows: i32,
    rows_affected: Option<u64>,
    /// Rows handed over by earlier batches: each Execute reports only its own count.
    rows_before: u64,
    /// An error that ended the stream, yielded after the rows that came before it.
    error: Option<Error>,
    _holder: Option<HolderMark>,
}

impl<'a> RowStream<'a> {
    /// Runs the first batch and returns the stream with it buffered.
    pub(crate) async fn start<T: super::ToStatement + ?Sized>(
        mut slot: WireSlot<'a>,
        holder: Option<HolderMark>,
        statement: &T,
        params: super::Params<'_>,
        batch_rows: i32,
    ) -> Result<RowStream<'a>, Error> {
        // A row limit of 0 would mean "all rows" to the server: one row is the least.
        let batch_rows = batch_rows.max(1);
        let mut rows = VecDeque::new();
        let step = slot
            .wire()
            .stream_start(statement, params, batch_rows, &mut rows)
            .await;
        let mut stream = RowStream {
            state: State::Paused(slot),
            rows,
            batch_rows,
            rows_affected: None,
            rows_before: 0,
            error: None,
            _holder: holder,
        };
        let step = match step {
            // Ask for the next batch now, so it is on its way while this one is read.
            Ok(Step::Suspended) => match stream.wire_mut() {
                Some(wire) => wire
                    .stream_prefetch(batch_rows)
                    .await
                    .map(|()| Step::Suspended),
                None => Ok(Step::Suspended),
            },
            other => other,
        };
        match (step, stream.rows.is_empty()) {
            (Ok(step), _) => stream.after(step),
            // Nothing came before the error: report it here, as `query` would.
            (Err(e), true) => return Err(e),
            (Err(e), false) => stream.fail(e),
        }
        Ok(stream)
    }

    fn wire_mut(&mut self) -> Option<&mut Wire> {
        match &mut self.state {
            State::Paused(slot) => Some(slot.wire()),
            _ => None,
        }
    }

    /// Ends the stream with an error, yielded after the rows already buffered. The
    /// exchange has already run to ReadyForQuery (or broken the connection).
    fn fail(&mut self, e: Error) {
        self.error = Some(e);
        self.state = State::Done;
        self._holder = None;
    }

    fn after(&mut self, step: Step) {
        match step {
            Step::Suspended => self.rows_before += self.rows.len() as u64,
            Step::Done(n) => {
                self.rows_affected = Some(self.rows_before + n);
                self.state = State::Done;
                self._holder = None;
            }
        }
    }

    /// The number of rows the command reported, once the stream has ended.
    pub fn rows_affected(&self) -> Option<u64> {
        self.rows_affected
    }

    fn fetch(
        slot: WireSlot<'a>,
        batch_rows: i32,
    ) -> Pin<Box<dyn Future<Output = Fetched<'a>> + Send + 'a>> {
        Box::pin(async move {
            let mut slot = slot;
            let mut rows = VecDeque::with_capacity(batch_rows.unsigned_abs() as usize);
            let step = slot.wire().stream_next(batch_rows, &mut rows).await;
            (slot, rows, step)
        })
    }
}

impl Stream for RowStream<'_> {
    type Item = Result<Row, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        // The stream may have moved to another task: the holder mark follows it.
        if let Some(holder) = &mut this._holder {
            holder.follow();
        }
        loop {
            if let Some(row) = this.rows.pop_front() {
                return Poll::Ready(Some(Ok(row)));
            }
            match std::mem::replace(&mut this.state, State::Done) {
                State::Done => return Poll::Ready(this.error.take().map(Err)),
                State::Paused(slot) => {
                    this.state = State::Fetching(RowStream::fetch(slot, this.batch_rows))
                }
                State::Fetching(mut fut) => match fut.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.state = State::Fetching(fut);
                        return Poll::Pending;
                    }
                    Poll::Ready((slot, rows, Ok(step))) => {
                        this.rows = rows;
                        this.state = State::Paused(slot);
                        this.after(step);
                    }
                    Poll::Ready((_, rows, Err(e))) => {
                        this.rows = rows;
                        this.fail(e);
                    }
                },
            }
        }
    }
}

impl Drop for RowStream<'_> {
    fn drop(&mut self) {
        // Fetching: dropping the future drops its armed in-flight guard, which breaks the
        // connection and cancels. Paused with our own lock: end the portal now. Paused in
        // a transaction: the transaction's next exchange settles it.
        self._holder = None;
        if let State::Paused(WireSlot::Owned(guard)) =
            std::mem::replace(&mut self.state, State::Done)
        {
            spawn_cleanup(guard, false);
        }
    }
}

impl std::fmt::Debug for RowStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Paused(_) => "between batches",
            State::Fetching(_) => "fetching",
            State::Done => "done",
        };
        f.debug_struct("RowStream")
            .field("state", &state)
            .field("buffered", &self.rows.len())
            .finish()
    }
}
