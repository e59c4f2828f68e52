//! CancelRequest: stop the query a session is running, from a fresh socket.
//!
//! PostgreSQL manual, "Canceling Requests in Progress": the client opens a new
//! connection to the same server and sends the session's process id and secret key.
//! The server answers nothing and closes the socket once it has signalled the backend;
//! waiting for that close tells us the signal was delivered.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, TimeoutKind};
use crate::protocol::frontend;
use crate::transport::blocking::{self, Bounded, Deadline, send_and_wait_close};
use crate::transport::tls::{self, Negotiated, TlsSetup};
use crate::transport::{self, PeerAddr, Stream};

/// Sends the cancel from a thread of its own if the task meant to send it is dropped
/// before it could (the runtime shut down right after the exchange was abandoned), so
/// the abandoned query still stops on the server.
pub(crate) struct CancelOnDrop(pub(crate) Option<CancelToken>);

impl CancelOnDrop {
    /// The async cancel is under way: nothing to do on drop.
    pub(crate) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(token) = self.0.take() {
            cancel_in_background(token);
        }
    }
}

/// Sends a cancel from one shared background thread, one request after another: the
/// runtime is gone, so no task can, and a thread per connection would be unbounded.
fn cancel_in_background(token: CancelToken) {
    background(Job::Cancel(token));
}

/// Work for the background thread: a cancel to send, or a sent one to see closed.
enum Job {
    Cancel(CancelToken),
    Linger(PlainSocket, std::time::Instant),
}

/// Runs `job` on the one shared background thread. Jobs run one after another; each
/// is bounded by its own deadline.
fn background(job: Job) {
    use std::sync::mpsc::{Sender, channel};
    use std::sync::{Mutex, OnceLock};
    static QUEUE: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("pgkeel-cancel".into())
            .spawn(move || {
                for job in rx {
                    match job {
                        Job::Cancel(token) => drop(token.cancel_blocking()),
                        Job::Linger(socket, deadline) => socket.wait(deadline),
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no thread for background cancels");
        }
        Mutex::new(tx)
    });
    let tx = queue.lock().unwrap_or_else(|e| e.into_inner());
    if tx.send(job).is_err() {
        tracing::warn!("the background cancel thread is gone; a cancel was not sent");
    }
}

/// What a CancelRequest needs: where the session is, and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelToken {
    pub(crate) peer: PeerAddr,
    pub(crate) process_id: i32,
    /// `None` when the server sent no BackendKeyData: such a session cannot be cancelled.
    pub(crate) secret_key: Option<Bytes>,
    pub(crate) timeout: Duration,
    /// The session's TLS setup when it used TLS: the cancel goes the same way.
    pub(crate) tls: Option<TlsSetup>,
    /// Cancels may use, and leave behind, a spare socket opened ahead of time (see
    /// [`spare`]): plain sessions on a direct connection.
    pub(crate) warm: bool,
    /// When the session was ready: a spare opened before then cannot cancel it.
    pub(crate) ready_at: std::time::Instant,
}

impl CancelToken {
    /// Asks the server to cancel whatever the session is running now, and waits until
    /// the server has taken the request (it closes the cancel socket).
    ///
    /// A cancel that arrives while the session is idle is ignored by the server; one that
    /// arrives during a later query cancels that one, which is why pgkeel never reuses a
    /// session it has sent a cancel for on its own.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Io`] when the server cannot be reached, a
    /// [`TimeoutKind::Cancel`] timeout after the configured cancel timeout, or
    /// [`crate::ErrorKind::Protocol`] when the server gave the session no cancel key.
    pub async fn cancel_query(&self) -> Result<(), Error> {
        let span = crate::telemetry::cancel(&self.peer, self.process_id);
        crate::telemetry::traced(span, self.cancel_query_untraced()).await
    }

    /// [`CancelToken::cancel_query`] outside its span.
    async fn cancel_query_untraced(&self) -> Result<(), Error> {
        let key = self
            .key()
            .map_err(|e| Error::new(crate::ErrorKind::Protocol, e.to_string()))?;
        let limit = self.timeout;
        match tokio::time::timeout(limit, self.send(key)).await {
            Ok(r) => r,
            Err(_) => Err(Error::timeout(
                TimeoutKind::Cancel,
                format!("the server did not take the cancel request within {limit:?}"),
            )),
        }
    }

    /// Sends the CancelRequest with blocking socket calls, the whole of it (connect,
    /// TLS negotiated as the session's, write, wait for the close) bounded by the cancel
    /// timeout; for a drop path that has no runtime left to run the async one.
    pub(crate) fn cancel_blocking(&self) -> std::io::Result<()> {
        let _span = crate::telemetry::cancel(&self.peer, self.process_id).map(|s| s.entered());
        let mut buf = BytesMut::with_capacity(16);
        frontend::cancel_request_with_key(self.process_id, &self.key()?, &mut buf);
        let deadline = Deadline::after(self.timeout);
        match &self.peer {
            PeerAddr::Tcp(addr) => {
                let mut s = std::net::TcpStream::connect_timeout(addr, deadline.left()?)?;
                match &self.tls {
                    Some(setup) => tls::cancel_blocking(s, setup, &buf, &deadline),
                    None => send_and_wait_close(&mut s, |s| s.bound(&deadline), &buf),
                }
            }
            PeerAddr::Unix(path) => {
                let mut s = blocking::connect_unix(path, &deadline)?;
                send_and_wait_close(&mut s, |s| s.bound(&deadline), &buf)
            }
        }
    }

    /// The backend process id the token cancels.
    pub fn process_id(&self) -> i32 {
        self.process_id
    }

    /// The secret key, or why there is none.
    fn key(&self) -> std::io::Result<Bytes> {
        self.secret_key.clone().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "cannot cancel: the server sent no BackendKeyData (cancel key) for this session",
            )
        })
    }

    async fn send(&self, key: Bytes) -> Result<(), Error> {
        let mut request = BytesMut::with_capacity(16);
        frontend::cancel_request_with_key(self.process_id, &key, &mut request);
        let sent = match self.warm {
            true => spare::send(&self.peer, self.ready_at, &request),
            false => None,
        };
        let socket = if sent.is_some() { "warm" } else { "new" };
        tracing::Span::current().record("pgkeel.cancel.socket", socket);
        let stream = match sent {
            Some(sent) => sent,
            None => {
                let mut fresh = self.open().await?;
                write_request(&mut fresh, &request).await?;
                fresh
            }
        };
        let mut wait = AwaitClose {
            stream: Some(stream),
            deadline: blocking::instant_after(self.timeout),
        };
        wait.until_closed().await?;
        tracing::debug!(pid = self.process_id, socket, "cancel request delivered");
        if self.warm {
            spare::on_cancel(&self.peer, self.ready_at);
        }
        Ok(())
    }

    /// A new socket for the cancel, TLS negotiated as the session's was.
    async fn open(&self) -> Result<Stream, Error> {
        let stream = transport::connect_peer(&self.peer).await?;
        Ok(match (&self.tls, stream) {
            (Some(setup), Stream::Tcp(tcp)) => match tls::negotiate(tcp, setup).await? {
                Negotiated::Tls(s) => Stream::Tls(s),
                _ => {
                    return Err(Error::new(
                        crate::ErrorKind::Tls,
                        "the server refused TLS for the cancel request",
                    ));
                }
            },
            (_, s) => s,
        })
    }
}

/// Writes the CancelRequest and flushes it.
async fn write_request(stream: &mut Stream, request: &[u8]) -> std::io::Result<()> {
    stream.write_all(request).await?;
    stream.flush().await
}

/// A sent CancelRequest waiting for the server (or a pooler) to close its socket.
///
/// The peer closes first: if this wait is dropped (a timeout around the cancel, or the
/// runtime shutting down), a plain socket is handed to a background thread that waits for
/// that close until the cancel deadline instead of closing it under the peer. PgBouncer
/// 1.18 exits with "bad client state: 0" when a cancel client leaves before its
/// cancel was forwarded.
struct AwaitClose {
    stream: Option<Stream>,
    deadline: std::time::Instant,
}

impl AwaitClose {
    async fn until_closed(&mut self) -> Result<(), Error> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        // The server sends nothing back; EOF means it has acted on the request (over
        // TLS, a close without close_notify is that same EOF).
        let mut sink = [0u8; 16];
        let result = loop {
            match stream.read(&mut sink).await {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break Ok(()),
                Err(e) => break Err(e.into()),
            }
        };
        self.stream = None;
        result
    }
}

impl Drop for AwaitClose {
    fn drop(&mut self) {
        // A TLS session cannot leave its runtime; it closes here.
        if let Some(Ok(socket)) = self.stream.take().and_then(PlainSocket::from_stream) {
            background(Job::Linger(socket, self.deadline));
        }
    }
}

/// A cancel's plain socket outside the runtime: a spare waiting for the next cancel
/// ([`spare`]), or a sent request waiting, on the background thread, for the peer to
/// close it.
enum PlainSocket {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl PlainSocket {
    /// `stream` taken out of its runtime; `None` for a TLS session, which cannot leave it.
    fn from_stream(stream: Stream) -> Option<std::io::Result<PlainSocket>> {
        match stream {
            Stream::Tcp(s) => Some(s.into_inner().into_std().map(PlainSocket::Tcp)),
            Stream::Unix(s) => Some(s.into_inner().into_std().map(PlainSocket::Unix)),
            Stream::Tls(_) => None,
        }
    }

    /// Back into the current runtime, as a session's stream would be.
    fn into_stream(self) -> std::io::Result<Stream> {
        use crate::transport::spin::Spin;
        Ok(match self {
            PlainSocket::Tcp(s) => Stream::Tcp(Spin::new(tokio::net::TcpStream::from_std(s)?)),
            PlainSocket::Unix(s) => Stream::Unix(Spin::new(tokio::net::UnixStream::from_std(s)?)),
        })
    }

    /// Waits (each read bounded by what is left of `deadline`) until the peer closes,
    /// then closes.
    fn wait(self, deadline: std::time::Instant) {
        let deadline = Deadline::at(deadline);
        let bound = |s: &dyn Bounded| s.bound(&deadline);
        let _ = match self {
            PlainSocket::Tcp(mut s) => s
                .set_nonblocking(false)
                .and_then(|()| send_and_wait_close(&mut s, |s| bound(s), &[])),
            PlainSocket::Unix(mut s) => s
                .set_nonblocking(false)
                .and_then(|()| send_and_wait_close(&mut s, |s| bound(s), &[])),
        };
    }
}

mod spare;
#[cfg(test)]
mod tests;
