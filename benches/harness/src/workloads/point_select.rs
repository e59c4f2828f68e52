//! Workload 1: point select by primary key, 32 tasks on a pool of 8, statement cached.
//!
//! Every task loops: check out a connection, `SELECT id, name, value FROM point WHERE id
//! = $1` with a random id, decode the row into owned values, check the id, give the
//! connection back. Queries/s and the harness process's CPU time per query are taken
//! over the measured window only (after a warm-up that fills every statement cache).

use std::hint::black_box;

use sqlx::Row as _;

use super::{Ctl, Measured, timed};
use crate::args::Sizes;
use crate::drivers;
use crate::measure::{Rng, on_fresh_runtime};
use crate::report::{Better, Check, Driver, Line, Report};
use crate::setup::{Bench, POINT_SQL};

const NAME: &str = "1. point select (32 tasks, pool of 8)";

pub fn run(bench: &Bench, sizes: &Sizes, report: &mut Report) {
    let mut qps = [vec![], vec![], vec![]];
    let mut cpu = [vec![], vec![], vec![]];
    let mut sys = [vec![], vec![], vec![]];
    for rep in 1..=sizes.reps {
        for driver in sizes.drivers.clone() {
            let m = on_fresh_runtime(one(driver, &bench.url, sizes));
            eprintln!(
                "point-select  rep {rep} {:<15} {:>9.0} q/s  {:>6.1} µs CPU/q ({:.1} µs of it kernel)",
                driver.name(),
                m.per_sec(),
                m.cpu_us_per_op(),
                m.sys_us_per_op()
            );
            sys[driver as usize].push(m.sys_us_per_op());
            qps[driver as usize].push(m.per_sec());
            cpu[driver as usize].push(m.cpu_us_per_op());
        }
    }
    report.push(
        Line::new(NAME, "queries/s", Some(Better::Higher))
            .drivers(qps)
            .check(Check::AtLeast(Driver::TokioPostgres, 1.15))
            .check(Check::AtLeast(Driver::Sqlx, 2.0)),
    );
    report.push(
        Line::new(NAME, "client CPU µs/query", Some(Better::Lower))
            .drivers(cpu)
            .check(Check::AtMost(Driver::TokioPostgres, 0.75)),
    );
    report.push(
        Line::new(
            NAME,
            "of which kernel (system) µs/query",
            Some(Better::Lower),
        )
        .drivers(sys),
    );
}

async fn one(driver: Driver, url: &str, sizes: &Sizes) -> Measured {
    let ctl = Ctl::new();
    let (n, tasks) = (sizes.point_rows, sizes.tasks);
    let (warm, measure) = (sizes.point_warmup, sizes.point_measure);
    match driver {
        Driver::Pgkeel => {
            let pool = drivers::pgkeel_pool(url, sizes.pool_size).await;
            let tasks = (0..tasks)
                .map(|t| pgkeel_task(pool.clone(), ctl.clone(), t as u64, n))
                .collect();
            let m = timed(tasks, ctl, warm, measure).await;
            pool.close().await;
            m
        }
        Driver::TokioPostgres => {
            let pool = drivers::deadpool(url, sizes.pool_size).await;
            let tasks = (0..tasks)
                .map(|t| deadpool_task(pool.clone(), ctl.clone(), t as u64, n))
                .collect();
            let m = timed(tasks, ctl, warm, measure).await;
            pool.close();
            m
        }
        Driver::Sqlx => {
            let pool = drivers::sqlx_pool(url, sizes.pool_size).await;
            let tasks = (0..tasks)
                .map(|t| sqlx_task(pool.clone(), ctl.clone(), t as u64, n))
                .collect();
            let m = timed(tasks, ctl, warm, measure).await;
            pool.close().await;
            m
        }
    }
}

async fn pgkeel_task(pool: pgkeel::Pool, ctl: std::sync::Arc<Ctl>, seed: u64, n: i64) {
    let mut rng = Rng::new(seed + 1);
    while ctl.running() {
        let id = rng.id(n);
        let row = pool.query_one(POINT_SQL, &[&id]).await.expect("pgkeel");
        let value: (i64, String, f64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(value.0, id);
        black_box(value);
        ctl.done_one();
    }
}

async fn deadpool_task(pool: deadpool_postgres::Pool, ctl: std::sync::Arc<Ctl>, seed: u64, n: i64) {
    let mut rng = Rng::new(seed + 1);
    while ctl.running() {
        let id = rng.id(n);
        let client = pool.get().await.expect("deadpool");
        let stmt = client.prepare_cached(POINT_SQL).await.expect("prepare");
        let row = client
            .query_one(&stmt, &[&id])
            .await
            .expect("tokio-postgres");
        let value: (i64, String, f64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(value.0, id);
        black_box(value);
        ctl.done_one();
    }
}

pub(super) async fn sqlx_task(pool: sqlx::PgPool, ctl: std::sync::Arc<Ctl>, seed: u64, n: i64) {
    let mut rng = Rng::new(seed + 1);
    while ctl.running() {
        let id = rng.id(n);
        let row = sqlx::query(POINT_SQL)
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("sqlx");
        let value: (i64, String, f64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(value.0, id);
        black_box(value);
        ctl.done_one();
    }
}
