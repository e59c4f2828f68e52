//! A running PostgreSQL cluster: a throwaway one, or an existing server.

use std::path::Path;
use std::process;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::command::{percent_encode, quote_ident, quote_literal, run_psql, userinfo};
use crate::error::{TestkitError, command_error};
use crate::external::{External, external_url};
use crate::local::{Local, make_temp_dir};
use crate::programs::{Bins, server_owner};
use crate::{LOCALHOST, SUPERUSER};

/// The group roles whose members must authenticate with a password over TCP.
const AUTH_GROUPS: [&str; 3] = [
    "pgkeel_auth_password",
    "pgkeel_auth_md5",
    "pgkeel_auth_scram",
];

/// Numbers the databases created by this process.
static DB_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// How a test role authenticates over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// No password is asked.
    Trust,
    /// A cleartext password (`password` in pg_hba.conf).
    Password,
    /// An MD5 challenge; the password is stored as an MD5 hash.
    Md5,
    /// SCRAM-SHA-256; the password is stored as a SCRAM secret.
    ScramSha256,
}

impl AuthMethod {
    /// The pg_hba.conf group of this method's roles, if any.
    fn group(self) -> Option<&'static str> {
        match self {
            Self::Trust => None,
            Self::Password => Some(AUTH_GROUPS[0]),
            Self::Md5 => Some(AUTH_GROUPS[1]),
            Self::ScramSha256 => Some(AUTH_GROUPS[2]),
        }
    }

    /// The `password_encryption` that stores this method's passwords.
    fn encryption(self) -> &'static str {
        match self {
            Self::Md5 => "md5",
            _ => "scram-sha-256",
        }
    }
}

/// Settings for a cluster before it starts.
#[derive(Debug, Clone, Default)]
pub struct ClusterBuilder {
    settings: Vec<(String, String)>,
    max_connections: Option<u32>,
    bindir: Option<std::path::PathBuf>,
}

impl ClusterBuilder {
    /// A builder with the default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a `key = value` line to postgresql.conf (`value` as written, quote strings).
    pub fn setting(mut self, key: &str, value: &str) -> Self {
        self.settings.push((key.to_string(), value.to_string()));
        self
    }

    /// Uses the server binaries in `dir` (another PostgreSQL version, say) instead of the
    /// ones found as the kit usually finds them.
    pub fn bindir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.bindir = Some(dir.into());
        self
    }

    /// Sets `max_connections` (default 200).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = Some(n);
        self
    }

    /// Starts the cluster (or connects to `PGKEEL_TEST_URL`, ignoring the settings).
    ///
    /// # Errors
    /// When no PostgreSQL binaries are found, or initdb or the start fails.
    pub fn start(self) -> Result<Cluster, TestkitError> {
        if let Some(url) = external_url() {
            return Cluster::external(&url);
        }
        let bins = match &self.bindir {
            Some(dir) => Bins::in_dir(dir.clone())?,
            None => Bins::find()?,
        };
        let owner = server_owner()?;
        let dir = make_temp_dir(owner)?;
        let mut cluster = Cluster {
            host: LOCALHOST.to_string(),
            port: 0,
            superuser: SUPERUSER.to_string(),
            backend: Backend::Local(Local::new(bins, owner, dir)),
        };
        // From here on an error drops `cluster`, which stops the server and removes the dir.
        cluster.boot(&self)?;
        Ok(cluster)
    }

    /// The lines appended to postgresql.conf for a start on `port`.
    pub(crate) fn conf_lines(&self, dir: &str, port: u16) -> String {
        let max_connections = self.max_connections.unwrap_or(200);
        let mut lines = vec![
            "# added by pgkeel's testkit".to_string(),
            "fsync = off".to_string(),
            "synchronous_commit = off".to_string(),
            "full_page_writes = off".to_string(),
            format!("max_connections = {max_connections}"),
            "shared_buffers = 128MB".to_string(),
            "logging_collector = off".to_string(),
            "log_min_messages = warning".to_string(),
        ];
        lines.extend(self.settings.iter().map(|(k, v)| format!("{k} = {v}")));
        lines.push(format!("listen_addresses = '{LOCALHOST}'"));
        lines.push(format!("port = {port}"));
        lines.push(format!("unix_socket_directories = {}", quote_literal(dir)));
        lines.join("\n") + "\n"
    }
}

/// A running throwaway PostgreSQL cluster (or an external server named by PGKEEL_TEST_URL).
#[derive(Debug)]
pub struct Cluster {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) superuser: String,
    pub(crate) backend: Backend,
}

/// Where a cluster's server lives.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per cluster, never moved in a hot path
pub(crate) enum Backend {
    Local(Local),
    External(External),
}

impl Cluster {
    /// Starts a cluster with default settings.
    ///
    /// # Errors
    /// As [`ClusterBuilder::start`].
    pub fn start() -> Result<Cluster, TestkitError> {
        ClusterBuilder::new().start()
    }

    /// The process-wide cluster shared by all tests of one test binary.
    ///
    /// It is started on first use, honours `PGKEEL_TEST_URL`, and is stopped and removed
    /// by a watchdog process when the test binary exits. Panics (deliberately, for tests)
    /// with the error message if it cannot start.
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
        match SHARED.get_or_init(|| Cluster::start().map_err(|e| e.to_string())) {
            Ok(cluster) => cluster,
            Err(msg) => panic!("pgkeel testkit: could not start the shared cluster: {msg}"),
        }
    }

    /// The TCP host: "127.0.0.1", or the external server's first host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of the server's Unix socket (None for an external server).
    pub fn socket_dir(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Local(local) => Some(Path::new(&local.dir)),
            Backend::External(_) => None,
        }
    }

    /// The superuser's name: "postgres", or the user of `PGKEEL_TEST_URL`.
    pub fn superuser(&self) -> &str {
        &self.superuser
    }

    /// Whether this is an external server named by `PGKEEL_TEST_URL`.
    pub fn is_external(&self) -> bool {
        matches!(self.backend, Backend::External(_))
    }

    /// A postgres:// URL for `user` (no password) to database `dbname` over TCP.
    pub fn url(&self, user: &str, dbname: &str) -> String {
        self.url_for(user, None, dbname)
    }

    /// Runs SQL as the superuser through psql (-X -q -v ON_ERROR_STOP=1 -At).
    ///
    /// Returns psql's stdout without its final newline.
    ///
    /// # Errors
    /// A [`TestkitError::Command`] with psql's output when the SQL fails.
    pub fn psql(&self, dbname: &str, sql: &str) -> Result<String, TestkitError> {
        let cmd = match &self.backend {
            Backend::Local(local) => local.psql_command(self.port, dbname),
            Backend::External(ext) => ext.psql_command(dbname),
        };
        run_psql(cmd, sql)
    }

    /// Creates a fresh, uniquely named database and returns its name.
    ///
    /// # Errors
    /// When `CREATE DATABASE` fails.
    pub fn create_database(&self) -> Result<String, TestkitError> {
        let mut last = None;
        for _ in 0..20 {
            let n = DB_COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("pgkeel_test_{}_{n}", process::id());
            let sql = format!("CREATE DATABASE {}", quote_ident(&name));
            match self.psql(&self.admin_db(), &sql) {
                Ok(_) => return Ok(name),
                // A leftover of an earlier process with the same pid on an external server.
                Err(err) if err.to_string().contains("already exists") => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| command_error("CREATE DATABASE", "no name was free")))
    }

    /// Creates a LOGIN role `name` with `password` that must authenticate with `method` over TCP.
    ///
    /// The password is stored as MD5 for [`AuthMethod::Md5`] and as a SCRAM secret
    /// otherwise; the role joins the matching `pgkeel_auth_*` group.
    ///
    /// # Errors
    /// When the SQL fails, or on an external server for any method but `Trust`.
    pub fn create_role(
        &self,
        name: &str,
        password: &str,
        method: AuthMethod,
    ) -> Result<(), TestkitError> {
        if self.is_external() && method != AuthMethod::Trust {
            return Err(TestkitError::External(format!(
                "create_role with {method:?} authentication"
            )));
        }
        let role = quote_ident(name);
        let mut sql = format!(
            "SET password_encryption = '{}';\nCREATE ROLE {role} LOGIN PASSWORD {};\n",
            method.encryption(),
            quote_literal(password)
        );
        if let Some(group) = method.group() {
            sql.push_str(&format!("GRANT {group} TO {role};\n"));
        }
        self.psql(&self.admin_db(), &sql).map(drop)
    }

    /// `pg_ctl restart -m fast -w` (same port).
    ///
    /// # Errors
    /// When pg_ctl fails; an External error on an external server.
    pub fn restart(&self) -> Result<(), TestkitError> {
        self.local("Cluster::restart")?.restart("fast")
    }

    /// `pg_ctl restart -m <mode> -w` (`smart`, `fast` or `immediate`; same port).
    ///
    /// # Errors
    /// When pg_ctl fails; an External error on an external server.
    pub fn restart_with_mode(&self, mode: &str) -> Result<(), TestkitError> {
        self.local("Cluster::restart_with_mode")?.restart(mode)
    }

    /// Stops the server (fast) without removing it, for outage tests.
    ///
    /// # Errors
    /// When pg_ctl fails; an External error on an external server.
    pub fn stop_server(&self) -> Result<(), TestkitError> {
        self.local("Cluster::stop_server")?.stop("fast")
    }

    /// Stops the server with `pg_ctl stop -m <mode>` (`immediate`: a crash, no
    /// shutdown checkpoint, no final WAL shipped to standbys), without removing it.
    ///
    /// # Errors
    /// When pg_ctl fails; an External error on an external server.
    pub fn stop_server_with_mode(&self, mode: &str) -> Result<(), TestkitError> {
        self.local("Cluster::stop_server_with_mode")?.stop(mode)
    }

    /// Starts the server again after [`Cluster::stop_server`] (same port).
    ///
    /// # Errors
    /// When pg_ctl fails; an External error on an external server.
    pub fn start_server(&self) -> Result<(), TestkitError> {
        self.local("Cluster::start_server")?.start()
    }

    /// The database that admin SQL (CREATE/DROP DATABASE, CREATE ROLE) runs in.
    pub(crate) fn admin_db(&self) -> String {
        match &self.backend {
            Backend::Local(_) => "postgres".to_string(),
            Backend::External(ext) => ext.dbname(),
        }
    }

    /// A cluster for the external server at `url`.
    fn external(url: &str) -> Result<Cluster, TestkitError> {
        External::new(url).map(Cluster::from_external)
    }

    /// A cluster for the external server `ext`.
    pub(crate) fn from_external(ext: External) -> Cluster {
        let (host, port) = ext.target();
        Cluster {
            host,
            port,
            superuser: ext.user(),
            backend: Backend::External(ext),
        }
    }

    /// Runs initdb, starts the server on a free port and creates the auth groups.
    fn boot(&mut self, builder: &ClusterBuilder) -> Result<(), TestkitError> {
        let Backend::Local(local) = &mut self.backend else {
            return Ok(());
        };
        local.initdb()?;
        self.port = local.start_on_free_port(builder)?;
        let sql: String = AUTH_GROUPS
            .iter()
            .map(|group| format!("CREATE ROLE {group} NOLOGIN;\n"))
            .collect();
        self.psql(SUPERUSER, &sql).map(drop)
    }

    /// The local server, or an External error naming `what`.
    pub(crate) fn local(&self, what: &str) -> Result<&Local, TestkitError> {
        match &self.backend {
            Backend::Local(local) => Ok(local),
            Backend::External(_) => Err(TestkitError::External(what.to_string())),
        }
    }

    /// A postgres:// URL for `user` with an optional `password` to `dbname` over TCP.
    pub(crate) fn url_for(&self, user: &str, password: Option<&str>, dbname: &str) -> String {
        let url = match &self.backend {
            Backend::External(ext) => ext.url(user, password, dbname),
            Backend::Local(_) => {
                let userinfo = userinfo(user, password);
                let dbname = percent_encode(dbname);
                format!("postgres://{userinfo}@{LOCALHOST}:{}/{dbname}", self.port)
            }
        };
        with_driver_settings(url)
    }
}

/// Adds the driver settings a whole test run is asked to use through the environment:
/// `PGKEEL_TEST_STATEMENT_CACHE=N` sets every connection's statement cache to `N`
/// statements (1 keeps a statement Close queued at nearly every exchange).
fn with_driver_settings(url: String) -> String {
    match std::env::var("PGKEEL_TEST_STATEMENT_CACHE") {
        Ok(n) if !n.is_empty() => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}statement_cache_capacity={n}")
        }
        _ => url,
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Backend::Local(local) = &mut self.backend {
            local.destroy();
        }
    }
}
