//! `postgres://` and `postgresql://` URLs, as libpq parses them.
//!
//! Errors say which part of the URL is wrong and never repeat its text: the password may
//! be in it.

use super::Config;
use super::options::parse_port;
use crate::error::Error;

/// Parses what follows the scheme.
pub(super) fn parse_url(rest: &str) -> Result<Config, Error> {
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
    parse_hosts(&mut config, hostlist)?;
    if !path.is_empty() {
        config.dbname = Some(decode(path, "database name")?);
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| Error::config("a URL query parameter has no '=value'"))?;
        let key = decode(k, "a query parameter name")?;
        let value = decode(v, &format!("the value of {key:?}"))?;
        config.set(&key, &value)?;
    }
    Ok(config)
}

fn parse_userinfo(config: &mut Config, userinfo: &str) -> Result<(), Error> {
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (userinfo, None),
    };
    if !user.is_empty() {
        config.user = Some(decode(user, "user name")?);
    }
    if let Some(p) = password {
        config.password = Some(decode_bytes(p, "password")?);
    }
    Ok(())
}

fn parse_hosts(config: &mut Config, hostlist: &str) -> Result<(), Error> {
    for spec in hostlist.split(',').filter(|h| !h.is_empty()) {
        let (host, port) = split_host_port(spec);
        if !host.is_empty() {
            config.host(&decode(host, "host")?);
        }
        if let Some(p) = port {
            // Not the value: a password holding '/' or '?' unencoded ends up here.
            let port = parse_port(p).map_err(|_| {
                Error::config("invalid port in the URL's host list (percent-encode '/', '?' and '@' in a password)")
            })?;
            config.ports.push(port);
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

/// Percent-decodes `s`, which must be UTF-8; `what` names the part in errors.
fn decode(s: &str, what: &str) -> Result<String, Error> {
    String::from_utf8(decode_bytes(s, what)?)
        .map_err(|_| Error::config(format!("the {what} in the URL decodes to invalid UTF-8")))
}

fn decode_bytes(s: &str, what: &str) -> Result<Vec<u8>, Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        let hex = hex.and_then(|h| std::str::from_utf8(h).ok());
        let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(|| {
            Error::config(format!(
                "invalid percent-encoding in the {what} of the URL (a '%' must be followed by two hex digits)"
            ))
        })?;
        out.push(byte);
        i += 3;
    }
    Ok(out)
}
