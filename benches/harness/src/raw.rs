//! The server's floor: a raw-protocol client that does nothing with the answers.
//!
//! It speaks just enough of the protocol over a std `TcpStream` (startup with trust
//! authentication, then Parse/Bind/Execute/Sync), reads in 1 MiB non-blocking reads in
//! a spin (it never sleeps, so the server never pays for waking it) and looks at
//! message headers only. What it reaches is what this server, on this machine, does for
//! the workload's SQL when the client costs nothing. A driver's rate can beat a peer's by
//! at most this floor ÷ the peer's rate, unless the driver makes the server's own work
//! cheaper than a client that costs nothing does.

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::ops::Range;
use std::time::{Duration, Instant};

use crate::measure::{Rng, busy_pct, process_cpu_secs};

/// What one raw run measured.
pub struct Floor {
    /// Rows (streamed) or statements (point select) per second.
    pub rate: f64,
    /// The server backend's CPU time, as a share of the run.
    pub busy: f64,
    /// The server backend's CPU µs per row or per statement.
    pub server_us: f64,
}

/// One connection, with its read buffer and the server backend's pid.
struct Raw {
    stream: TcpStream,
    pid: i32,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Sleep this long after every read instead of spinning (see [`stream`]).
    nap: Option<Duration>,
}

const BUF: usize = 1 << 20;

fn message(out: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Vec<u8>)) {
    out.push(tag);
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let len = (out.len() - at) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// Parse `name` for `sql` with `param_oids`.
fn parse(out: &mut Vec<u8>, name: &str, sql: &str, param_oids: &[u32]) {
    message(out, b'P', |b| {
        cstr(b, name);
        cstr(b, sql);
        b.extend_from_slice(&(param_oids.len() as u16).to_be_bytes());
        for oid in param_oids {
            b.extend_from_slice(&oid.to_be_bytes());
        }
    });
}

/// Bind the unnamed portal to `stmt` with binary parameters and binary results, Execute
/// it, Sync.
fn bind_execute_sync(out: &mut Vec<u8>, stmt: &str, params: &[&[u8]]) {
    message(out, b'B', |b| {
        cstr(b, "");
        cstr(b, stmt);
        b.extend_from_slice(&1u16.to_be_bytes());
        b.extend_from_slice(&1u16.to_be_bytes());
        b.extend_from_slice(&(params.len() as u16).to_be_bytes());
        for p in params {
            b.extend_from_slice(&(p.len() as u32).to_be_bytes());
            b.extend_from_slice(p);
        }
        b.extend_from_slice(&1u16.to_be_bytes());
        b.extend_from_slice(&1u16.to_be_bytes());
    });
    message(out, b'E', |b| {
        cstr(b, "");
        b.extend_from_slice(&0u32.to_be_bytes());
    });
    message(out, b'S', |_| {});
}

impl Raw {
    fn connect(port: u16, user: &str, db: &str) -> io::Result<Raw> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        let mut body = 196_608u32.to_be_bytes().to_vec();
        for s in ["user", user, "database", db] {
            cstr(&mut body, s);
        }
        body.push(0);
        stream.write_all(&(body.len() as u32 + 4).to_be_bytes())?;
        stream.write_all(&body)?;
        stream.set_nonblocking(true)?;
        let mut raw = Raw {
            stream,
            pid: 0,
            buf: vec![0; BUF],
            start: 0,
            end: 0,
            nap: None,
        };
        loop {
            let (tag, body) = raw.next()?;
            let body = &raw.buf[body];
            match tag {
                b'R' if body.get(..4) != Some(&[0, 0, 0, 0][..]) => {
                    return Err(io::Error::other(
                        "the raw client only knows trust authentication",
                    ));
                }
                b'K' => {
                    let pid = body.get(..4).and_then(|b| b.try_into().ok());
                    raw.pid = i32::from_be_bytes(
                        pid.ok_or_else(|| io::Error::other("short BackendKeyData"))?,
                    );
                }
                b'Z' => return Ok(raw),
                _ => {}
            }
        }
    }

    /// One read into the buffer without waiting; false when nothing was there.
    fn read_once(&mut self) -> io::Result<bool> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        match self.stream.read(&mut self.buf[self.end..]) {
            Ok(0) => Err(io::Error::new(ErrorKind::UnexpectedEof, "server closed")),
            Ok(n) => {
                self.end += n;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Fills the buffer from the socket, spinning (or napping) while nothing is there.
    fn fill(&mut self) -> io::Result<()> {
        loop {
            let got = self.read_once()?;
            if let Some(nap) = self.nap {
                std::thread::sleep(nap);
            }
            if got {
                return Ok(());
            }
            std::hint::spin_loop();
        }
    }

    /// The next message if it is already in the buffer: its tag and where its body is.
    fn buffered(&mut self) -> io::Result<Option<(u8, Range<usize>)>> {
        let have = &self.buf[self.start..self.end];
        if have.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes(have[1..5].try_into().expect("4 bytes")) as usize;
        if len < 4 || len + 1 > BUF {
            return Err(io::Error::other(format!("message length {len}")));
        }
        if have.len() < len + 1 {
            return Ok(None);
        }
        let (tag, body) = (have[0], self.start + 5..self.start + 1 + len);
        self.start += len + 1;
        if tag == b'E' {
            return Err(io::Error::other(format!(
                "server error: {}",
                String::from_utf8_lossy(&self.buf[body])
            )));
        }
        Ok(Some((tag, body)))
    }

    /// The next message, reading as needed: its tag and where its body is.
    fn next(&mut self) -> io::Result<(u8, Range<usize>)> {
        loop {
            if let Some(m) = self.buffered()? {
                return Ok(m);
            }
            self.fill()?;
        }
    }

    /// Writes all of `out`, spinning while the socket is full.
    fn send_all(&mut self, out: &[u8]) -> io::Result<()> {
        let mut written = 0;
        while written < out.len() {
            self.write_some(out, &mut written)?;
        }
        Ok(())
    }

    /// Reads messages up to and including the next ReadyForQuery; the DataRows seen.
    fn until_ready(&mut self) -> io::Result<u64> {
        let mut rows = 0;
        loop {
            match self.next()?.0 {
                b'D' => rows += 1,
                b'Z' => return Ok(rows),
                _ => {}
            }
        }
    }

    /// Writes what it can of `out[*written..]` without waiting.
    fn write_some(&mut self, out: &[u8], written: &mut usize) -> io::Result<()> {
        while *written < out.len() {
            match self.stream.write(&out[*written..]) {
                Ok(n) => *written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Streams `sql` (no parameters, every column binary) on a fresh connection and
/// discards the rows, which must number `rows`; twice, and the faster run counts. Once
/// reading the moment data arrives, and once sleeping [`NAP`] after every read so that
/// data piles up and each read takes more. The second costs the server less per row on
/// this machine: a reader that lets its receive window shrink sends fewer ACKs, and on
/// loopback the server's own send path pays for the ACKs sent as data arrives.
pub fn stream(port: u16, user: &str, db: &str, sql: &str, rows: i64) -> io::Result<Floor> {
    let spin = stream_once(port, user, db, sql, rows, None)?;
    let nap = stream_once(port, user, db, sql, rows, Some(NAP))?;
    eprintln!(
        "raw stream: {:.0} rows/s reading at once, {:.0} rows/s napping",
        spin.rate, nap.rate
    );
    Ok(if nap.rate > spin.rate { nap } else { spin })
}

/// How long the napping reader of [`stream`] sleeps after each read.
const NAP: Duration = Duration::from_micros(500);

fn stream_once(
    port: u16,
    user: &str,
    db: &str,
    sql: &str,
    rows: i64,
    nap: Option<Duration>,
) -> io::Result<Floor> {
    let mut raw = Raw::connect(port, user, db)?;
    raw.nap = nap;
    let mut req = Vec::new();
    parse(&mut req, "", sql, &[]);
    bind_execute_sync(&mut req, "", &[]);
    let (cpu, t) = (process_cpu_secs(raw.pid), Instant::now());
    raw.send_all(&req)?;
    let got = raw.until_ready()?;
    let (secs, cpu) = (t.elapsed().as_secs_f64(), process_cpu_secs(raw.pid) - cpu);
    if got != rows as u64 {
        return Err(io::Error::other(format!("{got} rows, not {rows}")));
    }
    Ok(Floor {
        rate: got as f64 / secs,
        busy: busy_pct(cpu, secs),
        server_us: cpu / got as f64 * 1e6,
    })
}

/// Statements written ahead of their answers in the point-select floor: enough that the
/// server always finds the next one waiting.
const IN_FLIGHT: usize = 4096;

/// Runs `sql` (one int8 parameter; the first column must echo it) by Bind/Execute/Sync
/// for random ids in 1..=`ids` on one connection, keeping [`IN_FLIGHT`] statements
/// written ahead, and checks every answer's id: statements/s over `measure` after
/// `warmup`.
pub fn point(
    (port, user, db): (u16, &str, &str),
    sql: &str,
    ids: i64,
    warmup: Duration,
    measure: Duration,
) -> io::Result<Floor> {
    let mut raw = Raw::connect(port, user, db)?;
    let mut req = Vec::new();
    parse(&mut req, "s", sql, &[20]);
    message(&mut req, b'S', |_| {});
    raw.send_all(&req)?;
    raw.until_ready()?;
    let mut rng = Rng::new(1);
    let (mut out, mut written) = (Vec::<u8>::with_capacity(1 << 17), 0);
    let mut owed = std::collections::VecDeque::with_capacity(IN_FLIGHT);
    let (mut answered, started) = (0u64, Instant::now());
    let mut window: Option<(Instant, f64, u64)> = None;
    loop {
        if written == out.len() {
            out.clear();
            written = 0;
        }
        while owed.len() < IN_FLIGHT && out.len() - written < 1 << 16 {
            let id = rng.id(ids);
            bind_execute_sync(&mut out, "s", &[&id.to_be_bytes()]);
            owed.push_back(id);
        }
        raw.write_some(&out, &mut written)?;
        raw.read_once()?;
        while let Some((tag, body)) = raw.buffered()? {
            match tag {
                b'D' => {
                    let id = raw.buf.get(body.start + 6..body.start + 14);
                    let want = owed.front().map(|id| id.to_be_bytes());
                    if id.is_none() || id != want.as_ref().map(|w| &w[..]) {
                        return Err(io::Error::other("an answer with another id"));
                    }
                }
                b'Z' => {
                    owed.pop_front();
                    answered += 1;
                }
                _ => {}
            }
        }
        match window {
            None if started.elapsed() >= warmup => {
                window = Some((Instant::now(), process_cpu_secs(raw.pid), answered));
            }
            Some((t, cpu, at)) if t.elapsed() >= measure => {
                let (secs, cpu) = (t.elapsed().as_secs_f64(), process_cpu_secs(raw.pid) - cpu);
                let n = (answered - at) as f64;
                return Ok(Floor {
                    rate: n / secs,
                    busy: busy_pct(cpu, secs),
                    server_us: cpu / n * 1e6,
                });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_execute_sync_is_three_framed_messages() {
        let mut out = Vec::new();
        bind_execute_sync(&mut out, "s", &[&7i64.to_be_bytes()]);
        let bind: &[u8] = &[
            b'B', 0, 0, 0, 29, // tag, length
            0, b's', 0, // portal "", statement "s"
            0, 1, 0, 1, // one parameter format: binary
            0, 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7, // one parameter: 8 bytes
            0, 1, 0, 1, // one result format: binary
        ];
        let execute: &[u8] = &[b'E', 0, 0, 0, 9, 0, 0, 0, 0, 0];
        let sync: &[u8] = &[b'S', 0, 0, 0, 4];
        assert_eq!(out, [bind, execute, sync].concat());
    }

    #[test]
    fn parse_lists_parameter_types() {
        let mut out = Vec::new();
        parse(&mut out, "s", "SELECT $1", &[20]);
        let mut want = vec![b'P', 0, 0, 0, 22, b's', 0];
        want.extend_from_slice(b"SELECT $1\0");
        want.extend_from_slice(&[0, 1, 0, 0, 0, 20]);
        assert_eq!(out, want);
    }
}
