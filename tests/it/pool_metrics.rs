//! Pool metrics (feature `metrics`) against a real server: each metric moves when the
//! pool does what it counts, under the pool's `pool` label.

use std::collections::HashMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use pgkeel::Pool;
use pgkeel_testkit::TestDb;

/// The metrics of one pool, read through a recorder that only this test uses.
///
/// The debugging recorder resets what it reports, so the readings are summed here: a
/// counter's total, a gauge's net of its increments, every histogram value.
struct Metrics {
    snapshotter: Snapshotter,
    totals: HashMap<String, f64>,
    histograms: HashMap<String, Vec<f64>>,
}

impl Metrics {
    /// Builds a pool whose metric handles go to a fresh recorder.
    fn pool(builder: pgkeel::pool::PoolBuilder) -> (Pool, Metrics) {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let pool = metrics::with_local_recorder(&recorder, || builder.build().unwrap());
        let m = Metrics {
            snapshotter,
            totals: HashMap::new(),
            histograms: HashMap::new(),
        };
        (pool, m)
    }

    fn read(&mut self) {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .filter(|l| l.key() != "pool")
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            match value {
                DebugValue::Counter(n) => *self.totals.entry(name).or_default() += n as f64,
                DebugValue::Gauge(g) => *self.totals.entry(name).or_default() += g.0,
                DebugValue::Histogram(v) => self
                    .histograms
                    .entry(name)
                    .or_default()
                    .extend(v.iter().map(|x| x.0)),
            }
        }
    }

    /// The value of `name{labels}` now (labels as `k=v`, sorted, `pool` left out).
    fn get(&mut self, name: &str) -> f64 {
        self.read();
        self.totals.get(name).copied().unwrap_or(0.0)
    }

    /// Waits (up to 10 s) until `name` reads `want`.
    async fn wait_for(&mut self, name: &str, want: f64) {
        for _ in 0..200 {
            if self.get(name) == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{name} is {} after 10 s, not {want}", self.get(name));
    }
}

const USED: &str = "db.client.connection.count{state=used}";
const IDLE: &str = "db.client.connection.count{state=idle}";

#[tokio::test]
async fn checkouts_returns_and_waits_move_the_gauges_and_the_wait_histogram() {
    let db = TestDb::new();
    let (pool, mut m) = Metrics::pool(Pool::builder(db.url()).name("m-gauges").max_size(1));
    assert_eq!(m.get("db.client.connection.max{}"), 1.0);
    let conn = pool.get().await.unwrap();
    assert_eq!(m.get(USED), 1.0);
    assert_eq!(m.get("pgkeel.pool.size{}"), 1.0);
    assert_eq!(m.get("pgkeel.pool.connects{}"), 1.0);
    assert_eq!(m.get("pgkeel.pool.acquires{}"), 1.0);
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(drop) }
    });
    m.wait_for("db.client.connection.pending_requests{}", 1.0)
        .await;
    drop(conn);
    waiter.await.unwrap().unwrap();
    m.wait_for("db.client.connection.pending_requests{}", 0.0)
        .await;
    assert_eq!(m.get(USED), 0.0);
    assert_eq!(m.get(IDLE), 1.0);
    assert_eq!(m.get("pgkeel.pool.acquires{}"), 2.0);
    let waits = &m.histograms["db.client.connection.wait_time{}"];
    assert_eq!(waits.len(), 2, "{waits:?}");
    pool.close().await;
    m.wait_for("pgkeel.pool.size{}", 0.0).await;
}

#[tokio::test]
async fn evictions_cancels_and_rollbacks_are_counted_by_reason() {
    let db = TestDb::new();
    let (pool, mut m) = Metrics::pool(Pool::builder(db.url()).name("m-evict").max_size(1));
    // Rolled back on return: a transaction left open.
    let conn = pool.get().await.unwrap();
    conn.batch_execute("BEGIN").await.unwrap();
    drop(conn);
    m.wait_for("pgkeel.pool.rollbacks_on_return{}", 1.0).await;
    m.wait_for(IDLE, 1.0).await;
    // Broken: a query abandoned mid-exchange; its backend is cancelled.
    let conn = pool.get().await.unwrap();
    let sleep = conn.execute("SELECT pg_sleep(30)", &[]);
    let gave_up = tokio::time::timeout(Duration::from_millis(300), sleep).await;
    assert!(gave_up.is_err(), "the sleep ended early");
    drop(conn);
    m.wait_for("pgkeel.pool.evictions{reason=broken}", 1.0)
        .await;
    assert_eq!(m.get("pgkeel.pool.cancels{}"), 1.0);
    assert_eq!(m.get("pgkeel.pool.evictions{reason=lifetime}"), 0.0);
    m.wait_for("pgkeel.pool.size{}", 0.0).await;
    pool.close().await;
}

#[tokio::test]
async fn timeouts_connect_errors_and_leaks_are_counted() {
    let db = TestDb::new();
    let builder = Pool::builder(db.url())
        .name("m-leaks")
        .max_size(1)
        .acquire_timeout(Duration::from_millis(200))
        .leak_threshold(Some(Duration::from_millis(100)))
        .maintenance_interval(Duration::from_millis(50));
    let (pool, mut m) = Metrics::pool(builder);
    let held = pool.get().await.unwrap();
    let timed_out = pool.get().await.expect_err("no slot");
    assert!(timed_out.timeout_kind().is_some(), "{timed_out}");
    assert_eq!(m.get("db.client.connection.timeouts{}"), 1.0);
    m.wait_for("pgkeel.pool.leak_reports{}", 1.0).await;
    drop(held);
    pool.close().await;

    let bad = db.cluster().url("no_such_role_for_metrics", db.name());
    let (pool, mut m) = Metrics::pool(Pool::builder(bad).name("m-refused"));
    pool.get().await.expect_err("no such role");
    assert_eq!(m.get("pgkeel.pool.connect_errors{}"), 1.0);
    assert_eq!(m.get("pgkeel.pool.connects{}"), 0.0);
}

#[tokio::test]
async fn every_metric_carries_the_pool_name() {
    let db = TestDb::new();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let pool = metrics::with_local_recorder(&recorder, || {
        Pool::builder(db.url()).name("named").build().unwrap()
    });
    drop(pool.get().await.unwrap());
    let snapshot = snapshotter.snapshot().into_vec();
    assert!(snapshot.len() >= 20, "{snapshot:?}");
    for (key, unit, _, _) in &snapshot {
        let pool_label = key.key().labels().find(|l| l.key() == "pool");
        assert_eq!(pool_label.map(|l| l.value()), Some("named"), "{key:?}");
        if key.key().name() == "db.client.connection.wait_time" {
            assert_eq!(*unit, Some(metrics::Unit::Seconds));
        }
    }
    pool.close().await;
}

#[tokio::test]
async fn an_empty_pool_name_is_refused() {
    let err = Pool::builder("postgres://localhost/x").name("").build();
    assert!(err.unwrap_err().to_string().contains("name"));
}
