//! The poll-based traits (`AsyncRead`, `AsyncWrite`, `AsyncSeek`): one operation at a
//! time, held in a boxed future that owns the wire until it is done, so an operation
//! whose caller's future was dropped goes on at the next poll instead of being lost.

use std::future::Future;
use std::io::{self, SeekFrom};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

use super::LargeObject;
use super::WireHold;
use super::calls::{Lo, bounded};
use crate::error::{Error, ErrorKind};

/// An operation started by the poll-based traits, holding the wire until it is done.
pub(super) type Pending<'t> = Pin<Box<dyn Future<Output = (WireHold<'t>, Done)> + Send + 't>>;

/// What a finished operation says: the descriptor's new position and, for a read, the
/// data.
pub(super) type Done = Result<(u64, Option<Bytes>), Error>;

/// What the operation in flight does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Read,
    Write,
    Seek,
}

/// The wire as a large object holds it.
pub(super) enum Slot<'t> {
    /// Nothing in flight.
    Idle(WireHold<'t>),
    /// An operation of the poll-based traits is in flight; dropped unfinished, its
    /// in-flight guard abandons or breaks the connection.
    Busy(Pending<'t>, Op),
    /// Only while the slot changes hands.
    Moving,
}

/// The poll-based traits: one operation at a time in [`Slot::Busy`].
impl<'t> LargeObject<'t> {
    /// Drives the operation in flight, if any; `Ready(Ok(Some(kind)))` when one of that
    /// kind finished now, `Ready(Ok(None))` when none was in flight.
    pub(super) fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Op>, Error>> {
        let Slot::Busy(op, kind) = &mut self.slot else {
            return Poll::Ready(Ok(None));
        };
        let kind = *kind;
        let (wire, done) = ready!(op.as_mut().poll(cx));
        self.slot = Slot::Idle(wire);
        self.flying = 0;
        let (pos, data) = done?;
        self.pos = pos;
        if let Some(data) = data {
            self.ahead = data;
        }
        Poll::Ready(Ok(Some(kind)))
    }

    /// Sends what `poll_write` accepted and waits for everything in flight.
    pub(super) fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            ready!(self.poll_pending(cx))?;
            if self.unsent.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let data = self.unsent.split().freeze();
            self.start_write(data)?;
        }
    }

    /// Starts `op` on the idle wire.
    pub(super) fn start(
        &mut self,
        kind: Op,
        op: impl FnOnce(WireHold<'t>, Lo, i32, u64) -> Pending<'t>,
    ) -> Result<(), Error> {
        match std::mem::replace(&mut self.slot, Slot::Moving) {
            Slot::Idle(wire) => {
                self.slot = Slot::Busy(op(wire, self.lo, self.fd, self.pos), kind);
                Ok(())
            }
            other => {
                self.slot = other;
                Err(Error::new(
                    ErrorKind::Misuse,
                    "a large-object operation is still in flight",
                ))
            }
        }
    }

    pub(super) fn start_read(&mut self) -> Result<(), Error> {
        let (limit, len) = (self.limit, self.chunk);
        self.start(Op::Read, move |mut wire, lo, fd, pos| {
            Box::pin(async move {
                let read = bounded(limit, lo.read(&mut wire, fd, len)).await;
                let done = read.map(|data| (pos + data.len() as u64, Some(data)));
                (wire, done)
            })
        })
    }

    pub(super) fn start_write(&mut self, data: Bytes) -> Result<(), Error> {
        // Bytes read ahead are given back first: the write goes at the caller's position.
        let back = std::mem::take(&mut self.ahead).len() as i64;
        let moves = data.len() as i64 - back;
        let limit = self.limit;
        self.start(Op::Write, move |mut wire, lo, fd, pos| {
            Box::pin(async move {
                let done = bounded(limit, async {
                    let at = match back {
                        0 => pos,
                        back => lo.lseek(&mut wire, fd, -back, 1).await?,
                    };
                    let n = lo.write(&mut wire, fd, &data).await?;
                    Ok((at + n as u64, None))
                })
                .await;
                (wire, done)
            })
        })?;
        self.flying = moves;
        Ok(())
    }

    pub(super) fn start_seek_to(&mut self, to: SeekFrom) -> Result<(), Error> {
        if !self.unsent.is_empty() {
            let msg = "written bytes are not sent yet: poll_complete (or flush) before start_seek";
            return Err(Error::new(ErrorKind::Misuse, msg));
        }
        let (offset, whence) = self.whence(to)?;
        self.ahead.clear();
        let limit = self.limit;
        self.start(Op::Seek, move |mut wire, lo, fd, _| {
            Box::pin(async move {
                let done = bounded(limit, lo.lseek(&mut wire, fd, offset, whence)).await;
                (wire, done.map(|pos| (pos, None)))
            })
        })
    }
}

/// A pgkeel error as an I/O error (its source, for `downcast`).
pub(super) fn io_error(e: Error) -> io::Error {
    let kind = match e.kind() {
        ErrorKind::Timeout(_) => io::ErrorKind::TimedOut,
        ErrorKind::Broken | ErrorKind::Closed | ErrorKind::Io => io::ErrorKind::BrokenPipe,
        ErrorKind::Encode | ErrorKind::Config => io::ErrorKind::InvalidInput,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

impl AsyncRead for LargeObject<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.unsent.is_empty() {
            // Written bytes go out before anything is read.
            ready!(this.poll_drain(cx)).map_err(io_error)?;
        }
        loop {
            if !this.ahead.is_empty() {
                let n = buf.remaining().min(this.ahead.len());
                buf.put_slice(&this.ahead[..n]);
                this.ahead.advance(n);
                return Poll::Ready(Ok(()));
            }
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.poll_pending(cx)).map_err(io_error)? {
                // A read that returned nothing: the end of the object.
                Some(Op::Read) if this.ahead.is_empty() => return Poll::Ready(Ok(())),
                Some(_) => {}
                None => this.start_read().map_err(io_error)?,
            }
        }
    }
}

impl AsyncWrite for LargeObject<'_> {
    /// Accepts up to one chunk into the object's buffer; a full buffer is sent (one
    /// `lowrite`) while the next fills, so small writes (`tokio::io::copy`'s 8 KiB) cost
    /// one round trip per chunk, not per write.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.unsent.len() >= this.chunk {
            // The previous chunk's outcome first: one write in flight at a time.
            ready!(this.poll_pending(cx)).map_err(io_error)?;
            let full = this.unsent.split().freeze();
            this.start_write(full).map_err(io_error)?;
            // Polled once now, so the call goes out while the next chunk fills.
            if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
                return Poll::Ready(Err(io_error(e)));
            }
        }
        let n = data.len().min(this.chunk - this.unsent.len());
        this.unsent.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_drain(cx).map_err(io_error)
    }

    /// Flushes; the descriptor stays open (see [`LargeObject::close`]).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl AsyncSeek for LargeObject<'_> {
    fn start_seek(self: Pin<&mut Self>, to: SeekFrom) -> io::Result<()> {
        self.get_mut().start_seek_to(to).map_err(io_error)
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx)).map_err(io_error)?;
        Poll::Ready(Ok(this.position()))
    }
}
