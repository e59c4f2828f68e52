//! Adaptive read spinning while the server streams.
//!
//! When a large result or a COPY OUT streams in, the server sends 8 KiB at a time. If the
//! reading thread has gone to sleep in `epoll_wait` by then, every piece pays for waking
//! it, and that cost lands on the server's side of the socket: the backend is slower per
//! row when the client reads each piece the moment it comes. [`Spin`] keeps the reader on
//! its CPU for a few microseconds after the socket runs dry, but only while reads are
//! coming back large (a bulk transfer is under way), and backs off when spinning stops
//! finding data. Small exchanges (point queries, commits) never spin.
//!
//! The spin reads the socket directly (non-blocking), not through Tokio's readiness, which
//! only changes when the runtime next polls its I/O driver.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A read that returned at least this many bytes means the peer is streaming.
const BULK_READ: usize = 4096;
/// The most a spin reads at once (the part of the buffer it must initialise).
const SPIN_CHUNK: usize = 32 * 1024;
/// After this many misses in a row, a miss makes the reader skip 2^n bulk waits.
const MAX_BACKOFF_SHIFT: u32 = 6;

/// When to spin, and how it has been going.
#[derive(Debug, Default)]
pub(crate) struct ReadSpin {
    /// How long one spin may last; zero: never spin.
    limit: Duration,
    /// The last read was a bulk one.
    armed: bool,
    /// Bulk waits left to sleep through before spinning again.
    skip: u32,
    /// Misses since the last hit: the next miss skips 2^misses waits.
    misses: u32,
    /// Spins that found data and spins that ran out of time, for the connection's
    /// [`crate::Connection::read_spin_counts`].
    counts: Arc<SpinCounter>,
}

/// How many spins found data and how many ran out of time.
#[derive(Debug, Default)]
pub(crate) struct SpinCounter {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl SpinCounter {
    /// (hits, misses) so far.
    pub(crate) fn get(&self) -> (u64, u64) {
        (self.hits.load(Relaxed), self.misses.load(Relaxed))
    }
}

impl ReadSpin {
    /// Sets the longest spin; zero turns spinning off.
    pub(crate) fn set_limit(&mut self, limit: Duration) {
        self.limit = limit;
    }

    /// Notes a read of `n` bytes that came through the runtime (or a spin).
    fn read(&mut self, n: usize) {
        self.armed = n >= BULK_READ;
    }

    /// Whether the next empty read should spin: the stream is bulk and not backing off.
    fn should_spin(&mut self) -> bool {
        if self.limit.is_zero() || !self.armed {
            return false;
        }
        // One decision per wait: the read after this one re-arms if it is bulk.
        self.armed = false;
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        true
    }

    /// The counter this spin adds to.
    pub(crate) fn counter(&self) -> Arc<SpinCounter> {
        self.counts.clone()
    }

    fn hit(&mut self, n: usize) {
        self.counts.hits.fetch_add(1, Relaxed);
        self.misses = 0;
        self.skip = 0;
        self.read(n);
    }

    fn miss(&mut self) {
        self.counts.misses.fetch_add(1, Relaxed);
        self.skip = (1 << self.misses.min(MAX_BACKOFF_SHIFT)) - 1;
        self.misses = self.misses.saturating_add(1);
    }
}

/// A socket whose reads spin briefly, as [`ReadSpin`] decides, before waiting.
#[derive(Debug)]
pub(crate) struct Spin<S> {
    io: S,
    spin: ReadSpin,
}

impl<S> Spin<S> {
    /// Wraps `io` with spinning off.
    pub(crate) fn new(io: S) -> Spin<S> {
        Spin {
            io,
            spin: ReadSpin::default(),
        }
    }

    /// The socket.
    pub(crate) fn get_ref(&self) -> &S {
        &self.io
    }

    /// The socket, unwrapped.
    pub(crate) fn into_inner(self) -> S {
        self.io
    }

    /// The spin settings.
    pub(crate) fn spin(&self) -> &ReadSpin {
        &self.spin
    }

    /// The spin settings, to change.
    pub(crate) fn spin_mut(&mut self) -> &mut ReadSpin {
        &mut self.spin
    }
}

/// Reads what the socket holds, without waiting, for at most `limit`.
fn spin_read(fd: impl AsFd, buf: &mut ReadBuf<'_>, limit: Duration) -> Option<io::Result<usize>> {
    let sock = SockRef::from(&fd);
    let want = buf.remaining().min(SPIN_CHUNK);
    let dst = buf.initialize_unfilled_to(want);
    let start = Instant::now();
    loop {
        match (&*sock).read(dst) {
            Ok(n) => return Some(Ok(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Some(Err(e)),
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::hint::spin_loop();
    }
}

impl<S: AsyncRead + AsFd + Unpin> AsyncRead for Spin<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.spin.read(buf.filled().len() - before);
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.spin.should_spin() => {
                // The runtime has our waker: if the spin finds data first, the wake-up
                // that follows costs one spurious poll.
                match spin_read(&this.io, buf, this.spin.limit) {
                    Some(Ok(n)) => {
                        buf.advance(n);
                        this.spin.hit(n);
                        Poll::Ready(Ok(()))
                    }
                    Some(Err(e)) => Poll::Ready(Err(e)),
                    None => {
                        this.spin.miss();
                        Poll::Pending
                    }
                }
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Spin<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &mut ReadSpin) {
        s.read(BULK_READ);
    }

    #[test]
    fn small_reads_never_spin_and_off_means_off() {
        let mut s = ReadSpin::default();
        bulk(&mut s);
        assert!(!s.should_spin(), "limit zero: off");
        s.set_limit(Duration::from_micros(50));
        s.read(BULK_READ - 1);
        assert!(!s.should_spin(), "a small read does not arm");
        bulk(&mut s);
        assert!(s.should_spin());
        assert!(!s.should_spin(), "one decision per wait");
    }

    #[test]
    fn misses_back_off_exponentially_and_a_hit_resets() {
        let mut s = ReadSpin::default();
        s.set_limit(Duration::from_micros(50));
        let mut pattern = Vec::new();
        for _ in 0..40 {
            bulk(&mut s);
            let spun = s.should_spin();
            if spun {
                s.miss();
            }
            pattern.push(spun);
        }
        let spins: Vec<usize> = (0..40).filter(|&i| pattern[i]).collect();
        // Skips of 0, 1, 3, 7, 15: spins at waits 0, 1, 3, 7, 15, 31.
        assert_eq!(spins, vec![0, 1, 3, 7, 15, 31]);
        s.hit(BULK_READ);
        assert!(s.should_spin(), "a hit re-arms and clears the back-off");
        s.miss();
        bulk(&mut s);
        assert!(s.should_spin(), "the first miss after a hit skips nothing");
    }

    #[test]
    fn the_backoff_is_capped_and_counted() {
        let mut s = ReadSpin::default();
        s.set_limit(Duration::from_micros(50));
        for _ in 0..100 {
            s.miss();
        }
        assert_eq!(s.skip, (1 << MAX_BACKOFF_SHIFT) - 1);
        s.hit(1);
        assert_eq!(s.counter().get(), (1, 100));
    }

    /// A Unix socket pair, the reading end wrapped, spinning up to `limit`, and armed
    /// by one bulk read.
    async fn armed_pair(
        limit: Duration,
    ) -> (Spin<tokio::net::UnixStream>, std::os::unix::net::UnixStream) {
        use tokio::io::AsyncReadExt;
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut reader = Spin::new(tokio::net::UnixStream::from_std(ours).unwrap());
        reader.spin_mut().set_limit(limit);
        let mut writer = theirs;
        io::Write::write_all(&mut writer, &[7; BULK_READ]).unwrap();
        let mut buf = vec![0; BULK_READ];
        reader.read_exact(&mut buf).await.unwrap();
        assert!(reader.spin().armed, "a bulk read arms the spin");
        (reader, writer)
    }

    /// Writes `bytes` to `writer` from another thread after `delay`; the thread gives
    /// the socket back.
    fn write_after(
        mut writer: std::os::unix::net::UnixStream,
        delay: Duration,
        bytes: &'static [u8],
    ) -> std::thread::JoinHandle<std::os::unix::net::UnixStream> {
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            io::Write::write_all(&mut writer, bytes).unwrap();
            writer
        })
    }

    #[tokio::test]
    async fn a_spin_finds_data_written_while_it_spins() {
        use tokio::io::AsyncReadExt;
        let (mut reader, writer) = armed_pair(Duration::from_secs(2)).await;
        let late = write_after(writer, Duration::from_millis(20), b"late");
        let mut buf = [0; 16];
        let n = reader.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"late");
        assert_eq!(reader.spin().counter().get(), (1, 0), "found by the spin");
        drop(late.join().unwrap());
        let n = reader.read(&mut buf).await.unwrap();
        assert_eq!(n, 0, "end of stream through the runtime after the spin");
    }

    #[tokio::test]
    async fn a_spin_that_runs_out_waits_through_the_runtime() {
        use tokio::io::AsyncReadExt;
        let (mut reader, writer) = armed_pair(Duration::from_millis(1)).await;
        let late = write_after(writer, Duration::from_millis(50), b"later");
        let mut buf = [0; 16];
        let n = reader.read(&mut buf).await.unwrap();
        assert_eq!(
            &buf[..n],
            b"later",
            "the runtime wakes the reader after the miss"
        );
        assert_eq!(reader.spin().counter().get(), (0, 1));
        drop(late.join().unwrap());
    }
}
