//! Warm cancel sockets: the next CancelRequest's connection, opened ahead of time.
//!
//! A CancelRequest must be the first packet on a connection of its own, and opening one
//! costs a TCP handshake and, on PostgreSQL, a fork of the postmaster before the request
//! is even read: about 1.5 ms on a server close by, during which the abandoned statement
//! goes on running. Cancels come in bursts (a timeout storm abandons many statements at
//! once), so when a cancel follows others within [`MAX_AGE`], pgkeel keeps as many
//! sockets open for the next ones as there were such others (at most [`PER_SERVER`]),
//! opening them in the background once the cancel is delivered, off the path of the
//! cancels under way, and keeping each for [`MAX_AGE`]. A cancel that finds one only
//! writes its 16 bytes, on the plain socket, before the runtime knows it.
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

use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::PlainSocket;
use crate::transport::{self, PeerAddr, Stream};

/// How long a spare socket is kept for a cancel.
pub(crate) const MAX_AGE: Duration = Duration::from_millis(500);
/// The most spares kept for one server.
const PER_SERVER: usize = 4;
/// The most spares, ready or opening, over every server at once (each one is a waiting
/// process on its server), and the most servers whose recent cancels are remembered.
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

    /// Writes what the socket takes now, without waiting.
    fn write_now(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        use std::io::Write;
        match self {
            PlainSocket::Tcp(s) => s.write(bytes),
            PlainSocket::Unix(s) => s.write(bytes),
        }
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

impl Spare {
    fn young(&self) -> bool {
        self.started.elapsed() < MAX_AGE
    }

    /// Whether it can carry a cancel for the session ready at `session_ready`.
    fn serves(&self, peer: &PeerAddr, session_ready: Instant) -> bool {
        &self.peer == peer && self.started > session_ready && self.young()
    }
}

/// The spares, the spares being opened (one entry each) and each server's recent
/// cancels.
#[derive(Default)]
struct Spares {
    ready: Vec<Spare>,
    opening: Vec<PeerAddr>,
    /// When each server's last cancels began, oldest first: at most `PER_SERVER + 1`.
    recent: Vec<(PeerAddr, VecDeque<Instant>)>,
}

impl Spares {
    /// Takes out every expired spare, to be closed outside the lock: one whose closing
    /// task went with its runtime would otherwise keep its place for good.
    fn take_expired(&mut self) -> Vec<Spare> {
        let mut expired = Vec::new();
        while let Some(at) = self.ready.iter().position(|s| !s.young()) {
            expired.push(self.ready.swap_remove(at));
        }
        expired
    }
}

static SPARES: Mutex<Spares> = Mutex::new(Spares {
    ready: Vec::new(),
    opening: Vec::new(),
    recent: Vec::new(),
});
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn spares() -> std::sync::MutexGuard<'static, Spares> {
    SPARES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends `request` on a spare socket to `peer` and returns that socket, if a spare
/// began to open after the session was ready (at `session_ready`) and is young, open
/// and silent; the oldest such first, so that none expires unused while a younger one
/// is taken. Young spares too old for this session stay for older ones; expired and
/// unusable ones are closed.
///
/// The request is written on the plain socket before it joins the runtime: a socket
/// new to the runtime is not known to be writable until the runtime next polls its
/// events, which a busy worker may not do for a millisecond.
pub(crate) fn send(peer: &PeerAddr, session_ready: Instant, request: &[u8]) -> Option<Stream> {
    loop {
        let (spare, expired) = {
            let mut spares = spares();
            let expired = spares.take_expired();
            let ready = &mut spares.ready;
            let usable = (0..ready.len())
                .filter(|&i| ready[i].serves(peer, session_ready))
                .min_by_key(|&i| ready[i].started);
            (usable.map(|at| ready.swap_remove(at)), expired)
        };
        drop(expired); // closed outside the lock
        let mut spare = spare?;
        // Checked, and closed when unusable, outside the lock. A write that fails or
        // falls short leaves no request the server could act on: it sees a short packet.
        if spare.sock.open_and_silent()
            && spare
                .sock
                .write_now(request)
                .is_ok_and(|n| n == request.len())
            && let Ok(stream) = spare.sock.into_stream()
        {
            return Some(stream);
        }
    }
}

/// Notes a cancel to `peer`, for the session ready at `session_ready`, beginning now.
/// Cancels that follow one another within [`MAX_AGE`] come in a burst: as many spares
/// as there were other cancels in that time (at most [`PER_SERVER`]) are kept ready
/// for the next ones, opening the missing ones now. A lone cancel leaves nothing
/// behind: a spare costs the server a process.
pub(crate) fn on_cancel(peer: &PeerAddr, session_ready: Instant) {
    let now = Instant::now();
    let want = {
        let mut spares = spares();
        let recent = &mut spares.recent;
        let at = match recent.iter().position(|(p, _)| p == peer) {
            Some(at) => at,
            None => {
                if recent.len() >= MAX_SPARES {
                    let newest = |r: &(PeerAddr, VecDeque<Instant>)| r.1.back().copied();
                    let stalest = (0..recent.len()).min_by_key(|&i| newest(&recent[i]));
                    stalest.map(|i| recent.swap_remove(i));
                }
                recent.push((peer.clone(), VecDeque::new()));
                recent.len() - 1
            }
        };
        let times = &mut recent[at].1;
        times.retain(|t| now.duration_since(*t) < MAX_AGE);
        if times.len() > PER_SERVER {
            times.pop_front();
        }
        times.push_back(now);
        times.len() - 1
    };
    refill(peer, session_ready, want);
}

/// Opens spare sockets to `peer` in the background until `want` of them (ready or
/// opening) can serve the session ready at `session_ready`, within [`MAX_SPARES`] over
/// every server. A server keeps at most [`PER_SERVER`]: a new one replaces its oldest.
/// Each is closed unused after [`MAX_AGE`].
fn refill(peer: &PeerAddr, session_ready: Instant, want: usize) {
    let (missing, expired) = {
        let mut spares = spares();
        let expired = spares.take_expired();
        let ready = spares
            .ready
            .iter()
            .filter(|s| s.serves(peer, session_ready));
        let opening = spares.opening.iter().filter(|p| *p == peer);
        let serving = ready.count() + opening.count();
        let room = MAX_SPARES.saturating_sub(spares.ready.len() + spares.opening.len());
        let missing = want.min(PER_SERVER).saturating_sub(serving).min(room);
        spares
            .opening
            .extend(std::iter::repeat_n(peer.clone(), missing));
        (missing, expired)
    };
    drop(expired); // closed outside the lock
    for _ in 0..missing {
        // The entry goes with the task, even one dropped unrun with its runtime.
        tokio::spawn(open_spare(Opening {
            peer: peer.clone(),
            ended: false,
        }));
    }
}

/// A spare being opened, counted in [`Spares::opening`] until it is ready, fails, or
/// its task is dropped.
struct Opening {
    peer: PeerAddr,
    ended: bool,
}

impl Opening {
    /// Removes the entry, once; `spares` is the locked state.
    fn end(&mut self, spares: &mut Spares) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        if let Some(at) = spares.opening.iter().position(|p| p == &self.peer) {
            spares.opening.swap_remove(at);
        }
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        if !self.ended {
            self.end(&mut spares());
        }
    }
}

/// Opens one spare, keeps it ready for [`MAX_AGE`], then closes it unless a cancel took
/// it.
async fn open_spare(mut opening: Opening) {
    let peer = opening.peer.clone();
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
        opening.end(&mut spares);
        let sock = match sock {
            Ok(sock) => sock,
            Err(e) => {
                tracing::debug!(error = %e, "no spare cancel socket");
                return;
            }
        };
        let ready = &mut spares.ready;
        let oldest = || {
            (0..ready.len())
                .filter(|&i| ready[i].peer == peer)
                .min_by_key(|&i| ready[i].started)
        };
        let full = ready.iter().filter(|s| s.peer == peer).count() >= PER_SERVER;
        let replaced = full.then(oldest).flatten().map(|at| ready.swap_remove(at));
        ready.push(Spare {
            peer,
            sock,
            started,
            id,
        });
        replaced
    };
    drop(replaced); // closed outside the lock
    tokio::time::sleep(MAX_AGE).await;
    let stale = {
        let mut spares = spares();
        let at = spares.ready.iter().position(|s| s.id == id);
        at.map(|at| spares.ready.swap_remove(at))
    };
    drop(stale);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    /// A session ready before any spare of these tests began to open.
    static SESSION_READY: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
    const REQUEST: &[u8] = b"cancel";
    /// One test at a time: together they would pass the limit of spares over every
    /// server.
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    fn peer_of(listener: &TcpListener) -> PeerAddr {
        std::sync::LazyLock::force(&SESSION_READY);
        PeerAddr::Tcp(listener.local_addr().unwrap())
    }

    /// Sends [`REQUEST`] on a spare that serves a session ready at [`SESSION_READY`].
    fn send_old(peer: &PeerAddr) -> Option<Stream> {
        send(peer, *SESSION_READY, REQUEST)
    }

    /// Waits until `n` spares to `peer` that began to open after `since` are ready (or
    /// 2 s pass).
    async fn ready_after(peer: &PeerAddr, since: Instant, n: usize) -> bool {
        for _ in 0..400 {
            let count = {
                let spares = spares();
                let ready = spares.ready.iter();
                ready
                    .filter(|s| &s.peer == peer && s.started > since)
                    .count()
            };
            if count >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    /// Waits until a spare to `peer` is ready (or 2 s pass).
    async fn ready(peer: &PeerAddr) -> bool {
        ready_after(peer, *SESSION_READY, 1).await
    }

    /// A listener, a spare opened to it, and the server's end of that spare.
    async fn spare_to_a_listener() -> (TcpListener, PeerAddr, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = peer_of(&listener);
        refill(&peer, *SESSION_READY, 1);
        assert!(ready(&peer).await);
        let (server, _) = listener.accept().unwrap();
        (listener, peer, server)
    }

    /// Asserts the client closed `server`'s peer without sending a byte.
    fn assert_closed_silently(mut server: TcpStream, why: &str) {
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        assert_eq!(server.read(&mut [0; 1]).unwrap(), 0, "{why}");
    }

    /// Asserts `server` received [`REQUEST`].
    fn assert_carried(server: &mut impl Read, why: &str) {
        let mut got = [0; REQUEST.len()];
        server.read_exact(&mut got).expect(why);
        assert_eq!(&got, REQUEST, "{why}");
    }

    /// Asserts nobody else connects to `listener` within 50 ms.
    async fn assert_no_more(listener: &TcpListener, why: &str) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        listener.set_nonblocking(true).unwrap();
        assert!(listener.accept().is_err(), "{why}");
        listener.set_nonblocking(false).unwrap();
    }

    #[tokio::test]
    async fn a_spare_is_taken_once_and_carries_the_request() {
        let _serial = SERIAL.lock().await;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = peer_of(&listener);
        assert!(send_old(&peer).is_none(), "nothing opened yet");
        refill(&peer, *SESSION_READY, 1);
        refill(&peer, *SESSION_READY, 1); // one is on its way
        assert!(ready(&peer).await);
        let (mut server, _) = listener.accept().unwrap();
        assert_no_more(&listener, "a second spare was opened").await;
        assert!(
            send(&peer, Instant::now(), REQUEST).is_none(),
            "a session newer than the spare cannot be cancelled through it"
        );
        let stream = send_old(&peer).expect("the spare, left for older sessions");
        assert!(send_old(&peer).is_none(), "taken once");
        assert_carried(&mut server, "written before the stream is returned");
        drop(stream);
    }

    #[tokio::test]
    async fn a_spare_to_a_unix_socket_carries_the_request_and_is_refused_once_closed() {
        let _serial = SERIAL.lock().await;
        let dir = std::env::temp_dir().join(format!("pgkeel-spare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".s.PGSQL.5432");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let peer = PeerAddr::Unix(path.clone());
        std::sync::LazyLock::force(&SESSION_READY);
        refill(&peer, *SESSION_READY, 1);
        assert!(ready(&peer).await);
        let (mut server, _) = listener.accept().unwrap();
        let stream = send_old(&peer).expect("the spare");
        assert_carried(&mut server, "over the Unix socket");
        drop(stream);

        refill(&peer, *SESSION_READY, 1);
        assert!(ready(&peer).await);
        drop(listener.accept().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(send_old(&peer).is_none(), "closed by the server");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_spare_the_server_closed_or_wrote_on_is_not_used() {
        let _serial = SERIAL.lock().await;
        for server_writes in [false, true] {
            let (_listener, peer, mut server) = spare_to_a_listener().await;
            if server_writes {
                server.write_all(b"E").unwrap();
            } else {
                drop(server);
            }
            // Give the byte or the close time to arrive.
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(send_old(&peer).is_none(), "writes: {server_writes}");
        }
    }

    #[tokio::test]
    async fn a_spare_older_than_max_age_is_closed_unused() {
        let _serial = SERIAL.lock().await;
        let (_listener, peer, server) = spare_to_a_listener().await;
        tokio::time::sleep(MAX_AGE + Duration::from_millis(100)).await;
        assert_closed_silently(server, "closed in the background");
        assert!(send_old(&peer).is_none());
    }

    /// Opens spares to `listener` one after another, up to `n` ready, and returns the
    /// server ends in the order the spares began to open.
    async fn spares_in_order(listener: &TcpListener, peer: &PeerAddr, n: usize) -> Vec<TcpStream> {
        let mut servers = Vec::new();
        for k in 1..=n {
            refill(peer, *SESSION_READY, k);
            assert!(ready_after(peer, *SESSION_READY, k).await, "spare {k}");
            servers.push(listener.accept().unwrap().0);
        }
        servers
    }

    #[tokio::test]
    async fn a_server_keeps_at_most_per_server_spares_the_oldest_taken_first() {
        let _serial = SERIAL.lock().await;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = peer_of(&listener);
        let mut servers = spares_in_order(&listener, &peer, PER_SERVER).await;
        refill(&peer, *SESSION_READY, PER_SERVER + 3);
        assert_no_more(&listener, "no more than PER_SERVER for one server").await;

        // A newer session's cancel wants a spare newer than itself: it replaces the
        // oldest.
        let newer_session = Instant::now();
        refill(&peer, newer_session, 1);
        assert!(ready_after(&peer, newer_session, 1).await);
        let (mut newest, _) = listener.accept().unwrap();
        let oldest = servers.remove(0);
        assert_closed_silently(oldest, "the oldest spare is closed for the new one");
        let stream = send(&peer, newer_session, REQUEST).expect("the newest serves it");
        assert_carried(&mut newest, "the newest spare");
        drop(stream);
        // Older sessions get the oldest spare left.
        let stream = send_old(&peer).expect("an older spare");
        assert_carried(&mut servers[0], "the oldest spare left");
        drop(stream);
    }

    #[test]
    fn a_spare_whose_runtime_is_gone_expires_all_the_same() {
        let _serial = SERIAL.blocking_lock();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = peer_of(&listener);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            refill(&peer, *SESSION_READY, 1);
            assert!(ready(&peer).await);
        });
        drop(runtime); // the task that would close it at MAX_AGE is gone
        let (server, _) = listener.accept().unwrap();
        std::thread::sleep(MAX_AGE);
        assert!(send_old(&peer).is_none(), "expired");
        assert_closed_silently(server, "closed by the send");
    }

    /// A current-thread runtime.
    fn new_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn an_open_dropped_with_its_runtime_leaves_no_entry_behind() {
        let _serial = SERIAL.blocking_lock();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = peer_of(&listener);
        let runtime = new_runtime();
        runtime.block_on(async { refill(&peer, *SESSION_READY, 2) });
        drop(runtime); // the opening tasks go with it, unrun
        assert!(!spares().opening.contains(&peer), "no longer being opened");
    }

    #[test]
    fn spares_left_by_dead_runtimes_do_not_hold_the_room_once_expired() {
        let _serial = SERIAL.blocking_lock();
        // Whatever earlier tests left has expired (and the first refill drops it).
        std::thread::sleep(MAX_AGE);
        let listeners: Vec<_> = (0..MAX_SPARES / PER_SERVER)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let runtime = new_runtime();
        runtime.block_on(async {
            for listener in &listeners {
                let peer = peer_of(listener);
                refill(&peer, *SESSION_READY, PER_SERVER);
                assert!(ready_after(&peer, *SESSION_READY, PER_SERVER).await);
            }
        });
        drop(runtime); // nothing closes them at MAX_AGE now
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = peer_of(&other);
        new_runtime().block_on(async { refill(&peer, *SESSION_READY, 1) });
        assert!(
            !spares().opening.contains(&peer),
            "no room while they are young"
        );
        std::thread::sleep(MAX_AGE);
        new_runtime().block_on(async {
            refill(&peer, *SESSION_READY, 1);
            assert!(ready(&peer).await, "the expired spares made room");
        });
    }

    #[tokio::test]
    async fn only_a_cancel_that_follows_another_within_max_age_leaves_a_spare() {
        let _serial = SERIAL.lock().await;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = peer_of(&listener);
        on_cancel(&peer, *SESSION_READY);
        tokio::time::sleep(MAX_AGE + Duration::from_millis(50)).await;
        assert_no_more(&listener, "a lone cancel opens nothing").await;
        on_cancel(&peer, *SESSION_READY);
        assert_no_more(&listener, "nor one long after the last").await;
        on_cancel(&peer, *SESSION_READY);
        assert!(ready(&peer).await, "a burst leaves a spare");
    }

    #[tokio::test]
    async fn the_spares_kept_follow_the_size_of_the_burst() {
        let _serial = SERIAL.lock().await;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = peer_of(&listener);
        for _ in 0..3 {
            on_cancel(&peer, *SESSION_READY);
        }
        assert!(ready_after(&peer, *SESSION_READY, 2).await);
        let _first: Vec<_> = (0..2).map(|_| listener.accept().unwrap()).collect();
        assert_no_more(&listener, "three cancels keep two spares").await;
        for _ in 0..PER_SERVER + 2 {
            on_cancel(&peer, *SESSION_READY);
        }
        assert!(ready_after(&peer, *SESSION_READY, PER_SERVER).await);
        let _rest: Vec<_> = (2..PER_SERVER)
            .map(|_| listener.accept().unwrap())
            .collect();
        assert_no_more(&listener, "a longer burst keeps PER_SERVER").await;
    }

    #[tokio::test]
    async fn no_spare_when_the_server_cannot_be_reached() {
        let _serial = SERIAL.lock().await;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = peer_of(&listener);
        drop(listener);
        refill(&peer, *SESSION_READY, 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(send_old(&peer).is_none());
        assert!(!spares().opening.contains(&peer), "the open ended");
    }
}
