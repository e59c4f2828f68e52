//! [`Config`]: where to connect and how, from a URL, a `key=value` string, the `PG*`
//! environment or code, with libpq's option names, values and defaults.
//!
//! Accepted forms, as libpq accepts them:
//! - `postgres://user:password@host:port,host2:port2/dbname?sslmode=require`
//!   (`postgresql://` too; a host in brackets is IPv6; a host that is a percent-encoded
//!   path such as `%2Fvar%2Frun%2Fpostgresql` is a Unix socket directory);
//! - `host=/tmp port=5432 user=me dbname=db password='it''s'`.
//!
//! Parsing never reads the environment: `"…".parse::<Config>()` means exactly what the
//! string says, plus libpq's compiled-in defaults. The `PG*` variables are read only by
//! [`Config::from_env`] and [`Config::with_env_defaults`], which fill what is not set.
//! The password file (`passfile`, default `~/.pgpass`) is read at connect time when the
//! server asks for a password and none was given, as libpq does.
//!
//! Every libpq option is either implemented or refused with an [`crate::ErrorKind::Config`]
//! error that names it; none is accepted and ignored. See `docs/CONNECTING.md`.

mod conninfo;
pub(crate) mod env;
mod options;
pub(crate) mod pgpass;
mod targets;
mod url;

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::error::Error;

pub use targets::Target;

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

/// Whether and how to use TLS (`sslmode`), with libpq's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Try without TLS first; if the server refuses the session, try again with TLS.
    Allow,
    /// Try TLS first; if the server does not offer it (or the handshake fails), go on
    /// without. libpq's default, and pgkeel's.
    Prefer,
    /// Use TLS; check the certificate only when a root certificate is given.
    Require,
    /// Use TLS and check that a trusted CA signed the server certificate.
    VerifyCa,
    /// Use TLS, check the CA and that the certificate names the host.
    VerifyFull,
}

/// Which CA certificates to trust (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SslRootCert {
    /// A PEM file of CA certificates.
    File(PathBuf),
    /// The platform's trust store (`sslrootcert=system`); implies `verify-full`.
    System,
}

/// The TLS protocol versions pgkeel can speak (`ssl_min_protocol_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// A minor version of protocol 3 (`min_protocol_version`, `max_protocol_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// 3.0: every PostgreSQL since 7.4.
    V3_0,
    /// 3.2: PostgreSQL 18, with cancel keys of up to 256 bytes.
    V3_2,
}

impl ProtocolVersion {
    /// The minor version number sent in the StartupMessage.
    pub fn minor(self) -> u16 {
        match self {
            ProtocolVersion::V3_0 => 0,
            ProtocolVersion::V3_2 => 2,
        }
    }
}

/// SCRAM channel binding (`channel_binding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelBindingMode {
    /// Never bind the SCRAM exchange to the TLS channel.
    Disable,
    /// Bind it when the session uses TLS and the server offers SCRAM-SHA-256-PLUS.
    Prefer,
    /// Refuse a session whose authentication was not channel-bound.
    Require,
}

/// Which kind of server a session must reach (`target_session_attrs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSessionAttrs {
    /// Any server.
    Any,
    /// A server whose sessions can write (not in recovery, not read-only by default).
    ReadWrite,
    /// A server whose sessions are read-only by default or that is in recovery.
    ReadOnly,
    /// A server that is not in recovery.
    Primary,
    /// A server in recovery (a hot standby).
    Standby,
    /// A standby if any host is one, else any server.
    PreferStandby,
}

/// The order hosts are tried in (`load_balance_hosts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadBalanceHosts {
    /// In the order given.
    Disable,
    /// In a random order, chosen afresh for every connect.
    Random,
}

/// Connection settings.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    pub(crate) hosts: Vec<Host>,
    pub(crate) hostaddrs: Vec<IpAddr>,
    pub(crate) ports: Vec<u16>,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<Vec<u8>>,
    pub(crate) passfile: Option<PathBuf>,
    pub(crate) dbname: Option<String>,
    pub(crate) application_name: Option<String>,
    pub(crate) fallback_application_name: Option<String>,
    pub(crate) options: Option<String>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) cancel_timeout: Duration,
    pub(crate) query_timeout: Option<Duration>,
    pub(crate) lock_timeout: Option<Duration>,
    pub(crate) keepalives: bool,
    pub(crate) keepalives_idle: Duration,
    pub(crate) keepalives_interval: Duration,
    pub(crate) keepalives_count: u32,
    pub(crate) tcp_user_timeout: Option<Duration>,
    pub(crate) statement_cache_capacity: usize,
    pub(crate) pooler_mode: bool,
    pub(crate) max_message_len: usize,
    pub(crate) read_spin: Duration,
    pub(crate) ssl_mode: Option<SslMode>,
    pub(crate) ssl_root_cert: Option<SslRootCert>,
    pub(crate) ssl_cert: Option<PathBuf>,
    pub(crate) ssl_key: Option<PathBuf>,
    pub(crate) ssl_sni: bool,
    pub(crate) ssl_direct: bool,
    pub(crate) ssl_min_protocol_version: TlsVersion,
    pub(crate) ssl_max_protocol_version: Option<TlsVersion>,
    pub(crate) channel_binding: ChannelBindingMode,
    pub(crate) target_session_attrs: TargetSessionAttrs,
    pub(crate) load_balance_hosts: LoadBalanceHosts,
    pub(crate) min_protocol_version: ProtocolVersion,
    pub(crate) max_protocol_version: ProtocolVersion,
    /// The options set explicitly (by name or builder), whatever their value: the `PG*`
    /// environment never overrides them, even when they equal the default.
    pub(crate) explicit: BTreeSet<&'static str>,
}

/// libpq's default `connect_timeout` is none; pgkeel bounds every host to 10 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time before the first keepalive probe.
pub const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(10);
/// Time between keepalive probes.
pub const DEFAULT_KEEPALIVES_INTERVAL: Duration = Duration::from_secs(5);
/// Unanswered probes before the kernel drops the connection.
pub const DEFAULT_KEEPALIVES_COUNT: u32 = 3;
/// How long sent data may stay unacknowledged (`TCP_USER_TIMEOUT`).
pub const DEFAULT_TCP_USER_TIMEOUT: Duration = Duration::from_secs(25);
/// The longest a read spins for more data while the server streams (see
/// [`Config::read_spin`]).
pub const DEFAULT_READ_SPIN: Duration = Duration::from_micros(50);

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("hosts", &self.hosts)
            .field("hostaddrs", &self.hostaddrs)
            .field("ports", &self.ports)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dbname", &self.dbname)
            .field("application_name", &self.application_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("ssl_mode", &self.get_ssl_mode())
            .field("target_session_attrs", &self.target_session_attrs)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// libpq's defaults: nothing read from the environment.
    pub fn new() -> Config {
        Config {
            hosts: Vec::new(),
            hostaddrs: Vec::new(),
            ports: Vec::new(),
            user: None,
            password: None,
            passfile: None,
            dbname: None,
            application_name: None,
            fallback_application_name: None,
            options: None,
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            cancel_timeout: Duration::from_secs(5),
            query_timeout: None,
            lock_timeout: None,
            keepalives: true,
            keepalives_idle: DEFAULT_KEEPALIVES_IDLE,
            keepalives_interval: DEFAULT_KEEPALIVES_INTERVAL,
            keepalives_count: DEFAULT_KEEPALIVES_COUNT,
            tcp_user_timeout: Some(DEFAULT_TCP_USER_TIMEOUT),
            statement_cache_capacity: DEFAULT_STATEMENT_CACHE,
            pooler_mode: false,
            max_message_len: crate::protocol::DEFAULT_MAX_MESSAGE_LEN,
            read_spin: DEFAULT_READ_SPIN,
            ssl_mode: None,
            ssl_root_cert: None,
            ssl_cert: None,
            ssl_key: None,
            ssl_sni: true,
            ssl_direct: false,
            ssl_min_protocol_version: TlsVersion::Tls12,
            ssl_max_protocol_version: None,
            channel_binding: ChannelBindingMode::Prefer,
            target_session_attrs: TargetSessionAttrs::Any,
            load_balance_hosts: LoadBalanceHosts::Disable,
            min_protocol_version: ProtocolVersion::V3_0,
            max_protocol_version: ProtocolVersion::V3_0,
            explicit: BTreeSet::new(),
        }
    }

    /// Records that option `key` was set explicitly (see [`env::TRACKED`]).
    fn mark(&mut self, key: &str) {
        if let Some(k) = env::TRACKED.iter().find(|k| **k == key) {
            self.explicit.insert(k);
        }
    }

    /// Sets one option by its libpq name (`sslmode`, `keepalives_idle`, ...), from its
    /// string value, validated as libpq validates it.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Config`] for an unknown or unsupported option or an invalid
    /// value; the message names the option and never contains a password.
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Config, Error> {
        options::set(self, key, value)?;
        self.mark(key);
        Ok(self)
    }

    /// Adds a TCP host (a name or an IP address), or a Unix socket directory when it
    /// starts with `/`.
    pub fn host(&mut self, host: &str) -> &mut Config {
        self.hosts.push(targets::parse_host(host));
        self
    }

    /// Adds a Unix socket directory.
    pub fn host_path(&mut self, dir: impl Into<PathBuf>) -> &mut Config {
        self.hosts.push(Host::Unix(dir.into()));
        self
    }

    /// Adds a numeric address (`hostaddr`): the n-th one is dialled for the n-th host,
    /// whose name is then used only for TLS checks and the password file.
    pub fn hostaddr(&mut self, addr: IpAddr) -> &mut Config {
        self.hostaddrs.push(addr);
        self
    }

    /// Adds a port (one for all hosts, or one per host).
    pub fn port(&mut self, port: u16) -> &mut Config {
        self.ports.push(port);
        self
    }

    /// Sets the role name (default: the OS user name).
    pub fn user(&mut self, user: &str) -> &mut Config {
        self.user = Some(user.to_owned());
        self
    }

    /// Sets the password.
    pub fn password(&mut self, password: impl AsRef<[u8]>) -> &mut Config {
        self.password = Some(password.as_ref().to_vec());
        self
    }

    /// Sets the password file read when no password is given (default `~/.pgpass`).
    pub fn passfile(&mut self, path: impl Into<PathBuf>) -> &mut Config {
        self.passfile = Some(path.into());
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

    /// Bounds each host's attempt: TCP connect, TLS handshake, authentication and the
    /// `target_session_attrs` check (default 10 s).
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Config {
        self.mark("connect_timeout");
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

    /// Turns TCP keepalive on or off (default on).
    pub fn keepalives(&mut self, on: bool) -> &mut Config {
        self.keepalives = on;
        self
    }

    /// Sets the idle time before the first keepalive probe (default 10 s; zero: the
    /// kernel's setting, as `keepalives_idle=0` in libpq); `None` turns keepalive off.
    pub fn keepalives_idle(&mut self, idle: Option<Duration>) -> &mut Config {
        match idle {
            Some(idle) => self.keepalives_idle = idle,
            None => self.keepalives = false,
        }
        self
    }

    /// Sets the time between keepalive probes (default 5 s; zero: the kernel's setting).
    pub fn keepalives_interval(&mut self, interval: Duration) -> &mut Config {
        self.keepalives_interval = interval;
        self
    }

    /// Sets how many unanswered probes end the connection (default 3; zero: the kernel's
    /// setting).
    pub fn keepalives_count(&mut self, count: u32) -> &mut Config {
        self.keepalives_count = count;
        self
    }

    /// Sets `TCP_USER_TIMEOUT`: how long sent data may go unacknowledged before the
    /// kernel drops the connection (default 25 s; `None`: the kernel's default).
    pub fn tcp_user_timeout(&mut self, timeout: Option<Duration>) -> &mut Config {
        self.tcp_user_timeout = timeout;
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

    /// Sets how long a read may keep its thread busy waiting for more data while the
    /// server streams a large result or a COPY OUT (default 50 µs; zero: never).
    ///
    /// A read spins only after reads that came back large (4 KiB or more), so point
    /// queries never do, and it backs off exponentially while spins find nothing (after
    /// six misses in a row, one bulk wait in 64 spins). A reader that stays on its CPU
    /// spares the server the cost of waking it for each piece it sends, which is most of
    /// what a co-located server spends beyond producing the rows. Set zero where even that
    /// CPU time matters more than streaming speed. Also `read_spin_us` in a URL.
    pub fn read_spin(&mut self, limit: Duration) -> &mut Config {
        self.read_spin = limit;
        self
    }

    /// Sets the largest backend message accepted, in bytes (default just over 1 GiB).
    pub fn max_message_len(&mut self, len: usize) -> &mut Config {
        self.max_message_len = len;
        self
    }

    /// Sets the TLS mode (default `prefer`, or `verify-full` with `sslrootcert=system`).
    pub fn ssl_mode(&mut self, mode: SslMode) -> &mut Config {
        self.mark("sslmode");
        self.ssl_mode = Some(mode);
        self
    }

    /// Sets the CA certificates to trust (default `~/.postgresql/root.crt` if it exists).
    pub fn ssl_root_cert(&mut self, root: SslRootCert) -> &mut Config {
        self.ssl_root_cert = Some(root);
        self
    }

    /// Sets the client certificate and its key (PEM files) to present to the server.
    pub fn ssl_client_cert(
        &mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> &mut Config {
        self.ssl_cert = Some(cert.into());
        self.ssl_key = Some(key.into());
        self
    }

    /// Starts TLS at once, without SSLRequest (`sslnegotiation=direct`, PostgreSQL 17+,
    /// ALPN `postgresql`); needs `sslmode` require, verify-ca or verify-full.
    pub fn ssl_negotiation_direct(&mut self, direct: bool) -> &mut Config {
        self.mark("sslnegotiation");
        self.ssl_direct = direct;
        self
    }

    /// Sets SCRAM channel binding (default `prefer`).
    pub fn channel_binding(&mut self, mode: ChannelBindingMode) -> &mut Config {
        self.mark("channel_binding");
        self.channel_binding = mode;
        self
    }

    /// Sets which kind of server a session must reach (default `any`).
    pub fn target_session_attrs(&mut self, attrs: TargetSessionAttrs) -> &mut Config {
        self.mark("target_session_attrs");
        self.target_session_attrs = attrs;
        self
    }

    /// Sets the order hosts are tried in (default: as given).
    pub fn load_balance_hosts(&mut self, order: LoadBalanceHosts) -> &mut Config {
        self.mark("load_balance_hosts");
        self.load_balance_hosts = order;
        self
    }

    /// Sets the protocol versions to accept (default 3.0 to 3.0, as libpq 18): the
    /// StartupMessage asks for `max`; a server that answers with an older version below
    /// `min` is refused.
    pub fn protocol_versions(&mut self, min: ProtocolVersion, max: ProtocolVersion) -> &mut Config {
        self.mark("min_protocol_version");
        self.mark("max_protocol_version");
        self.min_protocol_version = min;
        self.max_protocol_version = max;
        self
    }

    /// The role name: the one set, else the OS user name.
    pub fn get_user(&self) -> String {
        self.user.clone().unwrap_or_else(env::os_user_name)
    }

    /// The database name: the one set, else the role name.
    pub fn get_dbname(&self) -> String {
        self.dbname.clone().unwrap_or_else(|| self.get_user())
    }

    /// The password given in the configuration, if any (the password file is read only
    /// at connect time).
    pub(crate) fn get_password(&self) -> Option<Vec<u8>> {
        self.password.clone()
    }

    /// The application name, else the fallback application name.
    pub fn get_application_name(&self) -> Option<String> {
        self.application_name
            .clone()
            .or_else(|| self.fallback_application_name.clone())
    }

    /// The per-host connect timeout; `None` means no limit (`connect_timeout=0`).
    pub fn get_connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// The cancel timeout.
    pub fn get_cancel_timeout(&self) -> Duration {
        self.cancel_timeout
    }

    /// The statement cache capacity.
    pub fn get_statement_cache_capacity(&self) -> usize {
        self.statement_cache_capacity
    }

    /// The longest read spin (zero: never spin).
    pub fn get_read_spin(&self) -> Duration {
        self.read_spin
    }

    /// The TLS mode in force: the one set, else `verify-full` with `sslrootcert=system`,
    /// else `prefer`.
    pub fn get_ssl_mode(&self) -> SslMode {
        match (self.ssl_mode, &self.ssl_root_cert) {
            (Some(mode), _) => mode,
            (None, Some(SslRootCert::System)) => SslMode::VerifyFull,
            (None, _) => SslMode::Prefer,
        }
    }

    /// The `target_session_attrs` in force.
    pub fn get_target_session_attrs(&self) -> TargetSessionAttrs {
        self.target_session_attrs
    }

    /// The hosts to try, in the configured order, each with its port and `hostaddr`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Config`] when the number of ports is neither 1 nor the number
    /// of hosts, or `hostaddr` and `host` lists differ in length.
    pub fn targets(&self) -> Result<Vec<Target>, Error> {
        targets::targets(self)
    }

    /// A configuration from the `PG*` environment variables alone, as libpq reads them.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Config`] when a variable holds an invalid value or names a
    /// feature pgkeel does not implement (`PGSERVICE`, `PGREQUIREPEER`, ...).
    pub fn from_env() -> Result<Config, Error> {
        env::from_env()
    }

    /// Fills every option not set here from the `PG*` environment variables, as libpq
    /// does for a connection string.
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn with_env_defaults(mut self) -> Result<Config, Error> {
        env::fill_from(&mut self, env::from_env()?);
        Ok(self)
    }

    /// Checks combinations that no single option can: `sslrootcert=system` with a
    /// weaker `sslmode`, a client key without a certificate.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        options::validate(self)
    }
}

impl FromStr for Config {
    type Err = Error;

    /// Parses a `postgres://` URL or a `key=value` connection string.
    fn from_str(s: &str) -> Result<Config, Error> {
        let s = s.trim();
        let config = match s
            .strip_prefix("postgresql://")
            .or_else(|| s.strip_prefix("postgres://"))
        {
            Some(rest) => url::parse_url(rest)?,
            None => conninfo::parse_key_values(s)?,
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests;
