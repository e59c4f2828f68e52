//! pgkeel's integration tests: one test binary, one module per capability.
//!
//! One binary means one link step and one shared throwaway cluster
//! (`pgkeel_testkit::Cluster::shared`) for all of them; every test works in a fresh
//! database of its own (`common::db`), so checks that read server-wide views such as
//! `pg_stat_activity` filter on `datname = current_database()` (or on an
//! `application_name` unique to the test) and never see another test's sessions.

mod common;

mod auth;
mod cancel_every_poll;
mod close;
mod codec_chunks;
mod connect;
mod dropped_query;
mod errors;
mod execute_many;
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
