//! A web service on pgkeel under load, with timeouts everywhere, and the invariants
//! checked against the server afterwards.
//!
//! ```text
//! cargo run --release --example web_service            # 20 s of load
//! cargo run --release --example web_service -- 60      # 60 s
//! ```
//!
//! The service (axum) moves money between accounts: each `POST /transfer` runs a
//! pooled transaction inside `tokio::time::timeout`, and `GET /total` reads the sum of
//! all balances. A load generator in the same process opens 64 keep-alive HTTP clients
//! that send transfers with random client-side timeouts (a client that gives up drops
//! its socket, and axum drops the handler's future with it: the transaction is
//! abandoned mid-flight, exactly what pgkeel must survive). It prints a progress line
//! every second, then throughput, p50/p99 latency and timeouts, and checks:
//!
//! - no wrong answers: the total of all balances never changes;
//! - no leftover transactions: no session of the pool is idle in a transaction;
//! - never more backends than the pool's size (sampled every 50 ms while it runs).
//!
//! With `DATABASE_URL` set it uses that server; without it, a throwaway cluster.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use pgkeel::Pool;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const ACCOUNTS: i64 = 100;
const POOL_SIZE: usize = 10;
const CLIENTS: usize = 64;
const APP: &str = "pgkeel_web_service";

#[derive(serde::Deserialize)]
struct Transfer {
    from: i64,
    to: i64,
    amount: i64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let (base_url, _cluster) = pgkeel_testkit::database_url_or_throwaway()?;
    let url = format!(
        "{base_url}{}application_name={APP}",
        if base_url.contains('?') { "&" } else { "?" }
    );
    let pool = Pool::builder(url.as_str())
        .max_size(POOL_SIZE)
        .acquire_timeout(Duration::from_secs(2))
        // Client timeouts abandon transactions mid-flight all the time here. Recover reads
        // an abandoned exchange to its end and keeps the connection (with Evict, each one
        // costs a new backend: about 30 times fewer transfers per second in this run).
        // Not behind a transaction-mode pooler such as PgBouncer.
        .abandon_policy(pgkeel::pool::AbandonPolicy::Recover)
        .build()?;
    setup(&pool).await?;

    let app = Router::new()
        .route("/transfer", post(transfer))
        .route("/total", get(total))
        .with_state(pool.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("service on http://{addr}; {CLIENTS} clients for {secs} s, pool of {POOL_SIZE}");

    let stats = Arc::new(Stats::default());
    let stop = Instant::now() + Duration::from_secs(secs);
    let max_backends = tokio::spawn(sample_backends(base_url.clone(), stop));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(client(addr, i as u64, stats.clone(), stop)))
        .collect();
    let started = Instant::now();
    while Instant::now() < stop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        stats.progress(started);
    }
    for c in clients {
        c.await?;
    }
    let max_backends = max_backends.await?;
    println!();
    stats.summary(started);
    check(&pool, addr, max_backends).await
}

/// The accounts table, every account at 1,000.
async fn setup(pool: &Pool) -> Result<(), pgkeel::Error> {
    let conn = pool.get().await?;
    conn.batch_execute(
        "DROP TABLE IF EXISTS web_accounts;
         CREATE TABLE web_accounts (id int8 PRIMARY KEY, balance int8 NOT NULL)",
    )
    .await?;
    conn.execute(
        "INSERT INTO web_accounts SELECT g, 1000 FROM generate_series(1, $1) g",
        &[&ACCOUNTS],
    )
    .await?;
    Ok(())
}

/// `POST /transfer?from=&to=&amount=`: one pooled transaction, bounded by a timeout.
async fn transfer(State(pool): State<Pool>, Query(t): Query<Transfer>) -> (StatusCode, String) {
    let work = async {
        let tx = pool.begin().await?;
        // Lock in id order, so two opposite transfers cannot deadlock.
        let (a, b) = (t.from.min(t.to), t.from.max(t.to));
        tx.execute(
            "SELECT 1 FROM web_accounts WHERE id IN ($1, $2) ORDER BY id FOR UPDATE",
            &[&a, &b],
        )
        .await?;
        tx.execute(
            "UPDATE web_accounts SET balance = balance - $2 WHERE id = $1",
            &[&t.from, &t.amount],
        )
        .await?;
        tx.execute(
            "UPDATE web_accounts SET balance = balance + $2 WHERE id = $1",
            &[&t.to, &t.amount],
        )
        .await?;
        tx.commit().await
    };
    match tokio::time::timeout(Duration::from_millis(250), work).await {
        Ok(Ok(())) => (StatusCode::OK, "ok".into()),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout".into()),
    }
}

/// `GET /total`: the sum of all balances.
async fn total(State(pool): State<Pool>) -> (StatusCode, String) {
    let sum = pool
        .query_one("SELECT sum(balance)::int8 FROM web_accounts", &[])
        .await;
    match sum {
        Ok(row) => (StatusCode::OK, row.get::<_, i64>(0).to_string()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Default)]
struct Stats {
    ok: AtomicU64,
    server_errors: AtomicU64,
    client_timeouts: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

impl Stats {
    fn progress(&self, started: Instant) {
        let ok = self.ok.load(Ordering::Relaxed);
        print!(
            "\r{:>4.0} s: {ok} ok ({:.0}/s), {} server errors or timeouts, {} client timeouts   ",
            started.elapsed().as_secs_f64(),
            ok as f64 / started.elapsed().as_secs_f64(),
            self.server_errors.load(Ordering::Relaxed),
            self.client_timeouts.load(Ordering::Relaxed),
        );
        let _ = std::io::Write::flush(&mut std::io::stdout());
    }

    fn summary(&self, started: Instant) {
        let mut l = self.latencies_us.lock().unwrap().clone();
        l.sort_unstable();
        let pct = |p: f64| l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)));
        let ok = self.ok.load(Ordering::Relaxed);
        println!(
            "{ok} transfers in {:.1} s ({:.0}/s); latency p50 {} µs, p99 {} µs; {} server-side errors or timeouts; {} client timeouts",
            started.elapsed().as_secs_f64(),
            ok as f64 / started.elapsed().as_secs_f64(),
            pct(0.5).copied().unwrap_or(0),
            pct(0.99).copied().unwrap_or(0),
            self.server_errors.load(Ordering::Relaxed),
            self.client_timeouts.load(Ordering::Relaxed),
        );
    }
}

/// One keep-alive HTTP client sending transfers until `stop`; a random one in ten
/// requests gets a client-side timeout of 1–20 ms, and a client that times out drops
/// its connection and opens a new one.
async fn client(addr: SocketAddr, seed: u64, stats: Arc<Stats>, stop: Instant) {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut conn: Option<BufReader<TcpStream>> = None;
    while Instant::now() < stop {
        let r = next(&mut rng);
        let from = (r % ACCOUNTS as u64) as i64 + 1;
        let to = ((r >> 16) % ACCOUNTS as u64) as i64 + 1;
        if from == to {
            continue;
        }
        let path = format!(
            "/transfer?from={from}&to={to}&amount={}",
            (r >> 32) % 10 + 1
        );
        let limit = match (r >> 40) % 10 {
            0 => Duration::from_millis((r >> 44) % 20 + 1),
            _ => Duration::from_secs(5),
        };
        let stream = match conn.take() {
            Some(s) => s,
            None => match TcpStream::connect(addr).await {
                Ok(s) => BufReader::new(s),
                Err(_) => continue,
            },
        };
        let started = Instant::now();
        match tokio::time::timeout(limit, request(stream, "POST", &path)).await {
            Ok(Ok((status, _, stream))) => {
                let took = started.elapsed().as_micros() as u64;
                if status == 200 {
                    stats.ok.fetch_add(1, Ordering::Relaxed);
                    stats.latencies_us.lock().unwrap().push(took);
                } else {
                    stats.server_errors.fetch_add(1, Ordering::Relaxed);
                }
                conn = Some(stream);
            }
            Ok(Err(_)) => {}
            Err(_) => {
                stats.client_timeouts.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// One HTTP/1.1 request on a keep-alive connection: status, body, and the connection.
async fn request(
    mut stream: BufReader<TcpStream>,
    method: &str,
    path: &str,
) -> std::io::Result<(u16, String, BufReader<TcpStream>)> {
    let req = format!("{method} {path} HTTP/1.1\r\nHost: service\r\nContent-Length: 0\r\n\r\n");
    stream.get_mut().write_all(req.as_bytes()).await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut length = 0;
    loop {
        line.clear();
        stream.read_line(&mut line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned(), stream))
}

/// The most backends of this application seen at once, sampled until `stop`.
async fn sample_backends(url: String, stop: Instant) -> i64 {
    // A connection of its own, outside the pool, so sampling never waits for a slot.
    let watcher = match pgkeel::Connection::connect(url.as_str()).await {
        Ok(c) => c,
        Err(_) => return -1,
    };
    let mut max = 0;
    while Instant::now() < stop {
        if let Ok(row) = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&APP],
            )
            .await
        {
            max = max.max(row.get::<_, i64>(0));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    max
}

/// The invariants, checked against the server once the load has stopped.
async fn check(
    pool: &Pool,
    addr: SocketAddr,
    max_backends: i64,
) -> Result<(), Box<dyn std::error::Error>> {
    // Abandoned transactions are rolled back in the background; give them their deadline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stream = BufReader::new(TcpStream::connect(addr).await?);
    let (_, total, _) = request(stream, "GET", "/total").await?;
    let leftover: i64 = pool
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 \
             AND state LIKE 'idle in transaction%'",
            &[&APP],
        )
        .await?
        .get(0);
    println!("total balance {total} (expected {})", ACCOUNTS * 1000);
    println!("sessions left idle in a transaction: {leftover}");
    println!("most backends at once: {max_backends} (pool size {POOL_SIZE})");
    let ok =
        total == (ACCOUNTS * 1000).to_string() && leftover == 0 && max_backends <= POOL_SIZE as i64;
    pool.close().await;
    match ok {
        true => {
            println!("all invariants hold");
            Ok(())
        }
        false => Err("an invariant was broken".into()),
    }
}
