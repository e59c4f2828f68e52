//! The connection's own limits: `query_timeout` and `lock_timeout` say which was hit.

use crate::common;

use std::time::{Duration, Instant};

use pgkeel::{Config, Connection, ErrorKind, TimeoutKind};

fn config(db: &pgkeel_testkit::TestDb) -> Config {
    db.url().parse().unwrap()
}

#[tokio::test]
async fn query_timeout_fails_the_call_as_a_query_timeout_breaks_the_connection_and_stops_the_server()
 {
    let (db, _conn) = common::db().await;
    let mut c = config(&db);
    c.query_timeout(Duration::from_millis(100));
    let conn = Connection::connect(&c).await.unwrap();
    assert_eq!(
        conn.query_one("SELECT 1::int4", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );

    let started = Instant::now();
    let err = conn.query("SELECT pg_sleep(30)", &[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(TimeoutKind::Query), "{err}");
    assert!(err.to_string().contains("query_timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(conn.is_broken(), "the exchange was cut short");
    let watcher = common::connect(&db).await;
    common::wait_query_gone(&watcher, "pg_sleep(30)", Duration::from_secs(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn query_timeout_applies_inside_a_transaction_too() {
    let (db, _conn) = common::db().await;
    let mut c = config(&db);
    c.query_timeout(Duration::from_millis(100));
    let conn = Connection::connect(&c).await.unwrap();
    let tx = conn.transaction().await.unwrap();
    let err = tx.execute("SELECT pg_sleep(30)", &[]).await.unwrap_err();
    assert_eq!(err.timeout_kind(), Some(TimeoutKind::Query), "{err}");
    drop(tx);
    assert_eq!(
        conn.query("SELECT 1", &[]).await.unwrap_err().kind(),
        ErrorKind::Broken
    );
}

#[tokio::test]
async fn lock_timeout_fails_a_call_waiting_behind_a_transaction_and_leaves_the_connection_alone() {
    let (db, _conn) = common::db().await;
    let mut c = config(&db);
    c.lock_timeout(Duration::from_millis(50));
    let conn = Connection::connect(&c).await.unwrap();
    let tx = conn.transaction().await.unwrap();

    let other = conn.clone();
    let started = Instant::now();
    let err = tokio::spawn(async move { other.query("SELECT 1", &[]).await })
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Timeout(TimeoutKind::WireLock),
        "{err}"
    );
    assert!(err.to_string().contains("did not run"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(!conn.is_broken());

    tx.commit().await.unwrap();
    assert_eq!(
        conn.query_one("SELECT 2::int4", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
}

#[tokio::test]
async fn the_limits_can_be_set_in_the_url_in_milliseconds() {
    let (db, _conn) = common::db().await;
    let url = common::with_param(&db.url(), "query_timeout_ms=100&lock_timeout_ms=0");
    let conn = Connection::connect(url.as_str()).await.unwrap();
    let err = conn.simple_query("SELECT pg_sleep(30)").await.unwrap_err();
    assert_eq!(err.timeout_kind(), Some(TimeoutKind::Query), "{err}");
}

/// A query abandoned just before its runtime shuts down still stops on the server: the
/// cancel task never gets to run, so its drop sends the cancel from a thread of its own.
#[test]
fn a_query_abandoned_as_its_runtime_shuts_down_is_still_cancelled_on_the_server() {
    let db = pgkeel_testkit::TestDb::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conn = rt.block_on(Connection::connect(db.url())).unwrap();
    let timed_out = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_millis(100),
            conn.query("SELECT pg_sleep(31)", &[]),
        )
        .await
        .is_err()
    });
    assert!(timed_out);
    drop(rt); // the spawned cancel task is dropped before it ever runs
    drop(conn);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let watcher = common::connect(&db).await;
        common::wait_query_gone(&watcher, "pg_sleep(31)", Duration::from_secs(2))
            .await
            .unwrap();
    });
}
