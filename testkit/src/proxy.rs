//! A fault-injecting TCP proxy: put it between the driver and the server and make the
//! network slow, sliced, capped, silent, reset or corrupt, on command.
//!
//! Each accepted connection opens its own connection to the target and copies bytes both
//! ways; the faults are read from shared settings before every chunk, so a test can
//! change them while connections are open (a blackhole that starts mid-query). Byte
//! offsets (for resets, corruption and injection) count from the first byte of each
//! connection in that direction, so "RST after the 37th byte the server sends" means the
//! same thing on every connection.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Which way bytes travel through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client (the driver) to the server.
    ToServer,
    /// From the server to the client.
    ToClient,
}

/// The faults in force; every field applies to both directions unless it names one.
#[derive(Debug, Clone, Default)]
struct Faults {
    latency: Duration,
    jitter: Duration,
    slice: Option<usize>,
    bytes_per_sec: Option<u64>,
    blackhole: bool,
    reset_after: [Option<u64>; 2],
    corrupt: [Vec<(u64, u8)>; 2],
    inject: [Vec<(u64, Vec<u8>)>; 2],
}

/// What the proxy has seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProxyStats {
    /// Connections accepted from clients.
    pub connections: u64,
    /// Connections open now.
    pub active: u64,
    /// Bytes forwarded to the server.
    pub bytes_to_server: u64,
    /// Bytes forwarded to the client.
    pub bytes_to_client: u64,
    /// Connections ended with a reset by a fault.
    pub resets: u64,
    /// When the latest reset was sent (both sockets closed with RST), for measuring
    /// how long the client took to notice.
    pub last_reset: Option<Instant>,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    active: AtomicU64,
    bytes: [AtomicU64; 2],
    resets: AtomicU64,
    last_reset: Mutex<Option<Instant>>,
}

struct Shared {
    target: SocketAddr,
    faults: Mutex<Faults>,
    /// Bumped on every change of the faults, so a blackholed copier wakes up.
    changed: watch::Sender<u64>,
    /// Bumped by [`FaultProxy::reset_all`]: every open connection is reset.
    severed: watch::Sender<u64>,
    counters: Counters,
}

/// A TCP proxy on 127.0.0.1 in front of `target`, with faults set at run time. The
/// listener and every connection stop when it is dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a pass-through proxy to `target`. Needs a Tokio runtime.
    ///
    /// # Errors
    /// When no local port can be bound.
    pub async fn start(target: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target,
            faults: Mutex::new(Faults::default()),
            changed: watch::channel(0).0,
            severed: watch::channel(0).0,
            counters: Counters::default(),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(FaultProxy {
            addr,
            shared,
            accept,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Delays every chunk by `latency` plus a random part of `jitter`.
    pub fn set_latency(&self, latency: Duration, jitter: Duration) {
        self.update(|f| {
            f.latency = latency;
            f.jitter = jitter;
        });
    }

    /// Forwards at most `n` bytes per write (`Some(1)`: one byte at a time).
    pub fn set_slice(&self, n: Option<usize>) {
        self.update(|f| f.slice = n.map(|n| n.max(1)));
    }

    /// Caps each direction of each connection at `bytes_per_sec`.
    pub fn set_bandwidth(&self, bytes_per_sec: Option<u64>) {
        self.update(|f| f.bytes_per_sec = bytes_per_sec.map(|b| b.max(1)));
    }

    /// Stops forwarding anything, both ways, while keeping every socket open (a peer
    /// that vanished without a FIN or RST); `false` lets the held bytes through.
    pub fn set_blackhole(&self, on: bool) {
        self.update(|f| f.blackhole = on);
    }

    /// Resets both sockets of a connection once `n` bytes have gone `dir` on it (the
    /// first `n` bytes are forwarded). Applies to connections open now and later.
    pub fn set_reset_after(&self, dir: Direction, n: Option<u64>) {
        self.update(|f| f.reset_after[dir as usize] = n);
    }

    /// XORs the byte at `offset` of every connection's `dir` stream with `mask`.
    pub fn corrupt(&self, dir: Direction, offset: u64, mask: u8) {
        self.update(|f| f.corrupt[dir as usize].push((offset, mask)));
    }

    /// Inserts `bytes` before the byte at `offset` of every connection's `dir` stream.
    pub fn inject(&self, dir: Direction, offset: u64, bytes: &[u8]) {
        self.update(|f| f.inject[dir as usize].push((offset, bytes.to_vec())));
    }

    /// Back to a plain pass-through (open connections included).
    pub fn clear(&self) {
        self.update(|f| *f = Faults::default());
    }

    /// Resets every connection open now (RST to both peers).
    pub fn reset_all(&self) {
        self.shared.severed.send_modify(|n| *n += 1);
    }

    /// What the proxy has seen so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            connections: c.connections.load(Ordering::Relaxed),
            active: c.active.load(Ordering::Relaxed),
            bytes_to_server: c.bytes[0].load(Ordering::Relaxed),
            bytes_to_client: c.bytes[1].load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
            last_reset: *c.last_reset.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    fn update(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.shared.faults.lock().unwrap_or_else(|e| e.into_inner()));
        self.shared.changed.send_modify(|n| *n += 1);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.reset_all();
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("target", &self.shared.target)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A bound port whose connections the kernel completes but nobody ever reads or
/// answers: a server that hangs during startup. Connects succeed until the backlog
/// fills; nothing else ever happens.
#[derive(Debug)]
pub struct SilentListener {
    listener: std::net::TcpListener,
}

impl SilentListener {
    /// Binds a free port on 127.0.0.1 and never accepts.
    ///
    /// # Errors
    /// When no local port can be bound.
    pub fn bind() -> io::Result<SilentListener> {
        Ok(SilentListener {
            listener: std::net::TcpListener::bind("127.0.0.1:0")?,
        })
    }

    /// The port that never answers.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        shared.counters.connections.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.counters.active.fetch_add(1, Ordering::Relaxed);
            if let Ok(server) = TcpStream::connect(shared.target).await {
                relay(client, server, &shared).await;
            }
            shared.counters.active.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Copies both ways until both sides end, a reset fault fires, or the proxy severs
/// every connection; on a reset both sockets are closed with RST.
async fn relay(client: TcpStream, server: TcpStream, shared: &Arc<Shared>) {
    let reset = forward(client, server, shared).await;
    // The halves are gone, and with them every descriptor but the duplicates'.
    if let Some(dups) = reset {
        drop(dups);
        *shared
            .counters
            .last_reset
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        shared.counters.resets.fetch_add(1, Ordering::Relaxed);
    }
}

/// The two sockets' duplicates, set to close with RST.
type Dups = [io::Result<socket2::Socket>; 2];

/// Copies both ways until both sides end (None) or a reset is due (the duplicates,
/// with a zero linger: dropping them sends the RSTs).
async fn forward(client: TcpStream, server: TcpStream, shared: &Arc<Shared>) -> Option<Dups> {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // Duplicates of the two sockets, kept to the end: a zero linger set through them
    // turns the final close (when the halves below are dropped too) into an RST.
    let dups = [
        socket2::SockRef::from(&client).try_clone(),
        socket2::SockRef::from(&server).try_clone(),
    ];
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let mut severed = shared.severed.subscribe();
    severed.mark_unchanged();
    let up = copy(cr, sw, Direction::ToServer, shared);
    let down = copy(sr, cw, Direction::ToClient, shared);
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    let reset = loop {
        tokio::select! {
            r = &mut up, if !up_done => match r {
                End::Reset => break true,
                End::Closed => up_done = true,
            },
            r = &mut down, if !down_done => match r {
                End::Reset => break true,
                End::Closed => down_done = true,
            },
            _ = severed.changed() => break true,
        }
        if up_done && down_done {
            break false;
        }
    };
    if !reset {
        return None;
    }
    for dup in dups.iter().flatten() {
        let _ = dup.set_linger(Some(Duration::ZERO));
    }
    Some(dups)
}

/// How one direction's copy ended.
enum End {
    Closed,
    Reset,
}

async fn copy(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    dir: Direction,
    shared: &Arc<Shared>,
) -> End {
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    let mut changed = shared.changed.subscribe();
    loop {
        wait_while_blackholed(shared, &mut changed).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return End::Closed;
            }
            Ok(n) => n,
        };
        let faults = shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (chunk, reset) = shape(&buf[..n], offset, dir, &faults);
        offset += n as u64;
        wait_while_blackholed(shared, &mut changed).await;
        if send(&mut to, &chunk, &faults, dir, shared).await.is_err() {
            return End::Closed;
        }
        if reset {
            return End::Reset;
        }
    }
}

/// Applies corruption, injection and the reset point to one chunk read at `offset`;
/// returns the bytes to send and whether to reset after them.
fn shape(data: &[u8], offset: u64, dir: Direction, f: &Faults) -> (Vec<u8>, bool) {
    let d = dir as usize;
    let end = offset + data.len() as u64;
    let (data, reset) = match f.reset_after[d] {
        Some(limit) if end >= limit => (&data[..limit.saturating_sub(offset) as usize], true),
        _ => (data, false),
    };
    let mut out = Vec::with_capacity(data.len());
    for (i, &b) in data.iter().enumerate() {
        let at = offset + i as u64;
        for (_, bytes) in f.inject[d].iter().filter(|(o, _)| *o == at) {
            out.extend_from_slice(bytes);
        }
        let mask = f.corrupt[d]
            .iter()
            .filter(|(o, _)| *o == at)
            .fold(0u8, |m, (_, x)| m ^ x);
        out.push(b ^ mask);
    }
    (out, reset)
}

/// Writes a chunk with the latency, slicing and bandwidth faults.
async fn send(
    to: &mut OwnedWriteHalf,
    chunk: &[u8],
    f: &Faults,
    dir: Direction,
    shared: &Shared,
) -> io::Result<()> {
    if !f.latency.is_zero() || !f.jitter.is_zero() {
        tokio::time::sleep(f.latency + f.jitter.mul_f64(fraction())).await;
    }
    let step = f.slice.unwrap_or(chunk.len().max(1));
    for piece in chunk.chunks(step) {
        to.write_all(piece).await?;
        to.flush().await?;
        shared.counters.bytes[dir as usize].fetch_add(piece.len() as u64, Ordering::Relaxed);
        if let Some(bps) = f.bytes_per_sec {
            let secs = piece.len() as f64 / bps as f64;
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        } else if f.slice.is_some() {
            tokio::task::yield_now().await;
        }
    }
    Ok(())
}

async fn wait_while_blackholed(shared: &Shared, changed: &mut watch::Receiver<u64>) {
    while shared
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .blackhole
    {
        if changed.changed().await.is_err() {
            // The proxy is gone: stay silent until this task is dropped.
            std::future::pending::<()>().await;
        }
    }
}

/// A number in [0, 1) for jitter; not for anything secret.
fn fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_corrupts_injects_and_cuts_at_absolute_offsets() {
        let mut f = Faults::default();
        f.corrupt[1].push((5, 0xFF));
        f.inject[1].push((4, b"xy".to_vec()));
        f.reset_after[1] = Some(7);
        let (out, reset) = shape(b"abc", 3, Direction::ToClient, &f);
        assert_eq!(out, b"axyb\x9C".to_vec());
        assert!(!reset);
        let (out, reset) = shape(b"defg", 6, Direction::ToClient, &f);
        assert_eq!(out, b"d".to_vec());
        assert!(reset);
        let (out, reset) = shape(b"abc", 0, Direction::ToServer, &f);
        assert_eq!((out, reset), (b"abc".to_vec(), false));
    }
}
