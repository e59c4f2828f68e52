//! pgkeel's integration tests: one test binary, one module per capability.
//!
//! One binary means one link step and one shared throwaway cluster
//! (`pgkeel_testkit::Cluster::shared`) for all of them; every test works in a fresh
//! database of its own (`common::db`), so checks that read server-wide views such as
//! `pg_stat_activity` filter on `datname = current_database()` (or on an
//! `application_name` unique to the test) and never see another test's sessions.

mod common;

mod auth;
mod batch;
mod behind_pooler;
mod cancel_every_poll;
mod client_trait;
mod close;
mod codec_chunks;
mod config_libpq;
mod connect;
mod copy;
mod cursors;
mod dropped_query;
mod errors;
mod execute_many;
mod failover;
mod faults;
mod faults_duplex;
mod faults_failover;
mod faults_paths;
mod fuzz_smoke;
mod half_open;
mod large_objects;
mod ledger;
mod malformed_backend;
mod notify;
mod pgbouncer;
mod pipelining;
mod pool_backoff;
mod pool_checkout;
mod pool_failover;
mod pool_idle_health;
#[cfg(feature = "metrics")]
mod pool_metrics;
mod pool_restart;
mod pool_storm;
mod pool_transactions;
mod protocol_robustness;
mod protocol_versions;
mod retryable;
mod server_faults;
mod shared_connection;
mod statement_cache;
mod streams;
mod telemetry;
mod timeouts;
mod tls;
mod tls_direct;
mod transactions;
mod tx_builder;
mod types;
mod types_catalog;
mod types_derive;
mod types_from_row;
mod types_oracle;
mod types_params;
mod wire_lock;

/// Runs this test binary again as a child process with `env` set, on the tests matching
/// `filters` (all but these re-runs when empty), and fails with the child's failures.
fn run_again(what: &str, env: (&str, &str), filters: &[&str]) {
    if std::env::var_os(env.0).is_some() {
        return; // this is the run again
    }
    let exe = std::env::current_exe().expect("the test binary");
    let out = std::process::Command::new(exe)
        .env(env.0, env.1)
        .args(filters)
        .args(["--skip", "suite_again"])
        .output()
        .expect("run the suite again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<_> = stdout
        .lines()
        .filter(|l| l.starts_with("test result"))
        .collect();
    println!("{what}: {summary:?}");
    if !out.status.success() {
        // The child's own report of each failure: what it panicked with.
        let report = stdout.split_once("\nfailures:\n").map_or("", |(_, r)| r);
        let report: String = report.chars().take(20_000).collect();
        panic!("the suite failed {what}:\n{report}");
    }
}

/// The whole suite once more with a one-statement cache, so a statement Close is queued
/// at nearly every exchange.
#[test]
fn suite_again_with_a_one_statement_cache() {
    run_again(
        "with statement_cache_capacity=1",
        ("PGKEEL_TEST_STATEMENT_CACHE", "1"),
        &[],
    );
}

/// The modules that do not watch server backends by pid or keep session state, once
/// more through a PgBouncer in transaction mode with pgkeel's pooler mode on. (Behind a
/// pooler, `backend_pid()` is the pooler's, and sessions are shared between clients.)
#[test]
fn suite_again_through_pgbouncer_in_transaction_mode() {
    if std::env::var("PGKEEL_SKIP_PGBOUNCER").is_ok_and(|v| v == "1") {
        return;
    }
    let modules = [
        "types::",
        "types_params::",
        "errors::",
        "execute_many::",
        "batch::",
        "cancel_every_poll::",
        "retryable::",
        "behind_pooler::",
        "copy::",
        "large_objects::",
        "client_trait::",
        "tx_builder::",
    ];
    run_again(
        "through PgBouncer",
        ("PGKEEL_TEST_VIA_PGBOUNCER", "1"),
        &modules,
    );
}
