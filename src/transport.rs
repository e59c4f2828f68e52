//! The byte stream under the codec: TCP (plain or TLS) or a Unix socket.
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

use crate::config::{Config, Host, Target};
use spin::Spin;

pub(crate) mod blocking;
pub(crate) mod spin;
pub(crate) mod tls;

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
    Tcp(Spin<TcpStream>),
    /// A Unix-domain socket.
    Unix(Spin<UnixStream>),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<Spin<TcpStream>>>),
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

/// The TCP liveness settings of a socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Liveness {
    /// Keepalive idle time, probe interval and probe count; `None`: keepalive off.
    pub(crate) keepalive: Option<(Duration, Duration, u32)>,
    /// `TCP_USER_TIMEOUT`; `None`: the kernel's default.
    pub(crate) user_timeout: Option<Duration>,
}

impl Liveness {
    /// The settings of `config`.
    pub(crate) fn of(config: &Config) -> Liveness {
        Liveness {
            keepalive: config.keepalives.then_some((
                config.keepalives_idle,
                config.keepalives_interval,
                config.keepalives_count,
            )),
            user_timeout: config.tcp_user_timeout,
        }
    }

    /// Applies the settings to a connected TCP socket.
    fn apply(&self, sock: &SockRef<'_>) -> io::Result<()> {
        if let Some((idle, interval, count)) = self.keepalive {
            // A zero leaves the kernel's own setting for that one, as in libpq.
            let mut ka = TcpKeepalive::new();
            if !idle.is_zero() {
                ka = ka.with_time(idle);
            }
            if !interval.is_zero() {
                ka = ka.with_interval(interval);
            }
            if count > 0 {
                ka = ka.with_retries(count);
            }
            sock.set_tcp_keepalive(&ka)?;
        }
        if let Some(limit) = self.user_timeout {
            sock.set_tcp_user_timeout(Some(limit))?;
        }
        Ok(())
    }
}

/// Opens a socket to one target: TCP with `TCP_NODELAY` and the liveness settings (to
/// `hostaddr` when given, else to each address the name resolves to), or a Unix socket
/// at `<dir>/.s.PGSQL.<port>`.
///
/// # Errors
/// The socket error of the last address tried.
pub(crate) async fn connect(
    target: &Target,
    liveness: Liveness,
) -> io::Result<(Stream, PeerAddr, Killswitch)> {
    match (&target.host, target.addr) {
        (Host::Unix(dir), _) => {
            let path = dir.join(format!(".s.PGSQL.{}", target.port));
            let s = UnixStream::connect(&path).await?;
            let kill = Killswitch(SockRef::from(&s).try_clone()?);
            Ok((Stream::Unix(Spin::new(s)), PeerAddr::Unix(path), kill))
        }
        (Host::Tcp(_), Some(addr)) => {
            connect_addrs([SocketAddr::new(addr, target.port)], liveness).await
        }
        (Host::Tcp(name), None) => {
            let addrs = tokio::net::lookup_host((name.as_str(), target.port)).await?;
            connect_addrs(addrs, liveness).await
        }
    }
}

async fn connect_addrs(
    addrs: impl IntoIterator<Item = SocketAddr>,
    liveness: Liveness,
) -> io::Result<(Stream, PeerAddr, Killswitch)> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                s.set_nodelay(true)?;
                let sock = SockRef::from(&s);
                liveness.apply(&sock)?;
                let kill = Killswitch(sock.try_clone()?);
                return Ok((Stream::Tcp(Spin::new(s)), PeerAddr::Tcp(addr), kill));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Opens a plain socket to `peer` (for a CancelRequest).
pub(crate) async fn connect_peer(peer: &PeerAddr) -> io::Result<Stream> {
    match peer {
        PeerAddr::Tcp(addr) => Ok(Stream::Tcp(Spin::new(TcpStream::connect(addr).await?))),
        PeerAddr::Unix(path) => Ok(Stream::Unix(Spin::new(UnixStream::connect(path).await?))),
    }
}

impl Stream {
    /// The counter of this socket's read spins.
    pub(crate) fn read_spin_counter(&self) -> std::sync::Arc<spin::SpinCounter> {
        match self {
            Stream::Tcp(s) => s.spin().counter(),
            Stream::Unix(s) => s.spin().counter(),
            Stream::Tls(s) => s.get_ref().0.spin().counter(),
        }
    }

    /// Sets how long a read may spin while the server streams (zero: never); see
    /// [`spin`].
    pub(crate) fn set_read_spin(&mut self, limit: Duration) {
        match self {
            Stream::Tcp(s) => s.spin_mut().set_limit(limit),
            Stream::Unix(s) => s.spin_mut().set_limit(limit),
            Stream::Tls(s) => s.get_mut().0.spin_mut().set_limit(limit),
        }
    }

    /// Writes what it can without waiting; used from `Drop`, where nothing may block.
    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.get_ref().try_write(buf),
            Stream::Unix(s) => s.get_ref().try_write(buf),
            // Encrypting needs `&mut`; the server sees the socket close instead.
            Stream::Tls(_) => Ok(0),
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
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
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
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
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
            Stream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(name: &str) -> u64 {
        let path = format!("/proc/sys/net/ipv4/{name}");
        std::fs::read_to_string(path)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// libpq's rule: a keepalive setting of 0 leaves the kernel's value in force.
    #[test]
    fn zero_keepalive_settings_leave_the_kernels_and_others_are_applied() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let config: Config = "keepalives_idle=0 keepalives_interval=0 keepalives_count=0"
            .parse()
            .unwrap();
        let tcp = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let sock = SockRef::from(&tcp);
        Liveness::of(&config).apply(&sock).unwrap();
        assert!(sock.keepalive().unwrap());
        let idle = sock.keepalive_time().unwrap().as_secs();
        let interval = sock.keepalive_interval().unwrap().as_secs();
        assert_eq!(idle, kernel("tcp_keepalive_time"));
        assert_eq!(interval, kernel("tcp_keepalive_intvl"));
        assert_eq!(
            u64::from(sock.keepalive_retries().unwrap()),
            kernel("tcp_keepalive_probes")
        );

        let tcp = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let sock = SockRef::from(&tcp);
        Liveness::of(&Config::new()).apply(&sock).unwrap();
        assert_eq!(sock.keepalive_time().unwrap(), Duration::from_secs(10));
        assert_eq!(sock.keepalive_interval().unwrap(), Duration::from_secs(5));
        assert_eq!(sock.keepalive_retries().unwrap(), 3);
    }
}
