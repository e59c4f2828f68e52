//! The wire's ledger under the paths real deployments walk: queued Closes everywhere
//! (a one-statement cache), abandoned exchanges recovered or evicted, COPY reached
//! through a plain call, long pipelined runs with large answers, stale statements.

use std::time::Duration;

use crate::common::{self, Cancellable, Outcome};
use pgkeel::pool::AbandonPolicy;
use pgkeel::{Connection, ErrorKind, Pool};
use pgkeel_testkit::TestDb;

/// A pool of one connection with a one-statement cache and the Recover policy.
fn recovering_pool(db: &TestDb) -> Pool {
    Pool::builder(common::with_param(&db.url(), "statement_cache_capacity=1"))
        .max_size(1)
        .abandon_policy(AbandonPolicy::Recover)
        .build()
        .unwrap()
}

/// Runs two texts through a one-statement cache: the first one's Close is queued.
async fn queue_a_close(conn: &Connection) {
    conn.query_one("SELECT $1::int8 + 1", &[&1i64])
        .await
        .unwrap();
    conn.query_one("SELECT $1::int8 * 2", &[&1i64])
        .await
        .unwrap();
}

/// A connection whose cache holds one statement: every new SQL text queues a Close.
async fn tiny_cache(db: &TestDb) -> Connection {
    Connection::connect(common::with_param(&db.url(), "statement_cache_capacity=1"))
        .await
        .expect("connect")
}

#[tokio::test]
async fn recovered_connection_after_a_dropped_simple_query_with_a_queued_close_returns_its_own_rows()
 {
    let db = TestDb::new();
    let pool = recovering_pool(&db);
    for round in 0..20 {
        {
            let conn = pool.get().await.unwrap();
            queue_a_close(&conn).await;
            let slow = conn.simple_query("SELECT 'theirs', pg_sleep(0.05)");
            let _ = tokio::time::timeout(Duration::from_millis(5), slow).await;
        }
        let conn = pool.get().await.unwrap();
        let mine = format!("mine-{round}");
        let row = conn.query_one("SELECT $1::text", &[&mine]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), mine, "round {round}");
        let rows = conn.simple_query("SELECT 'mine'").await.unwrap();
        assert_eq!(rows.len(), 2, "one row and one completion");
    }
}

/// The same with a query that finishes at once: its whole answer (rows included) is
/// already on its way when the caller drops, and all of it must be read by recovery.
#[tokio::test]
async fn recovery_reads_every_owed_ready_for_query_not_just_the_first() {
    let db = TestDb::new();
    let pool = recovering_pool(&db);
    for polls in 1..4 {
        for round in 0..10 {
            {
                let conn = pool.get().await.unwrap();
                queue_a_close(&conn).await;
                let theirs = conn.simple_query("SELECT 'theirs'");
                if let Outcome::Done(r) = Cancellable::new(theirs, polls).await {
                    r.unwrap();
                }
            }
            let conn = pool.get().await.unwrap();
            let mine = format!("mine-{polls}-{round}");
            let rows = conn
                .simple_query(&format!("SELECT '{mine}'"))
                .await
                .unwrap();
            let got = rows.iter().find_map(|m| match m {
                pgkeel::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            });
            assert_eq!(got.as_deref(), Some(mine.as_str()));
        }
    }
}

/// For every drop point of a query, with and without a queued Close, under both
/// policies: the next exchange on the pooled connection returns exactly its own answer.
#[tokio::test]
async fn next_exchange_after_a_drop_at_every_poll_returns_exactly_its_own_answer() {
    let db = TestDb::new();
    for policy in [AbandonPolicy::Evict, AbandonPolicy::Recover] {
        for close_queued in [false, true] {
            let pool = Pool::builder(common::with_param(&db.url(), "statement_cache_capacity=1"))
                .max_size(1)
                .abandon_policy(policy)
                .build()
                .unwrap();
            for polls in 0..12 {
                let tag = format!("{policy:?}/{close_queued}/{polls}");
                {
                    let conn = pool.get().await.unwrap();
                    if close_queued {
                        conn.query_one("SELECT $1::int4", &[&1i32]).await.unwrap();
                        conn.query_one("SELECT $1::int4 + 0", &[&1i32])
                            .await
                            .unwrap();
                    }
                    let op = async {
                        let simple = conn.simple_query("SELECT 'other', pg_sleep(0.002)");
                        simple.await.map(drop)?;
                        let q = conn.query("SELECT 'other2', pg_sleep(0.002)", &[]);
                        q.await.map(drop)
                    };
                    match Cancellable::new(op, polls).await {
                        Outcome::Done(r) => r.unwrap(),
                        Outcome::Dropped => {}
                    }
                }
                let conn = pool.get().await.unwrap();
                let row = conn.query_one("SELECT $1::text", &[&tag]).await.unwrap();
                assert_eq!(row.get::<_, String>(0), tag);
                assert!(pool.status().adds_up(), "{:?}", pool.status());
            }
        }
    }
}

#[tokio::test]
async fn copy_from_stdin_through_query_with_a_queued_close_is_a_clean_misuse_error() {
    let db = TestDb::new();
    let conn = tiny_cache(&db).await;
    conn.batch_execute("CREATE TABLE t (a int)").await.unwrap();
    conn.query("SELECT $1::int4", &[&1i32]).await.unwrap();
    conn.query("SELECT $1::int4 + 1", &[&1i32]).await.unwrap(); // queues a Close
    let err = conn.query("COPY t FROM STDIN", &[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Misuse, "{err}");
    assert!(!conn.is_broken());
    conn.query("SELECT $1::int4 + 2", &[&1i32]).await.unwrap(); // queues another
    let err = conn.simple_query("COPY t FROM STDIN").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Misuse, "{err}");
    let row = conn
        .query_one("SELECT 41 + $1::int4", &[&1i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
}

/// `INSERT … RETURNING` with large rows: the run reads while it writes, so neither
/// direction of the socket can fill up and stall.
#[tokio::test]
async fn execute_many_returning_large_rows_does_not_stall() {
    let db = TestDb::new();
    for url in [db.url(), common::with_param(&db.url(), "host=127.0.0.1")] {
        let conn = Connection::connect(&url).await.unwrap();
        conn.batch_execute("DROP TABLE IF EXISTS big; CREATE TABLE big (id int8, body text)")
            .await
            .unwrap();
        let body = "x".repeat(32 * 1024);
        let ids: Vec<i64> = (0..2000).collect();
        let params: Vec<[&(dyn pgkeel::ToSql + Sync); 2]> =
            ids.iter().map(|id| [id as _, &body as _]).collect();
        let run = conn.execute_many(
            "INSERT INTO big VALUES ($1, $2) RETURNING body",
            params.iter().map(|p| &p[..]),
        );
        let n = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("execute_many stalled")
            .unwrap();
        assert_eq!(n, 2000);
        let row = conn
            .query_one("SELECT count(*), sum(id) FROM big", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 2000);
    }
}

/// A cached statement made stale by a schema change is prepared afresh by
/// `execute_many` and `query_raw` too, not only by `query`.
#[tokio::test]
async fn stale_cached_statement_is_reprepared_by_execute_many_and_query_raw() {
    use futures::TryStreamExt;
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE s (a int4)").await.unwrap();
    let insert = "INSERT INTO s SELECT * FROM (SELECT $1::int4) x";
    let params: [&(dyn pgkeel::ToSql + Sync); 1] = [&1i32];
    conn.execute_many(insert, [&params[..]]).await.unwrap();
    conn.query("SELECT * FROM s", &[]).await.unwrap();
    conn.batch_execute("ALTER TABLE s ADD COLUMN b text")
        .await
        .unwrap();
    let rows: Vec<_> = conn
        .query_raw("SELECT * FROM s", &[] as pgkeel::Params)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].len(), 2);
    conn.batch_execute("ALTER TABLE s ALTER COLUMN a TYPE int8")
        .await
        .unwrap();
    let n = conn
        .execute_many(insert, [&params[..], &params[..]])
        .await
        .unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn reset_on_return_other_than_discard_all_closes_cached_statements() {
    let (db, watcher) = common::db().await;
    let pool = Pool::builder(db.url())
        .max_size(1)
        .reset_on_return(Some("RESET ALL"))
        .build()
        .unwrap();
    let pid = {
        let conn = pool.get().await.unwrap();
        for i in 0..5i32 {
            let sql = format!("SELECT $1::int4 + {i}");
            conn.query_one(sql.as_str(), &[&i]).await.unwrap();
        }
        conn.backend_pid()
    };
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.backend_pid(), pid);
    let row = conn
        .query_one("SELECT count(*) FROM pg_prepared_statements", &[])
        .await
        .unwrap();
    // Only the statement of this very query is left on the server.
    assert_eq!(row.get::<_, i64>(0), 1);
    drop(watcher);
}

/// A row stream moved to another task works there; that task calling the connection
/// directly gets Misuse at once, and the task that opened it may wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_stream_moved_to_another_task_carries_its_holder_mark() {
    use futures::StreamExt;
    let (_db, conn) = common::db().await;
    let stream = conn
        .query_raw_batched("SELECT generate_series(1, 100)", &[], 10)
        .await
        .unwrap();
    let c2 = conn.clone();
    let (polled, first_polled) = tokio::sync::oneshot::channel();
    let consumer = tokio::spawn(async move {
        let mut stream = stream;
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.get::<_, i32>(0), 1);
        polled.send(()).unwrap();
        common::misuse_at_once(c2.query("SELECT 1", &[]), "stream or COPY first").await;
        let mut n = 1;
        while let Some(row) = stream.next().await {
            row.unwrap();
            n += 1;
        }
        n
    });
    // Once the stream has been used in its new task, this task no longer holds it: it
    // waits its turn, with no false Misuse.
    first_polled.await.unwrap();
    let row = tokio::time::timeout(Duration::from_secs(10), conn.query_one("SELECT 7", &[]))
        .await
        .expect("the old task waits, then runs")
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);
    assert_eq!(consumer.await.unwrap(), 100);
}

/// A row stream sent to another task and back holds the wire where it is used each
/// time: its own task gets Misuse at once, any other task waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_stream_moved_away_and_back_holds_the_wire_where_it_is_used() {
    use futures::StreamExt;
    let (_db, conn) = common::db().await;
    let mut stream = conn
        .query_raw_batched("SELECT generate_series(1, 100)", &[], 10)
        .await
        .unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap().get::<_, i32>(0), 1);
    let c2 = conn.clone();
    let mut stream = tokio::spawn(async move {
        assert_eq!(stream.next().await.unwrap().unwrap().get::<_, i32>(0), 2);
        common::misuse_at_once(c2.query("SELECT 1", &[]), "stream or COPY first").await;
        stream
    })
    .await
    .unwrap();
    // Back in this task: used here again, so this task holds the wire...
    assert_eq!(stream.next().await.unwrap().unwrap().get::<_, i32>(0), 3);
    common::misuse_at_once(conn.query("SELECT 1", &[]), "stream or COPY first").await;
    // ...and the task that held it before waits its turn.
    let c3 = conn.clone();
    let other = tokio::spawn(async move { c3.query_one("SELECT 7", &[]).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !other.is_finished(),
        "another task waits while the stream is open"
    );
    let mut n = 3;
    while let Some(row) = stream.next().await {
        row.unwrap();
        n += 1;
    }
    assert_eq!(n, 100);
    drop(stream);
    let row = tokio::time::timeout(Duration::from_secs(10), other)
        .await
        .expect("the waiting task runs once the stream is done")
        .unwrap()
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);
}

/// `status()` under churn: a snapshot never counts a connection twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_under_churn_always_adds_up_and_stays_within_max_size() {
    let db = TestDb::new();
    let pool = Pool::builder(db.url()).max_size(3).build().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..12 {
        let pool = pool.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let work = async {
                    let conn = pool.get().await?;
                    conn.query_one("SELECT 1", &[]).await.map(drop)
                };
                // Some drop mid-way, so broken connections churn too.
                let limit = Duration::from_micros(if (w + i).is_multiple_of(5) {
                    300
                } else {
                    50_000
                });
                let _ = tokio::time::timeout(limit, work).await;
            }
        }));
    }
    let mut samples = 0;
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < until {
        let s = pool.status();
        assert!(s.adds_up(), "{s:?}");
        assert!(s.size <= s.max_size, "{s:?}");
        samples += 1;
        tokio::task::yield_now().await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert!(samples > 1000, "{samples} samples");
}

#[tokio::test]
async fn lifetimes_and_timeouts_too_long_for_the_clock_do_not_panic() {
    let db = TestDb::new();
    let pool = Pool::builder(db.url())
        .max_lifetime(Some(Duration::MAX))
        .close_timeout(Duration::MAX)
        .build()
        .unwrap();
    pool.query_one("SELECT 1", &[]).await.unwrap();
    pool.close().await;
}

#[tokio::test]
async fn a_panicking_connect_hook_leaves_the_gauges_at_zero() {
    let db = TestDb::new();
    let pool = Pool::builder(db.url())
        .max_size(2)
        .acquire_timeout(Duration::from_secs(5))
        .after_connect(|_| Box::pin(async { panic!("hook panics on purpose") }))
        .build()
        .unwrap();
    assert!(pool.get().await.is_err());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s = pool.status();
    assert_eq!((s.size, s.opening), (0, 0), "{s:?}");
}

/// A transaction dropped just before its runtime shuts down: the rollback task never
/// runs to its end, and the connection must not be left inside the transaction.
#[test]
fn rollback_task_dropped_by_a_runtime_shutdown_breaks_the_connection() {
    let db = TestDb::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (conn, pid) = rt.block_on(async {
        let conn = Connection::connect(db.url()).await.unwrap();
        let pid = conn.backend_pid();
        let tx = conn.transaction().await.unwrap();
        tx.execute("CREATE TABLE left_behind (a int)", &[])
            .await
            .unwrap();
        drop(tx); // spawns the rollback, which never gets to run
        (conn, pid)
    });
    rt.shutdown_background();
    assert!(
        conn.is_broken() || conn.transaction_status() == pgkeel::TransactionStatus::Idle,
        "a connection left inside a transaction must be broken"
    );
    drop(conn);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let watcher = Connection::connect(db.url()).await.unwrap();
        common::wait_quiet(&watcher, pid, Duration::from_secs(5))
            .await
            .unwrap();
        let row = watcher
            .query_one("SELECT to_regclass('left_behind') IS NULL", &[])
            .await
            .unwrap();
        assert!(
            row.get::<_, bool>(0),
            "the transaction must not have committed"
        );
    });
}

/// A query that keeps a CPU busy for seconds (with JIT compilation first).
const HEAVY: &str = "SELECT count(*) FROM generate_series(1, 400000000) g WHERE g % 7 = $1";

/// A pool of `max_size` whose connections JIT-compile every query, so the window between
/// the messages of an exchange is long and a first cancel can be dropped.
fn jit_pool(db: &TestDb, max_size: usize) -> Pool {
    Pool::builder(db.url())
        .max_size(max_size)
        .after_connect(|c| {
            Box::pin(async move {
                c.batch_execute(
                    "SET jit = on; SET jit_above_cost = 0; SET jit_optimize_above_cost = 0",
                )
                .await
            })
        })
        .build()
        .unwrap()
}

/// A CPU-heavy query (JIT on, so the window between the messages of its exchange is
/// long) dropped after 1, 5 and 15 ms: repeated cancels stop it within a second, and
/// the pool's slot is freed only once its backend is gone, so the server never runs
/// more backends than `max_size` (plus a short-lived cancel connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_heavy_query_dropped_early_stops_and_backends_stay_within_max_size() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    let (db, watcher) = common::db().await;
    let pool = jit_pool(&db, 2);
    let most = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (most, stop) = (most.clone(), stop.clone());
        let watcher = common::connect(&db).await;
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let row = watcher
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                         AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                        &[],
                    )
                    .await
                    .unwrap();
                most.fetch_max(row.get::<_, i64>(0), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    for ms in [1u64, 5, 15, 1, 5, 15] {
        let conn = pool.get().await.unwrap();
        let pid = conn.backend_pid();
        let q = conn.query_one(HEAVY, &[&3i64]);
        let r = tokio::time::timeout(Duration::from_millis(ms), q).await;
        assert!(r.is_err(), "the heavy query finished within {ms} ms");
        drop(conn);
        let t0 = std::time::Instant::now();
        common::wait_quiet(&watcher, pid, Duration::from_secs(1))
            .await
            .unwrap_or_else(|e| panic!("dropped after {ms} ms: {e} after {:?}", t0.elapsed()));
    }
    // The next checkouts open new backends only once the old ones are gone.
    for _ in 0..4 {
        pool.query_one("SELECT 1", &[]).await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    monitor.await.unwrap();
    // One watcher is excluded by the query itself; the main watcher is the +1.
    let most = most.load(Ordering::Relaxed);
    assert!(most <= 2 + 1, "saw {most} client backends with max_size 2");
    assert_eq!(pool.status().backends_lingering, 0);
}

/// The default policy on a direct connection recovers an abandoned CPU-heavy query (JIT
/// on, so a first cancel can land between the messages of its exchange and be dropped):
/// the cancel is repeated until the query stops, the same backend is handed out again,
/// and no repeated cancel ever hits the queries that follow on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_policy_recovers_a_heavy_query_and_repeated_cancels_hit_nothing_after_it() {
    let (db, watcher) = common::db().await;
    let pool = jit_pool(&db, 1);
    let first = pool.get().await.unwrap().backend_pid();
    let rounds = 24i64;
    for round in 0..rounds {
        let ms = [1u64, 3, 5, 10, 15, 25][round as usize % 6];
        let conn = pool.get().await.unwrap();
        let q = conn.query_one(HEAVY, &[&3i64]);
        assert!(
            tokio::time::timeout(Duration::from_millis(ms), q)
                .await
                .is_err()
        );
        drop(conn);
        let t0 = std::time::Instant::now();
        // The next queries wait for the recovery and then run on the same backend; a
        // late cancel would fail one of them with 57014.
        for k in 0..5i64 {
            let row = pool
                .query_one("SELECT $1::int8, pg_backend_pid()", &[&(round * 10 + k)])
                .await
                .unwrap_or_else(|e| {
                    panic!("round {round} (dropped after {ms} ms), query {k}: {e}")
                });
            assert_eq!(row.get::<_, i64>(0), round * 10 + k);
            assert_eq!(
                row.get::<_, i32>(1),
                first,
                "the connection was recovered, not replaced"
            );
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "round {round}: recovery took {:?}",
            t0.elapsed()
        );
        common::wait_quiet(&watcher, first, Duration::from_secs(1))
            .await
            .unwrap();
    }
    let s = pool.status();
    assert_eq!(
        (s.recovered, s.evicted_broken, s.connects),
        (rounds as u64, 0, 1),
        "{s:?}"
    );
}

/// Under the Recover policy the pool's other return rules still hold: the reset runs on
/// a recovered connection, and a clone the user kept is detected.
#[tokio::test]
async fn recover_policy_keeps_the_other_return_rules() {
    let db = TestDb::new();
    let pool = Pool::builder(db.url())
        .max_size(1)
        .abandon_policy(AbandonPolicy::Recover)
        .reset_on_return(Some("RESET ALL"))
        .build()
        .unwrap();
    let pid = {
        let conn = pool.get().await.unwrap();
        conn.batch_execute("SET work_mem = '7MB'").await.unwrap();
        let slow = conn.query("SELECT pg_sleep(0.2)", &[]);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), slow)
                .await
                .is_err()
        );
        conn.backend_pid()
    };
    {
        let conn = pool.get().await.unwrap();
        assert_eq!(conn.backend_pid(), pid, "recovered, not replaced");
        let row = conn
            .query_one("SELECT current_setting('work_mem')", &[])
            .await
            .unwrap();
        assert_eq!(
            row.get::<_, String>(0),
            "4MB",
            "the reset ran after recovery"
        );
    }
    assert_eq!(pool.status().recovered, 1, "{:?}", pool.status());
    let kept = {
        let conn = pool.get().await.unwrap();
        (*conn).clone()
    };
    let s = pool.status();
    assert_eq!(s.evicted_cloned_out, 1, "{s:?}");
    // The pool closes it in the background.
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while !kept.is_closed() {
        assert!(
            std::time::Instant::now() < until,
            "the kept clone was not closed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
