//! Running commands (initdb, pg_ctl, psql, ...) and quoting what goes into them.

use std::io::{self, Write};
use std::process::{Command, Output, Stdio};

use crate::error::TestkitError;

/// Runs `cmd` with no stdin and returns its stdout, or its status and output on failure.
pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<String, TestkitError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|err| spawn_error(cmd, what, err))?;
    check(what, out)
}

/// Runs a psql command with `sql` on its stdin; returns stdout without its final newline.
pub(crate) fn run_psql(mut cmd: Command, sql: &str) -> Result<String, TestkitError> {
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("psql `{}`", summary(sql));
    let mut child = cmd.spawn().map_err(|err| spawn_error(&cmd, &what, err))?;
    let stdin = child.stdin.take();
    let out = std::thread::scope(|scope| {
        scope.spawn(move || {
            // A write error means psql exited early; its exit status says why.
            stdin.map(|mut stdin| stdin.write_all(sql.as_bytes()))
        });
        child.wait_with_output()
    })?;
    let stdout = check(&what, out)?;
    Ok(stdout.strip_suffix('\n').unwrap_or(&stdout).to_string())
}

/// The first line of `sql`, shortened, for error messages.
fn summary(sql: &str) -> String {
    let line = sql.trim().lines().next().unwrap_or_default();
    let mut short: String = line.chars().take(120).collect();
    if short.len() < sql.trim().len() {
        short.push_str(" ...");
    }
    short
}

/// `out`'s stdout if it succeeded, else a Command error with its status and output.
fn check(what: &str, out: Output) -> Result<String, TestkitError> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(TestkitError::Command {
        what: what.to_string(),
        output: format!("{}\n{stdout}{stderr}", out.status)
            .trim_end()
            .to_string(),
    })
}

/// The error for a command that could not be started at all.
pub(crate) fn spawn_error(cmd: &Command, what: &str, err: io::Error) -> TestkitError {
    TestkitError::Command {
        what: what.to_string(),
        output: format!(
            "could not run {}: {err}",
            cmd.get_program().to_string_lossy()
        ),
    }
}

/// `user[:password]`, percent-encoded.
pub(crate) fn userinfo(user: &str, password: Option<&str>) -> String {
    match password {
        Some(password) => format!("{}:{}", percent_encode(user), percent_encode(password)),
        None => percent_encode(user),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(crate) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An SQL identifier in double quotes.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An SQL string literal in single quotes.
pub(crate) fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A word for sh in single quotes.
pub(crate) fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_quotes() {
        assert_eq!(percent_encode("a b@c:d/é"), "a%20b%40c%3Ad%2F%C3%A9");
        assert_eq!(userinfo("u@x", Some("p:w")), "u%40x:p%3Aw");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
