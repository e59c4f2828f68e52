//! Workload 5: pool checkout and return with no query, 32 tasks on a pool of 8.

use std::hint::black_box;
use std::sync::Arc;

use super::{Ctl, Measured, timed};
use crate::args::Sizes;
use crate::drivers;
use crate::measure::on_fresh_runtime;
use crate::report::{Better, Check, Driver, Line, Report};
use crate::setup::Bench;

const NAME: &str = "5. acquire + release (32 tasks, pool of 8)";

pub fn run(bench: &Bench, sizes: &Sizes, report: &mut Report) {
    let mut rate = [vec![], vec![], vec![]];
    for rep in 1..=sizes.reps {
        for driver in sizes.drivers.clone() {
            let m = on_fresh_runtime(one(driver, &bench.url, sizes));
            eprintln!(
                "acquire       rep {rep} {:<15} {:>9.0} acquires/s  {:>5.2} µs CPU each",
                driver.name(),
                m.per_sec(),
                m.cpu_us_per_op()
            );
            rate[driver as usize].push(m.per_sec());
        }
    }
    report.push(
        Line::new(NAME, "acquires/s", Some(Better::Higher))
            .drivers(rate)
            .check(Check::Beats(Driver::TokioPostgres))
            .check(Check::Beats(Driver::Sqlx)),
    );
    report.note(
        "Pools: no round trip on checkout for any driver (deadpool-postgres `RecyclingMethod::Fast`, \
         sqlx `test_before_acquire(false)`; sqlx's default would ping on every acquire).",
    );
}

async fn one(driver: Driver, url: &str, sizes: &Sizes) -> Measured {
    let ctl = Ctl::new();
    let (warm, measure) = (sizes.acquire_warmup, sizes.acquire_measure);
    match driver {
        Driver::Pgkeel => {
            let pool = drivers::pgkeel_pool(url, sizes.pool_size).await;
            let tasks = (0..sizes.tasks)
                .map(|_| pgkeel_task(pool.clone(), ctl.clone()))
                .collect();
            let m = timed(tasks, ctl, warm, measure).await;
            pool.close().await;
            m
        }
        Driver::TokioPostgres => {
            let pool = drivers::deadpool(url, sizes.pool_size).await;
            let tasks = (0..sizes.tasks)
                .map(|_| deadpool_task(pool.clone(), ctl.clone()))
                .collect();
            let m = timed(tasks, ctl, warm, measure).await;
            pool.close();
            m
        }
        Driver::Sqlx => {
            let pool = drivers::sqlx_pool(url, sizes.pool_size).await;
            let tasks = (0..sizes.tasks)
                .map(|_| sqlx_task(pool.clone(), ctl.clone()))
                .collect();
            let m = timed(tasks, ctl, warm, measure).await;
            pool.close().await;
            m
        }
    }
}

async fn pgkeel_task(pool: pgkeel::Pool, ctl: Arc<Ctl>) {
    while ctl.running() {
        black_box(pool.get().await.expect("pgkeel acquire"));
        ctl.done_one();
        // A checkout that never waits never yields; this keeps the timer task running.
        tokio::task::coop::consume_budget().await;
    }
}

async fn deadpool_task(pool: deadpool_postgres::Pool, ctl: Arc<Ctl>) {
    while ctl.running() {
        drop(black_box(pool.get().await.expect("deadpool acquire")));
        ctl.done_one();
        // A checkout that never waits never yields; this keeps the timer task running.
        tokio::task::coop::consume_budget().await;
    }
}

async fn sqlx_task(pool: sqlx::PgPool, ctl: Arc<Ctl>) {
    while ctl.running() {
        black_box(pool.acquire().await.expect("sqlx acquire"));
        ctl.done_one();
        // A checkout that never waits never yields; this keeps the timer task running.
        tokio::task::coop::consume_budget().await;
    }
}
