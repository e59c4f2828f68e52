//! Warm cancel sockets: the next CancelRequest's connection, opened ahead of time.
//!
//! A CancelRequest must be the first packet on a connection of its own, and opening one
//! costs a TCP handshake and, on PostgreSQL, a fork of the postmaster before the request
//! is even read: about 1.5 ms on a server close by, during which the abandoned statement
//! goes on running. Cancels come in bursts (a timeout storm abandons many statements at
//! once), so when a cancel follows another within [`MAX_AGE`], pgkeel opens the socket
//! for the next one in the background and keeps it for [`MAX_AGE`]; a cancel that finds
//! it only writes its 16 bytes.
//!
//! The server's child waits for the first packet for `authentication_timeout` (at least
//! 1 s) before it gives up and closes. A spare is used only while it is younger than
//! [`MAX_AGE`] (half of that least timeout) and only if it is still open and silent, so
//! the server cannot close one under a cancel and make its close look like the
//! acknowledgement. Spares are kept for plain TCP and Unix-socket sessions, not for TLS
//! ones (whose cancel goes through its own handshake) and not in pooler mode.
//!
//! Up to PostgreSQL 17 the postmaster's child looks the session up in the list of
//! backends it was forked with, so a spare opened before a session's backend existed
//! cannot cancel it (the server ignores the request, and closes the socket all the
//! same). A spare serves only sessions that were ready before it began to open.

use std::mem::MaybeUninit;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::PlainSocket;
use crate::transport::{self, PeerAddr, Stream};

/// How long a spare socket is kept for a cancel.
pub(crate) const MAX_AGE: Duration = Duration::from_millis(500);
/// The most servers with a spare at once (each spare is one waiting process there).
const MAX_SPARES: usize = 16;
/// The longest a background open of a spare may take.
const OPEN_LIMIT: Duration = Duration::from_secs(1);

impl PlainSocket {
    /// Still open, and the server has said nothing on it (a server that cannot take
    /// another connection writes an error and closes).
    fn open_and_silent(&self) -> bool {
        let mut byte = [MaybeUninit::uninit()];
        let peeked = match self {
            PlainSocket::Tcp(s) => SockRef::from(s).peek(&mut byte),
            PlainSocket::Unix(s) => SockRef::from(s).peek(&mut byte),
        };
        matches!(peeked, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// An open socket to a server, nothing sent on it yet.
struct Spare {
    peer: PeerAddr,
    sock: PlainSocket,
    /// When its open began: its server process was forked after this.
    started: Instant,
    id: u64,
}

/// The spares, the servers whose spare is being opened, and each server's last cancel.
#[derive(Default)]
struct Spares {
    ready: Vec<Spare>,
    opening: Vec<PeerAddr>,
    last_cancel: Vec<(PeerAddr, Instant)>,
}

static SPARES: Mutex<Spares> = Mutex::new(Spares {
    ready: Vec::new(),
    opening: Vec::new(),
    last_cancel: Vec::new(),
});
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn spares() -> std::sync::MutexGuard<'static, Spares> {
    SPARES.lock().unwrap_or_else(|e| e.into_inner())
}

/// The spare socket to `peer` for a session that was ready at `session_ready`, if one
/// began to open after that and is young, open and silent. A young spare too old for
/// this session stays for older ones; an unusable one is closed.
pub(crate) fn take(peer: &PeerAddr, session_ready: Instant) -> Option<Stream> {
    let (spare, young) = {
        let mut spares = spares();
        let at = spares.ready.iter().position(|s| &s.peer == peer)?;
        let young = spares.ready[at].started.elapsed() < MAX_AGE;
        if young && spares.ready[at].started <= session_ready {
            return None;
        }
        (spares.ready.swap_remove(at), young)
    };
    // Taken out only when expired (to close it) or when it can serve this session.
    if !young || !spare.sock.open_and_silent() {
        return None; // closed outside the lock
    }
    spare.sock.into_stream().ok()
}

/// Notes a cancel delivered to `peer` for the session ready at `session_ready`; when
/// it follows another within [`MAX_AGE`] (cancels are coming in a burst), a spare is
/// made ready for the next one. A lone cancel leaves nothing behind: a spare costs the
/// server a process.
pub(crate) fn after_cancel(peer: &PeerAddr, session_ready: Instant) {
    let now = Instant::now();
    let burst = {
        let mut spares = spares();
        let last = &mut spares.last_cancel;
        match last.iter_mut().find(|(p, _)| p == peer) {
            Some((_, at)) => now.duration_since(std::mem::replace(at, now)) < MAX_AGE,
            None => {
                if last.len() >= MAX_SPARES {
                    let oldest = (0..last.len()).min_by_key(|&i| last[i].1);
                    oldest.map(|i| last.swap_remove(i));
                }
                last.push((peer.clone(), now));
                false
            }
        }
    };
    if burst {
        refill(peer, session_ready);
    }
}

/// Opens a spare socket to `peer` in the background for the next cancel, unless one
/// is on its way or a young one can serve the session ready at `session_ready` (and so
/// every older one); it replaces an older spare, and is closed unused after
/// [`MAX_AGE`].
fn refill(peer: &PeerAddr, session_ready: Instant) {
    {
        let mut spares = spares();
        if spares.opening.contains(peer) {
            return;
        }
        match spares.ready.iter().find(|s| &s.peer == peer) {
            Some(s) if s.started > session_ready && s.started.elapsed() < MAX_AGE => return,
            Some(_) => {}
            None if spares.ready.len() + spares.opening.len() >= MAX_SPARES => return,
            None => {}
        }
        spares.opening.push(peer.clone());
    }
    let peer = peer.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let opened = tokio::time::timeout(OPEN_LIMIT, transport::connect_peer(&peer)).await;
        let sock = match opened {
            Ok(Ok(stream)) => PlainSocket::from_stream(stream)
                .unwrap_or_else(|| Err(std::io::ErrorKind::Unsupported.into())),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        };
        let id = NEXT_ID.fetch_add(1, Relaxed);
        let replaced = {
            let mut spares = spares();
            spares.opening.retain(|p| p != &peer);
            let sock = match sock {
                Ok(sock) => sock,
                Err(e) => {
                    tracing::debug!(error = %e, "no spare cancel socket");
                    return;
                }
            };
            let older = spares.ready.iter().position(|s| s.peer == peer);
            let older = older.map(|at| spares.ready.swap_remove(at));
            spares.ready.push(Spare {
                peer,
                sock,
                started,
                id,
            });
            older
        };
        drop(replaced); // closed outside the lock
        tokio::time::sleep(MAX_AGE).await;
        let stale = {
            let mut spares = spares();
            let at = spares.ready.iter().position(|s| s.id == id);
            at.map(|at| spares.ready.swap_remove(at))
        };
        drop(stale);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A session ready before any spare of these tests began to open.
    static SESSION_READY: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

    fn peer_of(listener: &TcpListener) -> PeerAddr {
        std::sync::LazyLock::force(&SESSION_READY);
        PeerAddr::Tcp(listener.local_addr().unwrap())
    }

    /// Waits until a spare to `peer` is ready (or 2 s pass).
    async fn ready(peer: &PeerAddr) -> bool {
        ready_after(peer, *SESSION_READY).await
    }

    /// Waits until a spare to `peer` that began to open after `since` is ready (or 2 s
    /// pass).
    async fn ready_after(peer: &PeerAddr, since: Instant) -> bool {
        for _ in 0..400 {
            if spares()
                .ready
                .iter()
                .any(|s| &s.peer == peer && s.started > since)
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    /// A listener, a spare opened to it, and the server's end of that spare.
    async fn spare_to_a_listener() -> (TcpListener, PeerAddr, std::net::TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = peer_of(&listener);
        refill(&peer, *SESSION_READY);
        assert!(ready(&peer).await);
        let (server, _) = listener.accept().unwrap();
        (listener, peer, server)
    }

    /// Asserts the client closed `server`'s peer without sending a byte.
    fn assert_closed_silently(mut server: std::net::TcpStream, why: &str) {
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        assert_eq!(server.read(&mut [0; 1]).unwrap(), 0, "{why}");
    }

    #[tokio::test]
    async fn a_spare_is_taken_once_and_carries_what_is_written_on_it() {
        use tokio::io::AsyncWriteExt;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = peer_of(&listener);
        assert!(take(&peer, *SESSION_READY).is_none(), "nothing opened yet");
        refill(&peer, *SESSION_READY);
        refill(&peer, *SESSION_READY); // one spare per server
        assert!(ready(&peer).await);
        let (mut server, _) = listener.accept().unwrap();
        listener.set_nonblocking(true).unwrap();
        assert!(listener.accept().is_err(), "a second spare was opened");
        assert!(
            take(&peer, Instant::now()).is_none(),
            "a session newer than the spare cannot be cancelled through it"
        );
        let mut stream = take(&peer, *SESSION_READY).expect("the spare, left for older sessions");
        assert!(take(&peer, *SESSION_READY).is_none(), "taken once");
        stream.write_all(b"cancel").await.unwrap();
        let mut got = [0; 6];
        server.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"cancel");
    }

    #[tokio::test]
    async fn a_spare_to_a_unix_socket_carries_the_request_and_is_refused_once_closed() {
        use tokio::io::AsyncWriteExt;
        let dir = std::env::temp_dir().join(format!("pgkeel-spare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".s.PGSQL.5432");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let peer = PeerAddr::Unix(path.clone());
        std::sync::LazyLock::force(&SESSION_READY);
        refill(&peer, *SESSION_READY);
        assert!(ready(&peer).await);
        let (mut server, _) = listener.accept().unwrap();
        let mut stream = take(&peer, *SESSION_READY).expect("the spare");
        stream.write_all(b"cancel").await.unwrap();
        let mut got = [0; 6];
        server.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"cancel");

        refill(&peer, *SESSION_READY);
        assert!(ready(&peer).await);
        drop(listener.accept().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            take(&peer, *SESSION_READY).is_none(),
            "closed by the server"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_spare_the_server_closed_or_wrote_on_is_not_used() {
        for server_writes in [false, true] {
            let (_listener, peer, mut server) = spare_to_a_listener().await;
            if server_writes {
                server.write_all(b"E").unwrap();
            } else {
                drop(server);
            }
            // Give the byte or the close time to arrive.
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(
                take(&peer, *SESSION_READY).is_none(),
                "writes: {server_writes}"
            );
        }
    }

    #[tokio::test]
    async fn a_spare_older_than_max_age_is_closed_unused() {
        let (_listener, peer, server) = spare_to_a_listener().await;
        tokio::time::sleep(MAX_AGE + Duration::from_millis(100)).await;
        assert_closed_silently(server, "closed in the background");
        assert!(take(&peer, *SESSION_READY).is_none());
    }

    #[tokio::test]
    async fn a_newer_session_s_cancel_replaces_the_spare_with_a_newer_one() {
        let (listener, peer, first) = spare_to_a_listener().await;
        let newer_session = Instant::now();
        refill(&peer, newer_session);
        assert!(ready_after(&peer, newer_session).await);
        let (_second, _) = listener.accept().unwrap();
        assert_closed_silently(
            first,
            "the older spare is closed once the newer one is ready",
        );
        assert!(
            take(&peer, newer_session).is_some(),
            "the newer one serves it"
        );
    }

    #[test]
    fn a_spare_whose_runtime_is_gone_expires_all_the_same() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = peer_of(&listener);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            refill(&peer, *SESSION_READY);
            assert!(ready(&peer).await);
        });
        drop(runtime); // the task that would close it at MAX_AGE is gone
        let (server, _) = listener.accept().unwrap();
        std::thread::sleep(MAX_AGE);
        assert!(take(&peer, *SESSION_READY).is_none(), "expired");
        assert_closed_silently(server, "closed by the take");
    }

    #[tokio::test]
    async fn only_a_cancel_that_follows_another_within_max_age_leaves_a_spare() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let peer = peer_of(&listener);
        after_cancel(&peer, *SESSION_READY);
        tokio::time::sleep(MAX_AGE + Duration::from_millis(50)).await;
        assert!(listener.accept().is_err(), "a lone cancel opens nothing");
        after_cancel(&peer, *SESSION_READY);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(listener.accept().is_err(), "nor one long after the last");
        after_cancel(&peer, *SESSION_READY);
        assert!(ready(&peer).await, "a burst leaves a spare");
    }

    #[tokio::test]
    async fn no_spare_when_the_server_cannot_be_reached() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = peer_of(&listener);
        drop(listener);
        refill(&peer, *SESSION_READY);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(take(&peer, *SESSION_READY).is_none());
        assert!(!spares().opening.contains(&peer), "the open ended");
    }
}
