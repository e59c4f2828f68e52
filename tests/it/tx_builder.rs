//! Transaction options, each proved against the server: `Connection::build_transaction`
//! and `Pool::build_transaction` (isolation level, read only, deferrable, attempts,
//! backoff); re-runs counted on forced and on real serialization failures; a
//! `pool.transaction` future dropped by a timeout leaves the pool clean.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use pgkeel::{Error, ErrorKind, IsolationLevel, Pool, Transaction, TransactionStatus};
use tokio::sync::Barrier;
use tokio::time::timeout;

/// Fails the transaction with SQLSTATE 40001, as a serialization failure would.
const FORCE_40001: &str =
    "DO $$ BEGIN RAISE EXCEPTION 'forced' USING ERRCODE = 'serialization_failure'; END $$";

async fn setting(tx: &Transaction, name: &str) -> String {
    let row = tx.query_one(&format!("SHOW {name}"), &[]).await.unwrap();
    row.get(0)
}

async fn pool_with_table() -> (pgkeel_testkit::TestDb, pgkeel::Connection, Pool) {
    let (db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (id int4 PRIMARY KEY, v int4 NOT NULL DEFAULT 0)")
        .await
        .unwrap();
    let pool = Pool::builder(db.url()).max_size(2).build().unwrap();
    (db, conn, pool)
}

#[tokio::test]
async fn connection_builder_options_reach_the_server() {
    let (_db, conn) = common::db().await;
    let levels = [
        (IsolationLevel::ReadCommitted, "read committed"),
        (IsolationLevel::RepeatableRead, "repeatable read"),
        (IsolationLevel::Serializable, "serializable"),
    ];
    for (level, shown) in levels {
        let tx = conn
            .build_transaction()
            .isolation_level(level)
            .start()
            .await
            .unwrap();
        assert_eq!(setting(&tx, "transaction_isolation").await, shown);
        assert_eq!(setting(&tx, "transaction_read_only").await, "off");
        tx.commit().await.unwrap();
    }
    let tx = conn
        .build_transaction()
        .isolation_level(IsolationLevel::Serializable)
        .read_only(true)
        .deferrable(true)
        .start()
        .await
        .unwrap();
    assert_eq!(setting(&tx, "transaction_read_only").await, "on");
    assert_eq!(setting(&tx, "transaction_deferrable").await, "on");
    let err = tx
        .execute("CREATE TABLE nope (x int)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("25006"), "{err}");
}

#[tokio::test]
async fn deferrable_without_serializable_read_only_is_refused_before_anything_runs() {
    let (_db, conn) = common::db().await;
    let refused = [
        conn.build_transaction().deferrable(true),
        conn.build_transaction().deferrable(true).read_only(true),
        conn.build_transaction()
            .deferrable(true)
            .isolation_level(IsolationLevel::Serializable),
        conn.build_transaction()
            .deferrable(true)
            .read_only(false)
            .isolation_level(IsolationLevel::Serializable),
    ];
    for builder in refused {
        let sql = builder.begin_sql();
        let err = builder.start().await.expect_err(&sql);
        assert_eq!(err.kind(), ErrorKind::Config, "{sql}: {err}");
        assert!(err.to_string().contains("deferrable"), "{err}");
    }
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
    // NOT DEFERRABLE is what PostgreSQL does anyway: accepted with any options.
    let tx = conn
        .build_transaction()
        .deferrable(false)
        .start()
        .await
        .unwrap();
    assert_eq!(setting(&tx, "transaction_deferrable").await, "off");
}

#[tokio::test]
async fn pool_builder_options_reach_the_server() {
    let (_db, _conn, pool) = pool_with_table().await;
    let shown = pool
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .run(async |tx| {
            let level = setting(tx, "transaction_isolation").await;
            let ro = setting(tx, "transaction_read_only").await;
            Ok((level, ro))
        })
        .await
        .unwrap();
    assert_eq!(shown, ("repeatable read".to_owned(), "off".to_owned()));

    let runs = AtomicU32::new(0);
    let err = pool
        .build_transaction()
        .read_only(true)
        .run(async |tx| {
            runs.fetch_add(1, Ordering::SeqCst);
            tx.execute("INSERT INTO t (id) VALUES (1)", &[]).await
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("25006"), "{err}");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "25006 is not retried");

    let deferred = pool
        .build_transaction()
        .isolation_level(IsolationLevel::Serializable)
        .read_only(true)
        .deferrable(true)
        .run(async |tx| Ok(setting(tx, "transaction_deferrable").await))
        .await
        .unwrap();
    assert_eq!(deferred, "on");

    let err = pool
        .build_transaction()
        .deferrable(true)
        .run(async |_tx| Ok(()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let tx = pool
        .build_transaction()
        .read_only(true)
        .begin()
        .await
        .unwrap();
    assert_eq!(setting(&tx, "transaction_read_only").await, "on");
}

/// Runs a transaction that always fails with 40001; returns the runs and the error.
async fn always_40001(pool: &Pool, attempts: u32, backoff: Duration) -> (u32, Error, Duration) {
    let runs = AtomicU32::new(0);
    let started = Instant::now();
    let err = pool
        .build_transaction()
        .attempts(attempts)
        .backoff(backoff, backoff)
        .run(async |tx| {
            runs.fetch_add(1, Ordering::SeqCst);
            tx.execute("INSERT INTO t (id) VALUES (1)", &[]).await?;
            tx.batch_execute(FORCE_40001).await
        })
        .await
        .unwrap_err();
    (runs.into_inner(), err, started.elapsed())
}

#[tokio::test]
async fn attempts_bound_the_runs_and_backoff_spaces_them() {
    let (_db, conn, pool) = pool_with_table().await;
    let (runs, err, fast) = always_40001(&pool, 11, Duration::ZERO).await;
    assert_eq!(runs, 11);
    assert_eq!(err.code(), Some("40001"), "{err}");
    assert!(err.is_retryable());
    assert_eq!(pool.status().transaction_retries, 10);

    // Full jitter: each delay is uniform in [0, 200 ms); ten of them summing under
    // 200 ms has a probability of 1/10! (about 3e-7).
    let (runs, _, slow) = always_40001(&pool, 11, Duration::from_millis(200)).await;
    assert_eq!(runs, 11);
    assert!(slow >= Duration::from_millis(200), "{slow:?}");
    assert!(slow < Duration::from_secs(10), "{slow:?}");
    assert!(fast < slow, "no backoff {fast:?}, backoff {slow:?}");

    let (runs, _, _) = always_40001(&pool, 1, Duration::ZERO).await;
    assert_eq!(runs, 1, "attempts(1): no retry");
    let n: i64 = conn
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "every attempt rolled back");

    let err = pool
        .build_transaction()
        .attempts(0)
        .run(async |_tx| Ok(()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_serializable_transactions_retry_until_both_commit() {
    let (_db, conn, pool) = pool_with_table().await;
    conn.batch_execute("INSERT INTO t (id) VALUES (1), (2)")
        .await
        .unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    let barrier = Arc::new(Barrier::new(2));
    let sides: Vec<_> = [1, 2]
        .into_iter()
        .map(|side: i32| {
            let (pool, runs, barrier) = (pool.clone(), runs.clone(), barrier.clone());
            tokio::spawn(async move {
                let mut attempt = 0;
                // `async move`: a closure that borrows the task's locals is not yet
                // provably Send in a spawned task (a rustc limitation).
                pool.build_transaction()
                    .isolation_level(IsolationLevel::Serializable)
                    .attempts(10)
                    .backoff(Duration::from_millis(1), Duration::from_millis(20))
                    .run(async move |tx| {
                        attempt += 1;
                        runs.fetch_add(1, Ordering::SeqCst);
                        // Write skew: each reads both rows, then writes its own.
                        let sum: i64 = tx
                            .query_one("SELECT sum(v)::int8 FROM t", &[])
                            .await?
                            .get(0);
                        if attempt == 1 {
                            barrier.wait().await; // both have read before either writes
                        }
                        let v = sum as i32 + 1;
                        tx.execute("UPDATE t SET v = $1 WHERE id = $2", &[&v, &side])
                            .await
                    })
                    .await
            })
        })
        .collect();
    for side in sides {
        let done = timeout(Duration::from_secs(20), side).await.expect("hung");
        done.unwrap().unwrap();
    }
    // One side failed with 40001 and ran again after the other committed.
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(pool.status().transaction_retries, 1);
    let v: Vec<i32> = conn
        .query("SELECT v FROM t ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(v == [1, 2] || v == [2, 1], "serial order: {v:?}");
}

/// Waits until the pool has no connection checked out, being returned or closing.
async fn settled(pool: &Pool) -> pgkeel::pool::Status {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = pool.status();
        if (s.in_use, s.returning, s.draining) == (0, 0, 0) || Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_transaction_closure_dropped_by_a_timeout_leaves_the_pool_clean() {
    let (_db, conn, pool) = pool_with_table().await;
    // Dropped between statements (the closure awaits something else): rolled back.
    let between = timeout(
        Duration::from_millis(300),
        pool.transaction(async |tx| {
            tx.execute("INSERT INTO t (id) VALUES (1)", &[]).await?;
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        }),
    )
    .await;
    assert!(between.is_err(), "timed out");
    // Dropped mid-statement: the server cancels the statement.
    let mid = timeout(
        Duration::from_millis(300),
        pool.transaction(async |tx| {
            tx.execute("INSERT INTO t (id) VALUES (2)", &[]).await?;
            tx.execute("SELECT pg_sleep(30)", &[]).await
        }),
    )
    .await;
    assert!(mid.is_err(), "timed out");

    let s = settled(&pool).await;
    assert_eq!((s.in_use, s.returning, s.draining), (0, 0, 0), "{s:?}");
    assert!(s.adds_up(), "{s:?}");
    // The first was rolled back by its guard and kept; the second, dropped
    // mid-exchange, was recovered (the default on a direct connection: its query
    // cancelled, its answer drained, its transaction rolled back) or, in pooler mode,
    // evicted (its backend cancelled and closed).
    assert_eq!(
        (s.evicted_broken + s.recovered, s.backends_lingering),
        (1, 0),
        "{s:?}"
    );
    for _ in 0..2 {
        let c = pool.get().await.unwrap();
        assert_eq!(c.transaction_status(), TransactionStatus::Idle);
        let n: i64 = c
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "nothing of either dropped transaction is visible");
    }
    let in_tx: i64 = conn
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND state LIKE 'idle in transaction%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_tx, 0, "no backend left inside a transaction");
}
