//! The kit's one error type; every message says what to install or set.

use std::fmt;
use std::io;

/// Errors of the test kit; each message says what to install or set.
#[derive(Debug)]
pub enum TestkitError {
    /// No PostgreSQL binaries (or no `postgres` OS user to run them as root) were found.
    NoBinaries(String),
    /// No PgBouncer binary was found (only the PgBouncer tests need one).
    NoPgbouncer(String),
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
            Self::NoPgbouncer(msg) => write!(
                f,
                "{msg}: install PgBouncer (Debian: apt-get install pgbouncer), set \
                 PGKEEL_PGBOUNCER to its path, or set PGKEEL_SKIP_PGBOUNCER=1 to skip the \
                 tests that need it"
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

/// A Command error with `output`.
pub(crate) fn command_error(what: &str, output: &str) -> TestkitError {
    TestkitError::Command {
        what: what.to_string(),
        output: output.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_to_do() {
        let err = TestkitError::NoBinaries("no initdb".into()).to_string();
        assert!(err.contains("apt-get install postgresql") && err.contains("PGKEEL_PG_BINDIR"));
        let err = TestkitError::External("Cluster::restart".into()).to_string();
        assert!(err.contains("PGKEEL_TEST_URL"));
        let err = TestkitError::NoPgbouncer("no pgbouncer".into()).to_string();
        assert!(err.contains("apt-get install pgbouncer") && err.contains("PGKEEL_SKIP_PGBOUNCER"));
    }
}
