//! Large objects: PostgreSQL's chunked binary objects of up to 4 TiB, read and written
//! in pieces over fast-path calls (`lo_open`, `loread`, `lowrite`, `lo_lseek64`, …).
//!
//! A large object descriptor lives only as long as the transaction that opened it, so a
//! [`LargeObject`] is opened from a [`Transaction`] (or a [`Savepoint`]) and borrows it:
//! it cannot outlive the transaction, nothing else runs on the transaction while it is
//! open, and there is no way to open one outside a transaction.
//!
//! A [`LargeObject`] is a tokio [`AsyncRead`], [`AsyncWrite`] and [`AsyncSeek`], so
//! `tokio::io::copy` streams an object of any size in bounded memory: each read asks the
//! server for one chunk ([`DEFAULT_CHUNK_SIZE`] unless set), each write sends at most one.
//! See `docs/LARGE_OBJECTS.md`.

mod calls;
mod open;
mod poll;

use std::future::poll_fn;
use std::io::SeekFrom;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use self::calls::{F, Lo, bad_result, bounded};
use self::poll::Slot;
use crate::connection::wire::{Wire, WireGuard};

/// The transaction's wire as a large object holds it for its life.
pub(crate) type WireHold<'t> = tokio::sync::MappedMutexGuard<'t, WireGuard>;
use crate::error::{Error, ErrorKind};
#[cfg(doc)]
use crate::transaction::{Savepoint, Transaction};
use crate::types::Oid;
#[cfg(doc)]
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite};

/// How much a read asks the server for, and the most a write sends, by default: 256 KiB.
pub const DEFAULT_CHUNK_SIZE: usize = 256 * 1024;

/// The largest chunk size [`LargeObject::set_chunk_size`] accepts: 64 MiB.
pub const MAX_CHUNK_SIZE: usize = 64 << 20;

/// How a large object is opened.
///
/// ```no_run
/// # async fn demo(mut tx: pgkeel::Transaction, oid: u32) -> Result<(), pgkeel::Error> {
/// // A consistent read of the object as of the transaction's snapshot:
/// let lo = tx.large_object(oid, pgkeel::LoMode::Read).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoMode {
    /// Read only (`INV_READ`): reads see the object as of the transaction's snapshot.
    Read,
    /// Write (`INV_WRITE`): reads see every committed write and this transaction's own.
    Write,
    /// Both (`INV_READ | INV_WRITE`); reads behave as with [`LoMode::Write`].
    ReadWrite,
}

impl LoMode {
    fn flags(self) -> i32 {
        const INV_WRITE: i32 = 0x0002_0000;
        const INV_READ: i32 = 0x0004_0000;
        match self {
            LoMode::Read => INV_READ,
            LoMode::Write => INV_WRITE,
            LoMode::ReadWrite => INV_READ | INV_WRITE,
        }
    }
}

/// An open large object: a descriptor in the transaction it borrows.
///
/// Read and write it in chunks with [`read_chunk`](Self::read_chunk) and
/// [`write_chunk`](Self::write_chunk), or through tokio's [`AsyncRead`], [`AsyncWrite`]
/// and [`AsyncSeek`] (`tokio::io::copy`, `AsyncReadExt::read_exact`, …). Positions and
/// sizes are 64-bit: an object can be up to 4 TiB.
///
/// ```no_run
/// # async fn demo(conn: pgkeel::Connection) -> Result<(), Box<dyn std::error::Error>> {
/// use pgkeel::LoMode;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let mut tx = conn.transaction().await?;
/// let oid = tx.create_large_object().await?;
/// let mut lo = tx.large_object(oid, LoMode::ReadWrite).await?;
/// lo.write_all(b"hello, large object").await?;
/// lo.flush().await?; // the last write's outcome
/// lo.seek_to(std::io::SeekFrom::Start(7)).await?;
/// let mut rest = String::new();
/// lo.read_to_string(&mut rest).await?;
/// assert_eq!(rest, "large object");
/// lo.close().await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
///
/// # Writes through `AsyncWrite`
/// `poll_write` gathers bytes into a buffer of one chunk (as `BufWriter` does) and sends
/// a full chunk while the next one fills; a write's outcome is reported by the next call
/// (`poll_write`, `poll_flush`, a read or a seek). `flush` (which `tokio::io::copy` does
/// at the end) or [`close`](Self::close) sends the rest and reports the last outcome.
/// Dropped with bytes unsent or a write unanswered, the object gives the connection up,
/// so the transaction cannot commit: written bytes are never lost silently.
///
/// # Cancel safety
/// An `async` method dropped after its call went out (a timeout, `select!`) breaks the
/// connection, or leaves it for a pool to recover, as every query does; the transaction
/// then refuses further work with [`ErrorKind::Broken`]. Through the poll-based traits, an
/// operation in flight belongs to the object, not to the future that started it: a read
/// whose `read()` future was dropped goes on at the next poll and its bytes are handed
/// out in order. Dropping the object itself with an operation in flight gives the
/// connection up in the same way.
pub struct LargeObject<'t> {
    oid: Oid,
    fd: i32,
    lo: Lo,
    chunk: usize,
    limit: Option<Duration>,
    /// The server descriptor's position, as of the last finished operation.
    pos: u64,
    /// Bytes read from the server ahead of the caller (poll-based reads).
    ahead: Bytes,
    /// Bytes `poll_write` accepted and has not sent yet (at most one chunk): the
    /// caller's position is `pos - ahead.len() + unsent.len()`.
    unsent: BytesMut,
    /// How far a write in flight moves the position once done (a read ahead given back,
    /// plus the bytes written).
    flying: i64,
    slot: Slot<'t>,
}

impl<'t> LargeObject<'t> {
    async fn open(
        mut wire: WireHold<'t>,
        oid: Oid,
        mode: LoMode,
        limit: Option<Duration>,
    ) -> Result<LargeObject<'t>, Error> {
        let (lo, fd) = bounded(limit, async {
            let lo = Lo::resolve(&mut wire).await?;
            let args = [
                Some(&oid.to_be_bytes()[..]),
                Some(&mode.flags().to_be_bytes()[..]),
            ];
            let fd = lo.int4(&mut wire, F::Open, &args).await?;
            Ok((lo, fd))
        })
        .await?;
        Ok(LargeObject {
            oid,
            fd,
            lo,
            chunk: DEFAULT_CHUNK_SIZE,
            limit,
            pos: 0,
            ahead: Bytes::new(),
            unsent: BytesMut::new(),
            flying: 0,
            slot: Slot::Idle(wire),
        })
    }

    /// The object's OID.
    pub fn oid(&self) -> Oid {
        self.oid
    }

    /// The caller's position in the object (no round trip).
    pub fn position(&self) -> u64 {
        let sent = self.pos.saturating_add_signed(self.flying);
        sent - self.ahead.len() as u64 + self.unsent.len() as u64
    }

    /// How much one read asks the server for, and the most one write sends.
    pub fn chunk_size(&self) -> usize {
        self.chunk
    }

    /// Sets how much one read asks the server for and the most one write sends (memory
    /// held per object is about two chunks: one buffered, one on the wire).
    ///
    /// ```no_run
    /// # fn demo(mut lo: pgkeel::LargeObject<'_>) -> Result<(), pgkeel::Error> {
    /// lo.set_chunk_size(1 << 20)?; // 1 MiB: fewer round trips for big sequential reads
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for 0 or more than [`MAX_CHUNK_SIZE`]; the size is unchanged.
    pub fn set_chunk_size(&mut self, bytes: usize) -> Result<(), Error> {
        if bytes == 0 || bytes > MAX_CHUNK_SIZE {
            let msg = format!("chunk_size {bytes} must be between 1 and {MAX_CHUNK_SIZE}");
            return Err(Error::config(msg));
        }
        self.chunk = bytes;
        Ok(())
    }

    /// Reads up to `max` bytes at the current position (one round trip unless bytes read
    /// ahead by `AsyncRead` are waiting); an empty result is the end of the object.
    ///
    /// ```no_run
    /// # async fn demo(mut lo: pgkeel::LargeObject<'_>) -> Result<(), pgkeel::Error> {
    /// loop {
    ///     let chunk = lo.read_chunk(1 << 20).await?;
    ///     if chunk.is_empty() {
    ///         break;
    ///     }
    ///     // use `chunk` (a `bytes::Bytes`)
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A server error (e.g. the descriptor was not opened for reading); a write started
    /// through `AsyncWrite` that failed; [`ErrorKind::Broken`]/[`ErrorKind::Closed`].
    ///
    /// # Cancel safety
    /// See [the type's docs](LargeObject#cancel-safety).
    pub async fn read_chunk(&mut self, max: usize) -> Result<Bytes, Error> {
        self.finish().await?;
        if !self.ahead.is_empty() {
            let n = max.min(self.ahead.len());
            return Ok(self.ahead.split_to(n));
        }
        let data = self
            .run(async |w, lo, fd| lo.read(w, fd, max).await)
            .await?;
        self.pos += data.len() as u64;
        Ok(data)
    }

    /// Writes all of `data` at the current position in one call (up to 1 GiB; the chunk
    /// size does not apply). Writing past the end leaves a hole that reads as zeros.
    ///
    /// ```no_run
    /// # async fn demo(mut lo: pgkeel::LargeObject<'_>) -> Result<(), pgkeel::Error> {
    /// lo.write_chunk(b"header").await?;
    /// assert_eq!(lo.position(), 6);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A server error (e.g. the descriptor was opened [`LoMode::Read`]);
    /// [`ErrorKind::Encode`] for more than 1 GiB (nothing is sent).
    ///
    /// # Cancel safety
    /// See [the type's docs](LargeObject#cancel-safety).
    pub async fn write_chunk(&mut self, data: &[u8]) -> Result<(), Error> {
        self.settle().await?;
        let n = self
            .run(async |w, lo, fd| lo.write(w, fd, data).await)
            .await?;
        self.pos += n as u64;
        Ok(())
    }

    /// Moves the position (64-bit: beyond 2 GiB and up to 4 TiB); returns the new one.
    ///
    /// ```no_run
    /// # async fn demo(mut lo: pgkeel::LargeObject<'_>) -> Result<(), pgkeel::Error> {
    /// use std::io::SeekFrom;
    /// let end = lo.seek_to(SeekFrom::End(0)).await?;
    /// lo.seek_to(SeekFrom::Start(5 << 30)).await?; // past the end: a hole up to here
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A server error for a position before the start or past 4 TiB;
    /// [`ErrorKind::Encode`] for an offset beyond `i64`.
    ///
    /// # Cancel safety
    /// See [the type's docs](LargeObject#cancel-safety).
    pub async fn seek_to(&mut self, to: SeekFrom) -> Result<u64, Error> {
        self.finish().await?;
        let (offset, whence) = self.whence(to)?;
        self.ahead.clear();
        self.pos = self
            .run(async |w, lo, fd| lo.lseek(w, fd, offset, whence).await)
            .await?;
        Ok(self.pos)
    }

    /// The current position as the server has it (`lo_tell64`, one round trip).
    ///
    /// # Errors
    /// A server error; [`ErrorKind::Broken`]/[`ErrorKind::Closed`].
    ///
    /// # Cancel safety
    /// See [the type's docs](LargeObject#cancel-safety).
    pub async fn tell(&mut self) -> Result<u64, Error> {
        self.settle().await?;
        let pos = self
            .run(async |w, lo, fd| lo.int8(w, F::Tell, &[Some(&fd.to_be_bytes())]).await)
            .await?;
        self.pos = u64::try_from(pos).map_err(|_| bad_result(F::Tell, None))?;
        Ok(self.pos)
    }

    /// The object's size in bytes (two round trips: a seek to the end and back).
    ///
    /// ```no_run
    /// # async fn demo(mut lo: pgkeel::LargeObject<'_>) -> Result<(), pgkeel::Error> {
    /// let size = lo.size().await?;
    /// println!("{size} bytes");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`LargeObject::seek_to`].
    ///
    /// # Cancel safety
    /// See [the type's docs](LargeObject#cancel-safety).
    pub async fn size(&mut self) -> Result<u64, Error> {
        let here = self.position();
        let size = self.seek_to(SeekFrom::End(0)).await?;
        self.seek_to(SeekFrom::Start(here)).await?;
        Ok(size)
    }

    /// Cuts the object to `len` bytes, or extends it with zeros (`lo_truncate64`); the
    /// position does not move.
    ///
    /// ```no_run
    /// # async fn demo(mut lo: pgkeel::LargeObject<'_>) -> Result<(), pgkeel::Error> {
    /// lo.truncate(0).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A server error (e.g. opened [`LoMode::Read`]); [`ErrorKind::Encode`] for a
    /// length beyond `i64`.
    ///
    /// # Cancel safety
    /// See [the type's docs](LargeObject#cancel-safety).
    pub async fn truncate(&mut self, len: u64) -> Result<(), Error> {
        self.settle().await?;
        let len = i64::try_from(len).map_err(|_| too_far(len))?;
        self.run(async |w, lo, fd| {
            let args = [Some(&fd.to_be_bytes()[..]), Some(&len.to_be_bytes()[..])];
            lo.int4(w, F::Truncate, &args).await
        })
        .await?;
        Ok(())
    }

    /// Closes the descriptor (`lo_close`) after reporting the outcome of a write still
    /// in flight. Optional: the server closes every descriptor when the transaction
    /// ends.
    ///
    /// # Errors
    /// The failure of a pending write; a server error.
    ///
    /// # Cancel safety
    /// See [the type's docs](LargeObject#cancel-safety).
    pub async fn close(mut self) -> Result<(), Error> {
        self.finish().await?;
        self.run(async |w, lo, fd| lo.int4(w, F::Close, &[Some(&fd.to_be_bytes())]).await)
            .await?;
        Ok(())
    }

    /// Runs `op` on the idle wire within the query timeout.
    async fn run<T>(
        &mut self,
        op: impl AsyncFnOnce(&mut Wire, Lo, i32) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let (lo, fd, limit) = (self.lo, self.fd, self.limit);
        let Slot::Idle(wire) = &mut self.slot else {
            let msg = "a large-object operation is still in flight";
            return Err(Error::new(ErrorKind::Misuse, msg));
        };
        bounded(limit, op(wire, lo, fd)).await
    }

    /// Waits for an operation of the poll-based traits to finish, and reports its error.
    async fn finish(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_drain(cx)).await
    }

    /// As [`Self::finish`], then gives back to the server what was read ahead, so its
    /// position is the caller's (before a write, tell or truncate).
    async fn settle(&mut self) -> Result<(), Error> {
        self.finish().await?;
        if !self.ahead.is_empty() {
            let here = self.position();
            self.seek_to(SeekFrom::Start(here)).await?;
        }
        Ok(())
    }

    /// The `lo_lseek64` offset and whence for `to`, from the caller's position.
    fn whence(&self, to: SeekFrom) -> Result<(i64, i32), Error> {
        match to {
            SeekFrom::Start(n) => Ok((i64::try_from(n).map_err(|_| too_far(n))?, 0)),
            SeekFrom::Current(n) => {
                let back = self.ahead.len() as i64;
                let offset = n.checked_sub(back).ok_or_else(|| too_far(n as u64))?;
                Ok((offset, 1))
            }
            SeekFrom::End(n) => Ok((n, 2)),
        }
    }
}

fn too_far(n: u64) -> Error {
    Error::new(
        ErrorKind::Encode,
        format!("large-object offset {n} is beyond what PostgreSQL takes (i64)"),
    )
}

impl Drop for LargeObject<'_> {
    /// Bytes accepted by `poll_write` and never sent would be lost without a word: the
    /// connection is given up instead, so the transaction cannot commit without them.
    fn drop(&mut self) {
        if let (false, Slot::Idle(wire)) = (self.unsent.is_empty(), &mut self.slot) {
            wire.break_off("a large object was dropped with written bytes not sent (no flush)");
        }
    }
}

impl std::fmt::Debug for LargeObject<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LargeObject")
            .field("oid", &self.oid)
            .field("fd", &self.fd)
            .field("position", &self.position())
            .field("in_flight", &matches!(self.slot, Slot::Busy(..)))
            .finish()
    }
}

/// The code blocks of `docs/LARGE_OBJECTS.md`, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/LARGE_OBJECTS.md")]
struct LargeObjectsGuide;
