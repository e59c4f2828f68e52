//! Workload 1b: point select by primary key, 32 tasks sharing ONE connection.
//!
//! pgkeel: one `Connection` cloned into every task (calls of different tasks share
//! writes and reads through its pipeline). tokio-postgres: one `Client` shared the same
//! way (its connection task pipelines). sqlx: a pool of one connection, the nearest it
//! has. The statement is prepared once and reused by every task.

use std::hint::black_box;
use std::sync::Arc;

use super::{Ctl, Measured, timed_watching};
use crate::args::Sizes;
use crate::drivers;
use crate::measure::{Rng, on_fresh_runtime};
use crate::report::{Better, Cell, Check, Driver, Line, Report};
use crate::setup::{Bench, POINT_SQL};

const NAME: &str = "1b. point select (32 tasks, ONE connection)";

pub fn run(bench: &Bench, sizes: &Sizes, report: &mut Report) {
    let mut qps = [vec![], vec![], vec![]];
    let mut cpu = [vec![], vec![], vec![]];
    let (mut server_cpu, mut server_busy) = ([vec![], vec![], vec![]], [vec![], vec![], vec![]]);
    let mut per_write = vec![];
    let mut floor = super::Floor::default();
    let c = &bench.cluster;
    for rep in 1..=sizes.reps {
        let run = crate::raw::point(
            (c.port(), c.superuser(), &bench.db),
            POINT_SQL,
            sizes.point_rows,
            sizes.point_warmup,
            sizes.point_measure,
        );
        floor.push("shared-floor", rep, "statement", run);
        for driver in sizes.drivers.clone() {
            let (m, calls_per_write) = on_fresh_runtime(one(driver, &bench.url, sizes));
            per_write.extend(calls_per_write);
            eprintln!(
                "shared-conn   rep {rep} {:<15} {:>9.0} q/s  {:>6.1} µs CPU/q  server {:.1} µs/q, busy {:.0}%",
                driver.name(),
                m.per_sec(),
                m.cpu_us_per_op(),
                m.server_us_per_op(),
                m.server_busy_pct(),
            );
            qps[driver as usize].push(m.per_sec());
            cpu[driver as usize].push(m.cpu_us_per_op());
            server_cpu[driver as usize].push(m.server_us_per_op());
            server_busy[driver as usize].push(m.server_busy_pct());
        }
    }
    let tp_qps = qps[Driver::TokioPostgres as usize].clone();
    report.push(
        Line::new(NAME, "queries/s", Some(Better::Higher))
            .drivers(qps)
            .check(Check::AtLeast(Driver::TokioPostgres, 1.2)),
    );
    report.push(Line::new(NAME, "client CPU µs/query", Some(Better::Lower)).drivers(cpu));
    report.push(
        Line::new(NAME, "server backend CPU µs/query", Some(Better::Lower)).drivers(server_cpu),
    );
    report.push(Line::new(NAME, "server backend busy, % of the run", None).drivers(server_busy));
    floor.report(NAME, "statement", &tp_qps, report);
    if !per_write.is_empty() {
        report.push(
            Line::new(NAME, "pgkeel calls per write (pipeline counters)", None)
                .set(Driver::Pgkeel, Cell::Values(per_write)),
        );
    }
}

/// One run; with pgkeel, also its calls per write (its pipeline's counters).
async fn one(driver: Driver, url: &str, sizes: &Sizes) -> (Measured, Option<f64>) {
    let ctl = Ctl::new();
    let (n, tasks) = (sizes.point_rows, sizes.tasks);
    let (warm, measure) = (sizes.point_warmup, sizes.point_measure);
    match driver {
        Driver::Pgkeel => {
            let conn = drivers::pgkeel_conn(url).await;
            let pid = drivers::pgkeel_pid(&conn).await;
            let tasks = (0..tasks)
                .map(|t| pgkeel_task(conn.clone(), ctl.clone(), t as u64, n))
                .collect();
            let m = timed_watching(tasks, ctl, warm, measure, &[pid]).await;
            let c = conn.pipeline_counts();
            let per_write = c.calls as f64 / c.writes.max(1) as f64;
            eprintln!(
                "shared-conn   pgkeel: {} calls in {} writes ({per_write:.1} per write){}",
                c.calls,
                c.writes,
                crate::measure::spin_counts_text(conn.read_spin_counts())
            );
            (m, Some(per_write))
        }
        Driver::TokioPostgres => {
            let client = Arc::new(drivers::tokio_postgres(url).await);
            let pid = drivers::tokio_postgres_pid(&client).await;
            let stmt = client.prepare(POINT_SQL).await.expect("prepare");
            let tasks = (0..tasks)
                .map(|t| tp_task(client.clone(), stmt.clone(), ctl.clone(), t as u64, n))
                .collect();
            (
                timed_watching(tasks, ctl, warm, measure, &[pid]).await,
                None,
            )
        }
        Driver::Sqlx => {
            let pool = drivers::sqlx_pool(url, 1).await;
            let pid = drivers::sqlx_pid(&mut pool.acquire().await.expect("sqlx acquire")).await;
            let tasks = (0..tasks)
                .map(|t| super::point_select::sqlx_task(pool.clone(), ctl.clone(), t as u64, n))
                .collect();
            let m = timed_watching(tasks, ctl, warm, measure, &[pid]).await;
            pool.close().await;
            (m, None)
        }
    }
}

async fn pgkeel_task(conn: pgkeel::Connection, ctl: Arc<Ctl>, seed: u64, n: i64) {
    let mut rng = Rng::new(seed + 1);
    while ctl.running() {
        let id = rng.id(n);
        let row = conn.query_one(POINT_SQL, &[&id]).await.expect("pgkeel");
        let value: (i64, String, f64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(value.0, id);
        black_box(value);
        ctl.done_one();
    }
}

async fn tp_task(
    client: Arc<tokio_postgres::Client>,
    stmt: tokio_postgres::Statement,
    ctl: Arc<Ctl>,
    seed: u64,
    n: i64,
) {
    let mut rng = Rng::new(seed + 1);
    while ctl.running() {
        let id = rng.id(n);
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
