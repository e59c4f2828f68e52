//! Reconnect backoff, for real: the pool's server address is a local door that counts
//! every TCP connection it accepts. Shut, it closes each one at once (the server is
//! down); open, it relays to the throwaway cluster (the server is back). Many tasks call
//! `pool.get()` in a tight loop while it is shut: the pool must make a bounded number of
//! attempts, hand each failure to every caller waiting for it, report it in `status()`,
//! and serve again within the backoff cap once the door opens.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pgkeel::Pool;
use tokio::net::TcpListener;

/// A TCP door in front of the cluster: counts connections, closes them while shut.
struct Door {
    port: u16,
    open: Arc<AtomicBool>,
    accepts: Arc<AtomicU64>,
}

impl Door {
    async fn start(target: u16) -> Door {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let door = Door {
            port: listener.local_addr().unwrap().port(),
            open: Arc::new(AtomicBool::new(false)),
            accepts: Arc::new(AtomicU64::new(0)),
        };
        let (open, accepts) = (door.open.clone(), door.accepts.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                accepts.fetch_add(1, Ordering::SeqCst);
                if !open.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                tokio::spawn(async move {
                    let out = tokio::net::TcpStream::connect(("127.0.0.1", target)).await;
                    if let Ok(mut out) = out {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        });
        door
    }

    fn accepts(&self) -> u64 {
        self.accepts.load(Ordering::SeqCst)
    }
}

const MAX_SIZE: usize = 4;
const TASKS: usize = 32;
/// The default backoff cap (`PoolBuilder::connect_backoff`).
const CAP: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_connects_fail_the_pool_makes_few_attempts_and_serves_again_within_the_cap() {
    let (db, _conn) = common::db().await;
    let door = Door::start(db.cluster().port()).await;
    let url = format!(
        "postgres://{}@127.0.0.1:{}/{}?sslmode=disable",
        db.cluster().superuser(),
        door.port,
        db.name()
    );
    let pool = Pool::builder(url)
        .max_size(MAX_SIZE)
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    // 32 callers retry at once for 2 s while every connect fails.
    let until = Instant::now() + Duration::from_secs(2);
    let errors = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (pool, errors) = (pool.clone(), errors.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    let err = pool.get().await.expect_err("the door is shut");
                    assert!(err.is_connection_fatal(), "{err}");
                    errors.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let attempts = door.accepts();
    let errors = errors.load(Ordering::SeqCst);
    let s = pool.status();
    eprintln!(
        "2 s of {TASKS} callers retrying at once: {attempts} connect attempts, {errors} errors \
         handed out; status: {} connect failures, {} in a row, last: {:?}",
        s.connect_failures, s.consecutive_connect_failures, s.last_connect_error
    );
    // The first failures may come from every slot at once (max_size); then one attempt
    // at a time, 25-50 ms, 50-100 ms, ... up to 0.5-1 s apart: at most 9 more in 2 s
    // (3,477 without backoff). A little slack for a slow machine.
    assert!(
        attempts <= MAX_SIZE as u64 + 12,
        "{attempts} connect attempts in 2 s"
    );
    assert!(attempts >= 3, "the pool kept trying: {attempts}");
    assert!(
        errors >= attempts * 2,
        "a failed attempt is every waiting caller's error: {errors} errors for {attempts} attempts"
    );
    let last = s
        .last_connect_error
        .clone()
        .expect("the last connect error");
    assert!(
        last.message.contains(&format!("127.0.0.1:{}", door.port)),
        "names host and port: {}",
        last.message
    );
    assert!(s.consecutive_connect_failures >= 3, "{s:?}");
    assert_eq!(last.consecutive_failures, s.consecutive_connect_failures);
    assert!(
        last.at.elapsed().unwrap() < Duration::from_secs(3),
        "{last:?}"
    );
    assert!(s.adds_up(), "{s:?}");

    // The server is back: the next call waits for the next attempt, at most one cap away.
    door.open.store(true, Ordering::SeqCst);
    let back = Instant::now();
    let conn = pool.get().await.expect("the server is back");
    let took = back.elapsed();
    eprintln!("first checkout after the server came back: {took:?}");
    assert!(took <= CAP + Duration::from_millis(500), "{took:?}");
    conn.query_one("SELECT 1", &[]).await.unwrap();
    drop(conn);
    let s = pool.status();
    assert_eq!(s.consecutive_connect_failures, 0, "{s:?}");
    assert!(s.last_connect_error.is_some(), "kept after recovery: {s:?}");
    // And then it serves freely: many callers at once, no backoff left.
    let started = Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.query_one("SELECT 1", &[]).await.map(drop) })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_waiter_queued_for_a_slot_gets_the_failure_instead_of_waiting_for_the_next_attempt() {
    let (db, _conn) = common::db().await;
    let door = Door::start(db.cluster().port()).await;
    let url = format!(
        "postgres://{}@127.0.0.1:{}/{}?sslmode=disable",
        db.cluster().superuser(),
        door.port,
        db.name()
    );
    // One slot, a long backoff: the second caller waits for the slot, not the door.
    let pool = Pool::builder(url)
        .max_size(1)
        .connect_backoff(Duration::from_secs(5), Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let started = Instant::now();
    let (a, b) = tokio::join!(pool.get(), pool.get());
    assert!(a.is_err() && b.is_err());
    // Both failed with the first attempt, not one after a 2.5-5 s backoff.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(door.accepts(), 1);
}

#[test]
fn a_pool_larger_than_its_gauges_or_a_zero_backoff_is_refused_at_build() {
    let err = Pool::builder("postgres://u@localhost/db")
        .max_size(5000)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), pgkeel::ErrorKind::Config);
    assert!(err.to_string().contains("max_size 5000"), "{err}");
    assert!(err.to_string().contains("4095"), "{err}");
    let err = Pool::builder("postgres://u@localhost/db")
        .max_size(0)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("max_size 0"), "{err}");
    let err = Pool::builder("postgres://u@localhost/db")
        .connect_backoff(Duration::ZERO, Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("connect_backoff"), "{err}");
    // The largest size the gauges count is fine.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = Pool::builder("postgres://u@localhost/db")
            .max_size(4095)
            .build()
            .unwrap();
        assert_eq!(pool.status().max_size, 4095);
    });
}
