//! Workload 3: 100,000 inserts in one transaction on one connection.
//!
//! "Plain" awaits each insert before sending the next, for every driver. "Pipelined"
//! keeps many inserts in flight at once on one connection: pgkeel `execute_many`
//! (Bind + Execute in chunks, one Sync), tokio-postgres `join_all` over chunks of 1000
//! futures on one client; sqlx has no pipelining. The table is truncated before every run and its row count checked after.

use std::time::Instant;

use futures::future::join_all;
use sqlx::Connection as _;
use tokio_postgres::types::ToSql;

use super::NAMES;
use crate::args::Sizes;
use crate::drivers;
use crate::measure::on_fresh_runtime;
use crate::report::{Better, Cell, Check, Driver, Line, Report};
use crate::setup::{Bench, INSERT_SQL};

const NAME: &str = "3. inserts (1 transaction, 1 connection)";
const COUNT_SQL: &str = "SELECT count(*) FROM ins";

fn row(i: i64) -> (i64, &'static str, f64) {
    (i, NAMES[i as usize % NAMES.len()], i as f64 * 0.5)
}

pub fn run(bench: &Bench, sizes: &Sizes, report: &mut Report) {
    let n = sizes.insert_rows;
    let mut plain = [vec![], vec![], vec![]];
    let mut piped = vec![];
    let mut piped_pgkeel = vec![];
    for rep in 1..=sizes.reps {
        for driver in sizes.drivers.clone() {
            bench.psql("TRUNCATE ins").expect("truncate");
            let secs = on_fresh_runtime(plain_run(driver, &bench.url, n));
            eprintln!(
                "inserts       rep {rep} {:<15} {:>9.0} inserts/s (plain)",
                driver.name(),
                n as f64 / secs
            );
            plain[driver as usize].push(n as f64 / secs);
        }
        if !sizes.drivers.contains(&Driver::TokioPostgres) {
            continue;
        }
        if sizes.drivers.contains(&Driver::Pgkeel) {
            bench.psql("TRUNCATE ins").expect("truncate");
            let secs = on_fresh_runtime(pipelined_pgkeel(&bench.url, n));
            eprintln!(
                "inserts       rep {rep} {:<15} {:>9.0} inserts/s (pipelined: execute_many)",
                "pgkeel",
                n as f64 / secs
            );
            piped_pgkeel.push(n as f64 / secs);
        }
        bench.psql("TRUNCATE ins").expect("truncate");
        let secs = on_fresh_runtime(pipelined_tokio_postgres(&bench.url, n, sizes.insert_chunk));
        eprintln!(
            "inserts       rep {rep} {:<15} {:>9.0} inserts/s (pipelined)",
            "tokio-postgres",
            n as f64 / secs
        );
        piped.push(n as f64 / secs);
    }
    report.push(Line::new(NAME, "inserts/s, plain loop", Some(Better::Higher)).drivers(plain));
    report.push(
        Line::new(NAME, "inserts/s, pipelined", Some(Better::Higher))
            .set(Driver::Pgkeel, Cell::Values(piped_pgkeel))
            .set(Driver::TokioPostgres, Cell::Values(piped))
            .set(Driver::Sqlx, Cell::Text("n/a (no pipelining)".into()))
            .check(Check::AtLeast(Driver::TokioPostgres, 2.0)),
    );
    report.note(format!(
        "Inserts: {n} rows into a table without indexes; pipelined = pgkeel `execute_many` (Bind + \
         Execute in chunks, one Sync) and, for tokio-postgres, `join_all` over chunks of {} \
         `execute` futures on one client, each inside the transaction.",
        sizes.insert_chunk
    ));
}

/// Begins, inserts `n` rows one after another, commits; returns the seconds taken.
async fn plain_run(driver: Driver, url: &str, n: i64) -> f64 {
    match driver {
        Driver::Pgkeel => {
            let conn = drivers::pgkeel_conn(url).await;
            let t = Instant::now();
            let tx = conn.transaction().await.expect("begin");
            for i in 0..n {
                let (id, name, value) = row(i);
                tx.execute(INSERT_SQL, &[&id, &name, &value])
                    .await
                    .expect("pgkeel insert");
            }
            tx.commit().await.expect("commit");
            let secs = t.elapsed().as_secs_f64();
            let count: i64 = conn.query_one(COUNT_SQL, &[]).await.expect("count").get(0);
            assert_eq!(count, n);
            secs
        }
        Driver::TokioPostgres => {
            let mut client = drivers::tokio_postgres(url).await;
            let t = Instant::now();
            let tx = client.transaction().await.expect("begin");
            let stmt = tx.prepare(INSERT_SQL).await.expect("prepare");
            for i in 0..n {
                let (id, name, value) = row(i);
                tx.execute(&stmt, &[&id, &name, &value])
                    .await
                    .expect("tokio-postgres insert");
            }
            tx.commit().await.expect("commit");
            let secs = t.elapsed().as_secs_f64();
            let count: i64 = client
                .query_one(COUNT_SQL, &[])
                .await
                .expect("count")
                .get(0);
            assert_eq!(count, n);
            secs
        }
        Driver::Sqlx => {
            let mut conn = drivers::sqlx_conn(url).await;
            let t = Instant::now();
            let mut tx = conn.begin().await.expect("begin");
            for i in 0..n {
                let (id, name, value) = row(i);
                sqlx::query(INSERT_SQL)
                    .bind(id)
                    .bind(name)
                    .bind(value)
                    .execute(&mut *tx)
                    .await
                    .expect("sqlx insert");
            }
            tx.commit().await.expect("commit");
            let secs = t.elapsed().as_secs_f64();
            let count: i64 = sqlx::query_scalar(COUNT_SQL)
                .fetch_one(&mut conn)
                .await
                .expect("count");
            assert_eq!(count, n);
            secs
        }
    }
}

/// As [`plain_run`] for pgkeel, with `execute_many` (pipelined chunks, one Sync).
async fn pipelined_pgkeel(url: &str, n: i64) -> f64 {
    let conn = drivers::pgkeel_conn(url).await;
    let t = Instant::now();
    let tx = conn.transaction().await.expect("begin");
    let rows: Vec<_> = (0..n).map(row).collect();
    let params: Vec<[&(dyn pgkeel::ToSql + Sync); 3]> = rows
        .iter()
        .map(|(id, name, value)| [id as _, name as _, value as _])
        .collect();
    let done = tx
        .execute_many(INSERT_SQL, params.iter().map(|p| &p[..]))
        .await
        .expect("pgkeel execute_many");
    assert_eq!(done, n as u64);
    tx.commit().await.expect("commit");
    let secs = t.elapsed().as_secs_f64();
    let count: i64 = conn.query_one(COUNT_SQL, &[]).await.expect("count").get(0);
    assert_eq!(count, n);
    secs
}

/// As [`plain_run`] for tokio-postgres, with `chunk` inserts in flight at once.
async fn pipelined_tokio_postgres(url: &str, n: i64, chunk: usize) -> f64 {
    let mut client = drivers::tokio_postgres(url).await;
    let t = Instant::now();
    let tx = client.transaction().await.expect("begin");
    let stmt = tx.prepare(INSERT_SQL).await.expect("prepare");
    let mut start = 0;
    while start < n {
        let end = (start + chunk as i64).min(n);
        let rows: Vec<_> = (start..end).map(row).collect();
        let params: Vec<[&(dyn ToSql + Sync); 3]> = rows
            .iter()
            .map(|(id, name, value)| [id as _, name as _, value as _])
            .collect();
        for r in join_all(params.iter().map(|p| tx.execute(&stmt, p))).await {
            r.expect("tokio-postgres pipelined insert");
        }
        start = end;
    }
    tx.commit().await.expect("commit");
    let secs = t.elapsed().as_secs_f64();
    let count: i64 = client
        .query_one(COUNT_SQL, &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, n);
    secs
}
