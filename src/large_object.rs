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

use std::future::{Future, poll_fn};
use std::io::{self, SeekFrom};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

use crate::connection::fastpath::{Function, decode_result};
use crate::connection::wire::Wire;
use crate::connection::{Params, with_timeout};
use crate::error::{Error, ErrorKind};
use crate::protocol::frontend::{self, Format};
use crate::transaction::{Savepoint, Transaction};
use crate::types::{FromSqlOwned, Oid};

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

/// The server functions large objects use, by signature (schema-qualified, so the
/// session's `search_path` cannot put another function in their place).
const FUNCTIONS: [&str; 11] = [
    "pg_catalog.lo_open(oid, int4)",
    "pg_catalog.lo_close(int4)",
    "pg_catalog.loread(int4, int4)",
    "pg_catalog.lowrite(int4, bytea)",
    "pg_catalog.lo_lseek64(int4, int8, int4)",
    "pg_catalog.lo_tell64(int4)",
    "pg_catalog.lo_truncate64(int4, int8)",
    "pg_catalog.lo_create(oid)",
    "pg_catalog.lo_unlink(oid)",
    "pg_catalog.lo_from_bytea(oid, bytea)",
    "pg_catalog.lo_get(oid)",
];

/// Indexes into [`FUNCTIONS`] and [`Lo::oids`].
#[derive(Debug, Clone, Copy)]
enum F {
    Open,
    Close,
    Read,
    Write,
    Lseek,
    Tell,
    Truncate,
    Create,
    Unlink,
    FromBytea,
    Get,
}

/// The OIDs of [`FUNCTIONS`] on one connection (resolved once, with the connection's
/// other fast-path functions).
#[derive(Debug, Clone, Copy)]
struct Lo {
    oids: [Oid; FUNCTIONS.len()],
}

impl Lo {
    async fn resolve(wire: &mut Wire) -> Result<Lo, Error> {
        let wanted: Vec<Function> = FUNCTIONS.iter().map(|&f| Function::from(f)).collect();
        let infos = wire.functions(&wanted).await?;
        let mut oids = [0; FUNCTIONS.len()];
        for (slot, info) in oids.iter_mut().zip(infos) {
            *slot = info.oid;
        }
        Ok(Lo { oids })
    }

    /// Calls `f` with raw binary arguments.
    async fn call(
        &self,
        wire: &mut Wire,
        f: F,
        args: &[Option<&[u8]>],
    ) -> Result<Option<Bytes>, Error> {
        let oid = self.oids[f as usize];
        let write = |buf: &mut bytes::BytesMut| {
            frontend::function_call(oid, args, Format::Binary, buf).map_err(Error::from)
        };
        wire.fast_path(write).await
    }

    async fn int4(&self, wire: &mut Wire, f: F, args: &[Option<&[u8]>]) -> Result<i32, Error> {
        let raw = self.call(wire, f, args).await?;
        fixed::<4>(f, raw).map(i32::from_be_bytes)
    }

    async fn int8(&self, wire: &mut Wire, f: F, args: &[Option<&[u8]>]) -> Result<i64, Error> {
        let raw = self.call(wire, f, args).await?;
        fixed::<8>(f, raw).map(i64::from_be_bytes)
    }

    async fn read(&self, wire: &mut Wire, fd: i32, len: usize) -> Result<Bytes, Error> {
        let len = i32::try_from(len).unwrap_or(i32::MAX);
        let args = [Some(&fd.to_be_bytes()[..]), Some(&len.to_be_bytes()[..])];
        match self.call(wire, F::Read, &args).await? {
            Some(data) if data.len() <= len as usize => Ok(data),
            other => Err(bad_result(F::Read, other.as_deref())),
        }
    }

    async fn write(&self, wire: &mut Wire, fd: i32, data: &[u8]) -> Result<usize, Error> {
        let args = [Some(&fd.to_be_bytes()[..]), Some(data)];
        let n = self.int4(wire, F::Write, &args).await?;
        match usize::try_from(n) {
            Ok(n) if n == data.len() => Ok(n),
            _ => Err(bad_result(F::Write, Some(&n.to_be_bytes()))),
        }
    }

    async fn lseek(&self, wire: &mut Wire, fd: i32, to: i64, whence: i32) -> Result<u64, Error> {
        let args = [
            Some(&fd.to_be_bytes()[..]),
            Some(&to.to_be_bytes()[..]),
            Some(&whence.to_be_bytes()[..]),
        ];
        let pos = self.int8(wire, F::Lseek, &args).await?;
        u64::try_from(pos).map_err(|_| bad_result(F::Lseek, Some(&pos.to_be_bytes())))
    }
}

fn fixed<const N: usize>(f: F, raw: Option<Bytes>) -> Result<[u8; N], Error> {
    raw.as_deref()
        .and_then(|r| <[u8; N]>::try_from(r).ok())
        .ok_or_else(|| bad_result(f, raw.as_deref()))
}

fn bad_result(f: F, raw: Option<&[u8]>) -> Error {
    let got = match raw {
        None => "NULL".to_owned(),
        Some(r) => format!("{} bytes", r.len()),
    };
    let msg = format!(
        "{} returned {got}, which it never does",
        FUNCTIONS[f as usize]
    );
    Error::new(ErrorKind::Protocol, msg)
}

/// Runs `call` within the connection's query timeout, if it has one.
async fn bounded<T>(
    limit: Option<Duration>,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match limit {
        None => call.await,
        Some(limit) => with_timeout(limit, call).await,
    }
}

/// An operation started by the poll-based traits, holding the wire until it is done.
type Pending<'t> = Pin<Box<dyn Future<Output = (&'t mut Wire, Done)> + Send + 't>>;

/// What a finished operation says: the descriptor's new position and, for a read, the
/// data.
type Done = Result<(u64, Option<Bytes>), Error>;

/// What the operation in flight does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write,
    Seek,
}

/// The wire as a large object holds it.
enum Slot<'t> {
    /// Nothing in flight.
    Idle(&'t mut Wire),
    /// An operation of the poll-based traits is in flight; dropped unfinished, its
    /// in-flight guard abandons or breaks the connection.
    Busy(Pending<'t>, Op),
    /// Only while the slot changes hands.
    Moving,
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
        wire: &'t mut Wire,
        oid: Oid,
        mode: LoMode,
        limit: Option<Duration>,
    ) -> Result<LargeObject<'t>, Error> {
        let (lo, fd) = bounded(limit, async {
            let lo = Lo::resolve(wire).await?;
            let args = [
                Some(&oid.to_be_bytes()[..]),
                Some(&mode.flags().to_be_bytes()[..]),
            ];
            let fd = lo.int4(wire, F::Open, &args).await?;
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

/// The poll-based traits: one operation at a time in [`Slot::Busy`].
impl<'t> LargeObject<'t> {
    /// Drives the operation in flight, if any; `Ready(Ok(Some(kind)))` when one of that
    /// kind finished now, `Ready(Ok(None))` when none was in flight.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Op>, Error>> {
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
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
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
    fn start(
        &mut self,
        kind: Op,
        op: impl FnOnce(&'t mut Wire, Lo, i32, u64) -> Pending<'t>,
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

    fn start_read(&mut self) -> Result<(), Error> {
        let (limit, len) = (self.limit, self.chunk);
        self.start(Op::Read, move |wire, lo, fd, pos| {
            Box::pin(async move {
                let read = bounded(limit, lo.read(wire, fd, len)).await;
                let done = read.map(|data| (pos + data.len() as u64, Some(data)));
                (wire, done)
            })
        })
    }

    fn start_write(&mut self, data: Bytes) -> Result<(), Error> {
        // Bytes read ahead are given back first: the write goes at the caller's position.
        let back = std::mem::take(&mut self.ahead).len() as i64;
        let moves = data.len() as i64 - back;
        let limit = self.limit;
        self.start(Op::Write, move |wire, lo, fd, pos| {
            Box::pin(async move {
                let done = bounded(limit, async {
                    let at = match back {
                        0 => pos,
                        back => lo.lseek(wire, fd, -back, 1).await?,
                    };
                    let n = lo.write(wire, fd, &data).await?;
                    Ok((at + n as u64, None))
                })
                .await;
                (wire, done)
            })
        })?;
        self.flying = moves;
        Ok(())
    }

    fn start_seek_to(&mut self, to: SeekFrom) -> Result<(), Error> {
        if !self.unsent.is_empty() {
            let msg = "written bytes are not sent yet: poll_complete (or flush) before start_seek";
            return Err(Error::new(ErrorKind::Misuse, msg));
        }
        let (offset, whence) = self.whence(to)?;
        self.ahead.clear();
        let limit = self.limit;
        self.start(Op::Seek, move |wire, lo, fd, _| {
            Box::pin(async move {
                let done = bounded(limit, lo.lseek(wire, fd, offset, whence)).await;
                (wire, done.map(|pos| (pos, None)))
            })
        })
    }
}

/// A pgkeel error as an I/O error (its source, for `downcast`).
fn io_error(e: Error) -> io::Error {
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

/// Large objects and fast-path calls on a transaction guard or a savepoint.
macro_rules! large_object_methods {
    () => {
        /// Creates an empty large object and returns its OID (`lo_create(0)`); it is
        /// kept only if the transaction commits.
        ///
        /// ```no_run
        /// # async fn demo(conn: pgkeel::Connection) -> Result<(), pgkeel::Error> {
        /// let mut tx = conn.transaction().await?;
        /// let oid = tx.create_large_object().await?;
        /// tx.execute("INSERT INTO documents (blob) VALUES ($1)", &[&oid]).await?;
        /// tx.commit().await?;
        /// # Ok(()) }
        /// ```
        ///
        /// # Errors
        /// A server error; [`ErrorKind::Broken`]/[`ErrorKind::Closed`].
        ///
        /// # Cancel safety
        /// As [`Connection::query`](crate::Connection::query).
        pub async fn create_large_object(&mut self) -> Result<Oid, Error> {
            let wire = self.wire_ready().await?;
            let limit = wire.shared.limits.query;
            bounded(limit, async {
                let lo = Lo::resolve(wire).await?;
                let oid = lo
                    .int4(wire, F::Create, &[Some(&0u32.to_be_bytes())])
                    .await?;
                Ok(oid as Oid)
            })
            .await
        }

        /// Opens large object `oid`; the object borrows the transaction until it is
        /// dropped or closed.
        ///
        /// ```no_run
        /// # async fn demo(conn: pgkeel::Connection, oid: u32) -> Result<(), Box<dyn std::error::Error>> {
        /// let mut tx = conn.transaction().await?;
        /// let mut lo = tx.large_object(oid, pgkeel::LoMode::Read).await?;
        /// let mut out = tokio::io::sink();
        /// let n = tokio::io::copy(&mut lo, &mut out).await?;
        /// drop(lo);
        /// tx.commit().await?;
        /// # Ok(()) }
        /// ```
        ///
        /// # Errors
        /// A server error: SQLSTATE 42704 (undefined object) for an object that does
        /// not exist, 42501 without the privilege.
        ///
        /// # Cancel safety
        /// As [`Connection::query`](crate::Connection::query).
        pub async fn large_object(
            &mut self,
            oid: Oid,
            mode: LoMode,
        ) -> Result<LargeObject<'_>, Error> {
            let wire = self.wire_ready().await?;
            let limit = wire.shared.limits.query;
            LargeObject::open(wire, oid, mode, limit).await
        }

        /// Deletes large object `oid` (`lo_unlink`), when the transaction commits.
        ///
        /// ```no_run
        /// # async fn demo(conn: pgkeel::Connection, oid: u32) -> Result<(), pgkeel::Error> {
        /// let mut tx = conn.transaction().await?;
        /// tx.unlink_large_object(oid).await?;
        /// tx.commit().await?;
        /// # Ok(()) }
        /// ```
        ///
        /// # Errors
        /// SQLSTATE 42704 for an object that does not exist; a server error.
        ///
        /// # Cancel safety
        /// As [`Connection::query`](crate::Connection::query).
        pub async fn unlink_large_object(&mut self, oid: Oid) -> Result<(), Error> {
            let wire = self.wire_ready().await?;
            let limit = wire.shared.limits.query;
            bounded(limit, async {
                let lo = Lo::resolve(wire).await?;
                lo.int4(wire, F::Unlink, &[Some(&oid.to_be_bytes())])
                    .await?;
                Ok(())
            })
            .await
        }

        /// Creates a large object holding `data` in one call (`lo_from_bytea`), for
        /// objects small enough to hold in memory (up to 1 GiB); returns its OID.
        ///
        /// ```no_run
        /// # async fn demo(mut tx: pgkeel::Transaction) -> Result<(), pgkeel::Error> {
        /// let oid = tx.import_large_object(b"small enough").await?;
        /// assert_eq!(&tx.export_large_object(oid).await?[..], b"small enough");
        /// # Ok(()) }
        /// ```
        ///
        /// # Errors
        /// A server error; [`ErrorKind::Encode`] for more than 1 GiB (nothing is sent).
        ///
        /// # Cancel safety
        /// As [`Connection::query`](crate::Connection::query).
        pub async fn import_large_object(&mut self, data: &[u8]) -> Result<Oid, Error> {
            let wire = self.wire_ready().await?;
            let limit = wire.shared.limits.query;
            bounded(limit, async {
                let lo = Lo::resolve(wire).await?;
                let args = [Some(&0u32.to_be_bytes()[..]), Some(data)];
                let oid = lo.int4(wire, F::FromBytea, &args).await?;
                Ok(oid as Oid)
            })
            .await
        }

        /// The whole content of large object `oid` in one call (`lo_get`), for objects
        /// small enough to hold in memory (the server refuses more than 1 GiB); stream
        /// larger ones through [`large_object`](Self::large_object).
        ///
        /// ```no_run
        /// # async fn demo(mut tx: pgkeel::Transaction, oid: u32) -> Result<(), pgkeel::Error> {
        /// let bytes = tx.export_large_object(oid).await?;
        /// println!("{} bytes", bytes.len());
        /// # Ok(()) }
        /// ```
        ///
        /// # Errors
        /// SQLSTATE 42704 for an object that does not exist; a server error.
        ///
        /// # Cancel safety
        /// As [`Connection::query`](crate::Connection::query).
        pub async fn export_large_object(&mut self, oid: Oid) -> Result<Bytes, Error> {
            let wire = self.wire_ready().await?;
            let limit = wire.shared.limits.query;
            bounded(limit, async {
                let lo = Lo::resolve(wire).await?;
                match lo.call(wire, F::Get, &[Some(&oid.to_be_bytes())]).await? {
                    Some(data) => Ok(data),
                    None => Err(bad_result(F::Get, None)),
                }
            })
            .await
        }

        /// Calls a server function over the fast path inside the transaction; see
        /// [`Connection::fast_path_call`](crate::Connection::fast_path_call).
        ///
        /// ```no_run
        /// # async fn demo(mut tx: pgkeel::Transaction) -> Result<(), pgkeel::Error> {
        /// let raw = tx.fast_path_call("pg_catalog.lo_create(oid)", &[&0u32]).await?;
        /// # Ok(()) }
        /// ```
        ///
        /// # Errors
        /// As [`Connection::fast_path_call`](crate::Connection::fast_path_call); a server
        /// error fails the transaction, as any statement's would.
        ///
        /// # Cancel safety
        /// As [`Connection::query`](crate::Connection::query).
        pub async fn fast_path_call(
            &mut self,
            function: impl Into<Function>,
            args: Params<'_>,
        ) -> Result<Option<Bytes>, Error> {
            let function = function.into();
            let wire = self.wire_ready().await?;
            let limit = wire.shared.limits.query;
            let call = wire.fast_path_call(&function, args);
            bounded(limit, async { call.await.map(|(_, raw)| raw) }).await
        }

        /// As [`fast_path_call`](Self::fast_path_call), with the result decoded as `T`;
        /// see [`Connection::fast_path_call_typed`](crate::Connection::fast_path_call_typed).
        ///
        /// ```no_run
        /// # async fn demo(mut tx: pgkeel::Transaction) -> Result<(), pgkeel::Error> {
        /// let oid: u32 = tx.fast_path_call_typed("pg_catalog.lo_create(oid)", &[&0u32]).await?;
        /// # Ok(()) }
        /// ```
        ///
        /// # Errors
        /// As [`Connection::fast_path_call_typed`](crate::Connection::fast_path_call_typed).
        ///
        /// # Cancel safety
        /// As [`Connection::query`](crate::Connection::query).
        pub async fn fast_path_call_typed<T: FromSqlOwned>(
            &mut self,
            function: impl Into<Function>,
            args: Params<'_>,
        ) -> Result<T, Error> {
            let function = function.into();
            let wire = self.wire_ready().await?;
            let limit = wire.shared.limits.query;
            bounded(limit, async {
                let (info, raw) = wire.fast_path_call(&function, args).await?;
                decode_result(&info, raw)
            })
            .await
        }
    };
}

impl Transaction {
    large_object_methods!();
}

impl Savepoint<'_> {
    large_object_methods!();
}

/// The code blocks of `docs/LARGE_OBJECTS.md`, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/LARGE_OBJECTS.md")]
struct LargeObjectsGuide;
