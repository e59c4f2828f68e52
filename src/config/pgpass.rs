//! The password file (`~/.pgpass`, `PGPASSFILE`, `passfile`), read as libpq reads it.
//!
//! Lines are `hostname:port:database:username:password`; `*` matches anything, `\`
//! escapes `:` and `\`, and `#` starts a comment. A file that the group or others can
//! read or write is ignored with a warning, as libpq ignores it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::env::home_dir;
use super::{Config, Host, Target};

/// The password for `target` from the configured password file, if any line matches.
pub(crate) fn lookup(config: &Config, target: &Target) -> Option<Vec<u8>> {
    let path = config
        .passfile
        .clone()
        .or_else(|| home_dir().map(|h| h.join(".pgpass")))?;
    let text = read_private(&path)?;
    let host = host_name(target);
    let port = target.port.to_string();
    let (db, user) = (config.get_dbname(), config.get_user());
    let wanted = [host.as_str(), port.as_str(), db.as_str(), user.as_str()];
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| match_line(line, &wanted))
}

/// The file's text, unless it is missing, not a regular file or too open.
fn read_private(path: &PathBuf) -> Option<String> {
    let meta = fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "password file has group or world access; permissions should be u=rw (0600) or less; ignored"
        );
        return None;
    }
    fs::read_to_string(path).ok()
}

/// The name a line's first field is matched against: the host as configured; a Unix
/// socket in a default directory is `localhost`.
fn host_name(target: &Target) -> String {
    match &target.host {
        Host::Tcp(name) => name.clone(),
        Host::Unix(dir)
            if super::targets::SOCKET_DIRS
                .iter()
                .any(|d| Path::new(d) == dir) =>
        {
            "localhost".to_owned()
        }
        Host::Unix(dir) => dir.to_string_lossy().into_owned(),
    }
}

/// The password of `line` if its four fields match `wanted`.
fn match_line(line: &str, wanted: &[&str; 4]) -> Option<Vec<u8>> {
    let mut fields = split_fields(line);
    if fields.len() < 5 {
        return None;
    }
    let password = fields.split_off(4).join(":");
    let matches = fields
        .iter()
        .zip(wanted)
        .all(|(field, want)| field == "*" || field == want);
    matches.then(|| password.into_bytes())
}

/// Splits on unescaped `:`, removing the escapes.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().unwrap().extend(chars.next()),
            ':' => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_match_exactly_or_by_star_and_escapes_are_removed() {
        let want = ["db.example", "5432", "app", "alice"];
        assert_eq!(
            match_line("db.example:5432:app:alice:s3cret", &want),
            Some(b"s3cret".to_vec())
        );
        assert_eq!(
            match_line("*:*:*:alice:a\\:b\\\\c", &want),
            Some(b"a:b\\c".to_vec())
        );
        assert_eq!(match_line("other:5432:app:alice:x", &want), None);
        assert_eq!(match_line("db.example:5433:*:*:x", &want), None);
        assert_eq!(match_line("too:few:fields", &want), None);
    }

    #[test]
    fn a_unix_socket_in_a_default_directory_is_localhost() {
        let t = |host| Target {
            host,
            addr: None,
            port: 5432,
        };
        assert_eq!(
            host_name(&t(Host::Unix("/var/run/postgresql".into()))),
            "localhost"
        );
        assert_eq!(host_name(&t(Host::Unix("/srv/pg".into()))), "/srv/pg");
        assert_eq!(host_name(&t(Host::Tcp("h".into()))), "h");
    }
}
