//! A throwaway PostgreSQL cluster for tests, benchmarks and examples.
//!
//! [`Cluster::start`] runs `initdb` into a fresh temp dir, starts the server on a free
//! TCP port of 127.0.0.1 (plus a Unix socket in the temp dir) and removes it all again
//! when the [`Cluster`] is dropped. [`Cluster::shared`] is one cluster per test binary,
//! and a [`TestDb`] is a fresh database on it for one test. Admin SQL runs through
//! `psql`, so the kit does not depend on the driver under test.
//!
//! The server binaries are taken from `PGKEEL_PG_BINDIR`, else `initdb` on `PATH`,
//! else `pg_config --bindir`, else the highest `/usr/lib/postgresql/*/bin`. As root,
//! server commands run as the `postgres` OS user. When `PGKEEL_TEST_URL` holds the
//! `postgres://` URL of a superuser on an existing server, no cluster is started and
//! databases and roles are created on that server instead.
//!
//! ```no_run
//! use pgkeel::testkit::{AuthMethod, TestDb};
//!
//! let db = TestDb::new();
//! db.psql("CREATE TABLE t (id int)").unwrap();
//! db.cluster().create_role("alice", "s3cret", AuthMethod::ScramSha256).unwrap();
//! let url = db.url_as("alice", "s3cret");
//! // connect to `url` with the driver under test ...
//! # let _ = url;
//! ```

use std::env;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{self, Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The superuser of a throwaway cluster, and the OS user that runs it as root.
const SUPERUSER: &str = "postgres";
/// The address a throwaway cluster listens on.
const LOCALHOST: &str = "127.0.0.1";
/// How often a start is tried on a fresh port when the port was taken meanwhile.
const START_ATTEMPTS: usize = 5;
/// How many lines of server.log a failed start reports.
const LOG_TAIL_LINES: usize = 30;
/// The longest a Unix socket path may be (sun_path is 108 bytes on Linux, 104 on BSDs).
const MAX_SOCKET_PATH: usize = 100;
/// The group roles whose members must authenticate with a password over TCP.
const AUTH_GROUPS: [&str; 3] = [
    "pgkeel_auth_password",
    "pgkeel_auth_md5",
    "pgkeel_auth_scram",
];
/// The whole pg_hba.conf of a throwaway cluster.
const PG_HBA: &str = "\
local all all trust
host all +pgkeel_auth_password 127.0.0.1/32 password
host all +pgkeel_auth_md5 127.0.0.1/32 md5
host all +pgkeel_auth_scram 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
host all all ::1/128 trust
";

/// Numbers the temp dirs of this process.
static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);
/// Numbers the databases created by this process.
static DB_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Errors of the test kit; each message says what to install or set.
#[derive(Debug)]
pub enum TestkitError {
    /// No PostgreSQL binaries (or no `postgres` OS user to run them as root) were found.
    NoBinaries(String),
    /// A command (initdb, pg_ctl, psql, ...) failed; `output` is what it printed.
    Command {
        /// What was being done.
        what: String,
        /// The exit status and output of the command.
        output: String,
    },
    /// An I/O error of the kit itself (temp dir, configuration files, free port).
    Io(io::Error),
    /// The operation is not possible on an external server (`PGKEEL_TEST_URL`).
    External(String),
}

impl fmt::Display for TestkitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoBinaries(msg) => write!(
                f,
                "{msg}: install PostgreSQL (Debian: apt-get install postgresql), set \
                 PGKEEL_PG_BINDIR to the directory holding initdb and pg_ctl, or set \
                 PGKEEL_TEST_URL to a superuser's postgres:// URL of an existing server"
            ),
            Self::Command { what, output } => write!(
                f,
                "{what} failed (set PGKEEL_PG_BINDIR to use other PostgreSQL binaries, \
                 or PGKEEL_TEST_URL to use an existing server):\n{output}"
            ),
            Self::Io(err) => write!(
                f,
                "testkit I/O error: {err} (the temp dir, see TMPDIR, must be writable)"
            ),
            Self::External(what) => write!(
                f,
                "{what} is not possible on the external server named by PGKEEL_TEST_URL; \
                 unset PGKEEL_TEST_URL to use a throwaway cluster"
            ),
        }
    }
}

impl std::error::Error for TestkitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for TestkitError {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

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

    /// Sets `max_connections` (default 200).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = Some(n);
        self
    }

    /// Starts the cluster (or connects to `PGKEEL_TEST_URL`, ignoring the settings).
    pub fn start(self) -> Result<Cluster, TestkitError> {
        if let Some(url) = external_url() {
            return Cluster::external(&url);
        }
        let bins = Bins::find()?;
        let owner = server_owner()?;
        let dir = make_temp_dir(owner)?;
        let local = Local::new(bins, owner, dir);
        let mut cluster = Cluster {
            host: LOCALHOST.to_string(),
            port: 0,
            superuser: SUPERUSER.to_string(),
            backend: Backend::Local(local),
        };
        // From here on an error drops `cluster`, which stops the server and removes the dir.
        cluster.boot(&self)?;
        Ok(cluster)
    }

    /// The lines appended to postgresql.conf for a start on `port`.
    fn conf_lines(&self, dir: &str, port: u16) -> String {
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
    host: String,
    port: u16,
    superuser: String,
    backend: Backend,
}

/// Where a cluster's server lives.
#[derive(Debug)]
enum Backend {
    Local(Local),
    External(External),
}

impl Cluster {
    /// Starts a cluster with default settings.
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

    /// The TCP host: "127.0.0.1", or the external server's host.
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
    pub fn psql(&self, dbname: &str, sql: &str) -> Result<String, TestkitError> {
        let cmd = match &self.backend {
            Backend::Local(local) => local.psql_command(self.port, dbname),
            Backend::External(ext) => ext.psql_command(dbname),
        };
        run_psql(cmd, sql)
    }

    /// Creates a fresh, uniquely named database and returns its name.
    pub fn create_database(&self) -> Result<String, TestkitError> {
        let mut last = None;
        for _ in 0..20 {
            let n = DB_COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("pgkeel_test_{}_{n}", process::id());
            let sql = format!("CREATE DATABASE {}", quote_ident(&name));
            match self.psql(self.admin_db(), &sql) {
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
        self.psql(self.admin_db(), &sql).map(drop)
    }

    /// `pg_ctl restart -m fast -w` (same port); an External error in external mode.
    pub fn restart(&self) -> Result<(), TestkitError> {
        self.local("Cluster::restart")?.restart()
    }

    /// Stops the server (fast) without removing it, for outage tests.
    pub fn stop_server(&self) -> Result<(), TestkitError> {
        self.local("Cluster::stop_server")?.stop("fast")
    }

    /// Starts the server again after [`Cluster::stop_server`] (same port).
    pub fn start_server(&self) -> Result<(), TestkitError> {
        self.local("Cluster::start_server")?.start()
    }

    /// A cluster for the external server at `url`.
    fn external(url: &str) -> Result<Cluster, TestkitError> {
        let parsed = ExternalUrl::parse(url)?;
        let psql = find_psql(
            env::var_os("PGKEEL_PG_BINDIR")
                .map(PathBuf::from)
                .as_deref(),
        )?;
        Ok(Cluster {
            host: parsed.host.clone(),
            port: parsed.port,
            superuser: parsed.user.clone(),
            backend: Backend::External(External { psql, url: parsed }),
        })
    }

    /// Runs initdb, starts the server on a free port and creates the auth groups.
    fn boot(&mut self, builder: &ClusterBuilder) -> Result<(), TestkitError> {
        let Backend::Local(local) = &mut self.backend else {
            return Ok(());
        };
        local.initdb()?;
        local.watchdog = Some(local.spawn_watchdog()?);
        self.port = local.start_on_free_port(builder)?;
        let sql: String = AUTH_GROUPS
            .iter()
            .map(|group| format!("CREATE ROLE {group} NOLOGIN;\n"))
            .collect();
        self.psql(SUPERUSER, &sql).map(drop)
    }

    /// The local server, or an External error naming `what`.
    fn local(&self, what: &str) -> Result<&Local, TestkitError> {
        match &self.backend {
            Backend::Local(local) => Ok(local),
            Backend::External(_) => Err(TestkitError::External(what.to_string())),
        }
    }

    /// The database that admin SQL (CREATE/DROP DATABASE, CREATE ROLE) runs in.
    fn admin_db(&self) -> &str {
        match &self.backend {
            Backend::Local(_) => "postgres",
            Backend::External(ext) => &ext.url.dbname,
        }
    }

    /// A postgres:// URL for `user` with an optional `password` to `dbname` over TCP.
    fn url_for(&self, user: &str, password: Option<&str>, dbname: &str) -> String {
        match &self.backend {
            Backend::External(ext) => ext.url.with(user, password, dbname),
            Backend::Local(_) => {
                let userinfo = userinfo(user, password);
                let dbname = percent_encode(dbname);
                format!("postgres://{userinfo}@{}:{}/{dbname}", self.host, self.port)
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Backend::Local(local) = &mut self.backend {
            local.destroy();
        }
    }
}

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
    pub fn url(&self) -> String {
        self.cluster.url(self.cluster.superuser(), &self.name)
    }

    /// URL of this database as `user` with `password` over TCP (both percent-encoded).
    pub fn url_as(&self, user: &str, password: &str) -> String {
        self.cluster.url_for(user, Some(password), &self.name)
    }

    /// Runs SQL in this database through psql as the superuser.
    pub fn psql(&self, sql: &str) -> Result<String, TestkitError> {
        self.cluster.psql(&self.name, sql)
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
            let _ = self.cluster.psql(self.cluster.admin_db(), &sql);
        }
    }
}

/// One line for users: a throwaway cluster's database URL, or DATABASE_URL when set.
///
/// Returns the URL and a guard that keeps the cluster alive (None when DATABASE_URL was used).
pub fn database_url_or_throwaway() -> Result<(String, Option<Cluster>), TestkitError> {
    if let Some(url) = env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        return Ok((url, None));
    }
    let cluster = Cluster::start()?;
    let url = cluster.url(cluster.superuser(), cluster.admin_db());
    Ok((url, Some(cluster)))
}

// ---------------------------------------------------------------------------------------
// The local server

/// The paths of the PostgreSQL programs used.
#[derive(Debug, Clone)]
struct Bins {
    initdb: PathBuf,
    pg_ctl: PathBuf,
    psql: PathBuf,
}

impl Bins {
    /// Finds the server binaries and a psql.
    fn find() -> Result<Bins, TestkitError> {
        let dir = find_bindir()?;
        Ok(Bins {
            initdb: dir.join("initdb"),
            pg_ctl: dir.join("pg_ctl"),
            psql: find_psql(Some(&dir))?,
        })
    }
}

/// The uid and gid that own a cluster when the tests run as root.
#[derive(Debug, Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

/// A throwaway cluster in a temp dir.
#[derive(Debug)]
struct Local {
    bins: Bins,
    owner: Option<Owner>,
    /// The temp dir, also the Unix socket dir.
    dir: String,
    data: String,
    log: String,
    /// Stops the server and removes `dir` when this process exits (its stdin closes).
    watchdog: Option<Child>,
}

impl Local {
    /// A cluster description for the (still empty) temp dir `dir`.
    fn new(bins: Bins, owner: Option<Owner>, dir: String) -> Local {
        Local {
            bins,
            owner,
            data: format!("{dir}/data"),
            log: format!("{dir}/server.log"),
            dir,
            watchdog: None,
        }
    }

    /// Runs initdb into `<dir>/data`.
    fn initdb(&self) -> Result<(), TestkitError> {
        let args = [
            "-D",
            &self.data,
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--no-locale",
        ];
        let mut cmd = as_owner(self.owner, &self.bins.initdb, &args);
        run(cmd.current_dir(&self.dir), "initdb").map(drop)
    }

    /// Starts a process that stops the server and removes the dir once its stdin closes.
    fn spawn_watchdog(&self) -> Result<Child, TestkitError> {
        let script = format!(
            "trap '' INT HUP; cat >/dev/null; {} -D {} -m immediate -w stop; rm -rf {}",
            sh_quote(&self.bins.pg_ctl.to_string_lossy()),
            sh_quote(&self.data),
            sh_quote(&self.dir)
        );
        let mut cmd = as_owner(self.owner, Path::new("/bin/sh"), &["-c", &script]);
        cmd.current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0); // no Ctrl-C from the terminal: it must outlive the tests
        cmd.spawn()
            .map_err(|err| spawn_error(&cmd, "the watchdog", err))
    }

    /// Writes the configuration and starts the server, on another port if one was taken.
    fn start_on_free_port(&self, builder: &ClusterBuilder) -> Result<u16, TestkitError> {
        let conf = format!("{}/postgresql.conf", self.data);
        let original = fs::read_to_string(&conf)?;
        fs::write(format!("{}/pg_hba.conf", self.data), PG_HBA)?;
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            fs::write(
                &conf,
                original.clone() + &builder.conf_lines(&self.dir, port),
            )?;
            let log_start = self.log_len();
            match self.start() {
                Ok(()) => return Ok(port),
                Err(err) if self.port_was_taken(log_start) => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| command_error("pg_ctl start", "no port was free")))
    }

    /// `pg_ctl start`, waiting until the server accepts connections.
    fn start(&self) -> Result<(), TestkitError> {
        let args = ["-w", "-t", "60", "-l", &self.log, "start"];
        self.pg_ctl("pg_ctl start", &args)
            .map_err(|err| self.with_log_tail(err))
    }

    /// `pg_ctl restart -m fast`, waiting until the server accepts connections.
    fn restart(&self) -> Result<(), TestkitError> {
        let args = ["-w", "-t", "60", "-m", "fast", "-l", &self.log, "restart"];
        self.pg_ctl("pg_ctl restart", &args)
            .map_err(|err| self.with_log_tail(err))
    }

    /// `pg_ctl stop` with shutdown `mode`, waiting until the server is gone.
    fn stop(&self, mode: &str) -> Result<(), TestkitError> {
        self.pg_ctl("pg_ctl stop", &["-w", "-t", "60", "-m", mode, "stop"])
    }

    /// Runs pg_ctl on the data dir as the server's owner.
    fn pg_ctl(&self, what: &str, args: &[&str]) -> Result<(), TestkitError> {
        let mut all = vec!["-D", &self.data];
        all.extend_from_slice(args);
        let mut cmd = as_owner(self.owner, &self.bins.pg_ctl, &all);
        run(cmd.current_dir(&self.dir), what).map(drop)
    }

    /// A psql command connected as the superuser through the Unix socket.
    fn psql_command(&self, port: u16, dbname: &str) -> Command {
        let mut cmd = Command::new(&self.bins.psql);
        cmd.args(["-h", &self.dir, "-p", &port.to_string(), "-U", SUPERUSER])
            .args(["-d", dbname]);
        cmd
    }

    /// Stops the server at once, removes the temp dir and lets the watchdog go.
    fn destroy(&mut self) {
        // Errors are ignored: this runs in Drop, and the watchdog is the fallback.
        let _ = self.stop("immediate");
        let _ = fs::remove_dir_all(&self.dir);
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }

    /// The current length of server.log.
    fn log_len(&self) -> u64 {
        fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// Whether server.log, from byte `from` on, says the port was in use.
    fn port_was_taken(&self, from: u64) -> bool {
        let log = fs::read(&self.log).unwrap_or_default();
        let from = usize::try_from(from).unwrap_or(0).min(log.len());
        let new = String::from_utf8_lossy(&log[from..]);
        new.contains("Address already in use") || new.contains("could not bind")
    }

    /// Adds the last lines of server.log to a failed command's output.
    fn with_log_tail(&self, err: TestkitError) -> TestkitError {
        let TestkitError::Command { what, output } = err else {
            return err;
        };
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        let output = format!(
            "{output}\n--- last {LOG_TAIL_LINES} lines of {} ---\n{tail}",
            self.log
        );
        TestkitError::Command { what, output }
    }
}

/// Finds the directory of the server binaries.
fn find_bindir() -> Result<PathBuf, TestkitError> {
    if let Some(dir) = env::var_os("PGKEEL_PG_BINDIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if has_server(&dir) {
            return Ok(dir);
        }
        return Err(TestkitError::NoBinaries(format!(
            "PGKEEL_PG_BINDIR={} holds no initdb and pg_ctl",
            dir.display()
        )));
    }
    bindir_from_path()
        .or_else(bindir_from_pg_config)
        .or_else(highest_debian_bindir)
        .ok_or_else(|| {
            TestkitError::NoBinaries(
                "no PostgreSQL server binaries (initdb, pg_ctl) on PATH, from \
                 pg_config --bindir or in /usr/lib/postgresql/*/bin"
                    .into(),
            )
        })
}

/// The directory of `initdb` on PATH, following symlinks to the real bin dir.
fn bindir_from_path() -> Option<PathBuf> {
    let initdb = find_program("initdb")?;
    let real = fs::canonicalize(&initdb).ok()?;
    let dir = [real.parent(), initdb.parent()]
        .into_iter()
        .flatten()
        .find(|dir| has_server(dir))?;
    Some(dir.to_path_buf())
}

/// The directory `pg_config --bindir` names, if it holds the server binaries.
fn bindir_from_pg_config() -> Option<PathBuf> {
    let out = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && has_server(&dir)).then_some(dir)
}

/// The highest-versioned `/usr/lib/postgresql/<version>/bin` with the server binaries.
fn highest_debian_bindir() -> Option<PathBuf> {
    fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
}

/// Whether `dir` holds initdb and pg_ctl.
fn has_server(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("pg_ctl"))
}

/// psql from `bindir`, else from PATH, else from the server bin dir.
fn find_psql(bindir: Option<&Path>) -> Result<PathBuf, TestkitError> {
    bindir
        .map(|dir| dir.join("psql"))
        .filter(|psql| is_executable(psql))
        .or_else(|| find_program("psql"))
        .or_else(|| Some(find_bindir().ok()?.join("psql")).filter(|p| is_executable(p)))
        .ok_or_else(|| {
            TestkitError::NoBinaries(
                "psql not found (Debian: apt-get install postgresql-client)".into(),
            )
        })
}

/// `name` on PATH (or in /usr/sbin, /sbin), if it is an executable file.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|file| is_executable(file))
}

/// Whether `file` is an executable regular file (following symlinks).
fn is_executable(file: &Path) -> bool {
    fs::metadata(file).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The `postgres` OS user when this process runs as root (PostgreSQL refuses root).
fn server_owner() -> Result<Option<Owner>, TestkitError> {
    if id_number(&["-u"])? != 0 {
        return Ok(None);
    }
    let no_user = |_| {
        TestkitError::NoBinaries(format!(
            "running as root, but there is no `{SUPERUSER}` OS user to run the server as \
             (the postgresql package creates it; or run the tests as another user)"
        ))
    };
    let uid = id_number(&["-u", SUPERUSER]).map_err(no_user)?;
    let gid = id_number(&["-g", SUPERUSER]).map_err(no_user)?;
    Ok(Some(Owner { uid, gid }))
}

/// Runs `id <args>` and parses the number it prints.
fn id_number(args: &[&str]) -> Result<u32, TestkitError> {
    let what = format!("id {}", args.join(" "));
    let out = run(Command::new("id").args(args), &what)?;
    out.trim()
        .parse()
        .map_err(|_| TestkitError::Command { what, output: out })
}

/// A command running `program args` as the server's owner (as root: via runuser or su).
fn as_owner(owner: Option<Owner>, program: &Path, args: &[&str]) -> Command {
    if owner.is_none() {
        let mut cmd = Command::new(program);
        cmd.args(args);
        return cmd;
    }
    match find_program("runuser") {
        Some(runuser) => {
            let mut cmd = Command::new(runuser);
            cmd.args(["-u", SUPERUSER, "--"]).arg(program).args(args);
            cmd
        }
        None => {
            let line = std::iter::once(program.to_string_lossy().into_owned())
                .chain(args.iter().map(|arg| arg.to_string()))
                .map(|word| sh_quote(&word))
                .collect::<Vec<_>>()
                .join(" ");
            let mut cmd = Command::new("su");
            cmd.args([SUPERUSER, "-s", "/bin/sh", "-c", &line]);
            cmd
        }
    }
}

/// Creates `<temp>/pgkeel-<pid>-<n>`, owned by the server's owner.
fn make_temp_dir(owner: Option<Owner>) -> Result<String, TestkitError> {
    let base = temp_base();
    let mut attempts = 0;
    let dir = loop {
        let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("pgkeel-{}-{n}", process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => break dir,
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => {
                attempts += 1;
            }
            Err(err) => return Err(err.into()),
        }
    };
    if let Some(Owner { uid, gid }) = owner {
        if let Err(err) = std::os::unix::fs::chown(&dir, Some(uid), Some(gid)) {
            let _ = fs::remove_dir(&dir);
            return Err(err.into());
        }
    }
    dir.into_os_string().into_string().map_err(|dir| {
        let _ = fs::remove_dir(&dir);
        io::Error::new(io::ErrorKind::InvalidData, "temp dir path is not UTF-8").into()
    })
}

/// The temp dir, or /tmp if the socket path under it would be too long.
fn temp_base() -> PathBuf {
    let temp = env::temp_dir();
    // "<temp>/pgkeel-<pid>-<n>/.s.PGSQL.<port>" adds at most about 50 bytes.
    match temp.to_str() {
        Some(path) if path.len() + 50 < MAX_SOCKET_PATH => temp,
        _ => PathBuf::from("/tmp"),
    }
}

/// A TCP port of 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, TestkitError> {
    let listener = TcpListener::bind((LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

// ---------------------------------------------------------------------------------------
// The external server

/// An existing server named by `PGKEEL_TEST_URL`.
struct External {
    psql: PathBuf,
    url: ExternalUrl,
}

impl fmt::Debug for External {
    // Leaves the password out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("External")
            .field("psql", &self.psql)
            .field("user", &self.url.user)
            .field("hostport", &self.url.hostport)
            .field("dbname", &self.url.dbname)
            .finish()
    }
}

impl External {
    /// A psql command connected as the URL's user to `dbname`.
    fn psql_command(&self, dbname: &str) -> Command {
        let mut cmd = Command::new(&self.psql);
        cmd.args(["-d", &self.url.with(&self.url.user, None, dbname)]);
        cmd
    }
}

/// `PGKEEL_TEST_URL`, if set and not empty.
fn external_url() -> Option<String> {
    env::var("PGKEEL_TEST_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// The parts of a postgres:// URL the kit needs to make URLs to other databases.
#[derive(Clone)]
struct ExternalUrl {
    /// `user[:password]` as written (percent-encoded), if any.
    userinfo: Option<String>,
    /// The decoded user name.
    user: String,
    /// `host[:port]` (or several, comma-separated) as written.
    hostport: String,
    /// The first host, decoded and without brackets.
    host: String,
    port: u16,
    /// The decoded database name.
    dbname: String,
    /// `?...` as written, or empty.
    query: String,
}

impl ExternalUrl {
    /// Parses `postgres://[user[:password]@]host[:port][/dbname][?params]`.
    fn parse(url: &str) -> Result<ExternalUrl, TestkitError> {
        let invalid = |why: &str| {
            TestkitError::External(format!(
                "using PGKEEL_TEST_URL ({why}: set a postgres:// URL)"
            ))
        };
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| invalid("not a postgres:// URL"))?;
        let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let first = hostport.split(',').next().unwrap_or_default();
        let (host, port) = split_host_port(first).ok_or_else(|| invalid("bad port"))?;
        let user = userinfo
            .map(|u| percent_decode(u.split(':').next().unwrap_or_default()))
            .filter(|u| !u.is_empty())
            .or_else(|| env::var("PGUSER").ok())
            .or_else(|| env::var("USER").ok())
            .unwrap_or_else(|| SUPERUSER.to_string());
        let (path, query) = tail.split_at(tail.find('?').unwrap_or(tail.len()));
        let dbname = percent_decode(path.trim_start_matches('/'));
        Ok(ExternalUrl {
            userinfo: userinfo.map(str::to_string),
            dbname: if dbname.is_empty() {
                user.clone()
            } else {
                dbname
            },
            user,
            hostport: hostport.to_string(),
            host,
            port,
            query: query.to_string(),
        })
    }

    /// This server's URL for `user` (with the URL's own password for its own user).
    fn with(&self, user: &str, password: Option<&str>, dbname: &str) -> String {
        let userinfo = match (&self.userinfo, password) {
            (Some(own), None) if user == self.user => own.clone(),
            _ => userinfo(user, password),
        };
        let dbname = percent_encode(dbname);
        format!(
            "postgres://{userinfo}@{}/{dbname}{}",
            self.hostport, self.query
        )
    }
}

/// Splits `host[:port]` or `[v6]:port`; the port defaults to 5432, the host to localhost.
fn split_host_port(hostport: &str) -> Option<(String, u16)> {
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        },
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => 5432,
    };
    let host = percent_decode(host);
    Some((
        if host.is_empty() {
            "localhost".into()
        } else {
            host
        },
        port,
    ))
}

// ---------------------------------------------------------------------------------------
// Running commands and quoting

/// Runs `cmd` with no stdin and returns its stdout, or its status and output on failure.
fn run(cmd: &mut Command, what: &str) -> Result<String, TestkitError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|err| spawn_error(cmd, what, err))?;
    check(what, out)
}

/// Runs a psql command with `sql` on its stdin; returns stdout without its final newline.
fn run_psql(mut cmd: Command, sql: &str) -> Result<String, TestkitError> {
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("psql `{}`", summary(sql));
    let mut child = cmd.spawn().map_err(|err| spawn_error(&cmd, &what, err))?;
    let stdin = child.stdin.take();
    let out = std::thread::scope(|scope| {
        scope.spawn(move || {
            // A write error means psql exited early; its exit status says why.
            stdin.map(|mut stdin| stdin.write_all(sql.as_bytes()))
        });
        child.wait_with_output()
    })?;
    let stdout = check(&what, out)?;
    Ok(stdout.strip_suffix('\n').unwrap_or(&stdout).to_string())
}

/// The first line of `sql`, shortened, for error messages.
fn summary(sql: &str) -> String {
    let line = sql.trim().lines().next().unwrap_or_default();
    let mut short: String = line.chars().take(120).collect();
    if short.len() < sql.trim().len() {
        short.push_str(" ...");
    }
    short
}

/// `out`'s stdout if it succeeded, else a Command error with its status and output.
fn check(what: &str, out: Output) -> Result<String, TestkitError> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(TestkitError::Command {
        what: what.to_string(),
        output: format!("{}\n{stdout}{stderr}", out.status)
            .trim_end()
            .to_string(),
    })
}

/// A Command error with `output`.
fn command_error(what: &str, output: &str) -> TestkitError {
    TestkitError::Command {
        what: what.to_string(),
        output: output.to_string(),
    }
}

/// The error for a command that could not be started at all.
fn spawn_error(cmd: &Command, what: &str, err: io::Error) -> TestkitError {
    TestkitError::Command {
        what: what.to_string(),
        output: format!(
            "could not run {}: {err}",
            cmd.get_program().to_string_lossy()
        ),
    }
}

/// `user[:password]`, percent-encoded.
fn userinfo(user: &str, password: Option<&str>) -> String {
    match password {
        Some(password) => format!("{}:{}", percent_encode(user), percent_encode(password)),
        None => percent_encode(user),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Decodes `%XX` escapes (invalid escapes are kept as written).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex
            .filter(|_| bytes[i] == b'%')
            .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An SQL identifier in double quotes.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An SQL string literal in single quotes.
fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A word for sh in single quotes.
fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;
    use std::time::Instant;

    /// A fresh local cluster, or None (with a message) when PGKEEL_TEST_URL is set.
    fn local_cluster(builder: ClusterBuilder) -> Option<Cluster> {
        if external_url().is_some() {
            eprintln!("skipped: needs a throwaway cluster, but PGKEEL_TEST_URL is set");
            return None;
        }
        let started = Instant::now();
        let cluster = builder.start().unwrap_or_else(|err| panic!("{err}"));
        eprintln!("cluster started in {:?}", started.elapsed());
        Some(cluster)
    }

    /// Whether psql logs in over TCP with `url` and runs `select 1`.
    fn tcp_login(cluster: &Cluster, url: &str) -> bool {
        let Backend::Local(local) = &cluster.backend else {
            return false;
        };
        let mut cmd = Command::new(&local.bins.psql);
        cmd.args(["-d", url, "-w"]).env_remove("PGPASSWORD");
        run_psql(cmd, "select 1").is_ok_and(|out| out == "1")
    }

    #[test]
    fn sql_databases_and_roles() {
        let Some(cluster) = local_cluster(ClusterBuilder::new()) else {
            return;
        };
        assert_eq!(cluster.psql("postgres", "select 1").unwrap(), "1");
        assert_eq!(cluster.host(), "127.0.0.1");
        assert_eq!(cluster.superuser(), "postgres");
        assert!(!cluster.is_external());
        let (a, b) = (cluster.create_database(), cluster.create_database());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_ne!(a, b);
        let count = format!("select count(*) from pg_database where datname in ('{a}', '{b}')");
        assert_eq!(cluster.psql("postgres", &count).unwrap(), "2");
        assert_eq!(cluster.psql(&a, "select current_database()").unwrap(), a);
    }

    #[test]
    fn roles_store_md5_or_scram_and_authenticate() {
        let Some(cluster) = local_cluster(ClusterBuilder::new()) else {
            return;
        };
        let methods = [
            ("r_trust", AuthMethod::Trust, "SCRAM-SHA-256$"),
            ("r_password", AuthMethod::Password, "SCRAM-SHA-256$"),
            ("r_md5", AuthMethod::Md5, "md5"),
            ("r_scram", AuthMethod::ScramSha256, "SCRAM-SHA-256$"),
        ];
        for (role, method, prefix) in methods {
            cluster.create_role(role, "pa ss'@:/%", method).unwrap();
            let sql = format!("select rolpassword from pg_authid where rolname = '{role}'");
            let secret = cluster.psql("postgres", &sql).unwrap();
            assert!(secret.starts_with(prefix), "{role}: {secret}");
            let good = cluster.url_for(role, Some("pa ss'@:/%"), "postgres");
            let bad = cluster.url_for(role, Some("wrong"), "postgres");
            assert!(
                tcp_login(&cluster, &good),
                "{method:?} with the right password"
            );
            let trusted = method == AuthMethod::Trust;
            assert_eq!(
                tcp_login(&cluster, &bad),
                trusted,
                "{method:?}, wrong password"
            );
        }
        let groups = "select string_agg(rolname, ',' order by rolname) from pg_roles \
                      where rolname like 'pgkeel_auth_%' and not rolcanlogin";
        assert_eq!(
            cluster.psql("postgres", groups).unwrap(),
            "pgkeel_auth_md5,pgkeel_auth_password,pgkeel_auth_scram"
        );
    }

    #[test]
    fn restart_stop_start_and_drop() {
        let Some(cluster) = local_cluster(ClusterBuilder::new()) else {
            return;
        };
        let port = cluster.port();
        let pid = "select pg_backend_pid() > 0";
        cluster.restart().unwrap();
        assert_eq!(cluster.port(), port);
        assert_eq!(cluster.psql("postgres", pid).unwrap(), "t");
        assert!(TcpStream::connect((LOCALHOST, port)).is_ok());
        cluster.stop_server().unwrap();
        assert!(TcpStream::connect((LOCALHOST, port)).is_err());
        assert!(cluster.psql("postgres", "select 1").is_err());
        cluster.start_server().unwrap();
        assert_eq!(cluster.psql("postgres", pid).unwrap(), "t");
        let dir = cluster.socket_dir().unwrap().to_path_buf();
        assert!(dir.join("data").is_dir());
        drop(cluster);
        assert!(!dir.exists(), "{} still exists", dir.display());
        assert!(TcpStream::connect((LOCALHOST, port)).is_err());
    }

    #[test]
    fn builder_settings_reach_postgresql_conf() {
        let builder = ClusterBuilder::new()
            .max_connections(17)
            .setting("work_mem", "'8MB'")
            .setting("application_name", "'kit'");
        let Some(cluster) = local_cluster(builder) else {
            return;
        };
        let show = "show max_connections; show work_mem; show fsync; show listen_addresses";
        let out = cluster.psql("postgres", show).unwrap();
        assert_eq!(out, "17\n8MB\noff\n127.0.0.1");
        let dir = cluster.socket_dir().unwrap();
        assert!(dir.join(format!(".s.PGSQL.{}", cluster.port())).exists());
        let url = cluster.url("postgres", "postgres");
        assert_eq!(
            url,
            format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port())
        );
    }

    #[test]
    fn test_db_on_the_shared_cluster() {
        let db = TestDb::new();
        let other = TestDb::new();
        assert_ne!(db.name(), other.name());
        assert!(std::ptr::eq(db.cluster(), Cluster::shared()));
        db.psql("create table t (id int); insert into t values (1), (2)")
            .unwrap();
        assert_eq!(db.psql("select sum(id) from t").unwrap(), "3");
        assert!(other.psql("select * from t").is_err());
        assert!(db.url().ends_with(&format!("/{}", db.name())));
        let url = db.url_as("u@x", "p:w/d");
        assert!(url.starts_with("postgres://u%40x:p%3Aw%2Fd@"), "{url}");
    }

    #[test]
    fn test_dbs_in_parallel_get_distinct_names() {
        let threads: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(|| TestDb::new().name().to_string()))
            .collect();
        let mut names: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 8);
    }

    #[test]
    fn throwaway_url_works() {
        if env::var_os("DATABASE_URL").is_some() {
            eprintln!("skipped: DATABASE_URL is set");
            return;
        }
        let (url, guard) = database_url_or_throwaway().unwrap();
        let cluster = guard.unwrap();
        assert!(tcp_login(&cluster, &url) || cluster.is_external());
    }

    #[test]
    fn external_mode_refuses_what_needs_a_local_cluster() {
        let url =
            ExternalUrl::parse("postgres://admin:se%3Acret@db.example:6543/main?sslmode=disable")
                .unwrap();
        let cluster = Cluster {
            host: url.host.clone(),
            port: url.port,
            superuser: url.user.clone(),
            backend: Backend::External(External {
                psql: PathBuf::from("psql"),
                url,
            }),
        };
        assert!(matches!(cluster.restart(), Err(TestkitError::External(_))));
        assert!(matches!(
            cluster.stop_server(),
            Err(TestkitError::External(_))
        ));
        let role = cluster.create_role("r", "p", AuthMethod::Md5);
        assert!(matches!(role, Err(TestkitError::External(_))));
        assert_eq!((cluster.host(), cluster.port()), ("db.example", 6543));
        assert_eq!(cluster.superuser(), "admin");
        assert_eq!(cluster.socket_dir(), None);
        assert_eq!(cluster.admin_db(), "main");
        assert_eq!(
            cluster.url("admin", "x y"),
            "postgres://admin:se%3Acret@db.example:6543/x%20y?sslmode=disable"
        );
        assert_eq!(
            cluster.url("bob", "d"),
            "postgres://bob@db.example:6543/d?sslmode=disable"
        );
        assert!(!format!("{cluster:?}").contains("se%3Acret"));
    }

    #[test]
    fn parses_hosts_and_ports() {
        let v6 = ExternalUrl::parse("postgresql://u@[::1]:5433").unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.dbname.as_str()),
            ("::1", 5433, "u")
        );
        let plain = ExternalUrl::parse("postgres://h/db").unwrap();
        assert_eq!((plain.host.as_str(), plain.port), ("h", 5432));
        assert!(ExternalUrl::parse("mysql://h/db").is_err());
        assert!(ExternalUrl::parse("postgres://h:port/db").is_err());
    }

    #[test]
    fn encodes_and_quotes() {
        assert_eq!(percent_encode("a b@c:d/é"), "a%20b%40c%3Ad%2F%C3%A9");
        assert_eq!(
            percent_decode("a%20b%40c%3Ad%2F%C3%A9%zz%"),
            "a b@c:d/é%zz%"
        );
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn errors_say_what_to_do() {
        let err = TestkitError::NoBinaries("no initdb".into()).to_string();
        assert!(err.contains("apt-get install postgresql") && err.contains("PGKEEL_PG_BINDIR"));
        let err = TestkitError::External("Cluster::restart".into()).to_string();
        assert!(err.contains("PGKEEL_TEST_URL"));
    }
}

// ---------------------------------------------------------------------------------------
// Additions for connection tests (TLS, standbys, pg_hba); kept in their own file so they
// move with the test kit as a unit.

pub mod topology;
