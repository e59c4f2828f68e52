//! [`Config`]: where to connect and how, from a URL, a `key=value` string or code.
//!
//! Accepted forms, as libpq accepts them:
//! - `postgres://user:password@host:port,host2:port2/dbname?application_name=app`
//!   (`postgresql://` too; a host in brackets is IPv6; a host that is a percent-encoded
//!   path such as `%2Fvar%2Frun%2Fpostgresql` is a Unix socket directory);
//! - `host=/tmp port=5432 user=me dbname=db password='it''s'`.
//!
//! Anything not given falls back to the `PG*` environment variables (`PGHOST`, `PGPORT`,
//! `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGAPPNAME`, `PGCONNECT_TIMEOUT`,
//! `PGOPTIONS`), then to libpq's defaults.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::error::Error;

/// Statements each connection keeps prepared by default.
const DEFAULT_STATEMENT_CACHE: usize = 256;

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A host name or IP address, reached over TCP.
    Tcp(String),
    /// A directory holding the server's Unix socket (`.s.PGSQL.<port>`).
    Unix(PathBuf),
}

/// Whether to use TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Use TLS when the server offers it, plain otherwise.
    Prefer,
    /// Require TLS.
    Require,
}

/// Connection settings.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    pub(crate) hosts: Vec<Host>,
    pub(crate) ports: Vec<u16>,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<Vec<u8>>,
    pub(crate) dbname: Option<String>,
    pub(crate) application_name: Option<String>,
    pub(crate) options: Option<String>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) cancel_timeout: Duration,
    pub(crate) query_timeout: Option<Duration>,
    pub(crate) lock_timeout: Option<Duration>,
    pub(crate) keepalives_idle: Option<Duration>,
    pub(crate) statement_cache_capacity: usize,
    pub(crate) pooler_mode: bool,
    pub(crate) max_message_len: usize,
    pub(crate) ssl_mode: SslMode,
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("hosts", &self.hosts)
            .field("ports", &self.ports)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dbname", &self.dbname)
            .field("application_name", &self.application_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_cache_capacity", &self.statement_cache_capacity)
            .field("ssl_mode", &self.ssl_mode)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Empty settings: everything comes from the environment and the defaults.
    pub fn new() -> Config {
        Config {
            hosts: Vec::new(),
            ports: Vec::new(),
            user: None,
            password: None,
            dbname: None,
            application_name: None,
            options: None,
            connect_timeout: None,
            cancel_timeout: Duration::from_secs(5),
            query_timeout: None,
            lock_timeout: None,
            keepalives_idle: Some(Duration::from_secs(60)),
            statement_cache_capacity: DEFAULT_STATEMENT_CACHE,
            pooler_mode: false,
            max_message_len: crate::protocol::DEFAULT_MAX_MESSAGE_LEN,
            ssl_mode: SslMode::Disable,
        }
    }

    /// Adds a TCP host (a name or an IP address), or a Unix socket directory when it
    /// starts with `/`.
    pub fn host(&mut self, host: &str) -> &mut Config {
        self.hosts.push(parse_host(host));
        self
    }

    /// Adds a Unix socket directory.
    pub fn host_path(&mut self, dir: impl Into<PathBuf>) -> &mut Config {
        self.hosts.push(Host::Unix(dir.into()));
        self
    }

    /// Adds a port (one for all hosts, or one per host).
    pub fn port(&mut self, port: u16) -> &mut Config {
        self.ports.push(port);
        self
    }

    /// Sets the role name.
    pub fn user(&mut self, user: &str) -> &mut Config {
        self.user = Some(user.to_owned());
        self
    }

    /// Sets the password.
    pub fn password(&mut self, password: impl AsRef<[u8]>) -> &mut Config {
        self.password = Some(password.as_ref().to_vec());
        self
    }

    /// Sets the database name (default: the role name).
    pub fn dbname(&mut self, dbname: &str) -> &mut Config {
        self.dbname = Some(dbname.to_owned());
        self
    }

    /// Sets `application_name`, shown in `pg_stat_activity`.
    pub fn application_name(&mut self, name: &str) -> &mut Config {
        self.application_name = Some(name.to_owned());
        self
    }

    /// Sets command-line options for the server session, e.g. `-c search_path=app`.
    pub fn options(&mut self, options: &str) -> &mut Config {
        self.options = Some(options.to_owned());
        self
    }

    /// Bounds opening the socket plus startup and authentication, per host tried.
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Config {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Bounds the delivery of a CancelRequest (default 5 s).
    pub fn cancel_timeout(&mut self, timeout: Duration) -> &mut Config {
        self.cancel_timeout = timeout;
        self
    }

    /// Bounds every call on the connection (waiting for the wire lock included; for
    /// `query_raw`, the call that returns the stream with its first batch) and fails it
    /// with a [`crate::TimeoutKind::Query`] timeout, as `tokio::time::timeout` around each
    /// call would: an exchange cut short breaks the connection and the server is sent a
    /// cancel. Commit, rollback and savepoints are not bounded by it. Off by default.
    pub fn query_timeout(&mut self, timeout: Duration) -> &mut Config {
        self.query_timeout = Some(timeout);
        self
    }

    /// Bounds the wait for another task to release the connection's wire lock (its
    /// query, transaction or row stream) and fails it with a
    /// [`crate::TimeoutKind::WireLock`] timeout; the connection is untouched. Off by
    /// default.
    pub fn lock_timeout(&mut self, timeout: Duration) -> &mut Config {
        self.lock_timeout = Some(timeout);
        self
    }

    /// Sets the TCP keepalive idle time; `None` turns keepalive off (default 60 s).
    pub fn keepalives_idle(&mut self, idle: Option<Duration>) -> &mut Config {
        self.keepalives_idle = idle;
        self
    }

    /// Pooler mode, for PgBouncer and other transaction-mode poolers (`pgbouncer=true`
    /// or `prepare_threshold=0` in a URL): no statement is ever named on the server,
    /// so nothing one session prepares can be seen by another that shares its server
    /// connection. Queries parse as the unnamed statement in the same write as their
    /// Bind (no extra round trip; the server parses every time), `prepare()` returns
    /// statements parsed again at each use, and no session setting is sent at connect.
    /// Turning it off restores the default statement cache.
    pub fn pooler_mode(&mut self, on: bool) -> &mut Config {
        self.pooler_mode = on;
        self.statement_cache_capacity = match on {
            true => 0,
            false => DEFAULT_STATEMENT_CACHE,
        };
        self
    }

    /// Whether pooler mode is on.
    pub fn get_pooler_mode(&self) -> bool {
        self.pooler_mode
    }

    /// Sets how many prepared statements each connection caches (default 256; 0 disables
    /// the cache, so every query is parsed as the unnamed statement).
    pub fn statement_cache_capacity(&mut self, capacity: usize) -> &mut Config {
        self.statement_cache_capacity = capacity;
        self
    }

    /// Sets the largest backend message accepted, in bytes (default just over 1 GiB).
    pub fn max_message_len(&mut self, len: usize) -> &mut Config {
        self.max_message_len = len;
        self
    }

    /// Sets the TLS mode.
    pub fn ssl_mode(&mut self, mode: SslMode) -> &mut Config {
        self.ssl_mode = mode;
        self
    }

    /// The role name: the one set, else `PGUSER`, else the OS user.
    pub fn get_user(&self) -> String {
        self.user
            .clone()
            .or_else(|| env("PGUSER"))
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".to_owned())
    }

    /// The database name: the one set, else `PGDATABASE`, else the role name.
    pub fn get_dbname(&self) -> String {
        self.dbname
            .clone()
            .or_else(|| env("PGDATABASE"))
            .unwrap_or_else(|| self.get_user())
    }

    /// The password, if one is set or in `PGPASSWORD`.
    pub(crate) fn get_password(&self) -> Option<Vec<u8>> {
        self.password
            .clone()
            .or_else(|| env("PGPASSWORD").map(String::into_bytes))
    }

    /// The application name, if set or in `PGAPPNAME`.
    pub fn get_application_name(&self) -> Option<String> {
        self.application_name.clone().or_else(|| env("PGAPPNAME"))
    }

    /// The connect timeout, if set or in `PGCONNECT_TIMEOUT` (seconds).
    pub fn get_connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout.or_else(|| {
            let secs: u64 = env("PGCONNECT_TIMEOUT")?.parse().ok()?;
            (secs > 0).then(|| Duration::from_secs(secs))
        })
    }

    /// The cancel timeout.
    pub fn get_cancel_timeout(&self) -> Duration {
        self.cancel_timeout
    }

    /// The statement cache capacity.
    pub fn get_statement_cache_capacity(&self) -> usize {
        self.statement_cache_capacity
    }

    /// The `(host, port)` pairs to try, in order.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Config`] when the number of ports is neither 1 nor the number
    /// of hosts.
    pub fn targets(&self) -> Result<Vec<(Host, u16)>, Error> {
        let hosts = match self.hosts.is_empty() {
            false => self.hosts.clone(),
            true => default_hosts(),
        };
        let ports = match self.ports.is_empty() {
            false => self.ports.clone(),
            true => vec![env_port()?.unwrap_or(5432)],
        };
        match ports.len() {
            1 => Ok(hosts.into_iter().map(|h| (h, ports[0])).collect()),
            n if n == hosts.len() => Ok(hosts.into_iter().zip(ports).collect()),
            n => Err(Error::config(format!(
                "{n} ports were given for {} hosts; give one port, or one per host",
                hosts.len()
            ))),
        }
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        match key {
            "host" | "hostaddr" => split_list(value).for_each(|h| {
                self.host(h);
            }),
            "port" => {
                for p in split_list(value) {
                    self.ports.push(parse_port(p)?);
                }
            }
            "user" => self.user = Some(value.to_owned()),
            "password" => self.password = Some(value.as_bytes().to_vec()),
            "dbname" => self.dbname = Some(value.to_owned()),
            "application_name" => self.application_name = Some(value.to_owned()),
            "options" => self.options = Some(value.to_owned()),
            "connect_timeout" => self.connect_timeout = parse_secs(key, value)?,
            "cancel_timeout" => self.cancel_timeout = parse_secs(key, value)?.unwrap_or_default(),
            "keepalives_idle" => self.keepalives_idle = parse_secs(key, value)?,
            "query_timeout_ms" => self.query_timeout = parse_millis(key, value)?,
            "lock_timeout_ms" => self.lock_timeout = parse_millis(key, value)?,
            "statement_cache_capacity" => {
                self.statement_cache_capacity = parse_num(key, value)?;
            }
            "pgbouncer" => match value {
                "true" | "1" | "on" | "yes" => drop(self.pooler_mode(true)),
                "false" | "0" | "off" | "no" => drop(self.pooler_mode(false)),
                _ => return Err(Error::config(format!("invalid value for pgbouncer: {value:?} (true or false)"))),
            },
            // pgjdbc's name: 0 never names a statement on the server (pooler mode); 1 is
            // what pgkeel does anyway (named and cached from the first use).
            "prepare_threshold" => match parse_num(key, value)? {
                0 => drop(self.pooler_mode(true)),
                1 => drop(self.pooler_mode(false)),
                n => return Err(Error::config(format!("prepare_threshold={n} is not supported: use 0 (pooler mode, unnamed statements only) or 1 (prepare and cache at first use)"))),
            },
            "sslmode" => self.ssl_mode = parse_ssl_mode(value)?,
            // Accepted for libpq compatibility; they only matter with TLS.
            "sslrootcert" | "sslcert" | "sslkey" | "target_session_attrs" | "keepalives" => {}
            other => {
                return Err(Error::config(format!(
                    "unknown connection option {other:?}"
                )))
            }
        }
        Ok(())
    }
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

fn env_port() -> Result<Option<u16>, Error> {
    env("PGPORT").map(|p| parse_port(&p)).transpose()
}

fn default_hosts() -> Vec<Host> {
    match env("PGHOST") {
        Some(h) => split_list(&h).map(parse_host).collect(),
        None => vec![Host::Tcp("localhost".to_owned())],
    }
}

fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn parse_host(host: &str) -> Host {
    match host.starts_with('/') {
        true => Host::Unix(PathBuf::from(host)),
        false => Host::Tcp(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        ),
    }
}

fn parse_port(p: &str) -> Result<u16, Error> {
    p.parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| Error::config(format!("invalid port {p:?}")))
}

fn parse_num(key: &str, value: &str) -> Result<usize, Error> {
    value
        .parse()
        .map_err(|_| Error::config(format!("{key} must be a whole number, not {value:?}")))
}

/// Seconds as libpq takes them; 0 means "no limit".
fn parse_secs(key: &str, value: &str) -> Result<Option<Duration>, Error> {
    let secs = parse_num(key, value)? as u64;
    Ok((secs > 0).then(|| Duration::from_secs(secs)))
}

/// Milliseconds; 0 means "no limit".
fn parse_millis(key: &str, value: &str) -> Result<Option<Duration>, Error> {
    let ms = parse_num(key, value)? as u64;
    Ok((ms > 0).then(|| Duration::from_millis(ms)))
}

fn parse_ssl_mode(value: &str) -> Result<SslMode, Error> {
    match value {
        "disable" | "allow" => Ok(SslMode::Disable),
        "prefer" => Ok(SslMode::Prefer),
        "require" => Ok(SslMode::Require),
        "verify-ca" | "verify-full" => Err(Error::config(format!(
            "sslmode={value} is not supported yet; use disable, prefer or require"
        ))),
        other => Err(Error::config(format!("invalid sslmode {other:?}"))),
    }
}

impl FromStr for Config {
    type Err = Error;

    /// Parses a `postgres://` URL or a `key=value` connection string.
    fn from_str(s: &str) -> Result<Config, Error> {
        let s = s.trim();
        match s
            .strip_prefix("postgresql://")
            .or_else(|| s.strip_prefix("postgres://"))
        {
            Some(rest) => parse_url(rest),
            None => parse_key_values(s),
        }
    }
}

fn parse_url(rest: &str) -> Result<Config, Error> {
    let mut config = Config::new();
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
    let hostlist = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            parse_userinfo(&mut config, userinfo)?;
            hosts
        }
        None => authority,
    };
    parse_url_hosts(&mut config, hostlist)?;
    if !path.is_empty() {
        config.dbname = Some(percent_decode(path)?);
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        config.set(&percent_decode(k)?, &percent_decode(v)?)?;
    }
    Ok(config)
}

fn parse_userinfo(config: &mut Config, userinfo: &str) -> Result<(), Error> {
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (userinfo, None),
    };
    if !user.is_empty() {
        config.user = Some(percent_decode(user)?);
    }
    if let Some(p) = password {
        config.password = Some(percent_decode(p)?.into_bytes());
    }
    Ok(())
}

fn parse_url_hosts(config: &mut Config, hostlist: &str) -> Result<(), Error> {
    for spec in hostlist.split(',').filter(|h| !h.is_empty()) {
        let (host, port) = split_host_port(spec);
        if !host.is_empty() {
            config.host(&percent_decode(host)?);
        }
        if let Some(p) = port {
            config.ports.push(parse_port(p)?);
        }
    }
    Ok(())
}

fn split_host_port(spec: &str) -> (&str, Option<&str>) {
    if let Some(rest) = spec.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (host, after.strip_prefix(':'));
    }
    match spec.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (spec, None),
    }
}

fn percent_decode(s: &str) -> Result<String, Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
                let byte = byte
                    .ok_or_else(|| Error::config(format!("invalid percent-encoding in {s:?}")))?;
                out.push(byte);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| Error::config(format!("{s:?} decodes to invalid UTF-8")))
}

fn parse_key_values(s: &str) -> Result<Config, Error> {
    let mut config = Config::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(config);
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|&c| c != '=' && !c.is_whitespace())).collect();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(Error::config(format!(
                "expected '=' after {key:?} in connection string"
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let value = parse_conninfo_value(&mut chars)?;
        config.set(&key, &value)?;
    }
}

fn parse_conninfo_value(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
) -> Result<String, Error> {
    let quoted = chars.next_if_eq(&'\'').is_some();
    let mut value = String::new();
    loop {
        match chars.next() {
            None if quoted => {
                return Err(Error::config(
                    "unterminated quoted value in connection string",
                ))
            }
            None => return Ok(value),
            Some('\'') if quoted => return Ok(value),
            Some(c) if c.is_whitespace() && !quoted => return Ok(value),
            Some('\\') => value.extend(chars.next()),
            Some(c) => value.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_with_everything_parses() {
        let c: Config = "postgres://us%40er:p%3Ass@db.example:6543,[::1]:7000/app?application_name=svc&connect_timeout=3&statement_cache_capacity=0"
            .parse()
            .unwrap();
        assert_eq!(c.user.as_deref(), Some("us@er"));
        assert_eq!(c.password.as_deref(), Some(&b"p:ss"[..]));
        assert_eq!(
            c.hosts,
            vec![Host::Tcp("db.example".into()), Host::Tcp("::1".into())]
        );
        assert_eq!(c.ports, vec![6543, 7000]);
        assert_eq!(c.dbname.as_deref(), Some("app"));
        assert_eq!(c.application_name.as_deref(), Some("svc"));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(3)));
        assert_eq!(c.statement_cache_capacity, 0);
    }

    #[test]
    fn percent_encoded_path_host_is_a_unix_socket_dir() {
        let c: Config = "postgresql://%2Ftmp%2Fpg:5433/db".parse().unwrap();
        assert_eq!(
            c.targets().unwrap(),
            vec![(Host::Unix("/tmp/pg".into()), 5433)]
        );
    }

    #[test]
    fn key_value_strings_handle_quotes_and_escapes() {
        let c: Config = "host=/run/pg port = 5 user=me password='it\\'s a secret' dbname=x"
            .parse()
            .unwrap();
        assert_eq!(c.password.as_deref(), Some(&b"it's a secret"[..]));
        assert_eq!(
            c.targets().unwrap(),
            vec![(Host::Unix("/run/pg".into()), 5)]
        );
        assert_eq!(c.dbname.as_deref(), Some("x"));
    }

    #[test]
    fn bad_input_is_a_config_error_not_a_panic() {
        for bad in [
            "postgres://h:notaport/db",
            "postgres://h/db?nonsense=1",
            "postgres://h/%zz",
            "host=x port",
            "password='unterminated",
            "postgres://h:0/db",
            "postgres://a,b,c:1,:2/db",
        ] {
            let r = bad.parse::<Config>().and_then(|c| c.targets().map(|_| c));
            let e = r.expect_err(bad);
            assert_eq!(e.kind(), crate::ErrorKind::Config, "{bad}: {e}");
        }
    }

    #[test]
    fn debug_output_hides_the_password() {
        let c: Config = "postgres://u:hunter2@h/db".parse().unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
