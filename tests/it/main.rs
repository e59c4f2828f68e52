//! pgkeel's integration tests: one test binary, one module per capability.
//!
//! One binary means one link step and one shared throwaway cluster
//! (`pgkeel_testkit::Cluster::shared`) for all of them; every test works in a fresh
//! database of its own (`common::db`), so checks that read server-wide views such as
//! `pg_stat_activity` filter on `datname = current_database()` (or on an
//! `application_name` unique to the test) and never see another test's sessions.

mod common;

mod auth;
mod behind_pooler;
mod cancel_every_poll;
mod close;
mod codec_chunks;
mod connect;
mod dropped_query;
mod errors;
mod execute_many;
mod ledger;
mod malformed_backend;
mod pgbouncer;
mod pool_checkout;
mod pool_restart;
mod pool_storm;
mod pool_transactions;
mod retryable;
mod shared_connection;
mod statement_cache;
mod streams;
mod timeouts;
mod transactions;
mod types;
mod wire_lock;

/// The whole suite once more with a one-statement cache, so a statement Close is queued
/// at nearly every exchange (run as a child process of this binary).
#[test]
fn suite_again_with_a_one_statement_cache() {
    if std::env::var_os("PGKEEL_TEST_STATEMENT_CACHE").is_some() {
        return; // this is the run again
    }
    let exe = std::env::current_exe().expect("the test binary");
    let out = std::process::Command::new(exe)
        .env("PGKEEL_TEST_STATEMENT_CACHE", "1")
        .args(["--skip", "suite_again"])
        .output()
        .expect("run the suite again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .filter(|l| l.starts_with("test result"))
        .collect::<Vec<_>>();
    println!("with statement_cache_capacity=1: {summary:?}");
    if !out.status.success() {
        let failed: Vec<_> = stdout.lines().filter(|l| l.ends_with("FAILED")).collect();
        panic!(
            "the suite failed with statement_cache_capacity=1: {failed:#?}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
