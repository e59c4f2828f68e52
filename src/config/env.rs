//! The `PG*` environment variables, and the OS user that libpq defaults to.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::{Config, SslRootCert};
use crate::error::Error;

/// Each variable libpq reads, and the option it sets.
const VARS: &[(&str, &str)] = &[
    ("PGHOST", "host"),
    ("PGHOSTADDR", "hostaddr"),
    ("PGPORT", "port"),
    ("PGDATABASE", "dbname"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGPASSFILE", "passfile"),
    ("PGCHANNELBINDING", "channel_binding"),
    ("PGOPTIONS", "options"),
    ("PGAPPNAME", "application_name"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLNEGOTIATION", "sslnegotiation"),
    ("PGSSLCOMPRESSION", "sslcompression"),
    ("PGSSLCERT", "sslcert"),
    ("PGSSLKEY", "sslkey"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGSSLSNI", "sslsni"),
    ("PGSSLMINPROTOCOLVERSION", "ssl_min_protocol_version"),
    ("PGSSLMAXPROTOCOLVERSION", "ssl_max_protocol_version"),
    ("PGGSSENCMODE", "gssencmode"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGCLIENTENCODING", "client_encoding"),
    ("PGTARGETSESSIONATTRS", "target_session_attrs"),
    ("PGLOADBALANCEHOSTS", "load_balance_hosts"),
    ("PGMINPROTOCOLVERSION", "min_protocol_version"),
    ("PGMAXPROTOCOLVERSION", "max_protocol_version"),
    // Refused by name, as the options are:
    ("PGSERVICE", "service"),
    ("PGSERVICEFILE", "servicefile"),
    ("PGREQUIREPEER", "requirepeer"),
    ("PGREQUIREAUTH", "require_auth"),
    ("PGKRBSRVNAME", "krbsrvname"),
    ("PGGSSLIB", "gsslib"),
    ("PGGSSDELEGATION", "gssdelegation"),
    ("PGSSLCRL", "sslcrl"),
    ("PGSSLCRLDIR", "sslcrldir"),
    ("PGSSLCERTMODE", "sslcertmode"),
];

/// A configuration holding exactly what the environment sets.
pub(super) fn from_env() -> Result<Config, Error> {
    from_vars(|name| std::env::var(name).ok())
}

/// As [`from_env`], from any lookup (tests pass a map).
pub(super) fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
    let mut config = Config::new();
    for (var, key) in VARS {
        if let Some(value) = lookup(var).filter(|v| !v.is_empty()) {
            config.set(key, &value).map_err(|e| {
                Error::config(format!(
                    "environment variable {var}: {}",
                    config_message(&e)
                ))
            })?;
        }
    }
    config.validate()?;
    Ok(config)
}

/// The message of a config error without its "invalid configuration: " prefix.
fn config_message(e: &Error) -> String {
    let text = e.to_string();
    let prefix = format!("{}: ", crate::ErrorKind::Config);
    text.strip_prefix(&prefix).unwrap_or(&text).to_owned()
}

/// The options the environment can fill, by their libpq names.
pub(super) const TRACKED: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "passfile",
    "dbname",
    "application_name",
    "options",
    "connect_timeout",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslsni",
    "sslnegotiation",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "channel_binding",
    "target_session_attrs",
    "load_balance_hosts",
    "min_protocol_version",
    "max_protocol_version",
];

/// Copies into `c` every option that `c` leaves unset and `env` sets. An option set
/// explicitly stays, even when its value is the default (`sslmode=prefer` with
/// `PGSSLMODE=require` set stays `prefer`, as in libpq).
pub(super) fn fill_from(c: &mut Config, env: Config) {
    let new = Config::new();
    macro_rules! fill {
        ($($field:ident $(| $also:ident)? => $key:literal),*) => {$(
            if !c.explicit.contains($key) && c.$field == new.$field && env.$field != new.$field {
                c.$field = env.$field;
                $(c.$also = env.$also;)?
            }
        )*};
    }
    fill!(
        hosts => "host",
        hostaddrs => "hostaddr",
        ports => "port",
        user => "user",
        password => "password",
        passfile => "passfile",
        dbname => "dbname",
        application_name => "application_name",
        options => "options",
        connect_timeout => "connect_timeout",
        ssl_mode => "sslmode",
        ssl_root_cert => "sslrootcert",
        ssl_cert => "sslcert",
        ssl_key => "sslkey",
        ssl_sni => "sslsni",
        ssl_direct => "sslnegotiation",
        ssl_min_protocol_version => "ssl_min_protocol_version",
        ssl_max_protocol_version => "ssl_max_protocol_version",
        channel_binding => "channel_binding",
        target_session_attrs => "target_session_attrs",
        load_balance_hosts => "load_balance_hosts",
        min_protocol_version => "min_protocol_version",
        max_protocol_version => "max_protocol_version"
    );
}

/// The name of the OS user this process runs as (libpq's default role name).
pub(crate) fn os_user_name() -> String {
    passwd_entry()
        .map(|(name, _)| name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "postgres".to_owned())
}

/// The OS user's home directory, where `.pgpass` and `.postgresql/` live.
pub(crate) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| passwd_entry().map(|(_, home)| PathBuf::from(home)))
}

/// `(name, home)` of this process's effective user, from `/etc/passwd`.
fn passwd_entry() -> Option<(String, String)> {
    // The owner of /proc/self is the effective uid: no libc call needed.
    let uid = fs::metadata("/proc/self").ok()?.uid().to_string();
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 6 && f[2] == uid).then(|| (f[0].to_owned(), f[5].to_owned()))
    })
}

/// `~/.postgresql/<name>` if it exists (libpq's default certificate files).
pub(crate) fn default_ssl_file(name: &str) -> Option<PathBuf> {
    let path = home_dir()?.join(".postgresql").join(name);
    path.is_file().then_some(path)
}

/// The root certificate in force: the one set, else `~/.postgresql/root.crt`.
pub(crate) fn root_cert(c: &Config) -> Option<SslRootCert> {
    c.ssl_root_cert
        .clone()
        .or_else(|| default_ssl_file("root.crt").map(SslRootCert::File))
}
