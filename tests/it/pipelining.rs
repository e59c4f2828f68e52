//! Pipelining across tasks: calls of many tasks on one `Connection` share writes and
//! reads, and each still gets exactly its own answer, under timeouts too.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pgkeel::{Connection, ErrorKind};

/// Bounds a whole test: a lost wake-up shows up as a failure here.
const LIMIT: Duration = Duration::from_secs(60);

async fn join_within_limit(tasks: Vec<tokio::task::JoinHandle<()>>) {
    let all = async {
        for t in tasks {
            t.await.expect("a task panicked");
        }
    };
    tokio::time::timeout(LIMIT, all).await.expect("a hang");
}

/// Warms the statement cache, so later calls can go through the pipeline.
async fn warm(conn: &Connection, sql: &str, params: &[&(dyn pgkeel::ToSql + Sync)]) {
    conn.query(sql, params).await.expect("warm-up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_of_thirty_two_tasks_share_writes_and_each_gets_its_own_rows() {
    thirty_two_tasks_share_writes().await;
}

/// The same on a single-threaded runtime, where the other tasks run only while the leader
/// waits or pauses.
#[tokio::test]
async fn calls_of_thirty_two_tasks_share_writes_on_a_single_threaded_runtime() {
    thirty_two_tasks_share_writes().await;
}

async fn thirty_two_tasks_share_writes() {
    let (_db, conn) = common::db().await;
    let sql = "SELECT $1::int8, repeat('x', $2::int4)";
    warm(&conn, sql, &[&0i64, &1i32]).await;
    let before = conn.pipeline_counts();
    let tasks = (0..32i64)
        .map(|task| {
            let conn = conn.clone();
            tokio::spawn(async move {
                for i in 0..300i64 {
                    let n = task * 1_000_000 + i;
                    let len = (n % 97) as i32;
                    let row = conn.query_one(sql, &[&n, &len]).await.expect("query");
                    assert_eq!(row.get::<_, i64>(0), n, "task {task} got another's row");
                    assert_eq!(row.get::<_, String>(1).len(), len as usize);
                }
            })
        })
        .collect();
    join_within_limit(tasks).await;
    let after = conn.pipeline_counts();
    let calls = after.calls - before.calls;
    let writes = after.writes - before.writes;
    println!("{calls} pipelined calls in {writes} writes");
    // With a one-statement cache, the statement is sometimes evicted (the type
    // catalogue's own queries take the slot) and prepared again under the lock.
    let tiny_cache = std::env::var_os("PGKEEL_TEST_STATEMENT_CACHE").is_some();
    assert!(
        calls == 32 * 300 || (tiny_cache && calls > 0),
        "every call went through the pipeline: {calls}"
    );
    assert!(
        writes < calls,
        "calls of different tasks shared writes ({calls} calls, {writes} writes)"
    );
    assert!(!conn.is_broken());
}

/// Random client-side timeouts while 32 tasks share one connection: no call ever gets
/// another's rows, none fails with 57014 unless it was the one abandoned, and the
/// connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_timeouts_never_cross_answers_or_cancel_an_innocent_call() {
    let (_db, conn) = common::db().await;
    let sql = "SELECT $1::int8, pg_sleep($2::float8)";
    warm(&conn, sql, &[&0i64, &0.0f64]).await;
    let ok = Arc::new(AtomicU64::new(0));
    let timed_out = Arc::new(AtomicU64::new(0));
    let tasks = (0..32i64)
        .map(|task| {
            let conn = conn.clone();
            let (ok, timed_out) = (ok.clone(), timed_out.clone());
            tokio::spawn(async move {
                for i in 0..60i64 {
                    let n = task * 1_000_000 + i;
                    // Some calls sleep on the server; some time out on the client.
                    let sleep = if (n * 7919) % 50 == 0 { 0.02 } else { 0.0 };
                    let limit = Duration::from_micros(((n * 104_729) % 100_000) as u64 + 1000);
                    match tokio::time::timeout(limit, conn.query_one(sql, &[&n, &sleep])).await {
                        Ok(Ok(row)) => {
                            assert_eq!(row.get::<_, i64>(0), n, "task {task} got another's row");
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Err(e)) => panic!("task {task} call {i} failed on its own: {e}"),
                        Err(_) => drop(timed_out.fetch_add(1, Ordering::Relaxed)),
                    }
                }
            })
        })
        .collect();
    join_within_limit(tasks).await;
    let (ok, timed_out) = (
        ok.load(Ordering::Relaxed),
        timed_out.load(Ordering::Relaxed),
    );
    println!("{ok} answered, {timed_out} timed out");
    assert!(ok > 0 && timed_out > 0, "both outcomes were exercised");
    let row = tokio::time::timeout(
        Duration::from_secs(10),
        conn.query_one(sql, &[&7i64, &0.0f64]),
    )
    .await
    .expect("the connection serves again")
    .expect("and is not broken");
    assert_eq!(row.get::<_, i64>(0), 7);
}

/// An abandoned call that nobody waits behind is cancelled on the server, and the
/// connection serves the next call as soon as the server has stopped it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_slow_call_alone_is_cancelled_and_the_connection_kept() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let sql = "SELECT pg_sleep($1::float8)";
    warm(&conn, sql, &[&0.0f64]).await;
    let dropped =
        tokio::time::timeout(Duration::from_millis(100), conn.query(sql, &[&60.0f64])).await;
    assert!(dropped.is_err(), "the call timed out");
    let started = Instant::now();
    let one: i32 = tokio::time::timeout(
        Duration::from_secs(10),
        conn.query_one("SELECT 1::int4", &[]),
    )
    .await
    .expect("the abandoned sleep was cancelled, not waited out")
    .expect("the connection was kept")
    .get(0);
    assert_eq!(one, 1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let pid = conn.backend_pid();
    assert_eq!(
        common::backend_state(&watcher, pid).await.as_deref(),
        Some("idle"),
        "the backend is idle, not still sleeping"
    );
}

/// A live call queued behind an abandoned one gets its own answer: the abandoned one
/// is left to finish, never cancelled into the live one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_call_behind_an_abandoned_one_gets_its_answer() {
    let (_db, conn) = common::db().await;
    let sql = "SELECT $1::int8, pg_sleep($2::float8)";
    warm(&conn, sql, &[&0i64, &0.0f64]).await;
    for round in 0..20i64 {
        let a = {
            let conn = conn.clone();
            tokio::spawn(async move {
                let call = conn.query_one(sql, &[&-1i64, &0.2f64]);
                tokio::time::timeout(Duration::from_millis(20), call)
                    .await
                    .is_err()
            })
        };
        tokio::time::sleep(Duration::from_millis(2)).await;
        let row = conn
            .query_one(sql, &[&round, &0.0f64])
            .await
            .expect("the live call");
        assert_eq!(row.get::<_, i64>(0), round);
        assert!(a.await.unwrap(), "the first call was abandoned");
    }
}

/// A call dropped while its request is still queued (another task holds the wire in a
/// transaction) is withdrawn: the server never runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dropped_before_it_was_written_never_runs() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (n int8)").await.unwrap();
    let insert = "INSERT INTO t VALUES ($1::int8)";
    conn.execute(insert, &[&0i64]).await.unwrap();
    let tx = conn.transaction().await.unwrap();
    let queued = {
        let conn = conn.clone();
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_millis(100), conn.execute(insert, &[&1i64]))
                .await
                .is_err()
        })
    };
    assert!(
        queued.await.unwrap(),
        "the call waited behind the transaction and was dropped"
    );
    tx.commit().await.unwrap();
    // Twice: the second call goes through the pipeline, which writes whatever is queued.
    for _ in 0..2 {
        let n: i64 = conn
            .query_one("SELECT count(*) FROM t WHERE n = 1", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "the dropped call never ran");
    }
}

/// Pipelined calls of other tasks never run inside a transaction that holds the wire:
/// each is its own autocommit statement, before or after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_calls_never_run_inside_another_tasks_transaction() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (who text, n int8)")
        .await
        .unwrap();
    let insert = "INSERT INTO t VALUES ($1::text, $2::int8)";
    conn.execute(insert, &[&"warm", &0i64]).await.unwrap();
    let piped = (0..16i64)
        .map(|task| {
            let conn = conn.clone();
            tokio::spawn(async move {
                for i in 0..100i64 {
                    conn.execute(insert, &[&"piped", &(task * 1000 + i)])
                        .await
                        .expect("insert");
                }
            })
        })
        .collect::<Vec<_>>();
    let txs = (0..2)
        .map(|_| {
            let conn = conn.clone();
            tokio::spawn(async move {
                for i in 0..30i64 {
                    let tx = conn.transaction().await.expect("begin");
                    tx.execute(insert, &[&"rolled back", &i])
                        .await
                        .expect("insert in tx");
                    tx.rollback().await.expect("rollback");
                }
            })
        })
        .collect::<Vec<_>>();
    join_within_limit(piped.into_iter().chain(txs).collect()).await;
    let count = |who: &'static str| {
        let conn = conn.clone();
        async move {
            let n: i64 = conn
                .query_one("SELECT count(*) FROM t WHERE who = $1", &[&who])
                .await
                .unwrap()
                .get(0);
            n
        }
    };
    assert_eq!(
        count("piped").await,
        1600,
        "every pipelined insert committed on its own"
    );
    assert_eq!(
        count("rolled back").await,
        0,
        "no pipelined call ran inside a transaction"
    );
}

/// A server error in one pipelined call is that call's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_in_one_pipelined_call_is_its_own() {
    let (_db, conn) = common::db().await;
    let sql = "SELECT 10 / $1::int4";
    warm(&conn, sql, &[&1i32]).await;
    let tasks = (0..16i32)
        .map(|task| {
            let conn = conn.clone();
            tokio::spawn(async move {
                for i in 0..100i32 {
                    let d = (task + i) % 5; // every fifth call divides by zero
                    match conn.query_one(sql, &[&d]).await {
                        Ok(row) => assert_eq!(row.get::<_, i32>(0), 10 / d),
                        Err(e) => {
                            assert_eq!(d, 0, "call {i} of task {task} failed: {e}");
                            assert_eq!(e.code(), Some("22012"));
                        }
                    }
                }
            })
        })
        .collect();
    join_within_limit(tasks).await;
    assert!(!conn.is_broken());
}

/// A statement whose cached plan the server rejects (its table changed) is prepared
/// again, through the pipeline as through the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_cached_statement_is_prepared_again() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (a int4); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let rows = conn.query("SELECT * FROM t", &[]).await.unwrap();
    assert_eq!(rows[0].len(), 1);
    conn.batch_execute("ALTER TABLE t ADD COLUMN b int4")
        .await
        .unwrap();
    let rows = conn
        .query("SELECT * FROM t", &[])
        .await
        .expect("prepared again");
    assert_eq!(rows[0].len(), 2);
    assert!(
        conn.pipeline_counts().calls >= 1,
        "the stale call went through the pipeline"
    );
    let e = conn.query("SELECT * FROM nope", &[]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Db);
}

/// The pool's own query calls may share a checked-out connection when none is idle: 32
/// tasks on a pool of 4 (three of them held) each get their own rows, and no more than
/// 4 backends ever ran; calls queued for a checkout join the lane open on the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_query_calls_share_connections_when_none_is_idle() {
    let (db, watcher) = common::db().await;
    let app = "pool_lanes_share";
    let url = common::with_param(&db.url(), &format!("application_name={app}"));
    let pool = pgkeel::Pool::builder(url.as_str())
        .max_size(4)
        .build()
        .unwrap();
    let sql = "SELECT $1::int8, repeat('y', $2::int4)";
    let tasks = (0..32i64)
        .map(|task| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..200i64 {
                    let n = task * 1_000_000 + i;
                    let len = (n % 50) as i32;
                    let row = pool.query_one(sql, &[&n, &len]).await.expect("query");
                    assert_eq!(row.get::<_, i64>(0), n, "task {task} got another's row");
                    assert_eq!(row.get::<_, String>(1).len(), len as usize);
                }
            })
        })
        .collect();
    join_within_limit(tasks).await;
    let s = pool.status();
    println!(
        "{} of {} calls shared a connection",
        s.shared_calls,
        32 * 200
    );
    assert!(s.adds_up() && s.size <= 4, "{s:?}");
    let backends: i64 = watcher
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .get(0);
    assert!(backends <= 4, "{backends} backends");
}

/// A statement that opens a transaction block never shares a connection: the other
/// tasks' inserts all commit on their own, whatever the BEGIN left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_statement_through_the_pool_never_shares_its_connection() {
    let (db, watcher) = common::db().await;
    watcher
        .batch_execute("CREATE TABLE t (n int8)")
        .await
        .unwrap();
    let pool = pgkeel::Pool::builder(db.url()).max_size(2).build().unwrap();
    let inserts = (0..16i64)
        .map(|task| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..100i64 {
                    pool.execute("INSERT INTO t VALUES ($1::int8)", &[&(task * 1000 + i)])
                        .await
                        .expect("insert");
                }
            })
        })
        .collect::<Vec<_>>();
    let begins = (0..2)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    // Left open: the pool rolls it back on return.
                    pool.execute("BEGIN", &[]).await.expect("begin");
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect::<Vec<_>>();
    join_within_limit(inserts.into_iter().chain(begins).collect()).await;
    let n: i64 = watcher
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1600, "every insert committed, none ran inside a BEGIN");
}

/// Lanes go back to the pool regularly: a caller waiting for a checkout of its own (a
/// transaction) is served while 16 tasks keep the pool's query calls busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_is_not_starved_by_shared_query_calls() {
    let (db, _watcher) = common::db().await;
    let pool = pgkeel::Pool::builder(db.url()).max_size(2).build().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = (0..16)
        .map(|_| {
            let (pool, stop) = (pool.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    pool.query_one("SELECT 1::int4", &[])
                        .await
                        .expect("busy call");
                }
            })
        })
        .collect::<Vec<_>>();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        let started = Instant::now();
        let tx = tokio::time::timeout(Duration::from_secs(5), pool.begin())
            .await
            .expect("the transaction got a connection")
            .unwrap();
        tx.commit().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    stop.store(true, Ordering::Relaxed);
    join_within_limit(busy).await;
}

/// Random timeouts on the pool's shared query calls: no wrong rows, and the pool ends
/// with every connection back, idle, and nothing left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_timeouts_on_shared_pool_calls_leave_the_pool_clean() {
    let (db, watcher) = common::db().await;
    let app = "pool_lanes_timeouts";
    let url = common::with_param(&db.url(), &format!("application_name={app}"));
    let pool = pgkeel::Pool::builder(url.as_str())
        .max_size(3)
        .build()
        .unwrap();
    let sql = "SELECT $1::int8, pg_sleep($2::float8)";
    let tasks = (0..24i64)
        .map(|task| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..40i64 {
                    let n = task * 1_000_000 + i;
                    let sleep = if (n * 31) % 40 == 0 { 0.05 } else { 0.0 };
                    let limit = Duration::from_micros(((n * 7919) % 60_000) as u64 + 500);
                    if let Ok(r) =
                        tokio::time::timeout(limit, pool.query_one(sql, &[&n, &sleep])).await
                    {
                        let row = r.unwrap_or_else(|e| panic!("task {task} call {i}: {e}"));
                        assert_eq!(row.get::<_, i64>(0), n, "task {task} got another's row");
                    }
                }
            })
        })
        .collect();
    join_within_limit(tasks).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = pool.status();
        let busy: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 \
                 AND state <> 'idle'",
                &[&app],
            )
            .await
            .unwrap()
            .get(0);
        if s.in_use == 0 && s.returning == 0 && busy == 0 {
            assert!(s.adds_up(), "{s:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not clean within 10 s: {s:?}, {busy} busy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let one: i32 = pool.query_one("SELECT 1::int4", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

/// A pooled call of a cached statement (the pipelined path) abandoned by a timeout: the
/// pool's default policy cancels it at once, the same backend goes back to the pool,
/// and its next user gets its own answer without waiting for the abandoned sleep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_pipelined_call_on_a_pooled_connection_is_cancelled_at_once() {
    let (db, watcher) = common::db().await;
    let pool = pgkeel::Pool::builder(db.url()).max_size(1).build().unwrap();
    let sleep = "SELECT pg_sleep($1::float8)";
    // Cached first, so the next call takes the pipelined path.
    pool.execute(sleep, &[&0.0f64]).await.unwrap();
    let pid = pool.get().await.unwrap().backend_pid();
    for round in 0..5i64 {
        let conn = pool.get().await.unwrap();
        let slow = conn.execute(sleep, &[&5.0f64]);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), slow)
                .await
                .is_err()
        );
        drop(conn);
        let t0 = Instant::now();
        let row = pool
            .query_one("SELECT $1::int8, pg_backend_pid()", &[&round])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), round);
        assert_eq!(row.get::<_, i32>(1), pid, "recovered, not replaced");
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "round {round}: the next call waited {:?} for the abandoned sleep",
            t0.elapsed()
        );
        common::wait_quiet(&watcher, pid, Duration::from_millis(500))
            .await
            .unwrap();
    }
    let s = pool.status();
    assert_eq!((s.connects, s.evicted_broken), (1, 0), "{s:?}");
}
