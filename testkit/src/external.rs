//! An existing server named by `PGKEEL_TEST_URL`, read with the driver's own parser.
//!
//! The URL is parsed by [`pgkeel::Config`], never by hand. `Config` cannot hand back its
//! password or render itself as a URL, so a URL for another role or database is the
//! original text with `user=`, `password=` and `dbname=` appended to it: pgkeel's
//! parser and libpq's (psql) both let a later parameter override an earlier one.

use std::env;
use std::fmt;
use std::path::PathBuf;
use std::process::Command;

use pgkeel::{Config, Host};

use crate::command::percent_encode;
use crate::error::TestkitError;
use crate::programs::find_psql;

/// An existing server named by `PGKEEL_TEST_URL`.
pub(crate) struct External {
    psql: PathBuf,
    /// The URL (or `key=value` string) as written.
    url: String,
    config: Config,
}

impl fmt::Debug for External {
    // Leaves the password out: `Config`'s Debug redacts it, the URL is not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("External")
            .field("psql", &self.psql)
            .field("config", &self.config)
            .finish()
    }
}

impl External {
    /// Reads `url` with [`pgkeel::Config`] and finds a psql to run admin SQL with.
    pub(crate) fn new(url: &str) -> Result<External, TestkitError> {
        let bindir = env::var_os("PGKEEL_PG_BINDIR").map(PathBuf::from);
        let psql = find_psql(bindir.as_deref())?;
        External::with_psql(url, psql)
    }

    /// Reads `url` with [`pgkeel::Config`]; `psql` runs the admin SQL.
    pub(crate) fn with_psql(url: &str, psql: PathBuf) -> Result<External, TestkitError> {
        let config = url
            .parse::<Config>()
            .map_err(|err| TestkitError::External(format!("using PGKEEL_TEST_URL ({err})")))?;
        // Fail now, not at the first test, when the hosts and ports do not match up.
        first_target(&config)?;
        let url = url.trim().to_string();
        Ok(External { psql, url, config })
    }

    /// The first host (a name, an address or a socket directory) and its port.
    pub(crate) fn target(&self) -> (String, u16) {
        first_target(&self.config).expect("checked in External::with_psql")
    }

    /// The URL's role: its user, else `PGUSER`, else the OS user.
    pub(crate) fn user(&self) -> String {
        self.config.get_user()
    }

    /// The URL's database: its dbname, else `PGDATABASE`, else the role name.
    pub(crate) fn dbname(&self) -> String {
        self.config.get_dbname()
    }

    /// This server's URL for `user` (with the URL's own password for its own user).
    pub(crate) fn url(&self, user: &str, password: Option<&str>, dbname: &str) -> String {
        let mut params = Vec::new();
        if user != self.user() {
            params.push(("user", user));
            // Never send the superuser's password on behalf of another role.
            params.push(("password", password.unwrap_or_default()));
        } else if let Some(password) = password {
            params.push(("password", password));
        }
        params.push(("dbname", dbname));
        self.append(&params)
    }

    /// A psql command connected as the URL's user to `dbname`.
    pub(crate) fn psql_command(&self, dbname: &str) -> Command {
        let mut cmd = Command::new(&self.psql);
        cmd.args(["-d", &self.url(&self.user(), None, dbname)]);
        cmd
    }

    /// The URL with `params` appended (query parameters, or `key='value'` words).
    fn append(&self, params: &[(&str, &str)]) -> String {
        let url = &self.url;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            let words = params
                .iter()
                .map(|(k, v)| format!(" {k}={}", conninfo_quote(v)));
            return words.fold(url.clone(), |acc, word| acc + &word);
        }
        let query = params
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let sep = match url.contains('?') {
            true if url.ends_with(['?', '&']) => "",
            true => "&",
            false => "?",
        };
        format!("{url}{sep}{query}")
    }
}

/// The first `(host, port)` the driver would try, as a string and a port.
fn first_target(config: &Config) -> Result<(String, u16), TestkitError> {
    let invalid = |why: String| TestkitError::External(format!("using PGKEEL_TEST_URL ({why})"));
    let targets = config.targets().map_err(|err| invalid(err.to_string()))?;
    match targets.into_iter().next() {
        Some(t) => match t.host {
            Host::Tcp(host) => Ok((host, t.port)),
            Host::Unix(dir) => Ok((dir.to_string_lossy().into_owned(), t.port)),
        },
        None => Err(invalid("it names no host".into())),
    }
}

/// A libpq `key=value` value in single quotes.
fn conninfo_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', r"\\").replace('\'', r"\'"))
}

/// `PGKEEL_TEST_URL`, if set and not empty.
pub(crate) fn external_url() -> Option<String> {
    env::var("PGKEEL_TEST_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn external(url: &str) -> External {
        External::with_psql(url, PathBuf::from("psql")).unwrap()
    }

    /// What pgkeel reads from `url`: user, database, first target.
    fn read(url: &str) -> (String, String, Vec<(Host, u16)>) {
        let config: Config = url.parse().unwrap();
        (
            config.get_user(),
            config.get_dbname(),
            config
                .targets()
                .unwrap()
                .into_iter()
                .map(|t| (t.host, t.port))
                .collect(),
        )
    }

    #[test]
    fn parses_hosts_and_ports_with_the_drivers_parser() {
        let v6 = external("postgresql://u@[::1]:5433");
        assert_eq!(v6.target(), ("::1".to_string(), 5433));
        assert_eq!((v6.user(), v6.dbname()), ("u".to_string(), "u".to_string()));
        let plain = external("postgres://h/db");
        assert_eq!(plain.target(), ("h".to_string(), 5432));
        let kv = external("host=/run/pg port=6000 user=admin dbname=main");
        assert_eq!(kv.target(), ("/run/pg".to_string(), 6000));
        let bad = |url| External::with_psql(url, PathBuf::from("psql")).is_err();
        assert!(bad("postgres://h:port/db"));
        assert!(bad("host=a,b,c port=1,2"));
    }

    #[test]
    fn urls_for_other_roles_and_databases_read_back_through_config() {
        let ext = external("postgres://admin:se%3Acret@db.example:6543/main?sslmode=disable");
        let own = ext.url("admin", None, "x y");
        assert!(own.starts_with("postgres://admin:se%3Acret@db.example:6543/main?"));
        assert_eq!(read(&own).1, "x y");
        let bob = ext.url("bob", None, "d");
        assert!(
            bob.ends_with("?sslmode=disable&user=bob&password=&dbname=d"),
            "{bob}"
        );
        let (user, dbname, targets) = read(&bob);
        assert_eq!((user.as_str(), dbname.as_str()), ("bob", "d"));
        assert_eq!(targets, [(Host::Tcp("db.example".into()), 6543)]);
        let kv = external("host=h user=admin");
        let alice = kv.url("alice", Some("it's"), "db");
        assert_eq!(
            alice,
            r"host=h user=admin user='alice' password='it\'s' dbname='db'"
        );
        assert_eq!(read(&alice).0, "alice");
        assert!(!format!("{ext:?}").contains("se%3Acret"));
    }
}
