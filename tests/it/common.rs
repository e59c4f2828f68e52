//! Shared helpers for the integration tests: a fresh database per test on the test kit's
//! throwaway cluster, a watcher connection for `pg_stat_activity`, polling a pool's status, and
//! `Cancellable`.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pgkeel::pool::Status;
use pgkeel::{Connection, Pool};
use pgkeel_testkit::TestDb;

/// Polls `pool.status()` until `done` holds, for at most `within`.
pub async fn status_until(pool: &Pool, within: Duration, done: impl Fn(&Status) -> bool) -> Status {
    let started = Instant::now();
    loop {
        let s = pool.status();
        if done(&s) || started.elapsed() >= within {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `url` with one more query parameter (`?` or `&` as the URL needs).
pub fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// A fresh database and a connection to it.
pub async fn db() -> (TestDb, Connection) {
    let db = TestDb::new();
    let conn = Connection::connect(db.url())
        .await
        .expect("connect to the test database");
    (db, conn)
}

/// Another connection to the same database (for watching the first one).
pub async fn connect(db: &TestDb) -> Connection {
    Connection::connect(db.url())
        .await
        .expect("connect to the test database")
}

/// The `state` of backend `pid` in `pg_stat_activity` (None once it is gone).
pub async fn backend_state(watcher: &Connection, pid: i32) -> Option<String> {
    let row = watcher
        .query_opt(
            "SELECT coalesce(state, '') FROM pg_stat_activity WHERE pid = $1",
            &[&pid],
        )
        .await
        .expect("read pg_stat_activity");
    row.map(|r| r.get::<_, String>(0))
}

/// Waits until backend `pid` is neither `active` nor `idle in transaction` (or gone);
/// returns the last state seen if it does not happen `within`.
pub async fn wait_quiet(watcher: &Connection, pid: i32, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        let state = backend_state(watcher, pid).await;
        match state.as_deref() {
            None | Some("idle") => return Ok(()),
            Some(s) if Instant::now() >= deadline => {
                return Err(format!("backend {pid} still {s:?}"));
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// Waits until no backend of the watcher's database runs a query containing `needle`
/// (other than this check); other tests' databases are not looked at.
pub async fn wait_query_gone(
    watcher: &Connection,
    needle: &str,
    within: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        let rows = watcher
            .query(
                "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND datname = current_database() \
                 AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()",
                &[&needle],
            )
            .await
            .expect("read pg_stat_activity");
        if rows.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{} backends still run {needle:?}", rows.len()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A future that is dropped after exactly `polls` polls if it has not finished by then.
pub struct Cancellable<F> {
    inner: Option<Pin<Box<F>>>,
    polls_left: usize,
}

/// What became of a [`Cancellable`] future.
#[derive(Debug)]
pub enum Outcome<T> {
    /// It finished within its polls.
    Done(T),
    /// It was dropped after its last allowed poll.
    Dropped,
}

impl<F: Future> Cancellable<F> {
    /// Wraps `f`, allowing it `polls` polls (0: dropped before it is ever polled).
    pub fn new(f: F, polls: usize) -> Self {
        Cancellable {
            inner: Some(Box::pin(f)),
            polls_left: polls,
        }
    }
}

impl<F: Future> Future for Cancellable<F> {
    type Output = Outcome<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.polls_left == 0 {
            self.inner = None;
            return Poll::Ready(Outcome::Dropped);
        }
        self.polls_left -= 1;
        let fut = self.inner.as_mut().expect("polled after completion");
        match fut.as_mut().poll(cx) {
            Poll::Ready(v) => {
                self.inner = None;
                Poll::Ready(Outcome::Done(v))
            }
            // Polled again only when the inner future asks, so each poll is one real
            // step (a lock hand-off, a socket becoming readable).
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Asserts `err` is the same-task misuse error and names its way out.
pub fn assert_misuse(err: &pgkeel::Error, way_out: &str) {
    assert_eq!(err.kind(), pgkeel::ErrorKind::Misuse, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(way_out),
        "message should say {way_out:?}: {msg}"
    );
}

/// Runs `call` and asserts it fails with Misuse in under 50 ms.
pub async fn misuse_at_once<T: std::fmt::Debug>(
    call: impl std::future::Future<Output = Result<T, pgkeel::Error>>,
    way_out: &str,
) {
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(1), call)
        .await
        .expect("the call waited for its own task instead of failing")
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "took {:?}",
        started.elapsed()
    );
    assert_misuse(&err, way_out);
}
