//! The pool's metrics through the `metrics` facade (feature `metrics`).
//!
//! Handles are registered once, when the pool is built, with the pool's name as the
//! `pool` label; every update after that is a call on a handle. A recorder installed
//! after the pool was built does not see it (the handles registered before are no-ops),
//! so install the recorder first.

use metrics::{Counter, Gauge, Histogram, Unit};

/// `db.client.connection.count`: connections by `state`.
pub const CONNECTION_COUNT: &str = "db.client.connection.count";
/// `db.client.connection.max`: the pool's `max_size`.
pub const CONNECTION_MAX: &str = "db.client.connection.max";
/// `db.client.connection.pending_requests`: callers waiting for a connection.
pub const PENDING_REQUESTS: &str = "db.client.connection.pending_requests";
/// `db.client.connection.wait_time`: how long a checkout waited, in seconds.
pub const WAIT_TIME: &str = "db.client.connection.wait_time";
/// `db.client.connection.timeouts`: checkouts that hit `acquire_timeout`.
pub const TIMEOUTS: &str = "db.client.connection.timeouts";
/// `pgkeel.pool.size`: connections that exist or are being opened.
pub const SIZE: &str = "pgkeel.pool.size";
/// `pgkeel.pool.acquires`: successful checkouts.
pub const ACQUIRES: &str = "pgkeel.pool.acquires";
/// `pgkeel.pool.connects`: connections opened.
pub const CONNECTS: &str = "pgkeel.pool.connects";
/// `pgkeel.pool.connect_errors`: connection attempts that failed.
pub const CONNECT_ERRORS: &str = "pgkeel.pool.connect_errors";
/// `pgkeel.pool.evictions`: connections that left the pool, by `reason`.
pub const EVICTIONS: &str = "pgkeel.pool.evictions";
/// `pgkeel.pool.cancels`: CancelRequests sent for abandoned exchanges.
pub const CANCELS: &str = "pgkeel.pool.cancels";
/// `pgkeel.pool.rollbacks_on_return`: returned connections rolled back.
pub const ROLLBACKS_ON_RETURN: &str = "pgkeel.pool.rollbacks_on_return";
/// `pgkeel.pool.recovered`: abandoned connections recovered instead of evicted.
pub const RECOVERED: &str = "pgkeel.pool.recovered";
/// `pgkeel.pool.transaction_retries`: re-runs of `Pool::transaction` closures.
pub const TRANSACTION_RETRIES: &str = "pgkeel.pool.transaction_retries";
/// `pgkeel.pool.backends_lingering`: evicted backends still running when their slot
/// was freed.
pub const BACKENDS_LINGERING: &str = "pgkeel.pool.backends_lingering";
/// `pgkeel.pool.leak_reports`: checkouts held past the leak threshold.
pub const LEAK_REPORTS: &str = "pgkeel.pool.leak_reports";
/// `pgkeel.pool.shared_calls`: pool query calls that shared a checked-out connection.
pub const SHARED_CALLS: &str = "pgkeel.pool.shared_calls";

/// The `state` label of [`CONNECTION_COUNT`], in the order of the pool's gauges.
pub(crate) const STATES: [&str; 5] = ["idle", "used", "opening", "returning", "draining"];

/// Registers the descriptions and units of every metric (once per process is enough;
/// repeats are harmless).
pub(crate) fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        CONNECTION_COUNT,
        Unit::Count,
        "Connections of the pool by state"
    );
    describe_gauge!(CONNECTION_MAX, Unit::Count, "The pool's max_size");
    describe_gauge!(
        PENDING_REQUESTS,
        Unit::Count,
        "Callers waiting for a connection"
    );
    describe_histogram!(WAIT_TIME, Unit::Seconds, "Time a checkout waited");
    describe_counter!(TIMEOUTS, Unit::Count, "Checkouts that hit acquire_timeout");
    describe_gauge!(
        SIZE,
        Unit::Count,
        "Connections that exist or are being opened"
    );
    describe_counter!(ACQUIRES, Unit::Count, "Successful checkouts");
    describe_counter!(CONNECTS, Unit::Count, "Connections opened");
    describe_counter!(
        CONNECT_ERRORS,
        Unit::Count,
        "Connection attempts that failed"
    );
    describe_counter!(EVICTIONS, Unit::Count, "Connections evicted, by reason");
    describe_counter!(
        CANCELS,
        Unit::Count,
        "CancelRequests sent for abandoned exchanges"
    );
    describe_counter!(
        ROLLBACKS_ON_RETURN,
        Unit::Count,
        "Returned connections rolled back"
    );
    describe_counter!(RECOVERED, Unit::Count, "Abandoned connections recovered");
    describe_counter!(
        TRANSACTION_RETRIES,
        Unit::Count,
        "Transaction closure re-runs"
    );
    describe_counter!(
        BACKENDS_LINGERING,
        Unit::Count,
        "Evicted backends still running"
    );
    describe_counter!(
        LEAK_REPORTS,
        Unit::Count,
        "Checkouts held past the leak threshold"
    );
    describe_counter!(
        SHARED_CALLS,
        Unit::Count,
        "Pool query calls that shared a checked-out connection"
    );
}

/// A counter handle labelled with the pool.
pub(crate) fn counter(name: &'static str, pool: &str) -> Counter {
    metrics::counter!(name, "pool" => pool.to_owned())
}

/// The eviction counter of one reason.
pub(crate) fn eviction(pool: &str, reason: &'static str) -> Counter {
    metrics::counter!(EVICTIONS, "pool" => pool.to_owned(), "reason" => reason)
}

/// The pool's gauges, moved together with its packed gauge word.
pub(crate) struct GaugeHandles {
    pub(crate) states: [Gauge; 5],
    pub(crate) size: Gauge,
    pub(crate) waiting: Gauge,
}

impl GaugeHandles {
    pub(crate) fn new(pool: &str, max_size: usize) -> GaugeHandles {
        describe();
        metrics::gauge!(CONNECTION_MAX, "pool" => pool.to_owned()).set(max_size as f64);
        GaugeHandles {
            states: STATES.map(|state| {
                metrics::gauge!(CONNECTION_COUNT, "pool" => pool.to_owned(), "state" => state)
            }),
            size: metrics::gauge!(SIZE, "pool" => pool.to_owned()),
            waiting: metrics::gauge!(PENDING_REQUESTS, "pool" => pool.to_owned()),
        }
    }
}

/// The histogram of checkout waits.
pub(crate) fn wait_time(pool: &str) -> Histogram {
    metrics::histogram!(WAIT_TIME, "pool" => pool.to_owned())
}
