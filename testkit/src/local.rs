//! A throwaway server of our own: initdb into a temp dir, pg_ctl start/stop, a watchdog.

use std::env;
use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{self, Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::cluster::ClusterBuilder;
use crate::command::{run, sh_quote, spawn_error};
use crate::error::{TestkitError, command_error};
use crate::programs::{Bins, Owner, as_owner};
use crate::{LOCALHOST, SUPERUSER};

/// How often a start is tried on a fresh port when the port was taken meanwhile.
const START_ATTEMPTS: usize = 5;
/// How many lines of server.log a failed start reports.
const LOG_TAIL_LINES: usize = 30;
/// The longest a Unix socket path may be (sun_path is 108 bytes on Linux, 104 on BSDs).
const MAX_SOCKET_PATH: usize = 100;
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

/// A throwaway cluster in a temp dir.
#[derive(Debug)]
pub(crate) struct Local {
    pub(crate) bins: Bins,
    pub(crate) owner: Option<Owner>,
    /// The temp dir, also the Unix socket dir.
    pub(crate) dir: String,
    pub(crate) data: String,
    log: String,
    /// Stops the server and removes `dir` when this process exits (its stdin closes).
    pub(crate) watchdog: Option<Child>,
}

impl Local {
    /// A cluster description for the (still empty) temp dir `dir`.
    pub(crate) fn new(bins: Bins, owner: Option<Owner>, dir: String) -> Local {
        Local {
            bins,
            owner,
            data: format!("{dir}/data"),
            log: format!("{dir}/server.log"),
            dir,
            watchdog: None,
        }
    }

    /// Runs initdb into `<dir>/data`, then starts the watchdog.
    pub(crate) fn initdb(&mut self) -> Result<(), TestkitError> {
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
        run(cmd.current_dir(&self.dir), "initdb")?;
        self.watchdog = Some(self.spawn_watchdog()?);
        Ok(())
    }

    /// Starts a process that stops the server and removes the dir once its stdin closes.
    pub(crate) fn spawn_watchdog(&self) -> Result<Child, TestkitError> {
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
    pub(crate) fn start_on_free_port(&self, builder: &ClusterBuilder) -> Result<u16, TestkitError> {
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
    pub(crate) fn start(&self) -> Result<(), TestkitError> {
        let args = ["-w", "-t", "60", "-l", &self.log, "start"];
        self.pg_ctl("pg_ctl start", &args)
            .map_err(|err| self.with_log_tail(err))
    }

    /// `pg_ctl restart -m <mode>`, waiting until the server accepts connections.
    pub(crate) fn restart(&self, mode: &str) -> Result<(), TestkitError> {
        let args = ["-w", "-t", "60", "-m", mode, "-l", &self.log, "restart"];
        self.pg_ctl("pg_ctl restart", &args)
            .map_err(|err| self.with_log_tail(err))
    }

    /// `pg_ctl stop` with shutdown `mode`, waiting until the server is gone.
    pub(crate) fn stop(&self, mode: &str) -> Result<(), TestkitError> {
        self.pg_ctl("pg_ctl stop", &["-w", "-t", "60", "-m", mode, "stop"])
    }

    /// Runs pg_ctl on the data dir as the server's owner.
    pub(crate) fn pg_ctl(&self, what: &str, args: &[&str]) -> Result<(), TestkitError> {
        let mut all = vec!["-D", &self.data];
        all.extend_from_slice(args);
        let mut cmd = as_owner(self.owner, &self.bins.pg_ctl, &all);
        run(cmd.current_dir(&self.dir), what).map(drop)
    }

    /// A psql command connected as the superuser through the Unix socket.
    pub(crate) fn psql_command(&self, port: u16, dbname: &str) -> Command {
        let mut cmd = Command::new(&self.bins.psql);
        cmd.args(["-h", &self.dir, "-p", &port.to_string(), "-U", SUPERUSER])
            .args(["-d", dbname]);
        cmd
    }

    /// Stops the server at once, removes the temp dir and lets the watchdog go.
    pub(crate) fn destroy(&mut self) {
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
        with_file_tail(err, &self.log)
    }
}

/// Adds the last lines of the log file `log` to a failed command's output.
pub(crate) fn with_file_tail(err: TestkitError, log: &str) -> TestkitError {
    let TestkitError::Command { what, output } = err else {
        return err;
    };
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
    let output = format!("{output}\n--- last {LOG_TAIL_LINES} lines of {log} ---\n{tail}");
    TestkitError::Command { what, output }
}

/// Creates `<temp>/pgkeel-<pid>-<n>`, owned by the server's owner.
pub(crate) fn make_temp_dir(owner: Option<Owner>) -> Result<String, TestkitError> {
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
    if let Some(Owner { uid, gid }) = owner
        && let Err(err) = std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
    {
        let _ = fs::remove_dir(&dir);
        return Err(err.into());
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
pub(crate) fn free_port() -> Result<u16, TestkitError> {
    let listener = TcpListener::bind((LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}
