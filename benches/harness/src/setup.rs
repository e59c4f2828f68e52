//! The throwaway cluster with benchmark settings, and the tables the workloads read.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use pgkeel_testkit::{Cluster, ClusterBuilder};

use crate::args::{Sizes, Workload};

/// The running cluster and the database every workload uses.
pub struct Bench {
    pub cluster: Cluster,
    pub db: String,
    pub url: String,
}

/// Table of workload 1 (and of the callgrind loop): `id int8 pk, name text, value float8`.
pub const POINT_SQL: &str = "SELECT id, name, value FROM point WHERE id = $1";
/// Workload 2 reads this; timestamptz goes as epoch seconds, as in the first runs (comparable figures).
pub const FETCH_SQL: &str =
    "SELECT id, name, value, extract(epoch FROM ts)::float8 AS ts FROM fetch_rows";
/// The decode workload reads this: every column decoded into its natural Rust type.
pub const DECODE_SQL: &str = "SELECT id, name, value, ts, amount, uid, doc FROM decode_rows";
/// Workload 3 writes this.
pub const INSERT_SQL: &str = "INSERT INTO ins (id, name, value) VALUES ($1, $2, $3)";

impl Bench {
    /// Starts the cluster and loads what `workloads` need.
    pub fn start(sizes: &Sizes, workloads: &[Workload]) -> Result<Bench, String> {
        let t = Instant::now();
        let cluster = ClusterBuilder::new()
            .setting("fsync", "off")
            .setting("synchronous_commit", "off")
            .setting("full_page_writes", "off")
            // JIT would compile the 1M-row scan anew for every fetch: noise, not driver cost.
            .setting("jit", "off")
            .setting("autovacuum", "off")
            .setting("max_wal_size", "'4GB'")
            .setting("checkpoint_timeout", "'30min'")
            .max_connections(300)
            .start()
            .map_err(|e| e.to_string())?;
        let db = cluster.create_database().map_err(|e| e.to_string())?;
        let url = cluster.url(cluster.superuser(), &db);
        let bench = Bench { cluster, db, url };
        bench.load(sizes, workloads)?;
        eprintln!(
            "cluster on port {} ready, tables loaded in {:.1?}",
            bench.cluster.port(),
            t.elapsed()
        );
        Ok(bench)
    }

    /// Runs SQL through psql on the benchmark database.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        self.cluster.psql(&self.db, sql).map_err(|e| e.to_string())
    }

    fn load(&self, sizes: &Sizes, workloads: &[Workload]) -> Result<(), String> {
        let needs = |w: &[Workload]| w.iter().any(|w| workloads.contains(w));
        if needs(&[
            Workload::PointSelect,
            Workload::SharedConn,
            Workload::Callgrind,
        ]) {
            self.psql(&format!(
                "CREATE TABLE point (id int8 PRIMARY KEY, name text NOT NULL, value float8 NOT NULL);
                 INSERT INTO point SELECT i, 'name-' || i, i * 0.5 FROM generate_series(1, {}) i;",
                sizes.point_rows
            ))?;
        }
        if needs(&[Workload::LargeFetch]) {
            self.psql(&format!(
                "CREATE TABLE fetch_rows (id int8 NOT NULL, name text NOT NULL, value float8 NOT NULL, ts timestamptz NOT NULL);
                 INSERT INTO fetch_rows SELECT i, md5(i::text), i * 0.25, timestamptz '2024-01-01' + i * interval '1 second'
                 FROM generate_series(1, {}) i;",
                sizes.fetch_rows
            ))?;
        }
        if needs(&[Workload::Decode]) {
            self.psql(&format!(
                "CREATE TABLE decode_rows (id int8 NOT NULL, name text NOT NULL, value float8 NOT NULL,
                   ts timestamptz NOT NULL, amount numeric NOT NULL, uid uuid NOT NULL, doc jsonb NOT NULL);
                 INSERT INTO decode_rows SELECT i, md5(i::text), i * 0.25,
                   timestamptz '2024-01-01' + i * interval '1 second', (i * 1.25)::numeric(14, 2),
                   md5(i::text)::uuid, jsonb_build_object('id', i, 'tag', 'item-' || i, 'even', i % 2 = 0)
                 FROM generate_series(1, {}) i;",
                sizes.fetch_rows
            ))?;
        }
        if needs(&[Workload::Inserts]) {
            self.psql(
                "CREATE TABLE ins (id int8 NOT NULL, name text NOT NULL, value float8 NOT NULL)",
            )?;
        }
        if needs(&[Workload::Copy]) {
            self.psql(&format!(
                "CREATE TABLE copy_src (id int8 NOT NULL, name text NOT NULL, value float8 NOT NULL, ts timestamptz NOT NULL);
                 INSERT INTO copy_src SELECT i, 'alpha-' || i, i * 0.25, timestamptz '2024-01-01' + i * interval '1 second'
                 FROM generate_series(1, {}) i;
                 CREATE TABLE copy_dst (LIKE copy_src);",
                sizes.copy_rows
            ))?;
        }
        self.psql("VACUUM ANALYZE").map(drop)
    }

    /// The server's version string.
    pub fn server_version(&self) -> String {
        self.psql("SHOW server_version").unwrap_or_default()
    }

    /// The directory of PostgreSQL's client programs (pgbench), found as the test kit
    /// finds the server's: PGKEEL_PG_BINDIR, `pg_config --bindir`, the highest
    /// /usr/lib/postgresql/*/bin, else PATH.
    pub fn bindir() -> Option<PathBuf> {
        let has_pgbench = |d: &PathBuf| d.join("pgbench").is_file();
        if let Some(dir) = std::env::var_os("PGKEEL_PG_BINDIR").map(PathBuf::from)
            && has_pgbench(&dir)
        {
            return Some(dir);
        }
        let from_pg_config = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .filter(has_pgbench);
        from_pg_config.or_else(|| {
            let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .filter(has_pgbench)
                .collect();
            dirs.sort_by_key(|d| {
                let version = d.parent().and_then(|p| p.file_name());
                version.and_then(|v| v.to_str()?.parse::<u32>().ok())
            });
            dirs.pop()
        })
    }
}
