//! A pool asking for a writable server (`target_session_attrs=read-write`) through a
//! server that turns read-only and through a real failover: a pooled connection that
//! gets SQLSTATE 25006 is evicted, so the next connect goes through
//! `target_session_attrs` again; after the primary stops and the standby is promoted,
//! the same pool (and a fresh one) writes to the new primary with no config change.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgkeel::{Error, Pool};
use pgkeel_testkit::Cluster;

use crate::common;

async fn started(what: &str, f: fn() -> Result<Cluster, pgkeel_testkit::TestkitError>) -> Cluster {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Runs a blocking cluster step off the runtime thread.
async fn step(
    what: &str,
    f: impl FnOnce() -> Result<(), pgkeel_testkit::TestkitError> + Send + 'static,
) {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

fn read_write_url(first: &Cluster, second: &Cluster) -> String {
    format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write&connect_timeout=5&sslmode=disable",
        first.port(),
        second.port()
    )
}

fn pool(url: &str) -> Pool {
    Pool::builder(url)
        .max_size(4)
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Inserts one row through the pool; returns the port of the server that took it.
async fn write(pool: &Pool, table: &str) -> Result<i32, Error> {
    let sql = format!("INSERT INTO {table} VALUES (1) RETURNING current_setting('port')::int");
    Ok(pool.query_one(sql.as_str(), &[]).await?.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_on_a_server_turned_read_only_is_evicted_and_the_next_write_finds_the_writable_one()
 {
    let a = started("start a", Cluster::start).await;
    let b = started("start b", Cluster::start).await;
    if a.is_external() {
        eprintln!("skipped: needs throwaway clusters, but PGKEEL_TEST_URL is set");
        return;
    }
    for c in [&a, &b] {
        c.psql("postgres", "CREATE TABLE ro_evict (id int)")
            .unwrap();
    }
    let pool = pool(&read_write_url(&a, &b));
    assert_eq!(write(&pool, "ro_evict").await.unwrap(), i32::from(a.port()));
    assert_eq!(pool.status().idle, 1);

    // a turns read-only while the pool's connection to it sits idle.
    a.psql(
        "postgres",
        "ALTER SYSTEM SET default_transaction_read_only = on; SELECT pg_reload_conf()",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let err = write(&pool, "ro_evict")
        .await
        .expect_err("a is read-only now");
    assert_eq!(err.code(), Some("25006"), "{err}");
    let s = pool.status();
    assert_eq!(s.evicted_read_only, 1, "{s:?}");
    // No configuration change: the next write reconnects, skips a and lands on b.
    assert_eq!(write(&pool, "ro_evict").await.unwrap(), i32::from(b.port()));
    for _ in 0..5 {
        assert_eq!(write(&pool, "ro_evict").await.unwrap(), i32::from(b.port()));
    }
    let s = pool.status();
    assert_eq!(s.evicted_read_only, 1, "{s:?}");
    assert!(s.adds_up(), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_error_on_a_pool_that_asks_for_any_server_does_not_evict() {
    let a = started("start a", Cluster::start).await;
    if a.is_external() {
        return;
    }
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
        a.port()
    );
    let pool = pool(&url);
    pool.execute("CREATE TABLE ro_any (id int)", &[])
        .await
        .unwrap();
    let tx = pool.begin().await.unwrap();
    tx.execute("SET TRANSACTION READ ONLY", &[]).await.unwrap();
    let err = tx
        .execute("INSERT INTO ro_any VALUES (1)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("25006"));
    drop(tx);
    // The dropped transaction is rolled back in the background; wait for its return.
    let s = common::status_until(&pool, Duration::from_secs(5), |s| s.idle == 1).await;
    assert_eq!((s.evicted_read_only, s.idle), (0, 1), "{s:?}");
}

/// Writes through `pool` every 20 ms until one succeeds on `want` (writes may land on
/// `old` meanwhile); returns the errors seen and the time taken.
async fn write_until_on(
    pool: &Pool,
    want: u16,
    old: Option<u16>,
    within: Duration,
) -> (u32, Duration) {
    let started = Instant::now();
    let mut errors = 0;
    loop {
        match write(pool, "after_failover").await {
            Ok(port) if port == i32::from(want) => return (errors, started.elapsed()),
            Ok(port) if old.is_some_and(|o| i32::from(o) == port) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Ok(port) => panic!("a write landed on {port}, not on the primary {want}"),
            Err(e) => {
                errors += 1;
                if errors <= 3 || errors % 20 == 0 {
                    eprintln!("  write error {errors}: {e}");
                }
                assert!(
                    started.elapsed() < within,
                    "no write within {within:?}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_the_pool_writes_to_the_new_primary_and_still_does_after_the_old_one_rejoins()
 {
    let primary = Arc::new(started("start the primary", Cluster::start).await);
    if primary.is_external() {
        eprintln!("skipped: needs a throwaway cluster, but PGKEEL_TEST_URL is set");
        return;
    }
    primary
        .psql("postgres", "CREATE TABLE after_failover (id int)")
        .unwrap();
    let p = primary.clone();
    let standby = tokio::task::spawn_blocking(move || p.start_standby())
        .await
        .unwrap()
        .expect("start a standby");
    let standby = Arc::new(standby);
    let url = read_write_url(&primary, &standby);
    let existing = pool(&url);
    // Warm: every slot holds a connection to the primary.
    let conns: Vec<_> = futures::future::join_all((0..4).map(|_| existing.get())).await;
    drop(conns);
    assert_eq!(
        write(&existing, "after_failover").await.unwrap(),
        i32::from(primary.port())
    );

    // A writer keeps writing every 20 ms through the stop, the promotion and after.
    let writer_started = Instant::now();
    let writer = {
        let (pool, want, old) = (existing.clone(), standby.port(), primary.port());
        tokio::spawn(async move {
            write_until_on(&pool, want, Some(old), Duration::from_secs(60)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let p = primary.clone();
    let stopped = Instant::now();
    step("stop the primary", move || p.stop_server()).await;
    let s = standby.clone();
    let promoted = Instant::now();
    step("promote the standby", move || s.promote()).await;
    let promote_took = promoted.elapsed();
    let (errors, took) = writer.await.unwrap();
    let recovered = writer_started + took;
    eprintln!(
        "existing pool: {errors} failed writes; first write on the new primary {:?} after the \
         stop began, {:?} after promote began (stop took {:?}, promote {promote_took:?}); \
         status {:?}",
        recovered - stopped,
        recovered.saturating_duration_since(promoted),
        promoted - stopped,
        existing.status()
    );
    for _ in 0..10 {
        assert_eq!(
            write(&existing, "after_failover").await.unwrap(),
            i32::from(standby.port())
        );
    }
    let fresh = pool(&url);
    assert_eq!(
        write(&fresh, "after_failover").await.unwrap(),
        i32::from(standby.port())
    );

    // The old primary rejoins as a standby of the new one; old primary first in the URL.
    let (p, s) = (primary.clone(), standby.clone());
    step("rejoin as a standby", move || p.rejoin_as_standby_of(&s)).await;
    let rejoined = Instant::now();
    let (errors, took) =
        write_until_on(&existing, standby.port(), None, Duration::from_secs(30)).await;
    eprintln!("existing pool after the rejoin: {errors} failed writes, {took:?}");
    assert_eq!(
        errors, 0,
        "the existing pool's connections are on the new primary"
    );
    let fresh = pool(&url);
    let (errors, took) =
        write_until_on(&fresh, standby.port(), None, Duration::from_secs(30)).await;
    eprintln!(
        "fresh pool after the rejoin: {errors} failed writes, first write {took:?} ({:?} after the rejoin)",
        rejoined.elapsed()
    );
    assert_eq!(
        errors, 0,
        "a fresh pool skips the old primary, now a standby"
    );
    // Every slot of the fresh pool, opened at once, lands on the primary.
    let conns: Vec<_> = futures::future::join_all((0..4).map(|_| fresh.get())).await;
    for c in conns {
        let c = c.unwrap();
        let row = c
            .query_one(
                "SELECT current_setting('port')::int, pg_is_in_recovery()",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            (row.get::<_, i32>(0), row.get::<_, bool>(1)),
            (i32::from(standby.port()), false)
        );
    }
}
