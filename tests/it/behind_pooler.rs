//! pgkeel behind a real PgBouncer in transaction mode, where many client connections take
//! turns on a few server connections: statement names must never make one client run
//! another client's statement, with the default settings (named, cached statements) and
//! with pooler mode (nothing named on the server).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::common;
use pgkeel::{Connection, Pool};
use pgkeel_testkit::{Pgbouncer, PoolMode, TestDb};

/// A statement and the result it must give for a parameter.
type Case = (&'static str, fn(i64) -> i64);

/// Distinct SQL texts whose results differ for the same parameter.
fn texts() -> Vec<Case> {
    vec![
        ("SELECT $1::int8 * 2", |x| x * 2),
        ("SELECT $1::int8 + 1", |x| x + 1),
        ("SELECT $1::int8 - 7", |x| x - 7),
        ("SELECT $1::int8 * 3 + 1", |x| x * 3 + 1),
        ("SELECT -$1::int8", |x| -x),
        ("SELECT $1::int8 / 2", |x| x / 2),
        ("SELECT $1::int8 % 97", |x| x % 97),
        ("SELECT $1::int8 * $1::int8", |x| x * x),
    ]
}

/// Runs `per_task` queries from each of 8 tasks, each on its own client connection
/// through `bouncer`; returns (wrong results, errors).
async fn hammer(url: &str, per_task: u64) -> (u64, u64, Vec<String>) {
    let wrong = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let url = url.to_owned();
        let (wrong, errors, seen) = (wrong.clone(), errors.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            let conn = Connection::connect(&url)
                .await
                .expect("connect through PgBouncer");
            let texts = texts();
            for i in 0..per_task {
                let (sql, expect) = &texts[((t * 7 + i * 3) % texts.len() as u64) as usize];
                let x = 31_000 + (t * 1000 + i) as i64;
                match conn.query_one(*sql, &[&x]).await {
                    Ok(row) if row.get::<_, i64>(0) == expect(x) => {}
                    Ok(_) => {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        seen.lock().unwrap().push(e.to_string());
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    (
        wrong.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        seen,
    )
}

fn bouncer(db: &TestDb) -> Option<Pgbouncer> {
    Pgbouncer::builder()
        .pool_mode(PoolMode::Transaction)
        .default_pool_size(2)
        .start_or_skip(db.cluster())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_settings_never_run_another_clients_statement() {
    let db = TestDb::new();
    let Some(bouncer) = bouncer(&db) else { return };
    let url = bouncer.url(db.cluster().superuser(), db.name());
    let (wrong, errors, seen) = hammer(&url, 250).await;
    assert_eq!((wrong, errors), (0, 0), "{seen:?}\n{}", bouncer.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_churning_statement_cache_behind_pgbouncer_recovers_every_clash() {
    let db = TestDb::new();
    let Some(bouncer) = bouncer(&db) else { return };
    let base = bouncer.url(db.cluster().superuser(), db.name());
    let url = common::with_param(&base, "statement_cache_capacity=2");
    let (wrong, errors, seen) = hammer(&url, 250).await;
    assert_eq!((wrong, errors), (0, 0), "{seen:?}\n{}", bouncer.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooler_mode_is_safe_for_queries_prepared_statements_transactions_and_batches() {
    let db = TestDb::new();
    let Some(bouncer) = bouncer(&db) else { return };
    let base = bouncer.url(db.cluster().superuser(), db.name());
    for setting in ["pgbouncer=true", "prepare_threshold=0"] {
        let url = common::with_param(&base, setting);
        let (wrong, errors, seen) = hammer(&url, 250).await;
        assert_eq!(
            (wrong, errors),
            (0, 0),
            "{setting}: {seen:?}\n{}",
            bouncer.log()
        );
    }
    let url = common::with_param(&base, "pgbouncer=true");
    let setup = Connection::connect(&url).await.unwrap();
    setup
        .batch_execute("CREATE TABLE IF NOT EXISTS acct (id int8 PRIMARY KEY, bal int8)")
        .await
        .unwrap();
    let pool = Pool::builder(url.as_str()).max_size(6).build().unwrap();
    let mut tasks = Vec::new();
    for t in 0..6i64 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let conn = pool.get().await.unwrap();
            // A prepared statement is parsed again at every use: no name to clash.
            let stmt = conn.prepare("SELECT $1::int8 * 10").await.unwrap();
            for i in 0..50i64 {
                let row = conn.query_one(&stmt, &[&(t * 100 + i)]).await.unwrap();
                assert_eq!(row.get::<_, i64>(0), (t * 100 + i) * 10);
            }
            let tx = conn.transaction().await.unwrap();
            tx.execute("INSERT INTO acct VALUES ($1, $2)", &[&t, &100i64])
                .await
                .unwrap();
            let row = tx
                .query_one("SELECT bal FROM acct WHERE id = $1", &[&t])
                .await
                .unwrap();
            assert_eq!(row.get::<_, i64>(0), 100);
            tx.commit().await.unwrap();
            let ids: Vec<i64> = (1000 + t * 100..1000 + t * 100 + 100).collect();
            let params: Vec<[&(dyn pgkeel::ToSql + Sync); 2]> =
                ids.iter().map(|id| [id as _, id as _]).collect();
            let sets: Vec<&[&(dyn pgkeel::ToSql + Sync)]> = params.iter().map(|p| &p[..]).collect();
            let sql = "INSERT INTO acct VALUES ($1, $2)";
            let n = conn.execute_many(sql, sets).await.unwrap();
            assert_eq!(n, 100);
            // Batches: the same text twice, another text, a failing statement that fails
            // alone, then an all-or-nothing batch whose failure undoes its inserts.
            let (t10, t5000, t5100) = (t + 10, 5000 + t, 5100 + t);
            let mut batch = pgkeel::Batch::new();
            let a = batch.query_one("SELECT $1::int8 + 1", &[&t]);
            let b = batch.query_one("SELECT $1::text || 'x'", &[&"y"]);
            let c = batch.query_one("SELECT $1::int8 + 1", &[&t10]);
            let dup = batch.execute("INSERT INTO acct VALUES ($1, $2)", &[&t, &0i64]);
            let d = batch.query_one("SELECT bal FROM acct WHERE id = $1", &[&t]);
            let mut r = conn.run_batch(&batch).await.unwrap();
            assert_eq!(r.take(a).unwrap().get::<_, i64>(0), t + 1);
            assert_eq!(r.take(b).unwrap().get::<_, &str>(0), "yx");
            assert_eq!(r.take(c).unwrap().get::<_, i64>(0), t + 11);
            assert_eq!(r.take(dup).unwrap_err().code(), Some("23505"));
            assert_eq!(r.take(d).unwrap().get::<_, i64>(0), 100);
            let mut all = pgkeel::Batch::all_or_nothing();
            let first = all.execute(sql, &[&t5000, &1i64]);
            let _second = all.execute(sql, &[&t5100, &1i64]);
            let _dup = all.execute(sql, &[&t, &1i64]);
            let after = all.query_one("SELECT 1::int4", &[]);
            let mut r = conn.run_batch(&all).await.unwrap();
            assert_eq!(
                r.first_error().map(|(i, e)| (i, e.code())),
                Some((2, Some("23505")))
            );
            assert_eq!(
                r.take(first).unwrap_err().kind(),
                pgkeel::ErrorKind::RolledBack
            );
            assert_eq!(
                r.take(after).unwrap_err().kind(),
                pgkeel::ErrorKind::Skipped
            );
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let row = setup
        .query_one("SELECT count(*) FROM acct", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 6 + 600);
    let row = setup
        .query_one("SELECT count(*) FROM pg_prepared_statements", &[])
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, i64>(0),
        0,
        "pooler mode names nothing on the server"
    );
}

/// Batches of independent statements (a Sync after each) dropped after they went out,
/// over and over, while other clients of the same PgBouncer check every answer they
/// get: the dropped client reads what it is owed before it leaves, so no answer of its
/// reaches a client the pooler hands its server connection to next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_batches_never_leave_answers_for_another_client() {
    let db = TestDb::new();
    let Some(bouncer) = bouncer(&db) else { return };
    let base = bouncer.url(db.cluster().superuser(), db.name());
    let url = common::with_param(&base, "pgbouncer=true");
    let setup = Connection::connect(&url).await.unwrap();
    setup
        .batch_execute("CREATE TABLE IF NOT EXISTS dropped (id int8)")
        .await
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let wrong = Arc::new(AtomicU64::new(0));
    let mut checkers = Vec::new();
    for t in 0..2i64 {
        let (url, stop, wrong) = (url.clone(), stop.clone(), wrong.clone());
        checkers.push(tokio::spawn(async move {
            let conn = Connection::connect(&url).await.unwrap();
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let x = t * 1_000_000 + i;
                match conn.query_one("SELECT $1::int8 * 3", &[&x]).await {
                    Ok(row) if row.get::<_, i64>(0) == x * 3 => {}
                    other => {
                        wrong.fetch_add(1, Ordering::Relaxed);
                        eprintln!("checker {t}: {x} gave {other:?}");
                    }
                }
            }
        }));
    }
    for round in 0..40i64 {
        let conn = Connection::connect(&url).await.unwrap();
        let ids = [round * 3, round * 3 + 1, round * 3 + 2];
        let mut batch = pgkeel::Batch::new();
        let sql = "INSERT INTO dropped SELECT $1 FROM pg_sleep(0.01)";
        let _tickets: Vec<_> = ids.iter().map(|id| batch.execute(sql, &[id])).collect();
        let run = conn.run_batch(&batch);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(3), run).await;
        assert!(
            waited.is_err(),
            "round {round}: the batch finished within 3 ms"
        );
        drop(conn);
    }
    stop.store(true, Ordering::Relaxed);
    for c in checkers {
        c.await.unwrap();
    }
    assert_eq!(wrong.load(Ordering::Relaxed), 0, "{}", bouncer.log());
}
