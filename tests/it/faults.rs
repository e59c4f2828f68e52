//! Faults on the network between pgkeel and a real server, injected by the test kit's
//! `FaultProxy`: resets at every byte offset of a session, one-byte slices, a bandwidth
//! cap with latency, a blackhole mid-query, corrupted bytes, and resets under write
//! load checked against a ledger of every answer the driver gave.

use std::time::{Duration, Instant};

use pgkeel::{Connection, ErrorKind, Pool};
use pgkeel_testkit::{AuthMethod, Direction, FaultProxy, TestDb, WriteLedger};

const PASSWORD: &str = "f4ults";

/// A fresh database, a SCRAM role of its own (so every session has authentication
/// round trips), and a proxy in front of the cluster.
async fn setup() -> (TestDb, FaultProxy, String) {
    setup_as(true).await
}

/// As [`setup`]; without SCRAM the role logs in with trust (cheap reconnects for tests
/// that reset connections by the hundred).
async fn setup_as(scram: bool) -> (TestDb, FaultProxy, String) {
    let db = TestDb::new();
    let role = format!("r_{}", db.name());
    let method = match scram {
        true => AuthMethod::ScramSha256,
        false => AuthMethod::Trust,
    };
    db.cluster().create_role(&role, PASSWORD, method).unwrap();
    db.psql(&format!("GRANT ALL ON SCHEMA public TO {role}"))
        .unwrap();
    let target = format!("127.0.0.1:{}", db.cluster().port())
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(target).await.unwrap();
    let url = format!(
        "postgres://{role}:{PASSWORD}@127.0.0.1:{}/{}?connect_timeout=5",
        proxy.port(),
        db.name()
    );
    (db, proxy, url)
}

/// Connect, a query with a few rows in both protocols, close.
async fn session(url: &str) -> Result<Vec<String>, pgkeel::Error> {
    let conn = Connection::connect(url).await?;
    let rows = conn
        .query(
            "SELECT g::text || repeat('x', $1) FROM generate_series(1, 20) g",
            &[&50i32],
        )
        .await?;
    conn.simple_query("SELECT 1").await?;
    conn.close().await?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

fn expected() -> Vec<String> {
    (1..=20).map(|g| format!("{g}{}", "x".repeat(50))).collect()
}

/// An RST at every byte offset of a whole session, in each direction, through startup,
/// SCRAM, a query with rows, a simple query and close: each run ends in a typed error
/// (or, past the last byte, success) within a second: no panic, no hang, no wrong rows.
#[tokio::test]
async fn a_reset_at_any_byte_of_a_session_is_a_prompt_typed_error() {
    let (_db, proxy, url) = setup().await;
    assert_eq!(session(&url).await.unwrap(), expected());
    let stats = proxy.stats();
    let totals = [
        (Direction::ToServer, stats.bytes_to_server),
        (Direction::ToClient, stats.bytes_to_client),
    ];
    let mut slowest = Duration::ZERO;
    let mut runs = 0;
    for (dir, total) in totals {
        // Every offset through startup, then a stride through authentication and rows.
        let offsets = (0..total.min(200)).chain((200..total).step_by(11));
        for n in offsets {
            proxy.set_reset_after(dir, Some(n));
            let started = Instant::now();
            let outcome = tokio::time::timeout(Duration::from_secs(10), session(&url)).await;
            let took = started.elapsed();
            slowest = slowest.max(took);
            runs += 1;
            match outcome.unwrap_or_else(|_| panic!("{dir:?} reset at {n}: hung for 10 s")) {
                Ok(rows) => assert_eq!(rows, expected(), "{dir:?} reset at {n}"),
                Err(e) => assert!(
                    matches!(
                        e.kind(),
                        ErrorKind::Io
                            | ErrorKind::Closed
                            | ErrorKind::Broken
                            | ErrorKind::Authentication
                            | ErrorKind::Protocol
                    ),
                    "{dir:?} reset at {n}: {e} ({:?})",
                    e.kind()
                ),
            }
            assert!(
                took < Duration::from_secs(1),
                "{dir:?} reset at {n} took {took:?}"
            );
        }
        proxy.set_reset_after(dir, None);
    }
    println!("{runs} reset points, slowest error after {slowest:?}");
    assert_eq!(session(&url).await.unwrap(), expected());
}

/// One byte per write both ways, then a 256 KiB/s cap with jittered latency: the same
/// rows, byte for byte, as on a plain path.
#[tokio::test]
async fn sliced_and_capped_networks_give_identical_results() {
    let (_db, proxy, url) = setup().await;
    let sql =
        "SELECT g, md5(g::text), repeat(chr(1000 + g % 50), g % 300) FROM generate_series(1, $1) g";
    let plain = rows_of(&url, sql, 300).await;
    proxy.set_slice(Some(1));
    assert_eq!(rows_of(&url, sql, 300).await, plain, "one-byte slices");
    proxy.clear();
    let plain = rows_of(&url, sql, 2000).await;
    proxy.set_bandwidth(Some(1024 * 1024));
    proxy.set_latency(Duration::from_millis(1), Duration::from_millis(3));
    assert_eq!(rows_of(&url, sql, 2000).await, plain, "capped with latency");
}

/// The rows of `sql` (with `$1` = `n`) by `query`, after checking that a row stream in
/// small batches sees the same first column.
async fn rows_of(url: &str, sql: &str, n: i32) -> Vec<(i32, String, String)> {
    let conn = Connection::connect(url).await.unwrap();
    let rows = conn.query(sql, &[&n]).await.unwrap();
    let mut stream_rows = Vec::new();
    let stream = conn.query_raw_batched(sql, &[&n], 64).await.unwrap();
    futures::pin_mut!(stream);
    while let Some(row) = futures::StreamExt::next(&mut stream).await {
        stream_rows.push(row.unwrap().get::<_, i32>(0));
    }
    assert_eq!(stream_rows, (1..=n).collect::<Vec<_>>());
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// The path goes silent mid-query (no FIN, no RST): the query fails at its own
/// timeout, the connection is broken, and close returns within its bound.
#[tokio::test]
async fn a_blackhole_mid_query_fails_at_the_query_timeout_and_close_is_bounded() {
    let (_db, proxy, url) = setup().await;
    let url = format!("{url}&query_timeout_ms=500&cancel_timeout=1");
    let conn = Connection::connect(url.as_str()).await.unwrap();
    conn.query_one("SELECT 1", &[]).await.unwrap();
    proxy.set_blackhole(true);
    let started = Instant::now();
    let err = conn
        .query_one("SELECT pg_sleep(0.1)", &[])
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(
        err.kind(),
        ErrorKind::Timeout(pgkeel::TimeoutKind::Query),
        "{err}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "query error after {took:?}"
    );
    let err = conn.query_one("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken, "{err}");
    let started = Instant::now();
    let _ = conn.close().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "close took {:?}",
        started.elapsed()
    );
    proxy.set_blackhole(false);
    // The path healed: a new connection works.
    let conn = Connection::connect(url.as_str()).await.unwrap();
    conn.query_one("SELECT 1", &[]).await.unwrap();
}

/// A flipped message-type byte right after AuthenticationOk is refused at once as a
/// protocol error, not after the bogus frame completes.
#[tokio::test]
async fn a_corrupted_message_type_after_authentication_is_a_protocol_error_at_once() {
    let db = TestDb::new();
    let target = format!("127.0.0.1:{}", db.cluster().port())
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(target).await.unwrap();
    // Trust authentication: the server's first message is AuthenticationOk (9 bytes),
    // so byte 9 is the type of the first ParameterStatus.
    proxy.corrupt(Direction::ToClient, 9, b'S' ^ 0x01);
    let url = format!(
        "postgres://{}@127.0.0.1:{}/{}?connect_timeout=5",
        db.cluster().superuser(),
        proxy.port(),
        db.name()
    );
    let started = Instant::now();
    let err = Connection::connect(url.as_str()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// Eight tasks write in transactions through a pool while every connection is reset
/// every 150–300 ms: every acknowledged commit is in the table, every reported failure
/// is not, and the pool serves again once the resets stop.
#[tokio::test]
async fn resets_under_write_load_lose_no_acknowledged_commit() {
    let (db, proxy, url) = setup_as(false).await;
    let ledger = std::sync::Arc::new(WriteLedger::create(&db, "ledger").unwrap());
    db.psql(&format!("GRANT ALL ON ledger TO r_{}", db.name()))
        .unwrap();
    let pool = Pool::builder(url.as_str())
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
                let sql = ledger.insert_sql();
                let result = async {
                    let tx = pool.begin().await?;
                    tx.execute(sql.as_str(), &[&id]).await?;
                    tx.commit().await
                }
                .await;
                ledger.record(id, &result);
            }
        }));
    }
    let chaos = tokio::spawn(async move {
        let mut resets = 0;
        while Instant::now() < stop {
            tokio::time::sleep(Duration::from_millis(150 + (resets * 37) % 150)).await;
            proxy.reset_all();
            resets += 1;
        }
        proxy
    });
    for t in tasks {
        t.await.unwrap();
    }
    let proxy = chaos.await.unwrap();
    let report = ledger.check(&db).unwrap();
    println!("{report:?} resets={}", proxy.stats().resets);
    report.assert_clean();
    assert!(report.committed > 0 && report.failed > 0, "{report:?}");
    pool.query_one("SELECT 1", &[]).await.unwrap();
    let status = pool.status();
    assert!(status.adds_up() && status.size <= 4, "{status:?}");
}

/// Random client-side timeouts around transactional writes: a write dropped before its
/// COMMIT went out is not in the table; the others are counted as unknown.
#[tokio::test]
async fn random_timeouts_around_writes_lose_no_acknowledged_commit() {
    let (db, proxy, url) = setup_as(false).await;
    proxy.set_latency(Duration::from_micros(200), Duration::from_millis(2));
    let ledger = std::sync::Arc::new(WriteLedger::create(&db, "ledger").unwrap());
    db.psql(&format!("GRANT ALL ON ledger TO r_{}", db.name()))
        .unwrap();
    let pool = Pool::builder(url.as_str()).max_size(4).build().unwrap();
    let warm: Vec<_> = futures::future::join_all((0..4).map(|_| pool.get())).await;
    drop(warm);
    let mut tasks = Vec::new();
    for task in 0..4u64 {
        let (pool, ledger) = (pool.clone(), ledger.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..60u64 {
                let id = ledger.next_id();
                let sql = ledger.insert_sql();
                let write = async {
                    let tx = pool.begin().await?;
                    tx.execute(sql.as_str(), &[&id]).await?;
                    tx.commit().await
                };
                // Every third write has time to finish; the rest get 0–30 ms.
                let limit = match i % 3 {
                    0 => Duration::from_secs(5),
                    _ => Duration::from_micros((task * 7919 + i * 104_729) % 30_000),
                };
                match tokio::time::timeout(limit, write).await {
                    Ok(result) => {
                        ledger.record(id, &result);
                    }
                    Err(_) => ledger.record_dropped(id),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = ledger.check(&db).unwrap();
    println!("{report:?}");
    report.assert_clean();
    assert!(report.committed > 0 && report.unknown > 0, "{report:?}");
    pool.query_one("SELECT 1", &[]).await.unwrap();
}
