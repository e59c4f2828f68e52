//! The timeout storm: 64 tasks hammer a pool of 8 with operations that are cut off by
//! random timeouts, half of them inside transactions. Nobody may ever get a wrong result
//! or see another task's rows, the server may never see more backends than the pool's
//! `max_size`, nothing may be left running or idle in transaction afterwards, and the
//! pool must be healthy when the storm is over.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgkeel::pool::AbandonPolicy;
use pgkeel::{Connection, Error, Pool, PoolTransaction, PooledConnection};
use tokio::task::JoinHandle;
use tokio::time::error::Elapsed;
use tokio::time::timeout;

const MAX_SIZE: usize = 8;
const TASKS: i64 = 64;
/// As the issue asks: 64 tasks x 200 operations.
const OPS_PER_TASK: i64 = 200;
const SLEEP_SQL: &str = "SELECT pg_sleep($1), $2::int8";

/// splitmix64: a small deterministic PRNG, seeded per task.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// What the storm saw, over all tasks.
#[derive(Default)]
struct Tally {
    ops: AtomicU64,
    ok: AtomicU64,
    timeouts: AtomicU64,
    errors: AtomicU64,
    checks: AtomicU64,
    committed: AtomicU64,
    /// Descriptions of every wrong result or foreign row seen (must stay empty).
    wrong: Mutex<Vec<String>>,
    error_samples: Mutex<Vec<String>>,
}

impl Tally {
    fn wrong(&self, what: String) {
        self.wrong.lock().unwrap().push(what);
    }
}

/// A plain query on a checked-out connection: it must answer with what it was sent.
async fn plain(
    conn: &PooledConnection,
    tally: &Tally,
    task: i64,
    value: i64,
    sleep: f64,
) -> Result<(), Error> {
    let got: i64 = conn.query_one(SLEEP_SQL, &[&sleep, &value]).await?.get(1);
    if got != value {
        tally.wrong(format!("task {task}: sent {value}, got {got}"));
    }
    Ok(())
}

/// A transaction that inserts a row tagged with its task, checks that it holds exactly
/// that row, and commits; `commit_sent` is set just before COMMIT goes out.
async fn in_transaction(
    tx: PoolTransaction,
    tally: &Tally,
    commit_sent: &AtomicBool,
    task: i64,
    value: i64,
    sleep: f64,
) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO storm (task, op, txn) VALUES ($1, $2, txid_current())",
        &[&task, &value],
    )
    .await?;
    let got: i64 = tx.query_one(SLEEP_SQL, &[&sleep, &value]).await?.get(1);
    if got != value {
        tally.wrong(format!(
            "task {task} in a transaction: sent {value}, got {got}"
        ));
    }
    let rows = tx
        .query("SELECT task, op FROM storm WHERE txn = txid_current()", &[])
        .await?;
    let mine: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    if mine != [(task, value)] {
        tally.wrong(format!(
            "task {task} op {value}: its transaction holds {mine:?}"
        ));
    }
    commit_sent.store(true, Ordering::Release);
    tx.commit().await
}

/// One operation under a timeout of `limit`: a plain query or a transaction; with
/// `whole`, the timeout also covers the checkout, else only the work on the connection.
async fn operation(
    pool: &Pool,
    tally: &Tally,
    op: Op,
    commit_sent: &AtomicBool,
) -> Result<Result<(), Error>, Elapsed> {
    let Op {
        task,
        value,
        sleep,
        limit,
        in_tx,
        whole,
    } = op;
    match (in_tx, whole) {
        (false, false) => match pool.get().await {
            Ok(conn) => timeout(limit, plain(&conn, tally, task, value, sleep)).await,
            Err(e) => Ok(Err(e)),
        },
        (false, true) => {
            let work = async {
                let conn = pool.get().await?;
                plain(&conn, tally, task, value, sleep).await
            };
            timeout(limit, work).await
        }
        (true, false) => match pool.begin().await {
            Ok(tx) => {
                let work = in_transaction(tx, tally, commit_sent, task, value, sleep);
                timeout(limit, work).await
            }
            Err(e) => Ok(Err(e)),
        },
        (true, true) => {
            let work = async {
                let tx = pool.begin().await?;
                in_transaction(tx, tally, commit_sent, task, value, sleep).await
            };
            timeout(limit, work).await
        }
    }
}

/// One operation's parameters.
#[derive(Clone, Copy)]
struct Op {
    task: i64,
    /// Task-unique: `task * 1_000_000 + k`.
    value: i64,
    sleep: f64,
    limit: Duration,
    in_tx: bool,
    whole: bool,
}

/// One storm task: `OPS_PER_TASK` operations under random timeouts. Returns the
/// transactional ops that got as far as sending COMMIT, and those whose commit succeeded.
async fn storm_task(pool: Pool, tally: Arc<Tally>, task: i64) -> (HashSet<i64>, HashSet<i64>) {
    let mut rng = Rng(0x5EED_0000 + task as u64);
    let (mut commit_sent, mut committed) = (HashSet::new(), HashSet::new());
    for k in 0..OPS_PER_TASK {
        let op = Op {
            task,
            value: task * 1_000_000 + k,
            limit: Duration::from_millis(rng.range(1, 20)),
            sleep: rng.range(0, 20) as f64 / 1000.0,
            in_tx: rng.next().is_multiple_of(2),
            whole: rng.next().is_multiple_of(8),
        };
        tally.ops.fetch_add(1, Ordering::Relaxed);
        let sent = AtomicBool::new(false);
        let outcome = operation(&pool, &tally, op, &sent).await;
        if sent.load(Ordering::Acquire) {
            commit_sent.insert(op.value);
        }
        match outcome {
            Ok(Ok(())) => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
                if op.in_tx {
                    committed.insert(op.value);
                    tally.committed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Err(e)) => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
                tally.error_samples.lock().unwrap().push(format!("{e}"));
            }
            Err(_) => {
                tally.timeouts.fetch_add(1, Ordering::Relaxed);
                check_after_timeout(&pool, &tally, -op.value).await;
            }
        }
    }
    (commit_sent, committed)
}

/// A fresh checkout right after a timeout must answer its own question.
async fn check_after_timeout(pool: &Pool, tally: &Tally, probe: i64) {
    tally.checks.fetch_add(1, Ordering::Relaxed);
    match pool.query_one("SELECT $1::int8", &[&probe]).await {
        Ok(row) if row.get::<_, i64>(0) == probe => {}
        Ok(row) => tally.wrong(format!("check: sent {probe}, got {}", row.get::<_, i64>(0))),
        Err(e) => tally.wrong(format!("check {probe} failed: {e}")),
    }
}

/// What the sampler saw: the most backends at once, how many samples, and the backends
/// of the first sample over `MAX_SIZE` (pid, state, query, age).
struct Sampled {
    max: i64,
    samples: u64,
    excess: Vec<String>,
}

/// Samples the pool's backends in `pg_stat_activity` every 2 ms until `stop`.
fn sample_backends(
    watcher: Connection,
    stop: Arc<AtomicBool>,
    app: &'static str,
) -> JoinHandle<Sampled> {
    tokio::spawn(async move {
        let mut seen = Sampled {
            max: 0,
            samples: 0,
            excess: Vec::new(),
        };
        while !stop.load(Ordering::Acquire) {
            let rows = watcher
                .query(
                    "SELECT pid, state, left(query, 40), \
                     (extract(epoch FROM clock_timestamp() - backend_start) * 1000)::int8 \
                     FROM pg_stat_activity WHERE application_name = $1",
                    &[&app],
                )
                .await
                .expect("sample pg_stat_activity");
            let n = rows.len() as i64;
            if n > MAX_SIZE as i64 && seen.excess.is_empty() {
                seen.excess = rows
                    .iter()
                    .map(|r| {
                        let (pid, state): (i32, Option<String>) = (r.get(0), r.get(1));
                        let (query, age): (Option<String>, i64) = (r.get(2), r.get(3));
                        format!("{pid} {state:?} {query:?} started {age} ms ago")
                    })
                    .collect();
            }
            seen.max = seen.max.max(n);
            seen.samples += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        seen
    })
}

/// Checks the rows the storm left: each one tagged with its own task, from a transaction
/// that sent COMMIT, and every acknowledged commit is there. Returns how
/// many commits landed without being acknowledged (cut off while COMMIT was in flight)
/// and what was wrong.
async fn check_rows(
    watcher: &Connection,
    tasks: &[(HashSet<i64>, HashSet<i64>)],
) -> (usize, Vec<String>) {
    let rows = watcher
        .query("SELECT task, op FROM storm", &[])
        .await
        .unwrap();
    let mut problems = Vec::new();
    let mut by_task: HashMap<i64, HashSet<i64>> = HashMap::new();
    for r in &rows {
        let (task, op): (i64, i64) = (r.get(0), r.get(1));
        if op / 1_000_000 != task {
            problems.push(format!("row {op} is tagged with task {task}"));
        }
        by_task.entry(task).or_default().insert(op);
    }
    let mut landed_unacknowledged = 0;
    let empty = HashSet::new();
    for (task, (commit_sent, committed)) in tasks.iter().enumerate() {
        let stored = by_task.get(&(task as i64)).unwrap_or(&empty);
        let lost: Vec<_> = committed.difference(stored).collect();
        if !lost.is_empty() {
            problems.push(format!("task {task}: acknowledged commits lost: {lost:?}"));
        }
        let uncommitted: Vec<_> = stored.difference(commit_sent).collect();
        if !uncommitted.is_empty() {
            problems.push(format!(
                "task {task}: rows of transactions that never sent COMMIT: {uncommitted:?}"
            ));
        }
        landed_unacknowledged += stored.difference(committed).count();
    }
    (landed_unacknowledged, problems)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_storm_leaves_no_wrong_results_no_excess_backends_and_a_healthy_pool() {
    let _serial = SERIAL.lock().await;
    storm(AbandonPolicy::Evict, "pool_storm_evict").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_storm_with_the_recover_policy_reuses_abandoned_connections_safely() {
    let _serial = SERIAL.lock().await;
    let after = storm(AbandonPolicy::Recover, "pool_storm_recover").await;
    assert!(after.recovered > 0, "nothing was recovered: {after:?}");
}

/// The two storms share two cores; one at a time keeps their figures comparable.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs the storm under `policy` and checks everything the issue asks; returns the
/// pool's final status.
async fn storm(policy: AbandonPolicy, app: &'static str) -> pgkeel::pool::Status {
    let (db, watcher) = common::db().await;
    watcher
        .batch_execute(
            "CREATE TABLE storm (op int8 PRIMARY KEY, task int8 NOT NULL, txn int8 NOT NULL)",
        )
        .await
        .unwrap();
    let pool = Pool::builder(common::with_param(
        &db.url(),
        &format!("application_name={app}"),
    ))
    .max_size(MAX_SIZE)
    .abandon_policy(policy)
    .build()
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_backends(common::connect(&db).await, stop.clone(), app);
    let tally = Arc::new(Tally::default());

    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| tokio::spawn(storm_task(pool.clone(), tally.clone(), task)))
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("storm task panicked"));
    }
    let storm_time = started.elapsed();

    // Quiet afterwards: nothing running, nothing left in a transaction.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let busy = watcher
        .query(
            "SELECT pid, state FROM pg_stat_activity WHERE application_name = $1 \
             AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')",
            &[&app],
        )
        .await
        .unwrap();
    let busy: Vec<(i32, String)> = busy.iter().map(|r| (r.get(0), r.get(1))).collect();
    stop.store(true, Ordering::Release);
    let Sampled {
        max: max_backends,
        samples,
        excess,
    } = sampler.await.unwrap();
    let after = pool.status();

    let (landed, row_problems) = check_rows(&watcher, &results).await;

    // And then the pool simply works.
    let plain_started = Instant::now();
    let plain: Vec<_> = (0..1000i64)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.query_one("SELECT $1::int8", &[&i]).await })
        })
        .collect();
    for (i, q) in plain.into_iter().enumerate() {
        let row = q
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("plain query {i}: {e}"));
        assert_eq!(row.get::<_, i64>(0), i as i64);
    }
    let plain_time = plain_started.elapsed();

    let t = &tally;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    eprintln!(
        "storm ({policy:?}): {} tasks x {} ops on max_size {}: {:?} wall",
        TASKS, OPS_PER_TASK, MAX_SIZE, storm_time
    );
    eprintln!(
        "  operations {}: ok {}, timeouts {}, errors {}; commits acknowledged {}, \
         landed without acknowledgement {}; checks after timeouts {}",
        load(&t.ops),
        load(&t.ok),
        load(&t.timeouts),
        load(&t.errors),
        load(&t.committed),
        landed,
        load(&t.checks)
    );
    eprintln!(
        "  evictions: broken {}, rollback failed {}, lifetime {}, idle {}, health check {}, \
         cloned out {}; rollbacks on return {}; cancels sent {}; recovered {}; connects {}",
        after.evicted_broken,
        after.evicted_rollback_failed,
        after.evicted_lifetime,
        after.evicted_idle,
        after.evicted_health_check,
        after.evicted_cloned_out,
        after.rollbacks_on_return,
        after.cancels_sent,
        after.recovered,
        after.connects
    );
    eprintln!(
        "  max backends seen {max_backends} ({samples} samples); active or idle in \
         transaction 500 ms later: {busy:?}; 1000 plain queries in {plain_time:?}"
    );

    let wrong = tally.wrong.lock().unwrap();
    assert!(
        wrong.is_empty(),
        "{} wrong results: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    let errors = tally.error_samples.lock().unwrap();
    assert!(
        errors.is_empty(),
        "{} errors: {:?}",
        errors.len(),
        &errors[..errors.len().min(10)]
    );
    assert!(row_problems.is_empty(), "{row_problems:?}");
    assert!(samples > 100, "the sampler hardly ran: {samples}");
    assert!(busy.is_empty(), "500 ms after the storm: {busy:?}");
    assert!(
        load(&t.timeouts) > 0 && after.evicted_broken + after.recovered > 0,
        "no storm happened"
    );
    assert!(load(&t.ok) > 0, "nothing got through");
    assert!(after.adds_up(), "{after:?}");
    assert_eq!((after.in_use, after.waiting), (0, 0), "{after:?}");
    assert_eq!(load(&t.ops), (TASKS * OPS_PER_TASK) as u64);
    assert!(pool.status().adds_up());
    assert!(
        max_backends <= MAX_SIZE as i64,
        "pg_stat_activity showed {max_backends} backends for max_size {MAX_SIZE}:\n{}",
        excess.join("\n")
    );
    after
}
