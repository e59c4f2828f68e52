//! Throwaway PostgreSQL clusters for tests, benchmarks and examples of code using pgkeel.
//!
//! [`Cluster::start`] runs `initdb` into a fresh temp dir, starts the server on a free
//! TCP port of 127.0.0.1 (plus a Unix socket in the temp dir) and removes it all again
//! when the [`Cluster`] is dropped. [`Cluster::shared`] is one cluster per test binary,
//! and a [`TestDb`] is a fresh database on it for one test. Admin SQL runs through
//! `psql`, so the kit does not depend on the driver under test; it uses pgkeel only to
//! read connection URLs ([`pgkeel::Config`]).
//!
//! # Adding it to your crate
//!
//! The kit is a crate of its own, meant as a dev-dependency:
//!
//! ```toml
//! [dev-dependencies]
//! pgkeel-testkit = { path = "../pgkeel/testkit" } # or the version/git of your pgkeel
//! ```
//!
//! Put your integration tests in one test binary (`tests/it/main.rs` with one module per
//! area) so that they share one cluster: each test binary starts its own.
//!
//! # PgBouncer
//!
//! [`Pgbouncer::builder`] starts a real PgBouncer (transaction pooling by default) in
//! front of a cluster, for tests of the driver behind a pooler. Without a `pgbouncer`
//! binary (`PGKEEL_PGBOUNCER`, `PATH`, `/usr/sbin`) it fails, saying what to install;
//! [`PgbouncerBuilder::start_or_skip`] skips instead, loudly, when
//! `PGKEEL_SKIP_PGBOUNCER=1`.
//!
//! # Faults on the network
//!
//! [`FaultProxy`] sits between the driver and a server and injects latency, one-byte
//! slicing, a bandwidth cap, a blackhole, resets after N bytes, and corrupted or injected
//! bytes at given offsets; [`SilentListener`] is a port that never answers.
//!
//! # Finding PostgreSQL
//!
//! The server binaries are taken from `PGKEEL_PG_BINDIR`, else `initdb` on `PATH`,
//! else `pg_config --bindir`, else the highest `/usr/lib/postgresql/*/bin`. As root,
//! server commands run as the `postgres` OS user. When `PGKEEL_TEST_URL` holds the
//! URL (or `key=value` string) of a superuser on an existing server, no cluster is
//! started and databases and roles are created on that server instead.
//!
//! ```no_run
//! use pgkeel_testkit::{AuthMethod, TestDb};
//!
//! let db = TestDb::new();
//! db.psql("CREATE TABLE t (id int)").unwrap();
//! db.cluster().create_role("alice", "s3cret", AuthMethod::ScramSha256).unwrap();
//! let url = db.url_as("alice", "s3cret");
//! // connect to `url` with the driver under test ...
//! # let _ = url;
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cluster;
mod command;
mod error;
mod external;
mod ledger;
mod local;
mod pgbouncer;
mod programs;
mod proxy;
mod test_db;
#[cfg(test)]
mod tests;
mod topology;

pub use cluster::{AuthMethod, Cluster, ClusterBuilder};
pub use error::TestkitError;
pub use ledger::{LedgerReport, WriteLedger, WriteOutcome};
pub use pgbouncer::{Pgbouncer, PgbouncerBuilder, PoolMode, SKIP_ENV as SKIP_PGBOUNCER_ENV};
pub use proxy::{Direction, FaultProxy, ProxyStats, SilentListener};
pub use test_db::{TestDb, database_url_or_throwaway};

/// The superuser of a throwaway cluster, and the OS user that runs it as root.
const SUPERUSER: &str = "postgres";
/// The address a throwaway cluster listens on.
const LOCALHOST: &str = "127.0.0.1";
