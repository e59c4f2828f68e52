//! What a pool checkout guarantees: the next borrower never inherits the last one's
//! transaction (seed 000), a clean return costs nothing, a broken connection is evicted
//! and its backend cancelled while its slot stays counted, waiting is fair and cancel
//! safe, and the pool's limits, hooks, maintenance, close and leak reports do what they
//! say.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use pgkeel::{Connection, ErrorKind, Pool, SimpleQueryMessage, TimeoutKind, TransactionStatus};
use pgkeel_testkit::TestDb;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// How long a condition that the pool reaches in the background may take.
const EVENTUALLY: Duration = Duration::from_secs(3);

/// The test database's URL with an application_name that marks this pool's backends.
fn pool_url(db: &TestDb, app: &str) -> String {
    common::with_param(&db.url(), &format!("application_name={app}"))
}

async fn db_with_table() -> (TestDb, Connection) {
    let (db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (id int4 PRIMARY KEY)")
        .await
        .expect("create t");
    (db, conn)
}

/// `pg_backend_pid()` as the server reports it.
async fn server_pid(conn: &Connection) -> i32 {
    let row = conn.query_one("SELECT pg_backend_pid()", &[]).await;
    row.expect("pg_backend_pid()").get(0)
}

/// How many rows of `t` have this id, as seen by `conn`.
async fn count_id(conn: &Connection, id: i32) -> i64 {
    let row = conn
        .query_one("SELECT count(*) FROM t WHERE id = $1", &[&id])
        .await
        .expect("count rows of t");
    row.get(0)
}

/// The first value of the first row of a simple query.
fn first_value(messages: &[SimpleQueryMessage]) -> String {
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .expect("a row")
}

async fn show(conn: &Connection, setting: &str) -> String {
    let out = conn.simple_query(&format!("SHOW {setting}")).await;
    first_value(&out.expect("SHOW"))
}

/// The pids of the backends whose application_name is `app`.
async fn backends(watcher: &Connection, app: &str) -> Vec<i32> {
    let rows = watcher
        .query(
            "SELECT pid FROM pg_stat_activity \
             WHERE application_name = $1 AND datname = current_database() ORDER BY pid",
            &[&app],
        )
        .await
        .expect("read pg_stat_activity");
    rows.iter().map(|r| r.get(0)).collect()
}

/// Polls `cond` every few ms until it holds; panics naming `what` after [`EVENTUALLY`].
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + EVENTUALLY;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "not within {EVENTUALLY:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls until `app` has exactly `n` backends; panics with the last list seen.
async fn eventually_backends(watcher: &Connection, app: &str, n: usize) -> Vec<i32> {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let pids = backends(watcher, app).await;
        if pids.len() == n {
            return pids;
        }
        assert!(
            Instant::now() < deadline,
            "{app}: {} backends {pids:?}, expected {n}",
            pids.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Samples the number of `app`'s backends every 2 ms until stopped; returns the most seen.
struct Sampler {
    stop: Arc<AtomicBool>,
    task: JoinHandle<(i64, u64)>,
}

impl Sampler {
    fn start(watcher: Connection, app: &str) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let app = app.to_owned();
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let (mut max, mut samples) = (0i64, 0u64);
            while !flag.load(Ordering::Acquire) {
                let row = watcher
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity \
                         WHERE application_name = $1 AND datname = current_database()",
                        &[&app],
                    )
                    .await
                    .expect("sample pg_stat_activity");
                max = max.max(row.get::<_, i64>(0));
                samples += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (max, samples)
        });
        Sampler { stop, task }
    }

    /// Stops sampling; returns the most backends seen at once.
    async fn finish(self) -> i64 {
        self.stop.store(true, Ordering::Release);
        let (max, samples) = self.task.await.expect("sampler task");
        assert!(samples > 0, "the sampler never ran");
        max
    }
}

// ---------------------------------------------------------------------------------------
// Seed 000: what gets returned to the pool
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn uncommitted_writes_of_one_borrower_are_invisible_to_the_next_on_the_same_backend() {
    let (db, watcher) = db_with_table().await;
    let pool = Pool::builder(db.url()).max_size(1).build().unwrap();

    for cycle in 0..5 {
        let base = cycle * 100;
        // (a) BEGIN sent as plain SQL, then the connection dropped.
        let a = pool.get().await.unwrap();
        let pid = server_pid(&a).await;
        a.execute("INSERT INTO t VALUES ($1)", &[&(base + 1)])
            .await
            .unwrap();
        a.batch_execute(&format!("BEGIN; INSERT INTO t VALUES ({})", base + 2))
            .await
            .unwrap();
        assert_eq!(a.transaction_status(), TransactionStatus::InTransaction);
        drop(a);

        let b = pool.get().await.unwrap();
        assert_eq!(server_pid(&b).await, pid, "cycle {cycle}: the same backend");
        assert_eq!(b.transaction_status(), TransactionStatus::Idle);
        assert_eq!(
            count_id(&b, base + 2).await,
            0,
            "cycle {cycle}: B sees A's uncommitted row (plain BEGIN)"
        );
        assert_eq!(
            count_id(&b, base + 1).await,
            1,
            "the committed twin survives"
        );
        drop(b);

        // (b) a Transaction guard dropped, then its pooled connection.
        let a = pool.get().await.unwrap();
        let tx = a.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES ($1)", &[&(base + 3)])
            .await
            .unwrap();
        drop(tx);
        drop(a);
        let b = pool.get().await.unwrap();
        assert_eq!(server_pid(&b).await, pid, "cycle {cycle}: the same backend");
        assert_eq!(
            count_id(&b, base + 3).await,
            0,
            "cycle {cycle}: B sees A's uncommitted row (guard dropped first)"
        );
        drop(b);

        // (c) the pooled connection dropped while its Transaction guard is still alive.
        let a = pool.get().await.unwrap();
        let tx = a.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES ($1)", &[&(base + 4)])
            .await
            .unwrap();
        drop(a);
        tx.execute("INSERT INTO t VALUES ($1)", &[&(base + 5)])
            .await
            .unwrap();
        drop(tx);
        let b = pool.get().await.unwrap();
        assert_eq!(server_pid(&b).await, pid, "cycle {cycle}: the same backend");
        for id in [base + 4, base + 5] {
            assert_eq!(
                count_id(&b, id).await,
                0,
                "cycle {cycle}: B sees row {id} (connection returned before its guard)"
            );
        }
        assert_eq!(b.transaction_status(), TransactionStatus::Idle);
        drop(b);
    }

    let committed = watcher
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap();
    assert_eq!(committed.get::<_, i64>(0), 5, "only the committed twins");
    let s = pool.status();
    assert!(s.adds_up(), "{s:?}");
    assert_eq!(s.connects, 1, "one backend served every cycle: {s:?}");
    assert_eq!(s.evicted_broken + s.evicted_rollback_failed, 0, "{s:?}");
}

#[tokio::test]
async fn a_begin_sent_as_plain_sql_is_rolled_back_on_return_and_counted() {
    let (db, _conn) = common::db().await;
    let pool = Pool::builder(db.url()).max_size(1).build().unwrap();

    let a = pool.get().await.unwrap();
    let pid = a.backend_pid();
    a.simple_query("BEGIN").await.unwrap();
    a.simple_query("SELECT pg_sleep(0.02)").await.unwrap();
    let before = pool.status().rollbacks_on_return;
    drop(a);

    let b = pool.get().await.unwrap();
    assert_eq!(b.backend_pid(), pid, "the same backend");
    assert_eq!(b.transaction_status(), TransactionStatus::Idle);
    // Inside A's transaction now() would be its start, 20 ms and more ago.
    let fresh = b
        .simple_query("SELECT now() = statement_timestamp()")
        .await
        .unwrap();
    assert_eq!(first_value(&fresh), "t", "B runs inside A's transaction");
    let s = pool.status();
    assert_eq!(s.rollbacks_on_return, before + 1, "{s:?}");
    assert!(s.adds_up(), "{s:?}");
}

#[tokio::test]
async fn a_clean_return_makes_the_connection_idle_at_once_without_a_round_trip() {
    let (db, _conn) = common::db().await;
    let pool = Pool::builder(db.url()).max_size(2).build().unwrap();

    let conn = pool.get().await.unwrap();
    conn.query("SELECT 1", &[]).await.unwrap();
    let before = pool.status();
    assert_eq!((before.in_use, before.idle), (1, 0), "{before:?}");
    drop(conn);
    // No await since the drop: on this single-threaded runtime nothing else has run, so
    // a return that needed the server could not have finished yet.
    let after = pool.status();
    assert_eq!(after.idle, 1, "idle right after the drop: {after:?}");
    assert_eq!((after.in_use, after.returning), (0, 0), "{after:?}");
    assert_eq!(after.rollbacks_on_return, before.rollbacks_on_return);
    assert!(after.adds_up(), "{after:?}");
}

// ---------------------------------------------------------------------------------------
// Broken connections
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_connection_broken_by_a_timeout_is_evicted_cancelled_and_replaced() {
    let app = "pool_checkout_broken";
    let (db, watcher) = common::db().await;
    let sampler = Sampler::start(common::connect(&db).await, app);
    let pool = Pool::builder(pool_url(&db, app))
        .max_size(1)
        .abandon_policy(pgkeel::pool::AbandonPolicy::Evict)
        .build()
        .unwrap();

    // Twice: once with the timeout around the query, once around pool.query (checkout
    // and query together).
    let mut pids = vec![pool.get().await.unwrap().backend_pid()];
    for round in 1..=2u64 {
        let before = pool.status();
        if round == 1 {
            let conn = pool.get().await.unwrap();
            let slow = conn.query("SELECT pg_sleep(5)", &[]);
            assert!(timeout(Duration::from_millis(50), slow).await.is_err());
            assert!(conn.is_broken());
            drop(conn);
        } else {
            let slow = pool.query("SELECT pg_sleep(5)", &[]);
            assert!(timeout(Duration::from_millis(50), slow).await.is_err());
        }
        let s = pool.status();
        assert_eq!(s.evicted_broken, before.evicted_broken + 1, "{s:?}");
        assert_eq!(s.cancels_sent, before.cancels_sent + 1, "{s:?}");
        assert_eq!(s.idle, 0, "a broken connection is never idle: {s:?}");
        assert!(s.adds_up(), "{s:?}");

        let next = pool.get().await.unwrap();
        let pid = server_pid(&next).await;
        assert!(!pids.contains(&pid), "round {round}: backend {pid} reused");
        pids.push(pid);
        drop(next);
        // The abandoned pg_sleep(5) was cancelled: its backend is gone well before 5 s.
        let old = pids[pids.len() - 2];
        let deadline = Instant::now() + Duration::from_secs(1);
        while backends(&watcher, app).await.contains(&old) {
            assert!(Instant::now() < deadline, "backend {old} still there");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(eventually_backends(&watcher, app, 1).await, vec![pids[2]]);
    let max = sampler.finish().await;
    assert!(
        max <= 1,
        "pg_stat_activity showed {max} backends for max_size 1"
    );
    let s = pool.status();
    assert_eq!(s.connects, 3, "{s:?}");
    assert!(s.adds_up(), "{s:?}");
}

// ---------------------------------------------------------------------------------------
// Waiting: cancel safety, fairness, timeouts
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn acquires_cancelled_while_waiting_leave_no_trace() {
    let (db, _conn) = common::db().await;
    let pool = Pool::builder(db.url()).max_size(1).build().unwrap();
    let held = pool.get().await.unwrap();

    for _ in 0..3 {
        let r = timeout(Duration::from_millis(20), pool.get()).await;
        assert!(r.is_err(), "the pool has no free connection");
    }
    let s = pool.status();
    assert_eq!((s.waiting, s.in_use), (0, 1), "{s:?}");

    drop(held);
    let started = Instant::now();
    let conn = pool.get().await.unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(100),
        "the acquire took {took:?}"
    );
    conn.query("SELECT 1", &[]).await.unwrap();
    let s = pool.status();
    assert!(s.adds_up(), "{s:?}");
    assert_eq!(s.waiting, 0, "{s:?}");
    assert_eq!(s.connects, 1, "{s:?}");
}

#[tokio::test]
async fn waiters_are_served_in_arrival_order_and_a_newcomer_does_not_barge() {
    let (db, _conn) = common::db().await;
    let pool = Pool::builder(db.url()).max_size(1).build().unwrap();
    let held = pool.get().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));

    let mut waiters = Vec::new();
    for i in 0..5usize {
        let (pool2, order) = (pool.clone(), order.clone());
        waiters.push(tokio::spawn(async move {
            let conn = pool2.get().await.unwrap();
            order.lock().unwrap().push(i);
            // Hold it across an await, so the next waiter really waits.
            conn.query("SELECT 1", &[]).await.unwrap();
        }));
        // The handshake: waiter i is queued before waiter i + 1 is spawned.
        let p = pool.clone();
        eventually("the waiter is queued", move || p.status().waiting == i + 1).await;
    }
    drop(held);
    // Without an await, before any waiter ran: a barging pool would hand this caller
    // the connection that was just returned.
    let late = pool.get().await.unwrap();
    order.lock().unwrap().push(99);
    drop(late);
    for w in waiters {
        w.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4, 99]);
    let s = pool.status();
    assert!(s.adds_up() && s.waiting == 0, "{s:?}");
}

#[tokio::test]
async fn acquire_timeout_says_which_limit_and_gives_the_figures() {
    let (db, _conn) = common::db().await;
    let pool = Pool::builder(db.url())
        .max_size(1)
        .acquire_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let _held = pool.get().await.unwrap();

    let started = Instant::now();
    let err = pool.get().await.expect_err("no connection is free");
    let took = started.elapsed();
    assert_eq!(
        err.kind(),
        ErrorKind::Timeout(TimeoutKind::Acquire),
        "{err}"
    );
    assert_eq!(err.timeout_kind(), Some(TimeoutKind::Acquire));
    let msg = err.to_string();
    assert!(msg.contains("1 of 1"), "{msg}");
    assert!(msg.contains("50ms"), "{msg}");
    assert!(!err.is_connection_fatal());
    assert!(
        took >= Duration::from_millis(50) && took < Duration::from_secs(1),
        "{took:?}"
    );
    let s = pool.status();
    assert_eq!((s.acquire_timeouts, s.waiting), (1, 0), "{s:?}");
}

#[tokio::test]
async fn a_connection_opened_for_a_cancelled_acquire_is_kept_for_the_next_caller() {
    let (db, _conn) = common::db().await;
    let hooks = Arc::new(AtomicU32::new(0));
    let counter = hooks.clone();
    let pool = Pool::builder(db.url())
        .max_size(1)
        .after_connect(move |_conn| {
            counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(())
            })
        })
        .build()
        .unwrap();

    let r = timeout(Duration::from_millis(50), pool.get()).await;
    assert!(r.is_err(), "the connect takes 200 ms");
    assert_eq!(pool.status().opening, 1, "the connect goes on");

    let started = Instant::now();
    let conn = pool.get().await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
    conn.query("SELECT 1", &[]).await.unwrap();
    let pid = conn.backend_pid();
    drop(conn);
    let again = pool.get().await.unwrap();
    assert_eq!(again.backend_pid(), pid);
    let s = pool.status();
    assert_eq!(s.connects, 1, "the connection was not thrown away: {s:?}");
    assert_eq!(hooks.load(Ordering::SeqCst), 1);
    assert!(s.adds_up(), "{s:?}");
}

// ---------------------------------------------------------------------------------------
// Hooks and reset
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn after_connect_runs_on_every_new_connection_before_it_is_handed_out() {
    let (db, _conn) = common::db().await;
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let pool = Pool::builder(db.url())
        .max_size(3)
        .after_connect(move |conn| {
            counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { conn.batch_execute("SET search_path = hooked, public").await })
        })
        .build()
        .unwrap();

    let (a, b, c) = tokio::join!(pool.get(), pool.get(), pool.get());
    let conns = [a.unwrap(), b.unwrap(), c.unwrap()];
    for conn in &conns {
        assert_eq!(show(conn, "search_path").await, "hooked, public");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    drop(conns);
    let conn = pool.get().await.unwrap();
    assert_eq!(show(&conn, "search_path").await, "hooked, public");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "not again for an idle connection"
    );
}

#[tokio::test]
async fn a_failing_after_connect_hook_fails_the_acquire_and_frees_the_slot() {
    let (db, _conn) = common::db().await;
    let pool = Pool::builder(db.url())
        .max_size(1)
        .after_connect(|conn| Box::pin(async move { conn.batch_execute("SELECT nope").await }))
        .build()
        .unwrap();
    for _ in 0..2 {
        let err = pool.get().await.expect_err("the hook fails");
        assert_eq!(err.code(), Some("42703"), "{err}");
    }
    let s = pool.status();
    assert_eq!((s.connect_failures, s.connects, s.size), (2, 0, 0), "{s:?}");
    assert!(s.adds_up(), "{s:?}");
}

#[tokio::test]
async fn reset_on_return_clears_session_state_and_the_statement_cache_keeps_working() {
    let (db, _conn) = common::db().await;
    let pool = Pool::builder(db.url())
        .max_size(1)
        .reset_on_return(Some("DISCARD ALL"))
        .build()
        .unwrap();

    let a = pool.get().await.unwrap();
    let pid = a.backend_pid();
    let default_work_mem = show(&a, "work_mem").await;
    a.batch_execute("SET work_mem = '7MB'").await.unwrap();
    assert_eq!(show(&a, "work_mem").await, "7MB");
    // Prepared and cached on the server under a name DISCARD ALL will drop.
    let row = a.query_one("SELECT $1::int4 + 1", &[&1i32]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
    drop(a);

    let b = pool.get().await.unwrap();
    assert_eq!(b.backend_pid(), pid, "the same backend");
    assert_eq!(show(&b, "work_mem").await, default_work_mem, "reset");
    for i in 0..3i32 {
        let row = b.query_one("SELECT $1::int4 + 1", &[&i]).await.unwrap();
        assert_eq!(
            row.get::<_, i32>(0),
            i + 1,
            "the cached statement after reset"
        );
    }
    drop(b);
    let s = pool.status();
    assert_eq!(s.evicted_rollback_failed, 0, "{s:?}");
    assert_eq!(s.connects, 1, "{s:?}");
}

// ---------------------------------------------------------------------------------------
// Maintenance: lifetime, idle timeout, min_idle
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn max_lifetime_evicts_idle_connections_in_the_background() {
    let app = "pool_checkout_lifetime";
    let (db, watcher) = common::db().await;
    let pool = Pool::builder(pool_url(&db, app))
        .max_size(2)
        .max_lifetime(Some(Duration::from_millis(150)))
        .idle_timeout(None)
        .maintenance_interval(Duration::from_millis(50))
        .build()
        .unwrap();

    let pid = pool.get().await.unwrap().backend_pid();
    assert_eq!(pool.status().idle, 1);
    let p = pool.clone();
    eventually("a lifetime eviction", move || {
        let s = p.status();
        s.evicted_lifetime == 1 && s.idle == 0
    })
    .await;
    eventually_backends(&watcher, app, 0).await;
    let next = pool.get().await.unwrap();
    assert_ne!(next.backend_pid(), pid);
    assert!(pool.status().adds_up());
}

#[tokio::test]
async fn an_expired_connection_is_neither_handed_out_nor_kept_on_return() {
    let (db, _conn) = common::db().await;
    let pool = Pool::builder(db.url())
        .max_size(1)
        .max_lifetime(Some(Duration::from_millis(100)))
        .maintenance_interval(Duration::from_secs(60))
        .build()
        .unwrap();

    // Expired while idle: replaced at checkout.
    let first = pool.get().await.unwrap().backend_pid();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let second = pool.get().await.unwrap();
    assert_ne!(second.backend_pid(), first);
    assert_eq!(pool.status().evicted_lifetime, 1);

    // Expired while checked out: not put back.
    tokio::time::sleep(Duration::from_millis(150)).await;
    drop(second);
    let s = pool.status();
    assert_eq!((s.evicted_lifetime, s.idle), (2, 0), "{s:?}");
    let third = pool.get().await.unwrap();
    assert_eq!(pool.status().connects, 3);
    drop(third);
}

#[tokio::test]
async fn idle_timeout_evicts_connections_above_min_idle() {
    let app = "pool_checkout_idle_timeout";
    let (db, watcher) = common::db().await;
    let pool = Pool::builder(pool_url(&db, app))
        .max_size(3)
        .min_idle(1)
        .idle_timeout(Some(Duration::from_millis(100)))
        .max_lifetime(None)
        .maintenance_interval(Duration::from_millis(50))
        .build()
        .unwrap();

    let (a, b, c) = tokio::join!(pool.get(), pool.get(), pool.get());
    drop((a.unwrap(), b.unwrap(), c.unwrap()));
    assert_eq!(pool.status().idle, 3);
    let p = pool.clone();
    eventually("two idle evictions", move || {
        let s = p.status();
        s.evicted_idle == 2 && s.idle == 1
    })
    .await;
    eventually_backends(&watcher, app, 1).await;
    // min_idle stays: not evicted, not churned.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = pool.status();
    assert_eq!((s.evicted_idle, s.idle, s.connects), (2, 1, 3), "{s:?}");
    assert!(s.adds_up(), "{s:?}");
}

#[tokio::test]
async fn min_idle_is_refilled_in_the_background() {
    let app = "pool_checkout_min_idle";
    let (db, watcher) = common::db().await;
    let pool = Pool::builder(pool_url(&db, app))
        .max_size(4)
        .min_idle(2)
        .maintenance_interval(Duration::from_millis(50))
        .build()
        .unwrap();

    let p = pool.clone();
    eventually("min_idle reached", move || p.status().idle == 2).await;
    eventually_backends(&watcher, app, 2).await;

    let held = pool.get().await.unwrap();
    let p = pool.clone();
    eventually("min_idle refilled", move || p.status().idle == 2).await;
    let s = pool.status();
    assert_eq!((s.in_use, s.connects), (1, 3), "{s:?}");
    assert!(s.adds_up(), "{s:?}");
    eventually_backends(&watcher, app, 3).await;
    drop(held);
}

// ---------------------------------------------------------------------------------------
// close()
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn close_refuses_new_acquires_waits_for_checked_out_connections_and_closes_all() {
    let app = "pool_checkout_close";
    let (db, watcher) = common::db().await;
    let pool = Pool::builder(pool_url(&db, app))
        .max_size(2)
        .close_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let (held, idle) = tokio::join!(pool.get(), pool.get());
    let (held, idle) = (held.unwrap(), idle.unwrap());
    drop(idle);
    let held_pid = held.backend_pid();
    eventually_backends(&watcher, app, 2).await;

    let closing = pool.clone();
    let closer = tokio::spawn(async move { closing.close().await });
    let p = pool.clone();
    eventually("the pool is closed", move || p.is_closed()).await;
    let err = pool.get().await.expect_err("a closed pool");
    assert_eq!(err.kind(), ErrorKind::PoolClosed, "{err}");

    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !closer.is_finished(),
        "close() waits for the checked-out one"
    );
    held.query("SELECT 1", &[]).await.expect("still usable");
    drop(held);
    let started = Instant::now();
    closer.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    let left = eventually_backends(&watcher, app, 0).await;
    assert!(!left.contains(&held_pid));
    assert_eq!(pool.status().idle, 0);
}

#[tokio::test]
async fn close_gives_up_waiting_after_close_timeout_and_wakes_waiters() {
    let app = "pool_checkout_close_timeout";
    let (db, watcher) = common::db().await;
    let pool = Pool::builder(pool_url(&db, app))
        .max_size(1)
        .close_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let held = pool.get().await.unwrap();
    let p = pool.clone();
    let waiter = tokio::spawn(async move { p.get().await.map(drop) });
    let p = pool.clone();
    eventually("the waiter is queued", move || p.status().waiting == 1).await;

    let started = Instant::now();
    pool.close().await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
    let err = waiter.await.unwrap().expect_err("the waiter is refused");
    assert_eq!(err.kind(), ErrorKind::PoolClosed, "{err}");

    drop(held);
    eventually_backends(&watcher, app, 0).await;
}

// ---------------------------------------------------------------------------------------
// Leak reports
// ---------------------------------------------------------------------------------------

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_connection_held_past_the_leak_threshold_is_reported_with_the_callers_location() {
    use tracing_subscriber::util::SubscriberInitExt;
    let logs = Captured::default();
    let writer = logs.clone();
    let _log = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .finish()
        .set_default();

    let (db, _conn) = common::db().await;
    let pool = Pool::builder(db.url())
        .max_size(2)
        .leak_threshold(Some(Duration::from_millis(50)))
        .maintenance_interval(Duration::from_millis(10))
        .build()
        .unwrap();

    // Returned well before the threshold: not reported.
    let (quick, quick_line) = (pool.get(), line!());
    drop(quick.await.unwrap());
    let (held, held_line) = (pool.get(), line!());
    let held = held.await.unwrap();
    let here = format!("{}:{held_line}:", file!());
    let l = logs.clone();
    let h = here.clone();
    eventually("a leak report", move || l.text().contains(&h)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(held);

    let text = logs.text();
    let report = text.lines().find(|l| l.contains(&here)).unwrap();
    assert!(report.contains("WARN"), "{report}");
    assert_eq!(text.matches(&here).count(), 1, "reported once:\n{text}");
    let quick_here = format!("{}:{quick_line}:", file!());
    assert!(
        !text.contains(&quick_here),
        "a quick return was reported:\n{text}"
    );
}

#[tokio::test]
async fn a_pool_transaction_held_past_the_leak_threshold_is_reported_at_the_begin_call() {
    use tracing_subscriber::util::SubscriberInitExt;
    let logs = Captured::default();
    let writer = logs.clone();
    let _log = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .finish()
        .set_default();
    let (db, _conn) = common::db().await;
    let pool = Pool::builder(db.url())
        .leak_threshold(Some(Duration::from_millis(50)))
        .maintenance_interval(Duration::from_millis(10))
        .build()
        .unwrap();

    let (tx, line) = (pool.begin(), line!());
    let tx = tx.await.unwrap();
    let here = format!("{}:{line}:", file!());
    let l = logs.clone();
    eventually("a leak report", move || l.text().contains(&here)).await;
    tx.rollback().await.unwrap();
}

#[tokio::test]

async fn leak_reports_name_the_callers_location_for_begin_with_and_transaction() {
    use tracing_subscriber::util::SubscriberInitExt;
    let logs = Captured::default();
    let writer = logs.clone();
    let _log = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .finish()
        .set_default();
    let (db, _conn) = common::db().await;
    let pool = Pool::builder(db.url())
        .leak_threshold(Some(Duration::from_millis(50)))
        .maintenance_interval(Duration::from_millis(10))
        .build()
        .unwrap();

    let (tx, line) = (pool.begin_with(|b| b.read_only(true)), line!());
    let tx = tx.await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    tx.rollback().await.unwrap();
    fn slow(_: &mut pgkeel::Transaction) -> BoxFuture<'_, Result<(), pgkeel::Error>> {
        Box::pin(tokio::time::sleep(Duration::from_millis(200)).map(Ok))
    }
    let (done, tx_line) = (pool.transaction(slow), line!());
    done.await.unwrap();

    let text = logs.text();
    assert!(
        text.contains("leak threshold"),
        "no leak reports at all:\n{text}"
    );
    for line in [line, tx_line] {
        let here = format!("{}:{line}:", file!());
        assert!(text.contains(&here), "no report names {here}:\n{text}");
    }
}

// ---------------------------------------------------------------------------------------
// max_size bounds the server's backends, not just the pool's sockets
// ---------------------------------------------------------------------------------------

/// Keeps the server's CPUs busy so that backends are slow to exit; `stop` cancels it.
struct CpuLoad(Vec<Connection>);

impl CpuLoad {
    async fn start(db: &TestDb, n: usize) -> CpuLoad {
        let mut conns = Vec::new();
        for _ in 0..n {
            let conn = common::connect(db).await;
            conn.batch_execute("SET statement_timeout = '15s'")
                .await
                .unwrap();
            let busy = conn.clone();
            tokio::spawn(async move {
                let sql = "SELECT count(*) FROM generate_series(1, 1000000000)";
                let _ = busy.simple_query(sql).await;
            });
            conns.push(conn);
        }
        CpuLoad(conns)
    }

    async fn stop(self) {
        for conn in &self.0 {
            let _ = conn.cancel_token().cancel_query().await;
        }
    }
}

#[tokio::test]

async fn an_evicted_backend_has_exited_before_its_slot_is_used_again() {
    const ROUNDS: usize = 40;
    let (db, watcher) = common::db().await;
    let load = CpuLoad::start(&db, 4).await;
    // [broken and drained, expired on return, expired at checkout]
    let mut lingering = [0usize; 3];

    let app = "slot_reuse_broken";
    let pool = Pool::builder(pool_url(&db, app))
        .max_size(1)
        .abandon_policy(pgkeel::pool::AbandonPolicy::Evict)
        .build()
        .unwrap();
    for _ in 0..ROUNDS {
        let conn = pool.get().await.unwrap();
        let old = conn.backend_pid();
        let slow = conn.query("SELECT pg_sleep(1)", &[]);
        assert!(timeout(Duration::from_millis(5), slow).await.is_err());
        drop(conn);
        let _next = pool.get().await.unwrap();
        lingering[0] += backends(&watcher, app).await.contains(&old) as usize;
    }

    for (i, app) in [(1, "slot_reuse_return"), (2, "slot_reuse_checkout")] {
        let pool = Pool::builder(pool_url(&db, app))
            .max_size(1)
            .max_lifetime(Some(Duration::from_millis(30)))
            .maintenance_interval(Duration::from_secs(60))
            .build()
            .unwrap();
        for _ in 0..ROUNDS {
            let conn = pool.get().await.unwrap();
            let old = conn.backend_pid();
            if i == 1 {
                tokio::time::sleep(Duration::from_millis(40)).await;
                drop(conn);
            } else {
                drop(conn);
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            let _next = pool.get().await.unwrap();
            lingering[i] += backends(&watcher, app).await.contains(&old) as usize;
        }
    }
    load.stop().await;
    assert_eq!(
        lingering,
        [0, 0, 0],
        "rounds (of {ROUNDS}) in which the old backend was still there when its \
         replacement was handed out: [broken, expired on return, expired at checkout]"
    );
}

#[tokio::test]

async fn close_returns_only_after_the_pools_backends_are_gone() {
    let (db, watcher) = common::db().await;
    let mut left = Vec::new();
    for round in 0..10 {
        let app = format!("close_strict_{round}");
        let pool = Pool::builder(pool_url(&db, &app))
            .max_size(3)
            .build()
            .unwrap();
        let (a, b, c) = tokio::join!(pool.get(), pool.get(), pool.get());
        drop((a.unwrap(), b.unwrap()));
        let c = c.unwrap();
        let closing = pool.clone();
        let closer = tokio::spawn(async move { closing.close().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(c);
        closer.await.unwrap();
        let pids = backends(&watcher, &app).await;
        if !pids.is_empty() {
            left.push((round, pids));
        }
    }
    assert!(
        left.is_empty(),
        "backends left when close() returned: {left:?}"
    );
}

#[tokio::test]

async fn an_acquire_dropped_during_its_health_check_loses_no_connection() {
    let (db, _conn) = common::db().await;
    let pool = Pool::builder(db.url())
        .max_size(1)
        .health_check_after(Some(Duration::from_millis(1)))
        .build()
        .unwrap();
    let pid = pool.get().await.unwrap().backend_pid();

    for polls in 0..4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let outcome = common::Cancellable::new(pool.get(), polls).await;
        let dropped = matches!(outcome, common::Outcome::Dropped);
        drop(outcome);
        let next = pool.get().await.unwrap();
        assert_eq!(
            next.backend_pid(),
            pid,
            "after a get dropped after {polls} polls (dropped: {dropped}): {:?}",
            pool.status()
        );
    }
    let s = pool.status();
    assert_eq!(s.connects, 1, "{s:?}");
}

/// A pooled connection dropped after its runtime has gone cannot be cleaned up or
/// drained: it is let go (its socket closes), with no panic and no gauge left counting.
#[test]
fn connections_returned_after_the_runtime_is_gone_are_let_go_without_a_panic() {
    let db = pgkeel_testkit::TestDb::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (pool, broken, in_tx) = rt.block_on(async {
        let pool = Pool::builder(db.url()).max_size(2).build().unwrap();
        let broken = pool.get().await.unwrap();
        let slow = broken.query("SELECT pg_sleep(5)", &[]);
        assert!(timeout(Duration::from_millis(50), slow).await.is_err());
        assert!(broken.is_broken());
        let in_tx = pool.get().await.unwrap();
        in_tx.batch_execute("BEGIN").await.unwrap();
        (pool, broken, in_tx)
    });
    drop(rt);
    drop(broken);
    drop(in_tx);
    let s = pool.status();
    assert_eq!(
        (s.in_use, s.returning, s.draining, s.idle),
        (0, 0, 0, 0),
        "{s:?}"
    );
    assert!(s.adds_up(), "{s:?}");
}

/// `min_idle` refills only the room under `max_size`: with one connection in use and one
/// idle in a pool of two that wants two idle, no third backend is opened; and a
/// `min_idle` above `max_size` is refused by name.
#[tokio::test]
async fn min_idle_never_opens_past_max_size() {
    let db = pgkeel_testkit::TestDb::new();
    let refused = Pool::builder(db.url()).max_size(2).min_idle(3).build();
    assert!(refused.unwrap_err().to_string().contains("min_idle"));
    let pool = Pool::builder(db.url())
        .max_size(2)
        .min_idle(2)
        .maintenance_interval(std::time::Duration::from_millis(20))
        .build()
        .unwrap();
    let (a, b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    drop(b);
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let s = pool.status();
        assert!(s.size <= 2, "{s:?}");
    }
    drop(a);
}
