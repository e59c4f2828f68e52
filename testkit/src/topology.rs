//! Test kit additions for connection tests: a streaming standby of a throwaway cluster,
//! promotion, extra pg_hba.conf lines, and files (TLS keys) owned by the server's user.
//!
//! ```no_run
//! use pgkeel_testkit::Cluster;
//!
//! let primary = Cluster::start().unwrap();
//! let standby = primary.start_standby().unwrap();
//! primary.stop_server().unwrap();
//! standby.promote().unwrap();
//! ```

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::cluster::{Backend, Cluster, ClusterBuilder};
use crate::command::run;
use crate::error::{TestkitError, command_error};
use crate::local::{Local, make_temp_dir};
use crate::programs::as_owner;
use crate::{LOCALHOST, SUPERUSER};

/// The pg_hba.conf lines that let a standby stream from its primary.
const REPLICATION_HBA: &str = "\
local replication all trust
host replication all 127.0.0.1/32 trust
";

impl Cluster {
    /// Starts a streaming hot standby of this cluster (`pg_basebackup -R` into a temp
    /// dir of its own, its own port); it is stopped and removed when dropped.
    ///
    /// # Errors
    /// An External error for an external server; a Command error if a step fails.
    pub fn start_standby(&self) -> Result<Cluster, TestkitError> {
        let primary = self.local("Cluster::start_standby")?;
        self.prepend_hba(REPLICATION_HBA)?;
        let dir = make_temp_dir(primary.owner)?;
        let standby = Local::new(primary.bins.clone(), primary.owner, dir);
        let mut cluster = Cluster {
            host: LOCALHOST.to_string(),
            port: 0,
            superuser: SUPERUSER.to_string(),
            backend: Backend::Local(standby),
        };
        let Backend::Local(standby) = &mut cluster.backend else {
            unreachable!("built as Local just above")
        };
        base_backup(primary, self.port, &standby.data)?;
        standby.watchdog = Some(standby.spawn_watchdog()?);
        cluster.port = standby.start_on_free_port(&ClusterBuilder::new())?;
        cluster.prepend_hba(REPLICATION_HBA)?;
        Ok(cluster)
    }

    /// Promotes this standby to a primary (`pg_ctl promote -w`).
    ///
    /// # Errors
    /// An External error for an external server; a Command error if pg_ctl fails.
    pub fn promote(&self) -> Result<(), TestkitError> {
        let local = self.local("Cluster::promote")?;
        local.pg_ctl("pg_ctl promote", &["-w", "-t", "60", "promote"])
    }

    /// Starts this stopped former primary again as a streaming standby of `primary`
    /// (`standby.signal` and `primary_conninfo`), as after a failover. Works when it
    /// was stopped cleanly, so that its WAL does not run past the new primary's fork.
    ///
    /// # Errors
    /// An External error for an external server; an I/O or Command error.
    pub fn rejoin_as_standby_of(&self, primary: &Cluster) -> Result<(), TestkitError> {
        let local = self.local("Cluster::rejoin_as_standby_of")?;
        let upstream = primary.local("Cluster::rejoin_as_standby_of")?;
        let signal = Path::new(&local.data).join("standby.signal");
        fs::write(&signal, "")?;
        let conninfo = format!(
            "\nprimary_conninfo = 'host={} port={} user={SUPERUSER}'\n",
            upstream.dir, primary.port
        );
        let auto = Path::new(&local.data).join("postgresql.auto.conf");
        let old = fs::read_to_string(&auto).unwrap_or_default();
        fs::write(&auto, old + &conninfo)?;
        if let Some(owner) = local.owner {
            for file in [&signal, &auto] {
                std::os::unix::fs::chown(file, Some(owner.uid), Some(owner.gid))?;
            }
        }
        local.start()
    }

    /// Puts `lines` at the top of pg_hba.conf (first match wins) and reloads.
    ///
    /// # Errors
    /// An External error for an external server; an I/O or Command error.
    pub fn prepend_hba(&self, lines: &str) -> Result<(), TestkitError> {
        let local = self.local("Cluster::prepend_hba")?;
        let path = format!("{}/pg_hba.conf", local.data);
        let old = fs::read_to_string(&path)?;
        fs::write(&path, format!("{lines}{old}"))?;
        self.reload()
    }

    /// Applies `ALTER SYSTEM`-free configuration changes: `pg_ctl reload`.
    ///
    /// # Errors
    /// An External error for an external server; a Command error if pg_ctl fails.
    pub fn reload(&self) -> Result<(), TestkitError> {
        let local = self.local("Cluster::reload")?;
        local.pg_ctl("pg_ctl reload", &["reload"])?;
        // The postmaster signals its children asynchronously; give it a moment.
        std::thread::sleep(std::time::Duration::from_millis(300));
        Ok(())
    }

    /// Writes `contents` to `name` in the data directory, mode 0600 and owned by the
    /// server's OS user (as PostgreSQL demands of `ssl_key_file`); returns its path.
    ///
    /// # Errors
    /// An External error for an external server; an I/O error.
    pub fn install_file(&self, name: &str, contents: &[u8]) -> Result<PathBuf, TestkitError> {
        let local = self.local("Cluster::install_file")?;
        let path = Path::new(&local.data).join(name);
        fs::write(&path, contents)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
        if let Some(owner) = local.owner {
            std::os::unix::fs::chown(&path, Some(owner.uid), Some(owner.gid))?;
        }
        Ok(path)
    }

    /// The Unix socket directory, also the cluster's temp dir (None when external).
    pub fn dir(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Local(local) => Some(Path::new(&local.dir)),
            Backend::External(_) => None,
        }
    }
}

/// `pg_basebackup -R` from the primary's socket into `data`, as the server's user.
fn base_backup(primary: &Local, port: u16, data: &str) -> Result<(), TestkitError> {
    let bindir = primary.bins.initdb.parent().unwrap_or(Path::new("/"));
    let program = [
        bindir.join("pg_basebackup"),
        PathBuf::from("/usr/bin/pg_basebackup"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .ok_or_else(|| command_error("pg_basebackup", "pg_basebackup was not found"))?;
    let port = port.to_string();
    let args = [
        "-D",
        data,
        "-h",
        &primary.dir,
        "-p",
        &port,
        "-U",
        SUPERUSER,
        "-R",
        "-X",
        "stream",
        "-c",
        "fast",
        "--no-sync",
    ];
    let mut cmd = as_owner(primary.owner, &program, &args);
    run(cmd.current_dir(&primary.dir), "pg_basebackup").map(drop)
}
