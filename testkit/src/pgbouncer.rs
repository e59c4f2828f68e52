//! A real PgBouncer in front of a cluster, for tests of what a pooler in between does.
//!
//! [`Pgbouncer::builder`] writes `pgbouncer.ini` and an `auth_file` into a temp dir of
//! its own, starts PgBouncer (as the `postgres` OS user when we are root: it refuses
//! to run as root) on a free port of 127.0.0.1, waits until it accepts connections, and
//! stops it and removes the dir on drop. Every database name is passed through to the
//! cluster (`* = host=... port=...`). Clients log in with `auth_type = trust`; the
//! users must be listed in the auth file ([`PgbouncerBuilder::user`]; the cluster's
//! superuser always is), and PgBouncer answers the server's password challenges with
//! the passwords given there.
//!
//! The binary is `PGKEEL_PGBOUNCER`, else `pgbouncer` on `PATH`, else
//! `/usr/sbin/pgbouncer` (Debian: `apt-get install pgbouncer`).

use std::env;
use std::fmt;
use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::LOCALHOST;
use crate::cluster::Cluster;
use crate::command::{percent_encode, sh_quote, spawn_error};
use crate::error::{TestkitError, command_error};
use crate::local::{free_port, make_temp_dir, with_file_tail};
use crate::programs::{Owner, as_owner, find_pgbouncer, pgbouncer_version, server_owner};

/// Set to `1` to skip the tests that need PgBouncer (they print that they did).
pub const SKIP_ENV: &str = "PGKEEL_SKIP_PGBOUNCER";
/// How often a start is tried on a fresh port when the port was taken meanwhile.
const START_ATTEMPTS: usize = 5;
/// How long PgBouncer may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stop may take before PgBouncer is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// When PgBouncer hands a server connection back to its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// When the client disconnects.
    Session,
    /// At the end of each transaction: the mode that breaks session state.
    Transaction,
    /// After each statement; multi-statement transactions are refused.
    Statement,
}

impl PoolMode {
    /// The `pool_mode` value in pgbouncer.ini.
    fn as_ini(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Transaction => "transaction",
            Self::Statement => "statement",
        }
    }
}

/// Settings for a PgBouncer before it starts.
#[derive(Debug, Clone)]
pub struct PgbouncerBuilder {
    pool_mode: PoolMode,
    default_pool_size: u32,
    max_client_conn: u32,
    users: Vec<(String, String)>,
    settings: Vec<(String, String)>,
    upstream: Option<std::net::SocketAddr>,
}

impl Default for PgbouncerBuilder {
    fn default() -> Self {
        PgbouncerBuilder {
            pool_mode: PoolMode::Transaction,
            default_pool_size: 2,
            max_client_conn: 500,
            users: Vec::new(),
            settings: Vec::new(),
            upstream: None,
        }
    }
}

impl PgbouncerBuilder {
    /// Sets `pool_mode` (default [`PoolMode::Transaction`]).
    pub fn pool_mode(mut self, mode: PoolMode) -> Self {
        self.pool_mode = mode;
        self
    }

    /// Sets `default_pool_size`, the server connections per user and database (default 2).
    pub fn default_pool_size(mut self, n: u32) -> Self {
        self.default_pool_size = n;
        self
    }

    /// Sets `max_client_conn` (default 500).
    pub fn max_client_conn(mut self, n: u32) -> Self {
        self.max_client_conn = n;
        self
    }

    /// Lets `name` log in; PgBouncer logs in to the server with `password` if asked.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_string(), password.to_string()));
        self
    }

    /// Adds a `key = value` line to the `[pgbouncer]` section (it wins over the kit's).
    pub fn setting(mut self, key: &str, value: &str) -> Self {
        self.settings.push((key.to_string(), value.to_string()));
        self
    }

    /// Sends PgBouncer's server connections to `addr` (say, a `FaultProxy` in front of
    /// the cluster) instead of straight to the cluster.
    pub fn upstream(mut self, addr: std::net::SocketAddr) -> Self {
        self.upstream = Some(addr);
        self
    }

    /// Starts PgBouncer in front of `cluster`, waiting until it accepts connections.
    ///
    /// # Errors
    /// [`TestkitError::NoPgbouncer`] when the binary is missing; a Command error (with
    /// the end of PgBouncer's log) when it does not start.
    pub fn start(self, cluster: &Cluster) -> Result<Pgbouncer, TestkitError> {
        let program = find_pgbouncer()?;
        let version = pgbouncer_version(&program)?;
        let owner = server_owner()?;
        let dir = PathBuf::from(make_temp_dir(owner)?);
        let mut bouncer = Pgbouncer {
            program,
            version,
            pool_mode: self.pool_mode,
            port: 0,
            dir,
            child: None,
            watchdog: None,
        };
        // From here on an error drops `bouncer`, which stops it and removes the dir.
        bouncer.write_auth_file(cluster, &self.users)?;
        bouncer.watchdog = Some(bouncer.spawn_watchdog()?);
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port()?;
            fs::write(bouncer.ini(), self.ini(&bouncer, cluster, port))?;
            match bouncer.launch(owner, port) {
                Ok(()) => return Ok(bouncer),
                Err(_) if attempt < START_ATTEMPTS && bouncer.port_was_taken() => {}
                Err(err) => return Err(err),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Starts PgBouncer for a test, or returns None when `PGKEEL_SKIP_PGBOUNCER=1`.
    ///
    /// Skipping is loud (written straight to stderr, past the test harness's capture);
    /// any other failure, a missing PgBouncer included, panics with what to install.
    pub fn start_or_skip(self, cluster: &Cluster) -> Option<Pgbouncer> {
        if env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
            let msg = format!("\n*** SKIPPED: a PgBouncer test, because {SKIP_ENV}=1 ***\n\n");
            let _ = std::io::stderr().write_all(msg.as_bytes());
            return None;
        }
        match self.start(cluster) {
            Ok(bouncer) => Some(bouncer),
            Err(err) => panic!("pgkeel testkit: could not start PgBouncer: {err}"),
        }
    }

    /// The whole pgbouncer.ini for a start on `port`.
    fn ini(&self, bouncer: &Pgbouncer, cluster: &Cluster, port: u16) -> String {
        let dir = bouncer.dir.display();
        let mut lines = vec![
            "[databases]".to_string(),
            match self.upstream {
                Some(addr) => format!("* = host={} port={}", addr.ip(), addr.port()),
                None => format!("* = host={} port={}", cluster.host(), cluster.port()),
            },
            String::new(),
            "[pgbouncer]".to_string(),
            format!("listen_addr = {LOCALHOST}"),
            format!("listen_port = {port}"),
            "unix_socket_dir =".to_string(),
            "auth_type = trust".to_string(),
            format!("auth_file = {dir}/userlist.txt"),
            format!("logfile = {dir}/pgbouncer.log"),
            format!("pidfile = {dir}/pgbouncer.pid"),
            format!("admin_users = {}", cluster.superuser()),
            format!("pool_mode = {}", self.pool_mode.as_ini()),
            format!("default_pool_size = {}", self.default_pool_size),
            "min_pool_size = 0".to_string(),
            "reserve_pool_size = 0".to_string(),
            format!("max_client_conn = {}", self.max_client_conn),
            // What pgkeel may send that PgBouncer does not track (it refuses unknown
            // startup parameters); client_encoding and application_name it tracks itself.
            "ignore_startup_parameters = extra_float_digits,options".to_string(),
        ];
        if bouncer.has_max_prepared_statements() {
            // No protocol-level prepared statement support: the hard case for a driver.
            lines.push("max_prepared_statements = 0".to_string());
        }
        lines.extend(self.settings.iter().map(|(k, v)| format!("{k} = {v}")));
        lines.join("\n") + "\n"
    }
}

/// A running PgBouncer in front of a cluster; stopped and removed on drop.
pub struct Pgbouncer {
    program: PathBuf,
    version: String,
    pool_mode: PoolMode,
    port: u16,
    /// The temp dir: ini, auth file, log and pid file.
    dir: PathBuf,
    child: Option<Child>,
    /// Stops PgBouncer and removes `dir` when this process exits (its stdin closes).
    watchdog: Option<Child>,
}

impl fmt::Debug for Pgbouncer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pgbouncer")
            .field("program", &self.program)
            .field("version", &self.version)
            .field("pool_mode", &self.pool_mode)
            .field("port", &self.port)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Pgbouncer {
    /// A builder: transaction pooling, `default_pool_size = 2`, `max_client_conn = 500`.
    pub fn builder() -> PgbouncerBuilder {
        PgbouncerBuilder::default()
    }

    /// A postgres:// URL for `user` (no password) to database `dbname` through PgBouncer.
    pub fn url(&self, user: &str, dbname: &str) -> String {
        let (user, dbname) = (percent_encode(user), percent_encode(dbname));
        format!("postgres://{user}@{LOCALHOST}:{}/{dbname}", self.port)
    }

    /// The TCP port PgBouncer listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The version PgBouncer reports, e.g. "1.18.0".
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The pool mode it runs in.
    pub fn pool_mode(&self) -> PoolMode {
        self.pool_mode
    }

    /// PgBouncer's log so far, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    /// The pgbouncer.ini in use.
    fn ini(&self) -> PathBuf {
        self.dir.join("pgbouncer.ini")
    }

    /// Whether this version knows `max_prepared_statements` (PgBouncer 1.21 and later).
    fn has_max_prepared_statements(&self) -> bool {
        let mut parts = self
            .version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (1, 21)
    }

    /// Writes the auth file: the superuser (no password) and the builder's users.
    fn write_auth_file(
        &self,
        cluster: &Cluster,
        users: &[(String, String)],
    ) -> Result<(), TestkitError> {
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let superuser = (cluster.superuser().to_string(), String::new());
        let lines: String = std::iter::once(&superuser)
            .chain(users)
            .map(|(user, password)| format!("{} {}\n", quote(user), quote(password)))
            .collect();
        Ok(fs::write(self.dir.join("userlist.txt"), lines)?)
    }

    /// Starts a process that stops PgBouncer and removes the dir once its stdin closes.
    fn spawn_watchdog(&self) -> Result<Child, TestkitError> {
        let pidfile = sh_quote(&self.dir.join("pgbouncer.pid").to_string_lossy());
        let script = format!(
            "trap '' INT HUP; cat >/dev/null; kill -TERM \"$(cat {pidfile})\" 2>/dev/null; \
             sleep 1; rm -rf {}",
            sh_quote(&self.dir.to_string_lossy())
        );
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0); // no Ctrl-C from the terminal: it must outlive the tests
        cmd.spawn()
            .map_err(|err| spawn_error(&cmd, "the PgBouncer watchdog", err))
    }

    /// Runs PgBouncer in the foreground on `port` and waits until it accepts connections.
    fn launch(&mut self, owner: Option<Owner>, port: u16) -> Result<(), TestkitError> {
        let ini = self.ini().to_string_lossy().into_owned();
        let mut cmd = as_owner(owner, &self.program, &[&ini]);
        cmd.current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .map_err(|err| spawn_error(&cmd, "starting PgBouncer", err))?;
        self.child = Some(child);
        self.port = port;
        self.wait_until_ready()
            .map_err(|err| with_file_tail(err, &self.dir.join("pgbouncer.log").to_string_lossy()))
    }

    /// Waits until PgBouncer says it listens and the port accepts connections; an error
    /// if it exits first. (The log line rules out someone else holding the port.)
    fn wait_until_ready(&mut self) -> Result<(), TestkitError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let listening = format!("listening on {LOCALHOST}:{}", self.port);
        loop {
            if self.log().contains(&listening) && TcpStream::connect((LOCALHOST, self.port)).is_ok()
            {
                return Ok(());
            }
            let child = self.child.as_mut().expect("launched");
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Err(command_error(
                    "starting PgBouncer",
                    &format!("it exited: {status}"),
                ));
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(command_error(
                    "starting PgBouncer",
                    "it did not listen in time",
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the log says the port was in use.
    fn port_was_taken(&self) -> bool {
        let log = self.log();
        log.contains("Address already in use")
    }

    /// Stops PgBouncer (SIGTERM: immediate shutdown), killing it if it lingers.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // As root `child` is runuser (or su), which passes SIGTERM on to PgBouncer.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Pgbouncer {
    fn drop(&mut self) {
        // Errors are ignored: this runs in Drop, and the watchdog is the fallback.
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}
