//! One libpq option by name: `set` parses and validates its value; options pgkeel does
//! not implement are refused by name instead of being accepted and ignored.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::targets::{parse_host, split_list};
use super::{
    ChannelBindingMode, Config, LoadBalanceHosts, ProtocolVersion, SslMode, SslRootCert,
    TargetSessionAttrs, TlsVersion,
};
use crate::error::Error;

/// libpq options that pgkeel refuses, each with the reason given to the user.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("service", "connection service files are not read"),
    ("servicefile", "connection service files are not read"),
    (
        "require_auth",
        "authentication methods cannot be restricted yet",
    ),
    ("requirepeer", "peer credential checks are not implemented"),
    ("replication", "replication connections are not supported"),
    ("krbsrvname", "GSSAPI/Kerberos is not supported"),
    ("gsslib", "GSSAPI/Kerberos is not supported"),
    ("gssdelegation", "GSSAPI/Kerberos is not supported"),
    (
        "sslpassword",
        "encrypted client keys are not supported; decrypt the key file",
    ),
    ("sslcrl", "certificate revocation lists are not checked"),
    ("sslcrldir", "certificate revocation lists are not checked"),
    (
        "sslcertmode",
        "the client certificate is sent whenever sslcert is set",
    ),
    (
        "scram_client_key",
        "SCRAM keys cannot be given in place of a password",
    ),
    (
        "scram_server_key",
        "SCRAM keys cannot be given in place of a password",
    ),
];

/// Sets option `key` from its string `value`.
pub(super) fn set(c: &mut Config, key: &str, value: &str) -> Result<(), Error> {
    if set_address(c, key, value)? || set_session(c, key, value)? || set_tls(c, key, value)? {
        return Ok(());
    }
    if let Some((_, why)) = UNSUPPORTED.iter().find(|(k, _)| *k == key) {
        return Err(Error::config(format!(
            "connection option {key:?} is not supported by pgkeel: {why}"
        )));
    }
    Err(Error::config(format!("unknown connection option {key:?}")))
}

/// Where to connect and how to keep the socket alive.
fn set_address(c: &mut Config, key: &str, value: &str) -> Result<bool, Error> {
    match key {
        "host" => c.hosts = split_list(value).map(parse_host).collect(),
        "hostaddr" => {
            c.hostaddrs = split_list(value)
                .map(parse_addr)
                .collect::<Result<_, _>>()?
        }
        "port" => {
            c.ports = split_list(value)
                .map(parse_port)
                .collect::<Result<_, _>>()?
        }
        "connect_timeout" => c.connect_timeout = parse_connect_timeout(value)?,
        "keepalives" => c.keepalives = parse_int::<i64>(key, value)? != 0,
        // As libpq: 0 leaves the kernel's setting (net.ipv4.tcp_keepalive_*) in force.
        "keepalives_idle" => c.keepalives_idle = secs(key, value, 0)?,
        "keepalives_interval" => c.keepalives_interval = secs(key, value, 0)?,
        "keepalives_count" => c.keepalives_count = parse_int::<u32>(key, value)?,
        "tcp_user_timeout" => c.tcp_user_timeout = optional(millis(key, value)?),
        "load_balance_hosts" => c.load_balance_hosts = parse_load_balance(value)?,
        "target_session_attrs" => c.target_session_attrs = parse_session_attrs(value)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Who we are and what the session looks like.
fn set_session(c: &mut Config, key: &str, value: &str) -> Result<bool, Error> {
    match key {
        "user" => c.user = Some(value.to_owned()),
        "password" => c.password = Some(value.as_bytes().to_vec()),
        "passfile" => c.passfile = Some(PathBuf::from(value)),
        "dbname" => c.dbname = Some(value.to_owned()),
        "application_name" => c.application_name = Some(value.to_owned()),
        "fallback_application_name" => c.fallback_application_name = Some(value.to_owned()),
        "options" => c.options = Some(value.to_owned()),
        "client_encoding" => check_encoding(value)?,
        "channel_binding" => c.channel_binding = parse_channel_binding(value)?,
        "cancel_timeout" => c.cancel_timeout = secs(key, value, 1)?,
        "query_timeout_ms" => c.query_timeout = optional(millis(key, value)?),
        "lock_timeout_ms" => c.lock_timeout = optional(millis(key, value)?),
        "statement_cache_capacity" => c.statement_cache_capacity = parse_int(key, value)?,
        "read_spin_us" => c.read_spin = Duration::from_micros(parse_int(key, value)?),
        "pgbouncer" => match value {
            "true" | "1" | "on" | "yes" => drop(c.pooler_mode(true)),
            "false" | "0" | "off" | "no" => drop(c.pooler_mode(false)),
            _ => {
                let msg = format!("invalid value for pgbouncer: {value:?} (true or false)");
                return Err(Error::config(msg));
            }
        },
        // pgjdbc's name: 0 never names a statement on the server (pooler mode); 1 is what
        // pgkeel does anyway (named and cached from the first use).
        "prepare_threshold" => match parse_int::<usize>(key, value)? {
            0 => drop(c.pooler_mode(true)),
            1 => drop(c.pooler_mode(false)),
            n => {
                let msg = format!(
                    "prepare_threshold={n} is not supported: use 0 (pooler mode, unnamed \
                     statements only) or 1 (prepare and cache at first use)"
                );
                return Err(Error::config(msg));
            }
        },
        "min_protocol_version" => c.min_protocol_version = parse_protocol(key, value)?,
        "max_protocol_version" => c.max_protocol_version = parse_protocol(key, value)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// TLS and the mechanisms libpq has in place of it.
fn set_tls(c: &mut Config, key: &str, value: &str) -> Result<bool, Error> {
    match key {
        "sslmode" => c.ssl_mode = Some(parse_ssl_mode(value)?),
        "sslrootcert" => c.ssl_root_cert = Some(parse_root_cert(value)),
        "sslcert" => c.ssl_cert = Some(PathBuf::from(value)),
        "sslkey" => c.ssl_key = Some(PathBuf::from(value)),
        "sslsni" => c.ssl_sni = parse_int::<i64>(key, value)? != 0,
        "ssl_min_protocol_version" => c.ssl_min_protocol_version = parse_tls_version(key, value)?,
        "ssl_max_protocol_version" => {
            c.ssl_max_protocol_version = match value {
                "" => None,
                v => Some(parse_tls_version(key, v)?),
            }
        }
        "sslnegotiation" => match value {
            "postgres" => c.ssl_direct = false,
            "direct" => c.ssl_direct = true,
            other => return Err(invalid(key, other, "postgres, direct")),
        },
        "sslcompression" => match value {
            "0" => {}
            "1" => {
                return Err(Error::config(
                    "sslcompression=1 is not supported: TLS compression is insecure and rustls does not offer it",
                ));
            }
            other => return Err(invalid(key, other, "0, 1")),
        },
        "gssencmode" => match value {
            // libpq built without GSSAPI treats prefer as disable, and so does pgkeel.
            "disable" | "prefer" => {}
            "require" => {
                return Err(Error::config(
                    "gssencmode=require is not supported: pgkeel has no GSSAPI encryption",
                ));
            }
            other => return Err(invalid(key, other, "disable, prefer, require")),
        },
        _ => return Ok(false),
    }
    Ok(true)
}

/// Checks what no single option can.
pub(super) fn validate(c: &Config) -> Result<(), Error> {
    if c.pooler_mode && c.statement_cache_capacity > 0 {
        return Err(Error::config(
            "pooler mode (pgbouncer=true, prepare_threshold=0) names no statement on the server, \
             so it cannot have a statement cache: leave statement_cache_capacity out",
        ));
    }
    if c.ssl_root_cert == Some(SslRootCert::System) && c.get_ssl_mode() != SslMode::VerifyFull {
        return Err(Error::config(
            "sslrootcert=system requires sslmode=verify-full (a weaker mode would trust any \
             certificate the public CAs signed for any name)",
        ));
    }
    if c.ssl_direct
        && !matches!(
            c.ssl_mode,
            Some(SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull)
        )
    {
        return Err(Error::config(
            "sslnegotiation=direct needs sslmode=require, verify-ca or verify-full (a weaker \
             mode could not fall back to plain text)",
        ));
    }
    if c.ssl_key.is_some() && c.ssl_cert.is_none() {
        return Err(Error::config("sslkey is set but sslcert is not"));
    }
    if c.max_protocol_version < c.min_protocol_version {
        return Err(Error::config(
            "max_protocol_version is below min_protocol_version",
        ));
    }
    if let Some(max) = c.ssl_max_protocol_version
        && max < c.ssl_min_protocol_version
    {
        return Err(Error::config(
            "ssl_max_protocol_version is below ssl_min_protocol_version",
        ));
    }
    Ok(())
}

fn invalid(key: &str, value: &str, allowed: &str) -> Error {
    Error::config(format!(
        "invalid {key} value {value:?}; expected one of: {allowed}"
    ))
}

fn parse_addr(value: &str) -> Result<IpAddr, Error> {
    value.parse().map_err(|_| {
        Error::config(format!(
            "invalid hostaddr {value:?}: not a numeric IP address"
        ))
    })
}

pub(super) fn parse_port(p: &str) -> Result<u16, Error> {
    p.parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| Error::config(format!("invalid port {p:?}")))
}

fn parse_int<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, Error> {
    value
        .trim()
        .parse()
        .map_err(|_| Error::config(format!("{key} must be a whole number, not {value:?}")))
}

/// Whole seconds, at least `min`.
fn secs(key: &str, value: &str, min: u64) -> Result<Duration, Error> {
    let n: u64 = parse_int(key, value)?;
    if n < min {
        return Err(Error::config(format!(
            "{key} must be at least {min}, not {n}"
        )));
    }
    Ok(Duration::from_secs(n))
}

fn millis(key: &str, value: &str) -> Result<Duration, Error> {
    Ok(Duration::from_millis(parse_int(key, value)?))
}

/// Zero means "no limit".
fn optional(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// As libpq, 0 (or negative) is no limit. Unlike libpq, 1 stays 1 second: libpq raises
/// it to 2 only because its timer counts whole seconds.
fn parse_connect_timeout(value: &str) -> Result<Option<Duration>, Error> {
    let n: i64 = parse_int("connect_timeout", value)?;
    Ok((n > 0).then(|| Duration::from_secs(n as u64)))
}

fn check_encoding(value: &str) -> Result<(), Error> {
    match value.to_ascii_uppercase().replace(['-', '_'], "").as_str() {
        "UTF8" | "UNICODE" => Ok(()),
        _ => Err(Error::config(format!(
            "client_encoding {value:?} is not supported: pgkeel always speaks UTF8"
        ))),
    }
}

fn parse_ssl_mode(value: &str) -> Result<SslMode, Error> {
    Ok(match value {
        "disable" => SslMode::Disable,
        "allow" => SslMode::Allow,
        "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        other => {
            return Err(invalid(
                "sslmode",
                other,
                "disable, allow, prefer, require, verify-ca, verify-full",
            ));
        }
    })
}

fn parse_root_cert(value: &str) -> SslRootCert {
    match value {
        "system" => SslRootCert::System,
        path => SslRootCert::File(PathBuf::from(path)),
    }
}

fn parse_tls_version(key: &str, value: &str) -> Result<TlsVersion, Error> {
    match value {
        "TLSv1.2" => Ok(TlsVersion::Tls12),
        "TLSv1.3" => Ok(TlsVersion::Tls13),
        "TLSv1" | "TLSv1.1" => Err(Error::config(format!(
            "{key}={value} is not supported: rustls speaks TLSv1.2 and TLSv1.3 only"
        ))),
        other => Err(invalid(key, other, "TLSv1.2, TLSv1.3")),
    }
}

fn parse_protocol(key: &str, value: &str) -> Result<ProtocolVersion, Error> {
    match value {
        "3.0" => Ok(ProtocolVersion::V3_0),
        "3.2" | "latest" => Ok(ProtocolVersion::V3_2),
        other => Err(invalid(key, other, "3.0, 3.2, latest")),
    }
}

fn parse_channel_binding(value: &str) -> Result<ChannelBindingMode, Error> {
    match value {
        "disable" => Ok(ChannelBindingMode::Disable),
        "prefer" => Ok(ChannelBindingMode::Prefer),
        "require" => Ok(ChannelBindingMode::Require),
        other => Err(invalid(
            "channel_binding",
            other,
            "disable, prefer, require",
        )),
    }
}

fn parse_session_attrs(value: &str) -> Result<TargetSessionAttrs, Error> {
    Ok(match value {
        "any" => TargetSessionAttrs::Any,
        "read-write" => TargetSessionAttrs::ReadWrite,
        "read-only" => TargetSessionAttrs::ReadOnly,
        "primary" => TargetSessionAttrs::Primary,
        "standby" => TargetSessionAttrs::Standby,
        "prefer-standby" => TargetSessionAttrs::PreferStandby,
        other => {
            return Err(invalid(
                "target_session_attrs",
                other,
                "any, read-write, read-only, primary, standby, prefer-standby",
            ));
        }
    })
}

fn parse_load_balance(value: &str) -> Result<LoadBalanceHosts, Error> {
    match value {
        "disable" => Ok(LoadBalanceHosts::Disable),
        "random" => Ok(LoadBalanceHosts::Random),
        other => Err(invalid("load_balance_hosts", other, "disable, random")),
    }
}
