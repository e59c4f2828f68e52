//! `key=value` connection strings, quoted and escaped as libpq's conninfo.

use std::iter::Peekable;
use std::str::Chars;

use super::Config;
use crate::error::Error;

/// Parses `host=/tmp port=5432 password='it\'s'`. Errors name the position, never the
/// text: a malformed string may have a password in it. After an unquoted password,
/// not even an option's name or value is shown: `password=my secret=x` is a password
/// with a space that was not quoted, and `secret` would be part of it.
pub(super) fn parse_key_values(s: &str) -> Result<Config, Error> {
    let mut config = Config::new();
    let mut chars = s.chars().peekable();
    let mut n = 0;
    let mut after_bare_password = false;
    loop {
        skip_space(&mut chars);
        if chars.peek().is_none() {
            return Ok(config);
        }
        n += 1;
        let key: String =
            std::iter::from_fn(|| chars.next_if(|&c| c != '=' && !c.is_whitespace())).collect();
        skip_space(&mut chars);
        if chars.next() != Some('=') {
            return Err(Error::config(format!(
                "missing '=' after the key of item {n} of the connection string"
            )));
        }
        skip_space(&mut chars);
        let quoted = chars.peek() == Some(&'\'');
        let value = parse_value(&mut chars, n)?;
        if let Err(e) = config.set(&key, &value) {
            return Err(match after_bare_password {
                true => hidden(n),
                false => e,
            });
        }
        after_bare_password |= key == "password" && !quoted;
    }
}

/// The error for item `n` when it may hold part of an unquoted password.
fn hidden(n: usize) -> Error {
    Error::config(format!(
        "item {n} of the connection string is invalid; it is not shown because it follows \
         an unquoted password and may be part of it (a password with spaces must be \
         quoted: password='...')"
    ))
}

fn skip_space(chars: &mut Peekable<Chars<'_>>) {
    while chars.next_if(|c| c.is_whitespace()).is_some() {}
}

fn parse_value(chars: &mut Peekable<Chars<'_>>, n: usize) -> Result<String, Error> {
    let quoted = chars.next_if_eq(&'\'').is_some();
    let mut value = String::new();
    loop {
        match chars.next() {
            None if quoted => {
                return Err(Error::config(format!(
                    "unterminated quoted value in item {n} of the connection string"
                )));
            }
            None => return Ok(value),
            Some('\'') if quoted => return Ok(value),
            Some(c) if c.is_whitespace() && !quoted => return Ok(value),
            Some('\\') => value.extend(chars.next()),
            Some(c) => value.push(c),
        }
    }
}
