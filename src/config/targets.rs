//! The hosts to try: `host`, `hostaddr` and `port` lists paired as libpq pairs them.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::Config;
use crate::error::Error;

/// One server to try: a host, the address to dial in its place (`hostaddr`), a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host as configured: its name is what TLS checks and the password file use.
    pub host: Host,
    /// The numeric address dialled instead of resolving `host`, if given.
    pub addr: Option<IpAddr>,
    /// The TCP port, or the number in the Unix socket's file name.
    pub port: u16,
}

use super::Host;

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host, self.addr) {
            (Host::Unix(dir), _) => write!(f, "{}/.s.PGSQL.{}", dir.display(), self.port),
            (Host::Tcp(name), Some(addr)) if name != &addr.to_string() => {
                write!(f, "{name} ({addr}):{}", self.port)
            }
            (Host::Tcp(name), _) if name.contains(':') => write!(f, "[{name}]:{}", self.port),
            (Host::Tcp(name), _) => write!(f, "{name}:{}", self.port),
        }
    }
}

/// The targets of `config`, in the configured order.
pub(super) fn targets(config: &Config) -> Result<Vec<Target>, Error> {
    let pairs = hosts_with_addrs(config)?;
    let ports = match config.ports.as_slice() {
        [] => vec![5432],
        p => p.to_vec(),
    };
    let count = pairs.len();
    let port_for = |i: usize| match ports.len() {
        1 => Ok(ports[0]),
        n if n == count => Ok(ports[i]),
        n => Err(Error::config(format!(
            "{n} ports were given for {} hosts; give one port, or one per host",
            count
        ))),
    };
    pairs
        .into_iter()
        .enumerate()
        .map(|(i, (host, addr))| {
            Ok(Target {
                host,
                addr,
                port: port_for(i)?,
            })
        })
        .collect()
}

/// libpq's pairing: `hostaddr` alone names the hosts; with `host` too, both lists must
/// be as long; with neither, the default socket directory, then localhost.
fn hosts_with_addrs(config: &Config) -> Result<Vec<(Host, Option<IpAddr>)>, Error> {
    let (hosts, addrs) = (&config.hosts, &config.hostaddrs);
    match (hosts.is_empty(), addrs.is_empty()) {
        (true, true) => Ok(default_hosts().into_iter().map(|h| (h, None)).collect()),
        (false, true) => Ok(hosts.iter().map(|h| (h.clone(), None)).collect()),
        (true, false) => Ok(addrs
            .iter()
            .map(|a| (Host::Tcp(a.to_string()), Some(*a)))
            .collect()),
        (false, false) if hosts.len() == addrs.len() => Ok(hosts
            .iter()
            .zip(addrs)
            .map(|(h, a)| (h.clone(), Some(*a)))
            .collect()),
        (false, false) => Err(Error::config(format!(
            "{} hostaddr values were given for {} hosts; give one per host",
            addrs.len(),
            hosts.len()
        ))),
    }
}

/// The directories libpq builds use for the server socket, in order of preference.
pub(super) const SOCKET_DIRS: [&str; 3] = ["/run/postgresql", "/var/run/postgresql", "/tmp"];

/// The first socket directory that exists, then `localhost` over TCP.
fn default_hosts() -> Vec<Host> {
    let dir = SOCKET_DIRS.iter().map(Path::new).find(|d| d.is_dir());
    dir.map(|d| Host::Unix(d.to_path_buf()))
        .into_iter()
        .chain([Host::Tcp("localhost".to_owned())])
        .collect()
}

/// The items of a comma-separated list, trimmed.
pub(super) fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// A host name, an IP address (brackets allowed), or a socket directory (`/…`).
pub(super) fn parse_host(host: &str) -> Host {
    match host.starts_with('/') {
        true => Host::Unix(PathBuf::from(host)),
        false => Host::Tcp(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        ),
    }
}
