//! Cancel at every poll: each public async operation is wrapped in `Cancellable` and
//! dropped after exactly i polls, for i = 0, 1, 2, … until it finishes on its own. After
//! every drop the connection must either work correctly (idle, right answers, nothing
//! left over from the dropped call) or refuse every call at once with `Broken` (or
//! `Closed` after `close()`), and the server session must be quiet within 200 ms (not
//! `active`, not `idle in transaction`), seen from a separate watcher connection.
//!
//! Run with `--nocapture` to see how many drop points each operation has.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{Cancellable, Outcome, wait_quiet};
use futures::StreamExt;
use pgkeel::{Connection, Error, ErrorKind, SimpleQueryMessage, TransactionStatus, Type};
use pgkeel_testkit::TestDb;

/// More polls than any operation here needs; reaching it means a future never finishes.
const MAX_POLLS: usize = 200;
/// How soon the session must be quiet after a drop.
const QUIET_WITHIN: Duration = Duration::from_millis(200);
/// A query that takes a moment, so the drop can land while the server works.
const SLOW: &str = "SELECT pg_sleep(0.05), $1::int4";

/// The database, a watcher connection, and a table `t (id int4)` for writes.
struct Env {
    db: TestDb,
    watcher: Connection,
}

impl Env {
    async fn new() -> Env {
        let (db, watcher) = common::db().await;
        watcher
            .batch_execute("CREATE TABLE t (id int4)")
            .await
            .unwrap();
        Env { db, watcher }
    }

    async fn fresh(&self) -> Connection {
        common::connect(&self.db).await
    }

    /// How many rows with this id the watcher sees (committed ones only).
    async fn visible(&self, id: i32) -> i64 {
        self.watcher
            .query_one("SELECT count(*) FROM t WHERE id = $1", &[&id])
            .await
            .unwrap()
            .get(0)
    }

    async fn quiet(&self, conn: &Connection) -> Result<(), String> {
        wait_quiet(&self.watcher, conn.backend_pid(), QUIET_WITHIN).await
    }
}

/// What a drop left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Usable,
    Broken,
    Closed,
}

/// Drop points seen for one operation, and everything that went wrong at them.
struct Tally {
    op: &'static str,
    usable: usize,
    broken: usize,
    closed: usize,
    violations: Vec<String>,
}

impl Tally {
    fn new(op: &'static str) -> Tally {
        Tally {
            op,
            usable: 0,
            broken: 0,
            closed: 0,
            violations: Vec::new(),
        }
    }

    /// The polls to allow next; fails once past the bound.
    fn polls(i: usize, op: &str) -> usize {
        assert!(
            i < MAX_POLLS,
            "{op}: still not done after {MAX_POLLS} polls"
        );
        i
    }

    fn record(&mut self, i: usize, result: Result<After, String>) {
        match result {
            Ok(After::Usable) => self.usable += 1,
            Ok(After::Broken) => self.broken += 1,
            Ok(After::Closed) => self.closed += 1,
            Err(v) => self
                .violations
                .push(format!("dropped after {i} polls: {v}")),
        }
    }

    /// Prints the count and fails on any violation.
    fn finish(self, done_after: usize) {
        let points = self.usable + self.broken + self.closed + self.violations.len();
        println!(
            "{}: {points} drop points (usable {}, broken {}, closed {}, violations {}); done after {done_after} polls",
            self.op,
            self.usable,
            self.broken,
            self.closed,
            self.violations.len()
        );
        assert!(
            self.violations.is_empty(),
            "{}: {}",
            self.op,
            self.violations.join("\n")
        );
    }
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    match ok {
        true => Ok(()),
        false => Err(what()),
    }
}

/// Every kind of call fails at once with `kind`.
async fn all_fail_with(conn: &Connection, kind: ErrorKind) -> Result<(), String> {
    let started = Instant::now();
    let errors: Vec<(&str, Result<(), Error>)> = vec![
        ("query", conn.query("SELECT 1", &[]).await.map(drop)),
        ("execute", conn.execute("SELECT 1", &[]).await.map(drop)),
        (
            "simple_query",
            conn.simple_query("SELECT 1").await.map(drop),
        ),
        ("prepare", conn.prepare("SELECT 1").await.map(drop)),
        ("transaction", conn.transaction().await.map(drop)),
        (
            "query_raw",
            conn.query_raw("SELECT 1", &[] as pgkeel::Params)
                .await
                .map(drop),
        ),
    ];
    for (call, result) in errors {
        match result {
            Err(e) if e.kind() == kind => {}
            other => return Err(format!("{call} on a {kind:?} connection gave {other:?}")),
        }
    }
    check(started.elapsed() < Duration::from_millis(50), || {
        format!("{kind:?} calls took {:?}", started.elapsed())
    })
}

/// The connection answers exactly its own questions, in both protocols, and is idle.
async fn check_usable(conn: &Connection, marker: i32) -> Result<(), String> {
    let rows = conn
        .query("SELECT $1::int4", &[&marker])
        .await
        .map_err(|e| format!("check query failed: {e}"))?;
    let got: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    check(got == [marker], || {
        format!("check query got {got:?}, wanted [{marker}]")
    })?;
    let messages = conn
        .simple_query(&format!("SELECT {marker} + 1"))
        .await
        .map_err(|e| format!("simple check failed: {e}"))?;
    let texts = simple_values(&messages);
    let want = vec![(marker + 1).to_string()];
    check(texts == want, || {
        format!("simple check got {texts:?}, wanted {want:?}")
    })?;
    let status = conn.transaction_status();
    check(status == TransactionStatus::Idle, || {
        format!("status {status:?} after a usable drop")
    })
}

/// Broken (or closed) connections refuse everything; others must be usable.
async fn classify(conn: &Connection, marker: i32) -> Result<After, String> {
    if conn.is_closed() {
        all_fail_with(conn, ErrorKind::Closed).await?;
        return Ok(After::Closed);
    }
    if conn.is_broken() {
        all_fail_with(conn, ErrorKind::Broken).await?;
        return Ok(After::Broken);
    }
    check_usable(conn, marker).await?;
    Ok(After::Usable)
}

/// The standard check after a drop outside a transaction.
async fn after_drop(env: &Env, conn: &Connection, marker: i32) -> Result<After, String> {
    let after = classify(conn, marker).await?;
    env.quiet(conn).await?;
    Ok(after)
}

fn simple_values(messages: &[SimpleQueryMessage]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(r.len() - 1).map(str::to_owned),
            _ => None,
        })
        .collect()
}

fn marker(i: usize) -> i32 {
    1000 + i as i32
}

#[tokio::test]
async fn connect_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Connection::connect");
    let others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                  AND backend_type = 'client backend' AND pid <> pg_backend_pid()";
    let count_others = || async {
        env.watcher
            .query_one(others, &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let wait_alone = |within: Duration| async move {
        let deadline = Instant::now() + within;
        loop {
            let n = count_others().await;
            if n == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("{n} other sessions still open"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    for i in 0.. {
        wait_alone(Duration::from_secs(2)).await.unwrap();
        let polls = Tally::polls(i, tally.op);
        match Cancellable::new(Connection::connect(env.db.url()), polls).await {
            Outcome::Done(conn) => {
                let conn = conn.unwrap();
                check_usable(&conn, marker(i)).await.unwrap();
                conn.close().await.unwrap();
                tally.finish(i);
                return;
            }
            // Nothing to use; the half-open session must go away by itself.
            Outcome::Dropped => {
                tally.record(i, wait_alone(QUIET_WITHIN).await.map(|()| After::Usable))
            }
        }
    }
}

#[tokio::test]
async fn query_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Connection::query");
    for i in 0.. {
        let conn = env.fresh().await;
        let polls = Tally::polls(i, tally.op);
        match Cancellable::new(conn.query(SLOW, &[&7i32]), polls).await {
            Outcome::Done(rows) => {
                let rows = rows.unwrap();
                assert_eq!(rows.len(), 1);
                assert_eq!(rows[0].get::<_, i32>(1), 7);
                after_drop(&env, &conn, marker(i)).await.unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => tally.record(i, after_drop(&env, &conn, marker(i)).await),
        }
    }
}

#[tokio::test]
async fn query_waiting_for_the_wire_lock_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Connection::query (behind another task's transaction)");
    for i in 0.. {
        let conn = env.fresh().await;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let holder = tokio::spawn({
            let conn = conn.clone();
            async move {
                let tx = conn.transaction().await.unwrap();
                ready_tx.send(()).unwrap();
                let _ = release_rx.await;
                tx.commit().await.unwrap();
            }
        });
        ready_rx.await.unwrap();
        let polls = Tally::polls(i, tally.op);
        // The releaser first runs once this task waits: after the query's first poll has
        // queued it on the lock. The holder then commits and hands the lock over.
        let releaser = tokio::spawn(async move { release_tx.send(()) });
        let outcome = Cancellable::new(conn.query(SLOW, &[&7i32]), polls).await;
        let _ = releaser.await.unwrap();
        holder.await.unwrap();
        match outcome {
            Outcome::Done(rows) => {
                assert_eq!(rows.unwrap()[0].get::<_, i32>(1), 7);
                after_drop(&env, &conn, marker(i)).await.unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => tally.record(i, after_drop(&env, &conn, marker(i)).await),
        }
    }
}

#[tokio::test]

async fn query_with_a_large_parameter_dropped_at_every_poll() {
    // 16 MiB does not fit the socket buffers, so the first write itself takes several
    // polls.
    let env = Env::new().await;
    let big = "x".repeat(16 << 20);
    let mut tally = Tally::new("Connection::query (16 MiB parameter, mid-write)");
    for i in 0.. {
        let conn = env.fresh().await;
        let polls = Tally::polls(i, tally.op);
        match Cancellable::new(conn.query("SELECT length($1::text)", &[&big]), polls).await {
            Outcome::Done(rows) => {
                assert_eq!(rows.unwrap()[0].get::<_, i32>(0), 16 << 20);
                after_drop(&env, &conn, marker(i)).await.unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => tally.record(i, after_drop(&env, &conn, marker(i)).await),
        }
    }
}

#[tokio::test]
async fn query_returning_many_rows_dropped_at_every_poll() {
    // 50 000 rows arrive in many socket reads, so the drop lands mid-rows too.
    let env = Env::new().await;
    let mut tally = Tally::new("Connection::query (50 000 rows, mid-read)");
    for i in 0.. {
        let conn = env.fresh().await;
        let polls = Tally::polls(i, tally.op);
        let sql = "SELECT g FROM generate_series(1, 50000) g";
        match Cancellable::new(conn.query(sql, &[]), polls).await {
            Outcome::Done(rows) => {
                let rows = rows.unwrap();
                assert_eq!(rows.len(), 50_000);
                assert_eq!(rows[49_999].get::<_, i32>(0), 50_000);
                after_drop(&env, &conn, marker(i)).await.unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => tally.record(i, after_drop(&env, &conn, marker(i)).await),
        }
    }
}

#[tokio::test]
async fn query_one_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Connection::query_one");
    for i in 0.. {
        let conn = env.fresh().await;
        let polls = Tally::polls(i, tally.op);
        match Cancellable::new(conn.query_one(SLOW, &[&8i32]), polls).await {
            Outcome::Done(row) => {
                assert_eq!(row.unwrap().get::<_, i32>(1), 8);
                after_drop(&env, &conn, marker(i)).await.unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => tally.record(i, after_drop(&env, &conn, marker(i)).await),
        }
    }
}

#[tokio::test]
async fn execute_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Connection::execute");
    for i in 0.. {
        let conn = env.fresh().await;
        let id = marker(i);
        let polls = Tally::polls(i, tally.op);
        let sql = "INSERT INTO t SELECT $1::int4 FROM pg_sleep(0.05)";
        match Cancellable::new(conn.execute(sql, &[&id]), polls).await {
            Outcome::Done(n) => {
                assert_eq!(n.unwrap(), 1);
                assert_eq!(env.visible(id).await, 1);
                after_drop(&env, &conn, id).await.unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => {
                let after = after_drop(&env, &conn, id).await;
                // A statement that reached the server may or may not have run; never twice.
                let n = env.visible(id).await;
                let after = after.and_then(|a| match n <= 1 {
                    true => Ok(a),
                    false => Err(format!("{n} rows for one insert")),
                });
                tally.record(i, after);
            }
        }
    }
}

/// How many of the ids of one dropped run the watcher sees, and whether that is allowed:
/// none or all of a unit, and never one twice.
async fn visible_of(env: &Env, ids: &[i32]) -> Vec<i64> {
    let mut seen = Vec::with_capacity(ids.len());
    for &id in ids {
        seen.push(env.visible(id).await);
    }
    seen
}

#[tokio::test]
async fn execute_many_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Connection::execute_many");
    for i in 0.. {
        let conn = env.fresh().await;
        let ids: Vec<i32> = (0..3).map(|k| marker(i) * 10 + k).collect();
        let polls = Tally::polls(i, tally.op);
        let sql = "INSERT INTO t SELECT $1::int4 FROM pg_sleep(0.02)";
        let run = conn.execute_many(sql, ids.iter().map(|id| (id,)));
        match Cancellable::new(run, polls).await {
            Outcome::Done(n) => {
                assert_eq!(n.unwrap(), 3);
                assert_eq!(visible_of(&env, &ids).await, [1, 1, 1]);
                after_drop(&env, &conn, marker(i)).await.unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => {
                let after = after_drop(&env, &conn, marker(i)).await;
                // One unit: all of it or none, never twice.
                let seen = visible_of(&env, &ids).await;
                let after = after.and_then(|a| match seen == [0, 0, 0] || seen == [1, 1, 1] {
                    true => Ok(a),
                    false => Err(format!("rows seen per id: {seen:?}")),
                });
                tally.record(i, after);
            }
        }
    }
}

#[tokio::test]
async fn run_batch_dropped_at_every_poll() {
    let env = Env::new().await;
    for all_or_nothing in [false, true] {
        let op = match all_or_nothing {
            false => "Connection::run_batch (independent statements)",
            true => "Connection::run_batch (all or nothing)",
        };
        let mut tally = Tally::new(op);
        for i in 0.. {
            let conn = env.fresh().await;
            let ids: Vec<i32> = (0..3)
                .map(|k| (marker(i) * 10 + k) * 2 + all_or_nothing as i32)
                .collect();
            let polls = Tally::polls(i, tally.op);
            let sql = "INSERT INTO t SELECT $1::int4 FROM pg_sleep(0.02)";
            let mut batch = match all_or_nothing {
                false => pgkeel::Batch::new(),
                true => pgkeel::Batch::all_or_nothing(),
            };
            let tickets: Vec<_> = ids.iter().map(|id| batch.execute(sql, &[id])).collect();
            let probe = batch.query_one("SELECT $1::int4 + 1", &[&7i32]);
            match Cancellable::new(conn.run_batch(&batch), polls).await {
                Outcome::Done(results) => {
                    let mut results = results.unwrap();
                    for t in tickets {
                        assert_eq!(results.take(t).unwrap(), 1);
                    }
                    assert_eq!(results.take(probe).unwrap().get::<_, i32>(0), 8);
                    assert_eq!(visible_of(&env, &ids).await, [1, 1, 1]);
                    after_drop(&env, &conn, marker(i)).await.unwrap();
                    tally.finish(i);
                    break;
                }
                Outcome::Dropped => {
                    let after = after_drop(&env, &conn, marker(i)).await;
                    let seen = visible_of(&env, &ids).await;
                    // Independent statements: each at most once (the CancelRequest
                    // stops the one running; statements already on the server's socket
                    // may still run). All or nothing: one unit.
                    let allowed = match all_or_nothing {
                        false => seen.iter().all(|&n| n <= 1),
                        true => seen == [0, 0, 0] || seen == [1, 1, 1],
                    };
                    let after = after.and_then(|a| match allowed {
                        true => Ok(a),
                        false => Err(format!("rows seen per id: {seen:?}")),
                    });
                    tally.record(i, after);
                }
            }
        }
    }
}

#[tokio::test]
async fn prepare_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Connection::prepare");
    for i in 0.. {
        let conn = env.fresh().await;
        let polls = Tally::polls(i, tally.op);
        match Cancellable::new(conn.prepare(SLOW), polls).await {
            Outcome::Done(stmt) => {
                let stmt = stmt.unwrap();
                assert_eq!(stmt.params(), &[Type::INT4]);
                let row = conn.query_one(&stmt, &[&9i32]).await.unwrap();
                assert_eq!(row.get::<_, i32>(1), 9);
                after_drop(&env, &conn, marker(i)).await.unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => tally.record(i, after_drop(&env, &conn, marker(i)).await),
        }
    }
}

#[tokio::test]
async fn simple_query_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Connection::simple_query");
    for i in 0.. {
        let conn = env.fresh().await;
        let polls = Tally::polls(i, tally.op);
        match Cancellable::new(conn.simple_query("SELECT pg_sleep(0.05), 42"), polls).await {
            Outcome::Done(messages) => {
                assert_eq!(simple_values(&messages.unwrap()), vec!["42".to_string()]);
                after_drop(&env, &conn, marker(i)).await.unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => tally.record(i, after_drop(&env, &conn, marker(i)).await),
        }
    }
}

#[tokio::test]

async fn query_raw_batched_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Connection::query_raw_batched (first batch)");
    for i in 0.. {
        let conn = env.fresh().await;
        let polls = Tally::polls(i, tally.op);
        let sql = "SELECT g FROM generate_series(1, 10) g";
        match Cancellable::new(conn.query_raw_batched(sql, &[], 2), polls).await {
            Outcome::Done(stream) => {
                let rows: Vec<i32> = stream
                    .unwrap()
                    .map(|r| r.unwrap().get::<_, i32>(0))
                    .collect()
                    .await;
                assert_eq!(rows, (1..=10).collect::<Vec<_>>());
                after_drop(&env, &conn, marker(i)).await.unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => tally.record(i, after_drop(&env, &conn, marker(i)).await),
        }
    }
}

/// A stream over 1..=10 in batches of two, with its first batch read, so the next
/// `next()` has to fetch.
async fn stream_past_first_batch(conn: &Connection) -> pgkeel::RowStream<'static> {
    let mut stream = conn
        .query_raw_batched("SELECT g FROM generate_series(1, 10) g", &[], 2)
        .await
        .unwrap();
    for expected in 1..=2 {
        let got: i32 = stream.next().await.unwrap().unwrap().get(0);
        assert_eq!(got, expected);
    }
    stream
}

#[tokio::test]
async fn row_stream_next_dropped_at_every_poll_resumes_where_it_was() {
    // Only the `next()` future is dropped; the stream keeps its batch in progress.
    let env = Env::new().await;
    let mut tally = Tally::new("RowStream next (stream kept and resumed)");
    for i in 0.. {
        let conn = env.fresh().await;
        let mut stream = stream_past_first_batch(&conn).await;
        let polls = Tally::polls(i, tally.op);
        let outcome = Cancellable::new(stream.next(), polls).await;
        let first = match &outcome {
            Outcome::Done(row) => vec![row.as_ref().unwrap().as_ref().unwrap().get::<_, i32>(0)],
            Outcome::Dropped => vec![],
        };
        let rest: Vec<i32> = (&mut stream)
            .map(|r| r.unwrap().get::<_, i32>(0))
            .collect()
            .await;
        let all: Vec<i32> = first.into_iter().chain(rest).collect();
        assert_eq!(all, (3..=10).collect::<Vec<_>>(), "after {i} polls");
        drop(stream);
        match outcome {
            Outcome::Done(_) => {
                after_drop(&env, &conn, marker(i)).await.unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => tally.record(i, after_drop(&env, &conn, marker(i)).await),
        }
    }
}

#[tokio::test]

async fn row_stream_dropped_during_next_at_every_poll() {
    // The stream is moved into the future: dropping the future drops the stream, between
    // batches (cleanup task) or with a batch in flight (broken).
    let env = Env::new().await;
    let mut tally = Tally::new("RowStream next (stream dropped with it)");
    for i in 0.. {
        let conn = env.fresh().await;
        let stream = stream_past_first_batch(&conn).await;
        let polls = Tally::polls(i, tally.op);
        let next = async move {
            let mut stream = stream;
            stream
                .next()
                .await
                .map(|r| r.map(|row| row.get::<_, i32>(0)))
        };
        match Cancellable::new(next, polls).await {
            Outcome::Done(row) => {
                assert_eq!(row.unwrap().unwrap(), 3);
                // The stream was dropped between batches: cleaned up, still usable.
                assert_eq!(
                    after_drop(&env, &conn, marker(i)).await.unwrap(),
                    After::Usable
                );
                return tally.finish(i);
            }
            Outcome::Dropped => tally.record(i, after_drop(&env, &conn, marker(i)).await),
        }
    }
}

/// Checks the state after a drop inside a transaction: a broken transaction refuses
/// work and its row is gone; a usable one carries on, commits, and both rows stay.
async fn after_drop_in_transaction(
    env: &Env,
    conn: &Connection,
    tx: pgkeel::Transaction,
    id: i32,
) -> Result<After, String> {
    if conn.is_broken() {
        match tx.query("SELECT 1", &[]).await {
            Err(e) if e.kind() == ErrorKind::Broken => {}
            other => return Err(format!("query on a broken transaction gave {other:?}")),
        }
        drop(tx);
        let after = classify(conn, id).await?;
        env.quiet(conn).await?;
        let n = env.visible(id).await;
        check(n == 0, || {
            format!("the broken transaction's row is visible ({n})")
        })?;
        return Ok(after);
    }
    let rows = tx
        .query("SELECT $1::int4", &[&id])
        .await
        .map_err(|e| format!("the transaction cannot go on: {e}"))?;
    let got: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    check(got == [id], || format!("check in transaction got {got:?}"))?;
    tx.execute("INSERT INTO t VALUES ($1)", &[&(id + 500_000)])
        .await
        .map_err(|e| format!("insert after the drop failed: {e}"))?;
    tx.commit()
        .await
        .map_err(|e| format!("commit failed: {e}"))?;
    let after = after_drop(env, conn, id).await?;
    let (a, b) = (env.visible(id).await, env.visible(id + 500_000).await);
    check((a, b) == (1, 1), || format!("rows after commit: {a}, {b}"))?;
    Ok(after)
}

/// A fresh connection with an open transaction that inserted row `id`.
async fn open_transaction(env: &Env, id: i32) -> (Connection, pgkeel::Transaction) {
    let conn = env.fresh().await;
    let tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES ($1)", &[&id])
        .await
        .unwrap();
    (conn, tx)
}

#[tokio::test]

async fn transaction_begin_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Connection::transaction (BEGIN)");
    for i in 0.. {
        let conn = env.fresh().await;
        let id = marker(i);
        let polls = Tally::polls(i, tally.op);
        match Cancellable::new(conn.transaction(), polls).await {
            Outcome::Done(tx) => {
                let tx = tx.unwrap();
                assert_eq!(tx.transaction_status(), TransactionStatus::InTransaction);
                tx.execute("INSERT INTO t VALUES ($1)", &[&id])
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                assert_eq!(env.visible(id).await, 1);
                after_drop(&env, &conn, id).await.unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => tally.record(i, after_drop(&env, &conn, id).await),
        }
    }
}

#[tokio::test]

async fn transaction_query_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Transaction::query");
    for i in 0.. {
        let id = marker(i);
        let (conn, tx) = open_transaction(&env, id).await;
        let polls = Tally::polls(i, tally.op);
        let outcome = Cancellable::new(tx.query(SLOW, &[&7i32]), polls).await;
        match outcome {
            Outcome::Done(rows) => {
                assert_eq!(rows.unwrap()[0].get::<_, i32>(1), 7);
                after_drop_in_transaction(&env, &conn, tx, id)
                    .await
                    .unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => {
                let after = after_drop_in_transaction(&env, &conn, tx, id).await;
                tally.record(i, after);
            }
        }
    }
}

#[tokio::test]

async fn savepoint_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Transaction::savepoint");
    for i in 0.. {
        let id = marker(i);
        let (conn, mut tx) = open_transaction(&env, id).await;
        let polls = Tally::polls(i, tally.op);
        let done = match Cancellable::new(tx.savepoint(), polls).await {
            Outcome::Done(sp) => {
                let sp = sp.unwrap();
                sp.execute("INSERT INTO t VALUES ($1)", &[&(id + 900_000)])
                    .await
                    .unwrap();
                true
            }
            Outcome::Dropped => false,
        };
        let after = after_drop_in_transaction(&env, &conn, tx, id).await;
        if done {
            after.unwrap();
            assert_eq!(env.visible(id + 900_000).await, 0, "dropped savepoint");
            return tally.finish(i);
        }
        tally.record(i, after);
    }
}

#[tokio::test]
async fn commit_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Transaction::commit");
    let mut committed_anyway = 0;
    for i in 0.. {
        let id = marker(i);
        let (conn, tx) = open_transaction(&env, id).await;
        let polls = Tally::polls(i, tally.op);
        match Cancellable::new(tx.commit(), polls).await {
            Outcome::Done(r) => {
                r.unwrap();
                assert_eq!(env.visible(id).await, 1);
                after_drop(&env, &conn, id).await.unwrap();
                println!("commit: {committed_anyway} in-flight drops had committed");
                return tally.finish(i);
            }
            Outcome::Dropped => {
                let after = after_drop(&env, &conn, id).await;
                let n = env.visible(id).await;
                // Before COMMIT was written the guard rolls back; once it was written the
                // outcome is the server's (the session is broken, the commit unknowable).
                let after = after.and_then(|a| match (a, n) {
                    (After::Usable, 0) | (After::Broken, 0) => Ok(a),
                    (After::Broken, 1) => {
                        committed_anyway += 1;
                        Ok(a)
                    }
                    (a, n) => Err(format!("{a:?} with {n} rows visible")),
                });
                tally.record(i, after);
            }
        }
    }
}

#[tokio::test]
async fn rollback_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Transaction::rollback");
    for i in 0.. {
        let id = marker(i);
        let (conn, tx) = open_transaction(&env, id).await;
        let polls = Tally::polls(i, tally.op);
        match Cancellable::new(tx.rollback(), polls).await {
            Outcome::Done(r) => {
                r.unwrap();
                after_drop(&env, &conn, id).await.unwrap();
                assert_eq!(env.visible(id).await, 0);
                return tally.finish(i);
            }
            Outcome::Dropped => {
                let after = after_drop(&env, &conn, id).await;
                let n = env.visible(id).await;
                let after = after.and_then(|a| match n {
                    0 => Ok(a),
                    n => Err(format!("{n} rows visible after a dropped rollback")),
                });
                tally.record(i, after);
            }
        }
    }
}

#[tokio::test]
async fn close_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Connection::close");
    for i in 0.. {
        let conn = env.fresh().await;
        let polls = Tally::polls(i, tally.op);
        match Cancellable::new(conn.close(), polls).await {
            Outcome::Done(r) => {
                r.unwrap();
                assert_eq!(classify(&conn, marker(i)).await.unwrap(), After::Closed);
                let pid = conn.backend_pid();
                let deadline = Instant::now() + Duration::from_secs(1);
                while common::backend_state(&env.watcher, pid).await.is_some() {
                    assert!(Instant::now() < deadline, "the session outlived close()");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                return tally.finish(i);
            }
            Outcome::Dropped => tally.record(i, after_drop(&env, &conn, marker(i)).await),
        }
    }
}

/// A COPY FROM STDIN of `ROWS` rows of `id`, in 16 KiB chunks: about 1 MiB, so some
/// flushes wait for the socket and drops land mid-write too.
async fn copy_rows(conn: &Connection, id: i32) -> Result<u64, Error> {
    const ROWS: usize = 150_000;
    let mut copy = conn.copy_in("COPY t FROM STDIN").await?;
    let line = format!("{id}\n");
    let chunk = line.repeat(16 * 1024 / line.len());
    let per_chunk = 16 * 1024 / line.len();
    let mut sent = 0;
    while sent + per_chunk <= ROWS {
        copy.send(&chunk).await?;
        sent += per_chunk;
        // A point between calls, where a drop finds no write in flight.
        tokio::task::yield_now().await;
    }
    copy.send(line.repeat(ROWS - sent)).await?;
    copy.finish().await
}

#[tokio::test]
async fn copy_in_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Connection::copy_in (1 MiB, send + finish)");
    for i in 0.. {
        let conn = env.fresh().await;
        let id = marker(i);
        let polls = Tally::polls(i, tally.op);
        match Cancellable::new(copy_rows(&conn, id), polls).await {
            Outcome::Done(n) => {
                assert_eq!(n.unwrap(), 150_000);
                assert_eq!(env.visible(id).await, 150_000);
                after_drop(&env, &conn, id).await.unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => {
                let after = after_drop(&env, &conn, id).await;
                // Dropped after CopyDone went out, the COPY may have committed, and the
                // connection (its answer unread) is then broken; otherwise none of it.
                let n = env.visible(id).await;
                let after = after.and_then(|a| match (n, a) {
                    (0, _) | (150_000, After::Broken) => Ok(a),
                    (n, a) => Err(format!("{n} rows visible, connection {a:?}")),
                });
                tally.record(i, after);
            }
        }
    }
}

/// A COPY TO STDOUT of 100,000 rows, collected.
async fn copy_out_all(conn: &Connection) -> Result<usize, Error> {
    let sql = "COPY (SELECT g FROM generate_series(1, 100000) g) TO STDOUT";
    let mut stream = conn.copy_out(sql).await?;
    let mut bytes = 0;
    while let Some(chunk) = stream.next().await {
        let before = bytes;
        bytes += chunk?.len();
        if before / 50_000 != bytes / 50_000 {
            // A point between calls, where a drop may find no read in flight.
            tokio::task::yield_now().await;
        }
    }
    Ok(bytes)
}

#[tokio::test]
async fn copy_out_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Connection::copy_out (100 000 rows, collected)");
    for i in 0.. {
        let conn = env.fresh().await;
        let polls = Tally::polls(i, tally.op);
        match Cancellable::new(copy_out_all(&conn), polls).await {
            Outcome::Done(n) => {
                assert_eq!(n.unwrap(), 588_895);
                after_drop(&env, &conn, marker(i)).await.unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => tally.record(i, after_drop(&env, &conn, marker(i)).await),
        }
    }
}

/// A cursor or portal query whose rows take a moment each.
const SLOW_ROWS: &str = "SELECT pg_sleep(0.02), g FROM generate_series(1, 3) g";

#[tokio::test]
async fn transaction_bind_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Transaction::bind");
    for i in 0.. {
        let id = marker(i);
        let (conn, mut tx) = open_transaction(&env, id).await;
        let polls = Tally::polls(i, tally.op);
        let done = match Cancellable::new(tx.bind(SLOW, &[&7i32]), polls).await {
            Outcome::Done(portal) => Some(portal.unwrap()),
            Outcome::Dropped => None,
        };
        if let Some(portal) = done {
            let rows = tx.query_portal(&portal, 0).await.unwrap();
            assert_eq!(rows[0].get::<_, i32>(1), 7);
            after_drop_in_transaction(&env, &conn, tx, id)
                .await
                .unwrap();
            return tally.finish(i);
        }
        tally.record(i, after_drop_in_transaction(&env, &conn, tx, id).await);
    }
}

#[tokio::test]
async fn transaction_query_portal_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Transaction::query_portal");
    for i in 0.. {
        let id = marker(i);
        let (conn, mut tx) = open_transaction(&env, id).await;
        let portal = tx.bind(SLOW_ROWS, &[]).await.unwrap();
        let polls = Tally::polls(i, tally.op);
        let done = match Cancellable::new(tx.query_portal(&portal, 2), polls).await {
            Outcome::Done(rows) => Some(rows.unwrap()),
            Outcome::Dropped => None,
        };
        drop(portal);
        if let Some(rows) = done {
            assert_eq!(rows.len(), 2);
            after_drop_in_transaction(&env, &conn, tx, id)
                .await
                .unwrap();
            return tally.finish(i);
        }
        tally.record(i, after_drop_in_transaction(&env, &conn, tx, id).await);
    }
}

#[tokio::test]
async fn transaction_declare_cursor_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Transaction::declare_cursor");
    let options = pgkeel::CursorOptions::new();
    for i in 0.. {
        let id = marker(i);
        let (conn, mut tx) = open_transaction(&env, id).await;
        let polls = Tally::polls(i, tally.op);
        let declare = tx.declare_cursor("SELECT $1::int4", &[&7i32], options);
        let done = match Cancellable::new(declare, polls).await {
            Outcome::Done(cursor) => {
                let mut cursor = cursor.unwrap();
                let row = cursor.next().await.unwrap().unwrap();
                assert_eq!(row.get::<_, i32>(0), 7);
                true
            }
            Outcome::Dropped => false,
        };
        let after = after_drop_in_transaction(&env, &conn, tx, id).await;
        if done {
            after.unwrap();
            return tally.finish(i);
        }
        tally.record(i, after);
    }
}

#[tokio::test]
async fn cursor_moves_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Cursor::next, Cursor::last (fetching)");
    let options = pgkeel::CursorOptions::new().batch_rows(2);
    for i in 0.. {
        let id = marker(i);
        let (conn, mut tx) = open_transaction(&env, id).await;
        let mut cursor = tx.declare_cursor(SLOW_ROWS, &[], options).await.unwrap();
        let polls = Tally::polls(i, tally.op);
        let moves = async {
            let first = cursor.next().await?;
            let last = cursor.last().await?;
            Ok::<_, Error>((first, last))
        };
        let done = match Cancellable::new(moves, polls).await {
            Outcome::Done(rows) => {
                let (first, last) = rows.unwrap();
                assert_eq!(first.unwrap().get::<_, i32>(1), 1);
                assert_eq!(last.unwrap().get::<_, i32>(1), 3);
                assert_eq!(cursor.position(), 3);
                true
            }
            Outcome::Dropped => {
                // Mid-fetch, the position is unknown: the cursor refuses to go on.
                if conn.is_broken() {
                    let err = cursor.next().await.unwrap_err();
                    assert_eq!(err.kind(), ErrorKind::Misuse, "{err}");
                }
                false
            }
        };
        drop(cursor);
        let after = after_drop_in_transaction(&env, &conn, tx, id).await;
        if done {
            after.unwrap();
            return tally.finish(i);
        }
        tally.record(i, after);
    }
}

#[tokio::test]
async fn held_cursor_on_a_connection_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Connection::declare_cursor (with hold) and its fetch");
    let options = pgkeel::CursorOptions::new().with_hold(true);
    if std::env::var("PGKEEL_TEST_VIA_PGBOUNCER").is_ok_and(|v| v == "1") {
        // Pooler mode refuses held cursors before sending anything.
        let conn = env.fresh().await;
        let err = conn
            .declare_cursor(SLOW_ROWS, &[], options)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Misuse, "{err}");
        return check_usable(&conn, 1).await.unwrap();
    }
    for i in 0.. {
        let conn = env.fresh().await;
        let polls = Tally::polls(i, tally.op);
        let work = async {
            let mut cursor = conn.declare_cursor(SLOW_ROWS, &[], options).await?;
            let row = cursor.absolute(-1).await?;
            Ok::<_, Error>((cursor, row))
        };
        match Cancellable::new(work, polls).await {
            Outcome::Done(done) => {
                let (cursor, row) = done.unwrap();
                assert_eq!(row.unwrap().get::<_, i32>(1), 3);
                cursor.close().await.unwrap();
                after_drop(&env, &conn, marker(i)).await.unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => tally.record(i, after_drop(&env, &conn, marker(i)).await),
        }
    }
}

/// Large-object work inside a transaction: create, 1 MiB through `AsyncWrite` in 256 KiB
/// chunks, seek, read back through `AsyncRead`, tell, truncate, close, unlink.
async fn large_object_work(
    tx: &mut pgkeel::Transaction,
) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let oid = tx.create_large_object().await?;
    let mut lo = tx.large_object(oid, pgkeel::LoMode::ReadWrite).await?;
    lo.write_all(&data).await?;
    lo.flush().await?;
    lo.seek(std::io::SeekFrom::Start(0)).await?;
    let mut back = Vec::new();
    lo.read_to_end(&mut back).await?;
    assert!(back == data, "read back differs");
    let at = lo.tell().await?;
    lo.truncate(10).await?;
    lo.close().await?;
    tx.unlink_large_object(oid).await?;
    Ok(at)
}

#[tokio::test]
async fn large_object_operations_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Transaction large objects (1 MiB in and out)");
    for i in 0.. {
        let id = marker(i);
        let (conn, mut tx) = open_transaction(&env, id).await;
        let polls = Tally::polls(i, tally.op);
        let outcome = Cancellable::new(large_object_work(&mut tx), polls).await;
        match outcome {
            Outcome::Done(at) => {
                assert_eq!(at.unwrap(), 1 << 20);
                after_drop_in_transaction(&env, &conn, tx, id)
                    .await
                    .unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => {
                let after = after_drop_in_transaction(&env, &conn, tx, id).await;
                tally.record(i, after);
            }
        }
    }
}

#[tokio::test]
async fn fast_path_call_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Connection::fast_path_call_typed (resolve + call)");
    for i in 0.. {
        let conn = env.fresh().await;
        let polls = Tally::polls(i, tally.op);
        let call = conn.fast_path_call_typed::<i32>("int4pl(int4, int4)", &[&40i32, &2i32]);
        match Cancellable::new(call, polls).await {
            Outcome::Done(v) => {
                assert_eq!(v.unwrap(), 42);
                after_drop(&env, &conn, marker(i)).await.unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => tally.record(i, after_drop(&env, &conn, marker(i)).await),
        }
    }
}

#[tokio::test]
async fn pipelined_query_dropped_at_every_poll() {
    if std::env::var_os("PGKEEL_TEST_VIA_PGBOUNCER").is_some() {
        return println!("pooler mode does not pipeline; the locked path is tested above");
    }
    let env = Env::new().await;
    let mut tally = Tally::new("Connection::query (pipelined: statement prepared)");
    for i in 0.. {
        let conn = env.fresh().await;
        conn.query(SLOW, &[&0i32]).await.unwrap(); // prepared: later calls are pipelined
        let polls = Tally::polls(i, tally.op);
        match Cancellable::new(conn.query(SLOW, &[&7i32]), polls).await {
            Outcome::Done(rows) => {
                assert_eq!(rows.unwrap()[0].get::<_, i32>(1), 7);
                assert!(
                    conn.pipeline_counts().calls >= 1,
                    "it went through the pipeline"
                );
                after_drop(&env, &conn, marker(i)).await.unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => tally.record(i, after_drop(&env, &conn, marker(i)).await),
        }
    }
}

/// Another task's pipelined call shares the wire with the one dropped: it always gets
/// its own answer, whatever the drop point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_query_beside_another_tasks_call_dropped_at_every_poll() {
    if std::env::var_os("PGKEEL_TEST_VIA_PGBOUNCER").is_some() {
        return println!("pooler mode does not pipeline; the locked path is tested above");
    }
    let env = Env::new().await;
    let mut tally = Tally::new("Connection::query (pipelined beside another task's call)");
    for i in 0.. {
        let conn = env.fresh().await;
        conn.query(SLOW, &[&0i32]).await.unwrap();
        let other = tokio::spawn({
            let conn = conn.clone();
            async move { conn.query_one(SLOW, &[&8i32]).await }
        });
        tokio::task::yield_now().await;
        let polls = Tally::polls(i, tally.op);
        let done = Cancellable::new(conn.query(SLOW, &[&7i32]), polls).await;
        let theirs = other
            .await
            .unwrap()
            .expect("the other task's call never fails");
        assert_eq!(theirs.get::<_, i32>(1), 8, "the other task got its own row");
        match done {
            Outcome::Done(rows) => {
                assert_eq!(rows.unwrap()[0].get::<_, i32>(1), 7);
                after_drop(&env, &conn, marker(i)).await.unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => tally.record(i, after_drop(&env, &conn, marker(i)).await),
        }
    }
}

#[tokio::test]
async fn transaction_query_waiting_behind_another_of_its_calls_dropped_at_every_poll() {
    let env = Env::new().await;
    let mut tally = Tally::new("Transaction::query behind another call (&self, joined)");
    for i in 0.. {
        let id = marker(i);
        let (conn, tx) = open_transaction(&env, id).await;
        let polls = Tally::polls(i, tally.op);
        // The first call takes the transaction; the second waits, then runs.
        let first = tx.query(SLOW, &[&7i32]);
        let params: [&(dyn pgkeel::ToSql + Sync); 1] = [&id];
        let second = Cancellable::new(tx.query("SELECT $1::int4", &params), polls);
        let (first, outcome) = tokio::join!(first, second);
        let first = first.expect("the first call is not disturbed by the second's drop");
        assert_eq!(first[0].get::<_, i32>(1), 7);
        match outcome {
            Outcome::Done(rows) => {
                assert_eq!(rows.unwrap()[0].get::<_, i32>(0), id);
                after_drop_in_transaction(&env, &conn, tx, id)
                    .await
                    .unwrap();
                return tally.finish(i);
            }
            Outcome::Dropped => {
                let after = after_drop_in_transaction(&env, &conn, tx, id).await;
                tally.record(i, after);
            }
        }
    }
}

/// Waits until the pool has no connection checked out, being returned or closing.
async fn pool_settled(pool: &pgkeel::Pool) -> pgkeel::pool::Status {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = pool.status();
        if (s.in_use, s.returning, s.draining) == (0, 0, 0) || Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// After a dropped `pool.transaction`: the pool is settled and adds up, the next
/// connection is idle (not in a transaction), and the dropped attempt's row is gone
/// unless its closure had finished (so its COMMIT may have been in flight). Under either
/// abandon policy (evicted or recovered) the rule is the same.
async fn pool_after_drop(
    env: &Env,
    pool: &pgkeel::Pool,
    id: i32,
    evicted: u64,
    closure_done: bool,
) -> Result<After, String> {
    let s = pool_settled(pool).await;
    check(
        (s.in_use, s.returning, s.draining) == (0, 0, 0) && s.adds_up(),
        || format!("pool not settled: {s:?}"),
    )?;
    let conn = pool.get().await.map_err(|e| format!("get: {e}"))?;
    let status = conn.transaction_status();
    check(status == TransactionStatus::Idle, || {
        format!("checked out {status:?}")
    })?;
    drop(conn);
    let broken = s.evicted_broken > evicted;
    // Dropped with COMMIT in flight, the outcome is unknown: the server may have
    // committed. Anywhere else nothing of the attempt may be visible.
    let n = env.visible(id).await;
    check(n == 0 || (closure_done && n == 1), || {
        format!(
            "the dropped transaction's row is visible ({n}) though its closure had not \
             finished; broken: {broken}"
        )
    })?;
    Ok(match broken {
        true => After::Broken,
        false => After::Usable,
    })
}

#[tokio::test]
async fn pool_transaction_closure_dropped_at_every_poll() {
    let env = Env::new().await;
    let pool = pgkeel::Pool::builder(env.db.url())
        .max_size(1)
        .build()
        .unwrap();
    let mut tally = Tally::new("Pool::build_transaction().run(async closure)");
    for i in 0.. {
        let id = marker(i);
        let polls = Tally::polls(i, tally.op);
        let evicted = pool.status().evicted_broken;
        let closure_done = std::sync::atomic::AtomicBool::new(false);
        let run = pool.build_transaction().attempts(1).run(async |tx| {
            tx.execute("INSERT INTO t VALUES ($1)", &[&id]).await?;
            let rows = tx.query(SLOW, &[&7i32]).await;
            closure_done.store(true, std::sync::atomic::Ordering::SeqCst);
            rows
        });
        match Cancellable::new(run, polls).await {
            Outcome::Done(rows) => {
                assert_eq!(rows.unwrap()[0].get::<_, i32>(1), 7);
                assert_eq!(env.visible(id).await, 1, "committed");
                let s = pool_settled(&pool).await;
                assert!(s.adds_up() && s.in_use == 0, "{s:?}");
                return tally.finish(i);
            }
            Outcome::Dropped => {
                let done = closure_done.load(std::sync::atomic::Ordering::SeqCst);
                tally.record(i, pool_after_drop(&env, &pool, id, evicted, done).await)
            }
        }
    }
}
