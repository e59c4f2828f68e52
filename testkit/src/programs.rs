//! Finding the PostgreSQL programs, and running them as the `postgres` OS user as root.

use std::env;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::SUPERUSER;
use crate::command::{run, sh_quote};
use crate::error::{TestkitError, command_error};

/// The paths of the PostgreSQL programs used.
#[derive(Debug, Clone)]
pub(crate) struct Bins {
    pub(crate) initdb: PathBuf,
    pub(crate) pg_ctl: PathBuf,
    pub(crate) psql: PathBuf,
}

impl Bins {
    /// Finds the server binaries and a psql.
    pub(crate) fn find() -> Result<Bins, TestkitError> {
        Self::in_dir(find_bindir()?)
    }

    /// The server binaries of `dir` (and a psql there or elsewhere).
    pub(crate) fn in_dir(dir: PathBuf) -> Result<Bins, TestkitError> {
        if !has_server(&dir) {
            return Err(TestkitError::NoBinaries(format!(
                "{} holds no initdb and pg_ctl",
                dir.display()
            )));
        }
        Ok(Bins {
            initdb: dir.join("initdb"),
            pg_ctl: dir.join("pg_ctl"),
            psql: find_psql(Some(&dir))?,
        })
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
pub(crate) fn find_psql(bindir: Option<&Path>) -> Result<PathBuf, TestkitError> {
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
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|file| is_executable(file))
}

/// Whether `file` is an executable regular file (following symlinks).
pub(crate) fn is_executable(file: &Path) -> bool {
    fs::metadata(file).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The uid and gid that own a cluster when the tests run as root.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// The `postgres` OS user when this process runs as root (PostgreSQL refuses root).
pub(crate) fn server_owner() -> Result<Option<Owner>, TestkitError> {
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
pub(crate) fn as_owner(owner: Option<Owner>, program: &Path, args: &[&str]) -> Command {
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

/// The PgBouncer binary: `PGKEEL_PGBOUNCER`, else `pgbouncer` on PATH or in /usr/sbin.
pub(crate) fn find_pgbouncer() -> Result<PathBuf, TestkitError> {
    if let Some(path) = env::var_os("PGKEEL_PGBOUNCER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return match is_executable(&path) {
            true => Ok(path),
            false => Err(TestkitError::NoPgbouncer(format!(
                "PGKEEL_PGBOUNCER={} is not an executable file",
                path.display()
            ))),
        };
    }
    find_program("pgbouncer")
        .or_else(|| Some(PathBuf::from("/usr/sbin/pgbouncer")).filter(|p| is_executable(p)))
        .ok_or_else(|| TestkitError::NoPgbouncer("no pgbouncer on PATH or in /usr/sbin".into()))
}

/// The version `pgbouncer --version` prints on its first line ("PgBouncer 1.18.0").
pub(crate) fn pgbouncer_version(program: &Path) -> Result<String, TestkitError> {
    let out = run(
        Command::new(program).arg("--version"),
        "pgbouncer --version",
    )?;
    let first = out.lines().next().unwrap_or_default();
    first
        .split_whitespace()
        .nth(1)
        .map(str::to_string)
        .ok_or_else(|| command_error("pgbouncer --version", &out))
}
