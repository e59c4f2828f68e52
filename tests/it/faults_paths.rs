//! Faults on the paths users put between pgkeel and PostgreSQL, injected by a
//! `FaultProxy` in front of a PgBouncer (transaction and session mode, SCRAM between
//! pgkeel and the bouncer) and in front of a TLS server (SCRAM with channel binding):
//! an RST at byte offsets through startup, authentication, the TLS handshake, a query
//! with rows, COPY out and COPY in; every connection reset under pool write load,
//! checked by the ledger; a blackhole under TLS.
//!
//! The PgBouncer tests fail when PgBouncer is not installed; `PGKEEL_SKIP_PGBOUNCER=1`
//! skips them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use pgkeel::{Connection, Error, ErrorKind, Pool, TimeoutKind};
use pgkeel_testkit::{AuthMethod, Direction, FaultProxy, Pgbouncer, PoolMode, TestDb, WriteLedger};

use crate::tls;

const PASSWORD: &str = "p4th-f4ults";
/// How soon after the proxy's RST the driver must have reported an error.
const PROMPT: Duration = Duration::from_millis(100);

/// A URL through a proxy, and what keeps the far end of the path alive.
struct Route {
    proxy: FaultProxy,
    url: String,
    /// The table COPY IN writes to.
    sink: String,
    /// The kinds an RST may surface as on this path.
    kinds: &'static [ErrorKind],
    _bouncer: Option<Pgbouncer>,
}

const PLAIN_KINDS: &[ErrorKind] = &[
    ErrorKind::Io,
    ErrorKind::Closed,
    ErrorKind::Broken,
    ErrorKind::Authentication,
    ErrorKind::Protocol,
];
const TLS_KINDS: &[ErrorKind] = &[
    ErrorKind::Io,
    ErrorKind::Closed,
    ErrorKind::Broken,
    ErrorKind::Authentication,
    ErrorKind::Protocol,
    ErrorKind::Tls,
];

/// Where the proxy sits on a path through PgBouncer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Between pgkeel and PgBouncer.
    Client,
    /// Between PgBouncer and the server.
    Server,
}

/// A fresh database with a SCRAM role of its own, a PgBouncer in `mode` that makes
/// clients log in with SCRAM too, and a proxy in front of the bouncer (None when
/// PgBouncer tests are skipped).
async fn via_bouncer(mode: PoolMode) -> Option<(Route, TestDb)> {
    via_bouncer_at(mode, Side::Client).await
}

/// As [`via_bouncer`], with the proxy on `side` of the bouncer.
async fn via_bouncer_at(mode: PoolMode, side: Side) -> Option<(Route, TestDb)> {
    let db = TestDb::new();
    let role = format!("r_{}", db.name());
    db.cluster()
        .create_role(&role, PASSWORD, AuthMethod::ScramSha256)
        .unwrap();
    db.psql(&format!(
        "GRANT ALL ON SCHEMA public TO {role}; CREATE TABLE sink (line text); GRANT ALL ON sink TO {role}"
    ))
    .unwrap();
    let mut builder = Pgbouncer::builder()
        .pool_mode(mode)
        .default_pool_size(4)
        .user(&role, PASSWORD)
        .setting("auth_type", "scram-sha-256")
        // A server login cut by a reset makes PgBouncer refuse every client for this
        // long (15 s by default): a PgBouncer setting, not something pgkeel can shorten.
        .setting("server_login_retry", "0.1");
    let server = format!("127.0.0.1:{}", db.cluster().port());
    let proxy = match side {
        Side::Client => None,
        Side::Server => Some(FaultProxy::start(server.parse().unwrap()).await.unwrap()),
    };
    if let Some(proxy) = &proxy {
        builder = builder.upstream(proxy.addr());
    }
    let bouncer = builder.start_or_skip(db.cluster())?;
    let bouncer_addr = format!("127.0.0.1:{}", bouncer.port());
    let (proxy, port) = match proxy {
        Some(proxy) => (proxy, bouncer.port()),
        None => {
            let proxy = FaultProxy::start(bouncer_addr.parse().unwrap())
                .await
                .unwrap();
            let port = proxy.port();
            (proxy, port)
        }
    };
    let pooler = match mode {
        PoolMode::Session => "",
        _ => "&pgbouncer=true",
    };
    let url = format!(
        "postgres://{role}:{PASSWORD}@127.0.0.1:{port}/{}?connect_timeout=5{pooler}",
        db.name()
    );
    let route = Route {
        proxy,
        url,
        sink: "sink".into(),
        kinds: PLAIN_KINDS,
        _bouncer: Some(bouncer),
    };
    Some((route, db))
}

/// A proxy in front of the shared TLS server, and a COPY IN table `sink` (one per test:
/// concurrent `CREATE TABLE IF NOT EXISTS` of one name can fail); the URL verifies its certificate and
/// logs in as `tls_only` (SCRAM-SHA-256-PLUS: channel binding is on by default).
async fn via_tls(sink: &str) -> Route {
    let (server, _) = tls::server();
    server
        .cluster
        .psql(
            "postgres",
            &format!(
                "CREATE TABLE IF NOT EXISTS {sink} (line text); GRANT ALL ON {sink} TO tls_only"
            ),
        )
        .unwrap();
    let target = format!("127.0.0.1:{}", server.cluster.port());
    let proxy = FaultProxy::start(target.parse().unwrap()).await.unwrap();
    let url = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=tls_only password={} dbname=postgres \
         connect_timeout=5 sslmode=verify-full sslrootcert={}",
        proxy.port(),
        tls::PASSWORD,
        server.ca_file.display()
    );
    Route {
        proxy,
        url,
        sink: sink.into(),
        kinds: TLS_KINDS,
        _bouncer: None,
    }
}

/// What one session saw: the rows of a query, the bytes of a COPY out, the rows of a
/// COPY in.
type Seen = (Vec<String>, Vec<u8>, u64);

/// Connect (and authenticate), a query with rows, COPY out, COPY in, a simple query,
/// close.
async fn session(url: &str, sink: &str) -> Result<Seen, Error> {
    let conn = Connection::connect(url).await?;
    let rows = conn
        .query(
            "SELECT g::text || repeat('x', $1) FROM generate_series(1, 20) g",
            &[&50i32],
        )
        .await?;
    let out = conn
        .copy_out("COPY (SELECT g, md5(g::text) FROM generate_series(1, 100) g) TO STDOUT")
        .await?;
    futures::pin_mut!(out);
    let mut copied = Vec::new();
    while let Some(chunk) = out.next().await {
        copied.extend_from_slice(&chunk?);
    }
    let mut copy_in = conn.copy_in(&format!("COPY {sink} FROM STDIN")).await?;
    for g in 0..100 {
        copy_in.send(format!("line {g} of a COPY in\n")).await?;
    }
    let n = copy_in.finish().await?;
    conn.simple_query("SELECT 1").await?;
    conn.close().await?;
    Ok((rows.iter().map(|r| r.get(0)).collect(), copied, n))
}

/// The figures of a sweep of reset points.
#[derive(Debug, Default)]
struct Sweep {
    runs: u32,
    errors: u32,
    /// The longest time from an RST to the error it caused.
    slowest_after_reset: Duration,
}

/// An RST at a spread of byte offsets of a whole session, in each direction (every
/// third byte through the first 300, then about 60 points across the rest): each run
/// ends in a typed error of the path's kinds within [`PROMPT`] of the RST, or in the
/// very answers of a clean run; never a panic or a hang.
async fn sweep(route: &Route) -> Sweep {
    let before = route.proxy.stats();
    let clean = session(&route.url, &route.sink).await.unwrap();
    let after = route.proxy.stats();
    let totals = [
        (
            Direction::ToServer,
            after.bytes_to_server - before.bytes_to_server,
        ),
        (
            Direction::ToClient,
            after.bytes_to_client - before.bytes_to_client,
        ),
    ];
    let mut sweep = Sweep::default();
    for (dir, total) in totals {
        let stride = ((total.saturating_sub(300)) / 60).max(1) as usize;
        for n in (0..total.min(300))
            .step_by(3)
            .chain((300..total).step_by(stride))
        {
            route.proxy.set_reset_after(dir, Some(n));
            one_reset(route, dir, n, &clean, &mut sweep).await;
        }
        route.proxy.set_reset_after(dir, None);
    }
    assert_eq!(session(&route.url, &route.sink).await.unwrap(), clean);
    sweep
}

async fn one_reset(route: &Route, dir: Direction, n: u64, clean: &Seen, sweep: &mut Sweep) {
    let resets = route.proxy.stats().resets;
    let limit = Duration::from_secs(10);
    let outcome = tokio::time::timeout(limit, session(&route.url, &route.sink))
        .await
        .unwrap_or_else(|_| panic!("{dir:?} reset at {n}: hung for {limit:?}"));
    let failed_at = Instant::now();
    sweep.runs += 1;
    let stats = route.proxy.stats();
    match outcome {
        Ok(seen) => assert_eq!(&seen, clean, "{dir:?} reset at {n}"),
        Err(e) => {
            sweep.errors += 1;
            assert!(
                route.kinds.contains(&e.kind()),
                "{dir:?} reset at {n}: {e} ({:?})",
                e.kind()
            );
            assert!(stats.resets > resets, "{dir:?} at {n}: {e} with no reset");
            let after = failed_at - stats.last_reset.expect("a reset was sent");
            sweep.slowest_after_reset = sweep.slowest_after_reset.max(after);
            assert!(
                after < PROMPT,
                "{dir:?} reset at {n}: the error came {after:?} after the RST: {e}"
            );
        }
    }
}

#[tokio::test]
async fn a_reset_at_any_byte_through_pgbouncer_in_transaction_mode_is_a_prompt_typed_error() {
    let Some((route, _db)) = via_bouncer(PoolMode::Transaction).await else {
        return;
    };
    let sweep = sweep(&route).await;
    println!("PgBouncer, transaction mode: {sweep:?}");
    assert!(sweep.errors > 100, "{sweep:?}");
}

#[tokio::test]
async fn a_reset_at_any_byte_through_pgbouncer_in_session_mode_is_a_prompt_typed_error() {
    let Some((route, _db)) = via_bouncer(PoolMode::Session).await else {
        return;
    };
    let sweep = sweep(&route).await;
    println!("PgBouncer, session mode: {sweep:?}");
    assert!(sweep.errors > 100, "{sweep:?}");
}

#[tokio::test]
async fn a_reset_at_any_byte_of_a_tls_session_is_a_prompt_typed_error() {
    let route = via_tls("faults_paths_sweep").await;
    let sweep = sweep(&route).await;
    println!("TLS: {sweep:?}");
    assert!(sweep.errors > 100, "{sweep:?}");
}

/// Eight tasks write in transactions through a pool of four on `route` while every
/// connection is reset every 150–300 ms for 3 s: 0 ledger violations, and the pool
/// serves within a second once the resets stop.
async fn resets_under_write_load(
    route: Route,
    ledger: Arc<WriteLedger>,
) -> (Route, Arc<WriteLedger>) {
    let pool = Pool::builder(route.url.as_str())
        .max_size(4)
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let stop = Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (pool, ledger) = (pool.clone(), ledger.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < stop {
                let id = ledger.next_id();
                let result = async {
                    let tx = pool.begin().await?;
                    tx.execute(ledger.insert_sql().as_str(), &[&id]).await?;
                    tx.commit().await
                }
                .await;
                ledger.record(id, &result);
            }
        }));
    }
    let mut resets = 0u64;
    while Instant::now() < stop {
        tokio::time::sleep(Duration::from_millis(150 + (resets * 37) % 150)).await;
        route.proxy.reset_all();
        resets += 1;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let healed = Instant::now();
    while let Err(e) = pool.query_one("SELECT 1", &[]).await {
        assert!(
            healed.elapsed() < Duration::from_secs(1),
            "pool not serving: {e}"
        );
    }
    let status = pool.status();
    assert!(status.adds_up() && status.size <= 4, "{status:?}");
    println!(
        "{resets} resets; pool serving {:?} after the last; {status:?}",
        healed.elapsed()
    );
    (route, ledger)
}

#[tokio::test]
async fn resets_through_pgbouncer_under_write_load_lose_no_acknowledged_commit() {
    for mode in [PoolMode::Transaction, PoolMode::Session] {
        let Some((route, db)) = via_bouncer(mode).await else {
            return;
        };
        let ledger = Arc::new(WriteLedger::create(&db, "ledger").unwrap());
        db.psql(&format!("GRANT ALL ON ledger TO r_{}", db.name()))
            .unwrap();
        let (_route, ledger) = resets_under_write_load(route, ledger).await;
        let report = ledger.check(&db).unwrap();
        println!("PgBouncer {mode:?}: {report:?}");
        report.assert_clean();
        assert!(report.committed > 0 && report.failed > 0, "{report:?}");
    }
}

/// The proxy sits between PgBouncer and the server, and resets PgBouncer's server
/// connections under write load: PgBouncer reports the loss to the clients on them
/// (and ends their sessions), and the ledger and the pool hold as above.
#[tokio::test]
async fn resets_behind_pgbouncer_under_write_load_lose_no_acknowledged_commit() {
    for mode in [PoolMode::Transaction, PoolMode::Session] {
        let Some((route, db)) = via_bouncer_at(mode, Side::Server).await else {
            return;
        };
        let ledger = Arc::new(WriteLedger::create(&db, "ledger").unwrap());
        db.psql(&format!("GRANT ALL ON ledger TO r_{}", db.name()))
            .unwrap();
        let (route, ledger) = resets_under_write_load(route, ledger).await;
        let report = ledger.check(&db).unwrap();
        println!(
            "behind PgBouncer {mode:?}: {report:?}; {} server connections reset",
            route.proxy.stats().resets
        );
        report.assert_clean();
        assert!(report.committed > 0 && report.failed > 0, "{report:?}");
    }
}

#[tokio::test]
async fn resets_over_tls_under_write_load_lose_no_acknowledged_commit() {
    let route = via_tls("faults_paths_load").await;
    let (server, _) = tls::server();
    let ledger =
        WriteLedger::create_on(&server.cluster, "postgres", "faults_paths_ledger").unwrap();
    server
        .cluster
        .psql("postgres", "GRANT ALL ON faults_paths_ledger TO tls_only")
        .unwrap();
    let (_route, ledger) = resets_under_write_load(route, Arc::new(ledger)).await;
    let report = ledger.check_on(&server.cluster, "postgres").unwrap();
    println!("TLS: {report:?}");
    report.assert_clean();
    assert!(report.committed > 0 && report.failed > 0, "{report:?}");
}

/// The TLS path goes silent (no FIN, no RST; the proxy keeps TCP alive, so keepalive
/// cannot tell): a query fails at `query_timeout`, a cancel at `cancel_timeout`, close
/// within its bound; an idle pooled connection is evicted by the health-check ping
/// within `health_check_after` + a maintenance round + `return_timeout`; and once the
/// path heals the pool serves again.
#[tokio::test]
async fn a_blackhole_under_tls_is_detected_within_each_bound() {
    let route = via_tls("faults_paths_blackhole").await;
    let url = format!("{} query_timeout_ms=500 cancel_timeout=1", route.url);
    let conn = Connection::connect(url.as_str()).await.unwrap();
    conn.query_one("SELECT 1", &[]).await.unwrap();
    route.proxy.set_blackhole(true);

    let (err, took) = timed(conn.query_one("SELECT 1", &[])).await;
    let err = err.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(TimeoutKind::Query), "{err}");
    assert!(
        took < Duration::from_millis(1500),
        "query error after {took:?}"
    );
    let (cancel, cancel_took) = timed(conn.cancel_token().cancel_query()).await;
    let kind = cancel.as_ref().map_err(Error::kind).err();
    assert_eq!(
        kind,
        Some(ErrorKind::Timeout(TimeoutKind::Cancel)),
        "{cancel:?}"
    );
    assert!(
        cancel_took < Duration::from_millis(1500),
        "cancel took {cancel_took:?}"
    );
    let (_, close_took) = timed(conn.close()).await;
    assert!(
        close_took < Duration::from_secs(2),
        "close took {close_took:?}"
    );

    route.proxy.set_blackhole(false);
    let pool = Pool::builder(url.as_str())
        .max_size(2)
        .health_check_after(Some(Duration::from_millis(300)))
        .maintenance_interval(Duration::from_millis(100))
        .return_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    pool.query_one("SELECT 1", &[]).await.unwrap();
    route.proxy.set_blackhole(true);
    let blackholed = Instant::now();
    while pool.status().evicted_health_check == 0 {
        assert!(
            blackholed.elapsed() < Duration::from_secs(3),
            "{:?}",
            pool.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let evicted = blackholed.elapsed();
    route.proxy.set_blackhole(false);
    let healed = Instant::now();
    pool.query_one("SELECT 1", &[]).await.unwrap();
    println!(
        "blackhole under TLS: query error {took:?}, cancel {cancel_took:?} ({cancel:?}), \
         close {close_took:?}; idle connection evicted {evicted:?} after; pool serving {:?} after the path healed",
        healed.elapsed()
    );
    // 300 ms + 100 ms + 300 ms, and room for a loaded machine.
    assert!(
        evicted < Duration::from_millis(1500),
        "evicted after {evicted:?}"
    );
}

async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = f.await;
    (out, started.elapsed())
}
