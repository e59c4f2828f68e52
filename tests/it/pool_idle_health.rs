//! Idle pooled connections are checked in the background, with nobody calling `get()`:
//! one the server closed is seen by the cheap socket check at the next maintenance
//! round; one behind a path that stops answering (a relay that holds every byte, so the
//! socket looks fine and keepalives are answered) fails its ping after
//! `health_check_after`. Both are evicted, and the pool serves again.

use crate::common::{self, status_until};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pgkeel::Pool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn an_idle_connection_the_server_closed_is_evicted_in_the_background() {
    let (db, watcher) = common::db().await;
    let pool = Pool::builder(db.url())
        .max_size(2)
        .maintenance_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let pid: i32 = pool
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pool.status().idle, 1);
    watcher
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let s = status_until(&pool, Duration::from_secs(3), |s| {
        s.evicted_health_check == 1
    })
    .await;
    assert_eq!((s.evicted_health_check, s.idle), (1, 0), "{s:?}");
    let s = status_until(&pool, Duration::from_secs(3), |s| s.size == 0).await;
    assert!(s.adds_up() && s.size == 0, "{s:?}");
    pool.query_one("SELECT 1", &[]).await.unwrap();
}

/// A relay to `target` that, once `frozen`, holds every byte in both directions while
/// keeping both sockets open.
async fn freezable_relay(target: u16, frozen: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(out) = TcpStream::connect(("127.0.0.1", target)).await else {
                continue;
            };
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = out.into_split();
            tokio::spawn(pump(ri, wo, frozen.clone()));
            tokio::spawn(pump(ro, wi, frozen.clone()));
        }
    });
    port
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn an_idle_connection_on_a_path_that_stops_answering_fails_its_background_ping() {
    let (db, _conn) = common::db().await;
    let frozen = Arc::new(AtomicBool::new(false));
    let port = freezable_relay(db.cluster().port(), frozen.clone()).await;
    let url = format!(
        "postgres://{}@127.0.0.1:{port}/{}?sslmode=disable",
        db.cluster().superuser(),
        db.name()
    );
    let pool = Pool::builder(url)
        .max_size(2)
        .maintenance_interval(Duration::from_millis(100))
        .health_check_after(Some(Duration::from_millis(300)))
        .return_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    pool.query_one("SELECT 1", &[]).await.unwrap();
    // Alive and idle: pinged in the background and kept. A ping in flight counts the
    // connection as returning, so wait for it to be idle again rather than sample once.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let s = status_until(&pool, Duration::from_secs(3), |s| s.idle == 1).await;
    assert_eq!((s.idle, s.evicted_health_check), (1, 0), "{s:?}");

    frozen.store(true, Ordering::SeqCst);
    let cut = Instant::now();
    let s = status_until(&pool, Duration::from_secs(5), |s| {
        s.evicted_health_check == 1
    })
    .await;
    eprintln!(
        "idle connection behind a frozen path evicted {:?} after the freeze",
        cut.elapsed()
    );
    assert_eq!(s.evicted_health_check, 1, "{s:?}");
    // 300 ms to be due, a round of 100 ms, a ping bounded by 500 ms, and room for a
    // loaded machine.
    assert!(
        cut.elapsed() < Duration::from_millis(2500),
        "{:?}",
        cut.elapsed()
    );
    assert_eq!(s.idle, 0, "{s:?}");

    frozen.store(false, Ordering::SeqCst);
    pool.query_one("SELECT 1", &[]).await.unwrap();
}
