//! The byte stream under the codec: TCP or a Unix socket.
//!
//! Besides the stream, connecting returns a [`Killswitch`]: a duplicate of the socket's
//! file descriptor that can shut the socket down from outside the wire lock. `close()`
//! uses it when another task holds the lock and will not let go, and the task holding
//! the lock then sees end-of-file instead of hanging.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::{SockRef, Socket, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::config::Host;

/// The address a session is connected to, so a CancelRequest reaches the same server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddr {
    /// A TCP address, resolved.
    Tcp(SocketAddr),
    /// The path of a Unix socket.
    Unix(PathBuf),
}

/// A connected socket.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// A Unix-domain socket.
    Unix(UnixStream),
}

/// Shuts a socket down from outside the task that reads it.
#[derive(Debug)]
pub(crate) struct Killswitch(Socket);

/// What an idle socket holds, looked at without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peek {
    /// Nothing to read: the peer is quiet.
    Empty,
    /// Bytes are waiting.
    Data,
    /// The peer closed the connection (or the socket failed).
    Closed,
}

impl Killswitch {
    /// Shuts the socket down in both directions; the reader sees end-of-file at once.
    pub(crate) fn trip(&self) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }

    /// Sends FIN: the server sees end-of-file, while we can still read until it closes.
    pub(crate) fn shutdown_write(&self) {
        let _ = self.0.shutdown(std::net::Shutdown::Write);
    }

    /// Looks at the socket itself (`MSG_PEEK`, non-blocking), not at the runtime's cached
    /// readiness, which is stale until the runtime next polls the socket.
    pub(crate) fn peek(&self) -> Peek {
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        match self.0.peek(&mut byte) {
            Ok(0) => Peek::Closed,
            Ok(_) => Peek::Data,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Peek::Empty,
            Err(_) => Peek::Closed,
        }
    }
}

/// Opens a socket to one host: TCP with `TCP_NODELAY` and keepalive, or a Unix socket
/// at `<dir>/.s.PGSQL.<port>`.
///
/// # Errors
/// The socket error of the last address tried.
pub(crate) async fn connect(
    host: &Host,
    port: u16,
    keepalive_idle: Option<Duration>,
) -> io::Result<(Stream, PeerAddr, Killswitch)> {
    match host {
        Host::Tcp(name) => connect_tcp(name, port, keepalive_idle).await,
        Host::Unix(dir) => {
            let path = dir.join(format!(".s.PGSQL.{port}"));
            let s = UnixStream::connect(&path).await?;
            let kill = Killswitch(SockRef::from(&s).try_clone()?);
            Ok((Stream::Unix(s), PeerAddr::Unix(path), kill))
        }
    }
}

async fn connect_tcp(
    name: &str,
    port: u16,
    keepalive_idle: Option<Duration>,
) -> io::Result<(Stream, PeerAddr, Killswitch)> {
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("{name} resolved to no address"),
    );
    for addr in tokio::net::lookup_host((name, port)).await? {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                s.set_nodelay(true)?;
                let sock = SockRef::from(&s);
                if let Some(idle) = keepalive_idle {
                    sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(idle))?;
                }
                let kill = Killswitch(sock.try_clone()?);
                return Ok((Stream::Tcp(s), PeerAddr::Tcp(addr), kill));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Opens a plain socket to `peer` (for a CancelRequest).
pub(crate) async fn connect_peer(peer: &PeerAddr) -> io::Result<Stream> {
    match peer {
        PeerAddr::Tcp(addr) => Ok(Stream::Tcp(TcpStream::connect(addr).await?)),
        PeerAddr::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
    }
}

impl Stream {
    /// Writes what it can without waiting; used from `Drop`, where nothing may block.
    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_write(buf),
            Stream::Unix(s) => s.try_write(buf),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
