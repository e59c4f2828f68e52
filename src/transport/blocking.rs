//! Blocking sockets for the one path that has no runtime left: a CancelRequest sent
//! from a plain thread after the runtime shut down. Every step (connect, TLS handshake,
//! write, each read until the server closes) is bounded by one deadline, so a server
//! that never answers, or answers a byte at a time, cannot hold the thread.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

/// `limit` from now; a limit too long for the clock (`Duration::MAX` as "no limit") is
/// a deadline a century away rather than an overflow panic.
pub(crate) fn instant_after(limit: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(limit)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// [`instant_after`] for Tokio's timers.
pub(crate) fn tokio_instant_after(limit: Duration) -> tokio::time::Instant {
    tokio::time::Instant::from_std(instant_after(limit))
}

/// The time left for a blocking cancel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(Instant);

impl Deadline {
    pub(crate) fn after(limit: Duration) -> Deadline {
        Deadline(instant_after(limit))
    }

    /// The deadline `at`.
    pub(crate) fn at(at: Instant) -> Deadline {
        Deadline(at)
    }

    /// The time left (at least 1 ms, since a zero socket timeout means none), or a
    /// `TimedOut` error once it has passed.
    pub(crate) fn left(&self) -> io::Result<Duration> {
        match self.0.checked_duration_since(Instant::now()) {
            Some(d) if !d.is_zero() => Ok(d.max(Duration::from_millis(1))),
            _ => Err(timed_out()),
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the cancel request was not delivered within the cancel timeout",
    )
}

/// A socket timeout shows as `WouldBlock` (EAGAIN) on Linux: the deadline passed.
pub(crate) fn deadline_error(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => timed_out(),
        _ => e,
    }
}

/// A blocking socket whose reads and writes can be bounded.
pub(crate) trait Bounded: Read + Write {
    /// Bounds the next reads and writes by what is left of `deadline`.
    fn bound(&self, deadline: &Deadline) -> io::Result<()>;
}

impl Bounded for TcpStream {
    fn bound(&self, deadline: &Deadline) -> io::Result<()> {
        let left = Some(deadline.left()?);
        self.set_read_timeout(left)?;
        self.set_write_timeout(left)
    }
}

impl Bounded for UnixStream {
    fn bound(&self, deadline: &Deadline) -> io::Result<()> {
        let left = Some(deadline.left()?);
        self.set_read_timeout(left)?;
        self.set_write_timeout(left)
    }
}

/// Connects to a Unix socket by `deadline`: a full listen backlog makes a blocking
/// connect wait without limit, so it is retried non-blocking instead.
pub(crate) fn connect_unix(path: &Path, deadline: &Deadline) -> io::Result<UnixStream> {
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    let addr = SockAddr::unix(path)?;
    loop {
        match socket.connect(&addr) {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                deadline.left()?;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
    socket.set_nonblocking(false)?;
    Ok(socket.into())
}

/// Writes `request`, then reads until the server closes; `bound` bounds each step by
/// the deadline (on the socket itself, or on the TCP under TLS).
pub(crate) fn send_and_wait_close<S: Read + Write>(
    stream: &mut S,
    bound: impl Fn(&S) -> io::Result<()>,
    request: &[u8],
) -> io::Result<()> {
    bound(stream)?;
    stream.write_all(request).map_err(deadline_error)?;
    stream.flush().map_err(deadline_error)?;
    let mut sink = [0u8; 64];
    loop {
        bound(stream)?;
        match stream.read(&mut sink) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            // Over TLS, a close without close_notify is the normal end here.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(deadline_error(e)),
        }
    }
}
