//! Transactions through the pool: `pool.begin()` commits, rolls back, and rolls back when
//! dropped before anyone else gets the connection; `pool.transaction(..)` keeps each
//! call's state to itself under concurrency (seed 004) and re-runs the closure on
//! serialization failures and deadlocks until both sides commit (seed 003), and only on
//! the errors it is told to.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::common::backend_state;
use pgkeel::{Connection, Error, Pool, Transaction, TransactionStatus};
use pgkeel_testkit::TestDb;
use tokio::sync::Barrier;
use tokio::time::timeout;

/// A whole retry scenario must finish within this.
const SCENARIO: Duration = Duration::from_secs(20);

async fn db_with_table() -> (TestDb, Connection) {
    let (db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (id int4 PRIMARY KEY, txn int8)")
        .await
        .expect("create t");
    (db, conn)
}

/// The ids in `t`, in order, as seen by `conn`.
async fn ids(conn: &Connection) -> Vec<i32> {
    let rows = conn
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .expect("read t");
    rows.iter().map(|r| r.get::<_, i32>(0)).collect()
}

async fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_one(sql, &[]).await.expect(sql).get(0)
}

// ---------------------------------------------------------------------------------------
// pool.begin()
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn pool_begin_commit_makes_rows_visible_and_returns_the_connection() {
    let (db, watcher) = db_with_table().await;
    let pool = Pool::builder(db.url()).max_size(1).build().unwrap();

    let tx = pool.begin().await.unwrap();
    let pid = tx.connection().backend_pid();
    tx.execute("INSERT INTO t (id) VALUES (1)", &[])
        .await
        .unwrap();
    assert_eq!(ids(&watcher).await, Vec::<i32>::new(), "not before commit");
    assert_eq!(pool.status().in_use, 1);
    tx.commit().await.unwrap();

    assert_eq!(ids(&watcher).await, vec![1]);
    let s = pool.status();
    assert_eq!((s.in_use, s.idle), (0, 1), "{s:?}");
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.backend_pid(), pid);
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
}

#[tokio::test]
async fn pool_begin_rollback_discards_rows_and_returns_the_connection() {
    let (db, watcher) = db_with_table().await;
    let pool = Pool::builder(db.url()).max_size(1).build().unwrap();

    let tx = pool.begin().await.unwrap();
    let pid = tx.connection().backend_pid();
    tx.execute("INSERT INTO t (id) VALUES (1)", &[])
        .await
        .unwrap();
    let inside = tx.query("SELECT id FROM t", &[]).await.unwrap();
    assert_eq!(inside.len(), 1, "the transaction sees its own row");
    tx.rollback().await.unwrap();

    assert_eq!(ids(&watcher).await, Vec::<i32>::new());
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.backend_pid(), pid);
    assert_eq!(ids(&conn).await, Vec::<i32>::new());
    assert!(pool.status().adds_up());
}

#[tokio::test]
async fn a_dropped_pool_transaction_rolls_back_before_the_next_borrower_gets_the_backend() {
    let (db, watcher) = db_with_table().await;
    let pool = Pool::builder(db.url()).max_size(1).build().unwrap();

    for round in 0..3 {
        let tx = pool.begin().await.unwrap();
        let pid = tx.connection().backend_pid();
        tx.execute("INSERT INTO t (id) VALUES ($1)", &[&round])
            .await
            .unwrap();
        assert_eq!(
            backend_state(&watcher, pid).await.as_deref(),
            Some("idle in transaction")
        );
        drop(tx);

        // No await since the drop: this checkout must wait for the rollback.
        let next = pool.get().await.unwrap();
        assert_eq!(next.backend_pid(), pid, "round {round}: the same backend");
        assert_eq!(next.transaction_status(), TransactionStatus::Idle);
        assert_eq!(ids(&next).await, Vec::<i32>::new(), "round {round}");
        assert_eq!(backend_state(&watcher, pid).await.as_deref(), Some("idle"));
    }
    let s = pool.status();
    assert_eq!((s.connects, s.evicted_broken), (1, 0), "{s:?}");
    assert!(s.adds_up(), "{s:?}");
}

#[tokio::test]
async fn a_pool_transaction_dropped_mid_query_evicts_its_connection() {
    let (db, watcher) = db_with_table().await;
    let pool = Pool::builder(db.url())
        .max_size(1)
        .abandon_policy(pgkeel::pool::AbandonPolicy::Evict)
        .build()
        .unwrap();

    // Timed out on one statement, then the guard dropped.
    let tx = pool.begin().await.unwrap();
    let first = tx.connection().backend_pid();
    tx.execute("INSERT INTO t (id) VALUES (1)", &[])
        .await
        .unwrap();
    let slow = tx.query("SELECT pg_sleep(5)", &[]);
    assert!(timeout(Duration::from_millis(50), slow).await.is_err());
    assert!(tx.connection().is_broken());
    drop(tx);
    let s = pool.status();
    assert_eq!((s.evicted_broken, s.cancels_sent), (1, 1), "{s:?}");

    // The whole unit of work dropped by a timeout.
    let pool2 = pool.clone();
    let work = async move {
        let tx = pool2.begin().await?;
        tx.execute("INSERT INTO t (id) VALUES (2)", &[]).await?;
        let pid = tx.connection().backend_pid();
        tx.query("SELECT pg_sleep(5)", &[]).await?;
        Ok::<i32, Error>(pid)
    };
    // Long enough for the slot of the first connection to come free (once its backend
    // is gone) and a new one to open, short of the 5 s sleep.
    assert!(timeout(Duration::from_millis(1500), work).await.is_err());
    let s = pool.status();
    assert_eq!((s.evicted_broken, s.cancels_sent), (2, 2), "{s:?}");

    let conn = pool.get().await.unwrap();
    assert_ne!(conn.backend_pid(), first);
    assert_eq!(ids(&conn).await, Vec::<i32>::new(), "both were rolled back");
    assert_eq!(pool.status().connects, 3);
    let deadline = Instant::now() + Duration::from_secs(1);
    while backend_state(&watcher, first).await.is_some() {
        assert!(Instant::now() < deadline, "backend {first} is still there");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Seed 004: concurrent pool.transaction calls keep their state to themselves
// ---------------------------------------------------------------------------------------

/// The closure body shared by every task: insert a row tagged with this transaction's
/// id, then read back what this transaction wrote; all on one backend.
async fn insert_and_read_back(tx: &mut Transaction, id: i32) -> Result<i32, Error> {
    let pid: i32 = tx.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
    tx.execute(
        "INSERT INTO t (id, txn) VALUES ($1, txid_current())",
        &[&id],
    )
    .await?;
    let mine = tx
        .query("SELECT id FROM t WHERE txn = txid_current()", &[])
        .await?;
    let mine: Vec<i32> = mine.iter().map(|r| r.get(0)).collect();
    assert_eq!(mine, vec![id], "task {id} saw another transaction's rows");
    let own = tx
        .query_one("SELECT id FROM t WHERE id = $1", &[&id])
        .await?;
    assert_eq!(own.get::<_, i32>(0), id);
    let again: i32 = tx.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
    assert_eq!(
        pid, again,
        "task {id} moved between backends mid-transaction"
    );
    Ok(id)
}

/// Runs `n` concurrent `pool.transaction` calls with ids from `first`.
async fn run_concurrently(pool: &Pool, first: i32, n: i32) {
    let tasks: Vec<_> = (first..first + n)
        .map(|id| {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.transaction(async move |tx| insert_and_read_back(tx, id).await)
                    .await
            })
        })
        .collect();
    for (task, id) in tasks.into_iter().zip(first..) {
        let got = task.await.expect("task panicked");
        assert_eq!(got.unwrap_or_else(|e| panic!("task {id}: {e}")), id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pool_transactions_never_see_each_others_state() {
    let (db, watcher) = db_with_table().await;
    let pool = Pool::builder(db.url()).max_size(10).build().unwrap();
    run_concurrently(&pool, 0, 10).await;
    assert_eq!(count(&watcher, "SELECT count(*) FROM t").await, 10);

    let small = Pool::builder(db.url()).max_size(4).build().unwrap();
    let started = Instant::now();
    run_concurrently(&small, 1000, 1000).await;
    eprintln!(
        "1000 transactions on 4 connections: {:?}",
        started.elapsed()
    );
    assert_eq!(count(&watcher, "SELECT count(*) FROM t").await, 1010);
    assert_eq!(
        count(&watcher, "SELECT count(DISTINCT txn) FROM t").await,
        1010
    );
    for p in [&pool, &small] {
        let s = p.status();
        assert!(s.adds_up(), "{s:?}");
        assert_eq!((s.in_use, s.waiting, s.evicted_broken), (0, 0, 0), "{s:?}");
        assert_eq!(s.transaction_retries, 0, "{s:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Seed 003: retries on serialization failures and deadlocks
// ---------------------------------------------------------------------------------------

/// Runs `body(tx, side, attempt)` for sides 0 and 1 concurrently through
/// `pool.transaction`; returns how often the closures ran in all.
async fn two_sides<B>(pool: &Pool, body: B) -> u32
where
    B: Fn(&mut Transaction, i32, u32) -> futures::future::BoxFuture<'_, Result<(), Error>>
        + Send
        + Sync
        + Copy
        + 'static,
{
    let runs = Arc::new(AtomicU32::new(0));
    let sides: Vec<_> = (0..2)
        .map(|side| {
            let (pool, runs) = (pool.clone(), runs.clone());
            tokio::spawn(async move {
                let mut attempt = 0;
                pool.transaction(async move |tx| {
                    attempt += 1;
                    runs.fetch_add(1, Ordering::SeqCst);
                    body(tx, side, attempt).await
                })
                .await
            })
        })
        .collect();
    for (side, task) in sides.into_iter().enumerate() {
        let result = timeout(SCENARIO, task).await.expect("scenario hung");
        if let Err(e) = result.expect("side panicked") {
            panic!("side {side} did not commit: {e} ({:?})", e.code());
        }
    }
    runs.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serialization_failures_are_retried_until_both_sides_commit() {
    let (db, watcher) = common::db().await;
    watcher
        .batch_execute(
            "CREATE TABLE doctors (id int4 PRIMARY KEY, on_call bool NOT NULL);
             INSERT INTO doctors VALUES (0, true), (1, true)",
        )
        .await
        .unwrap();
    let pool = Pool::builder(db.url()).max_size(2).build().unwrap();
    static BARRIER: std::sync::OnceLock<Barrier> = std::sync::OnceLock::new();
    BARRIER.get_or_init(|| Barrier::new(2));

    // Write skew: each side reads both rows, then takes itself off call.
    let runs = two_sides(&pool, |tx, side, attempt| {
        Box::pin(async move {
            tx.batch_execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                .await?;
            tx.query_one("SELECT count(*) FROM doctors WHERE on_call", &[])
                .await?;
            if attempt == 1 {
                // Both have read before either writes: one of them cannot commit.
                BARRIER.get().unwrap().wait().await;
            }
            tx.execute("UPDATE doctors SET on_call = false WHERE id = $1", &[&side])
                .await?;
            Ok(())
        })
    })
    .await;

    assert!(runs > 2, "no side was retried ({runs} runs)");
    let s = pool.status();
    assert!(s.transaction_retries > 0, "{s:?}");
    assert_eq!(s.transaction_retries as u32, runs - 2, "{s:?}");
    assert_eq!(
        count(&watcher, "SELECT count(*) FROM doctors WHERE NOT on_call").await,
        2,
        "both sides committed"
    );
    assert!(s.adds_up(), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlocks_are_retried_until_both_sides_commit() {
    let (db, watcher) = common::db().await;
    watcher
        .batch_execute(
            "CREATE TABLE r (id int4 PRIMARY KEY, v int4 NOT NULL);
             INSERT INTO r VALUES (0, 0), (1, 0)",
        )
        .await
        .unwrap();
    let pool = Pool::builder(db.url()).max_size(2).build().unwrap();
    static BARRIER: std::sync::OnceLock<Barrier> = std::sync::OnceLock::new();
    BARRIER.get_or_init(|| Barrier::new(2));

    // Side 0 locks row 0 then row 1, side 1 the other way round.
    let runs = two_sides(&pool, |tx, side, attempt| {
        Box::pin(async move {
            tx.batch_execute("SET LOCAL deadlock_timeout = '50ms'")
                .await?;
            let bump = "UPDATE r SET v = v + 1 WHERE id = $1";
            tx.execute(bump, &[&side]).await?;
            if attempt == 1 {
                // Each holds its first row before either asks for its second.
                BARRIER.get().unwrap().wait().await;
            }
            tx.execute(bump, &[&(1 - side)]).await?;
            Ok(())
        })
    })
    .await;

    assert!(runs > 2, "no side was retried ({runs} runs)");
    let s = pool.status();
    assert!(s.transaction_retries > 0, "{s:?}");
    assert_eq!(s.transaction_retries as u32, runs - 2, "{s:?}");
    assert_eq!(
        count(&watcher, "SELECT sum(v)::int8 FROM r WHERE v = 2").await,
        4,
        "each row bumped once by each side"
    );
    assert!(s.adds_up(), "{s:?}");
    assert_eq!(s.rollbacks_on_return, 0, "{s:?}");
}

// ---------------------------------------------------------------------------------------
// What is not retried, and retry_codes
// ---------------------------------------------------------------------------------------

/// Runs a transaction that inserts the existing id 1; returns its error and the runs.
async fn duplicate_insert(pool: &Pool) -> (Error, u32) {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let err = pool
        .transaction(async move |tx| {
            counter.fetch_add(1, Ordering::SeqCst);
            tx.execute("INSERT INTO t (id) VALUES (1)", &[]).await
        })
        .await
        .expect_err("a duplicate key");
    (err, runs.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_non_retryable_error_is_returned_after_exactly_one_attempt() {
    let (db, watcher) = db_with_table().await;
    watcher
        .batch_execute("INSERT INTO t (id) VALUES (1)")
        .await
        .unwrap();
    let pool = Pool::builder(db.url()).max_size(1).build().unwrap();

    let (err, runs) = duplicate_insert(&pool).await;
    assert_eq!(err.code(), Some("23505"), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(runs, 1);
    let s = pool.status();
    assert_eq!(s.transaction_retries, 0, "{s:?}");
    // The failed transaction was rolled back: the connection is clean and kept.
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
    assert_eq!(pool.status().connects, 1);
}

#[tokio::test]
async fn retry_codes_make_an_error_retried_up_to_max_attempts() {
    let (db, watcher) = db_with_table().await;
    watcher
        .batch_execute("INSERT INTO t (id) VALUES (1)")
        .await
        .unwrap();
    let pool = Pool::builder(db.url())
        .max_size(1)
        .retry_codes(&["23505"])
        .max_attempts(3)
        .retry_delays(Duration::from_millis(1), Duration::from_millis(5))
        .build()
        .unwrap();

    let (err, runs) = duplicate_insert(&pool).await;
    assert_eq!(err.code(), Some("23505"), "the last attempt's error: {err}");
    assert_eq!(runs, 3);
    let s = pool.status();
    assert_eq!(s.transaction_retries, 2, "{s:?}");
    assert_eq!(ids(&watcher).await, vec![1]);
    assert!(s.adds_up(), "{s:?}");
}
