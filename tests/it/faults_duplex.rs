//! Both directions of the socket full at once, and backends terminated mid-COPY.
//!
//! The server only writes while it runs a statement, and it reads no more input until
//! that statement's output has gone out. So both directions fill only when the client
//! is still writing while the server answers something it already read: a pipeline of
//! statements (`execute_many`) or a COPY FROM STDIN whose rows make the server write
//! (here a trigger that raises a notice for every row). A client that writes everything
//! before reading would deadlock: the server blocks writing notices nobody reads, and
//! stops reading the client, which blocks writing. pgkeel reads while it writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use pgkeel::{Connection, ErrorKind, Pool, ToSql};

use crate::common;

/// The most parameters one statement may have (the protocol counts them in 16 bits).
const MAX_PARAMS: usize = 65_535;
/// How long a flood may take on a loaded 2-core machine; a deadlock never ends.
const BOUND: Duration = Duration::from_secs(90);

/// A table whose every inserted row makes the server send a NoticeResponse of about
/// 150 bytes, and a connection that counts the notices it receives.
async fn flood_table() -> (pgkeel_testkit::TestDb, Connection, Arc<AtomicU64>) {
    let (db, conn) = common::db().await;
    conn.batch_execute(
        "CREATE TABLE flood (v text);
         CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE NOTICE 'row %: %', left(NEW.v, 8), repeat('n', 120); RETURN NEW; END $$;
         CREATE TRIGGER shout BEFORE INSERT ON flood FOR EACH ROW EXECUTE FUNCTION shout();",
    )
    .await
    .unwrap();
    let notices = Arc::new(AtomicU64::new(0));
    let counter = notices.clone();
    conn.set_notice_handler(Some(Arc::new(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    })));
    (db, conn, notices)
}

/// `INSERT INTO flood (v) VALUES ($1), ($2), …` with `n` parameters.
fn insert_sql(n: usize) -> String {
    let values: Vec<String> = (1..=n).map(|i| format!("(${i})")).collect();
    format!("INSERT INTO flood (v) VALUES {}", values.join(","))
}

/// A 65,535-parameter statement (about 3 MB of Bind) run for 8 parameter sets in one
/// pipeline while every row inserted raises a notice (about 80 MB of notices): the
/// server floods the client while the client is still sending the next Binds. No
/// deadlock, every row in, every notice received, within the bound; the connection
/// serves the next query. Once alone first: 65,535 parameters and 65,535 notices.
#[tokio::test]
async fn a_65535_parameter_pipeline_while_the_server_floods_notices_does_not_deadlock() {
    let (_db, conn, notices) = flood_table().await;
    let values: Vec<String> = (0..MAX_PARAMS)
        .map(|i| format!("{i:08}-{}", "p".repeat(32)))
        .collect();
    let params: Vec<&(dyn ToSql + Sync)> =
        values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
    let sql = insert_sql(MAX_PARAMS);
    let started = Instant::now();
    let alone = tokio::time::timeout(BOUND, conn.execute(sql.as_str(), &params))
        .await
        .expect("one 65,535-parameter statement deadlocked")
        .unwrap();
    let alone_took = started.elapsed();
    assert_eq!(alone, MAX_PARAMS as u64);
    assert_eq!(notices.load(Ordering::Relaxed), MAX_PARAMS as u64);

    let sets = 8;
    let started = Instant::now();
    let run = conn.execute_many(sql.as_str(), (0..sets).map(|_| &params[..]));
    let inserted = tokio::time::timeout(BOUND, run)
        .await
        .unwrap_or_else(|_| panic!("the pipeline deadlocked ({BOUND:?})"))
        .unwrap();
    let took = started.elapsed();
    let total = (MAX_PARAMS * (sets + 1)) as u64;
    assert_eq!(inserted, (MAX_PARAMS * sets) as u64);
    assert_eq!(
        notices.load(Ordering::Relaxed),
        total,
        "every notice arrived"
    );
    let row = conn
        .query_one("SELECT count(*) FROM flood", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), total as i64);
    println!(
        "65,535 parameters alone: {alone_took:?}; pipelined ×{sets} (~{} MB of Bind, ~{} MB of notices): {took:?}",
        sql.len() / 1_000_000 + sets * MAX_PARAMS * 49 / 1_000_000,
        (MAX_PARAMS * sets * 150) / 1_000_000
    );
}

/// COPY FROM STDIN of 200,000 rows (about 9 MB) while each row makes the server write
/// a notice (about 30 MB): the server writes while it reads. No deadlock within the
/// bound, every row in, every notice received.
#[tokio::test]
async fn copy_in_while_the_server_floods_notices_does_not_deadlock() {
    let (_db, conn, notices) = flood_table().await;
    let rows = 200_000u64;
    let started = Instant::now();
    let copy = async {
        let mut sink = conn.copy_in("COPY flood (v) FROM STDIN").await?;
        for i in 0..rows {
            sink.send(format!("{i:08}-{}\n", "c".repeat(36))).await?;
        }
        sink.finish().await
    };
    let copied = tokio::time::timeout(BOUND, copy)
        .await
        .unwrap_or_else(|_| panic!("COPY IN deadlocked ({BOUND:?})"))
        .unwrap();
    let took = started.elapsed();
    assert_eq!(copied, rows);
    assert_eq!(
        notices.load(Ordering::Relaxed),
        rows,
        "every notice arrived"
    );
    println!("COPY IN of {rows} rows, one notice each: {took:?}");
}

/// A backend terminated while COPY FROM STDIN data flows, and while COPY TO STDOUT data
/// flows: the COPY fails promptly with the server's 57P01 or a closed connection,
/// nothing of the COPY IN is committed, and the pool replaces the connection.
#[tokio::test]
async fn a_backend_terminated_mid_copy_in_or_out_fails_promptly_and_the_pool_recovers() {
    let (db, watcher) = common::db().await;
    watcher
        .batch_execute("CREATE TABLE copied (v text)")
        .await
        .unwrap();
    let pool = Pool::builder(db.url()).max_size(1).build().unwrap();

    let conn = pool.get().await.unwrap();
    let pid: i32 = conn
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let mut sink = conn.copy_in("COPY copied FROM STDIN").await.unwrap();
    let mut sent = 0u64;
    let mut terminated = None;
    let err = loop {
        if sent == 20_000 {
            terminate(&watcher, pid).await;
            terminated = Some(Instant::now());
        }
        if let Err(e) = sink.send(format!("row {sent} {}\n", "i".repeat(64))).await {
            break e;
        }
        sent += 1;
        assert!(
            sent < 5_000_000,
            "COPY IN never noticed its backend was gone"
        );
    };
    let noticed = terminated.expect("terminated").elapsed();
    drop(sink);
    assert_copy_error(&err);
    drop(conn);
    let n: i64 = watcher
        .query_one("SELECT count(*) FROM copied", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "a terminated COPY IN committed rows");
    let fresh = pool.get().await.unwrap();
    let new_pid: i32 = fresh
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(new_pid, pid);

    let out = fresh
        .copy_out("COPY (SELECT g, repeat('o', 200) FROM generate_series(1, 10000000) g) TO STDOUT")
        .await
        .unwrap();
    let mut out = Box::pin(out);
    let mut chunks = 0u64;
    let mut terminated = None;
    let out_err = loop {
        match tokio::time::timeout(Duration::from_secs(10), out.next()).await {
            Ok(Some(Ok(_))) => chunks += 1,
            Ok(Some(Err(e))) => break e,
            Ok(None) => panic!("COPY OUT finished although its backend was terminated"),
            Err(_) => panic!("COPY OUT hung after its backend was terminated"),
        }
        if chunks == 1_000 {
            terminate(&watcher, new_pid).await;
            terminated = Some(Instant::now());
        }
    };
    let out_noticed = terminated.expect("terminated").elapsed();
    drop(out);
    assert_copy_error(&out_err);
    drop(fresh);
    pool.query_one("SELECT 1", &[]).await.unwrap();
    assert!(pool.status().adds_up(), "{:?}", pool.status());
    println!(
        "terminated mid-COPY IN after {sent} rows: error after {noticed:?} ({err}); \
         mid-COPY OUT after {chunks} rows: error after {out_noticed:?} ({out_err})"
    );
    for took in [noticed, out_noticed] {
        assert!(
            took < Duration::from_secs(2),
            "the error came {took:?} after the terminate"
        );
    }
}

async fn terminate(watcher: &Connection, pid: i32) {
    let row = watcher
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "backend {pid} was not there");
}

fn assert_copy_error(err: &pgkeel::Error) {
    assert!(
        err.code() == Some("57P01")
            || matches!(
                err.kind(),
                ErrorKind::Closed | ErrorKind::Io | ErrorKind::Broken
            ),
        "{err} ({:?})",
        err.kind()
    );
}
