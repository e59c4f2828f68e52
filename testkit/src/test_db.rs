//! A fresh database per test on the shared cluster, and the one-liner for examples.

use std::env;

use crate::cluster::Cluster;
use crate::command::quote_ident;
use crate::error::TestkitError;

/// A fresh database on the shared cluster, for one test.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    cluster: &'static Cluster,
}

impl TestDb {
    /// Creates a fresh database on `Cluster::shared()`; panics (deliberately) on failure.
    #[allow(clippy::new_without_default)] // creating a database is not a default value
    pub fn new() -> TestDb {
        let cluster = Cluster::shared();
        match cluster.create_database() {
            Ok(name) => TestDb { name, cluster },
            Err(err) => panic!("pgkeel testkit: could not create a test database: {err}"),
        }
    }

    /// The name of the database.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The shared cluster the database lives on.
    pub fn cluster(&self) -> &'static Cluster {
        self.cluster
    }

    /// URL of this database as the superuser over TCP.
    ///
    /// With `PGKEEL_TEST_VIA_PGBOUNCER=1`, the URL leads through one PgBouncer in
    /// transaction mode in front of the shared cluster, with pgkeel's pooler mode on.
    pub fn url(&self) -> String {
        if env::var("PGKEEL_TEST_VIA_PGBOUNCER").is_ok_and(|v| v == "1") {
            let bouncer = shared_bouncer();
            let url = bouncer.url(self.cluster.superuser(), &self.name);
            return format!("{url}?pgbouncer=true");
        }
        self.cluster.url(self.cluster.superuser(), &self.name)
    }

    /// URL of this database as `user` with `password` over TCP (both percent-encoded).
    pub fn url_as(&self, user: &str, password: &str) -> String {
        self.cluster.url_for(user, Some(password), &self.name)
    }

    /// Runs SQL in this database through psql as the superuser.
    ///
    /// # Errors
    /// A [`TestkitError::Command`] with psql's output when the SQL fails.
    pub fn psql(&self, sql: &str) -> Result<String, TestkitError> {
        self.cluster.psql(&self.name, sql)
    }
}

/// The PgBouncer (transaction mode) in front of the shared cluster, started on first use.
fn shared_bouncer() -> &'static crate::Pgbouncer {
    static SHARED: std::sync::OnceLock<Result<crate::Pgbouncer, String>> =
        std::sync::OnceLock::new();
    let started = SHARED.get_or_init(|| {
        crate::Pgbouncer::builder()
            .pool_mode(crate::PoolMode::Transaction)
            .default_pool_size(4)
            .max_client_conn(2000)
            // Every test has a database of its own: server connections to finished
            // ones must not pile up against the cluster's max_connections.
            .setting("server_idle_timeout", "1")
            .start(Cluster::shared())
            .map_err(|e| e.to_string())
    });
    match started {
        Ok(bouncer) => bouncer,
        Err(msg) => panic!("pgkeel testkit: could not start the shared PgBouncer: {msg}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.cluster.is_external() {
            let sql = format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&self.name)
            );
            // Best effort: a leftover database on a test server does no harm.
            let _ = self.cluster.psql(&self.cluster.admin_db(), &sql);
        }
    }
}

/// One line for users: a throwaway cluster's database URL, or DATABASE_URL when set.
///
/// Returns the URL and a guard that keeps the cluster alive (None when DATABASE_URL was used).
///
/// # Errors
/// As [`Cluster::start`].
pub fn database_url_or_throwaway() -> Result<(String, Option<Cluster>), TestkitError> {
    if let Some(url) = env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        return Ok((url, None));
    }
    let cluster = Cluster::start()?;
    let url = cluster.url(cluster.superuser(), &cluster.admin_db());
    Ok((url, Some(cluster)))
}
