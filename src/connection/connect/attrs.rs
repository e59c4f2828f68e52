//! `target_session_attrs`: is the server we reached the kind asked for?
//!
//! As libpq: PostgreSQL 14 and later report `in_hot_standby` and
//! `default_transaction_read_only` at startup, so no query is needed; an older server
//! is asked with `SHOW transaction_read_only` or `SELECT pg_is_in_recovery()`.

use crate::Connection;
use crate::config::TargetSessionAttrs;
use crate::error::{Error, ErrorKind};
use crate::row::SimpleQueryMessage;

/// What one pass over the hosts requires of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    Any,
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
}

impl Want {
    /// The passes over the host list: `prefer-standby` first wants a standby, then any.
    pub(super) fn passes(attrs: TargetSessionAttrs) -> Vec<Want> {
        match attrs {
            TargetSessionAttrs::Any => vec![Want::Any],
            TargetSessionAttrs::ReadWrite => vec![Want::ReadWrite],
            TargetSessionAttrs::ReadOnly => vec![Want::ReadOnly],
            TargetSessionAttrs::Primary => vec![Want::Primary],
            TargetSessionAttrs::Standby => vec![Want::Standby],
            TargetSessionAttrs::PreferStandby => vec![Want::Standby, Want::Any],
        }
    }
}

/// Checks `conn` against `want`; a mismatch is a [`ErrorKind::WrongSessionAttrs`] error.
pub(super) async fn check(conn: &Connection, want: Want) -> Result<(), Error> {
    let (ok, why) = match want {
        Want::Any => return Ok(()),
        Want::ReadWrite => (!read_only(conn).await?, "the session is read-only"),
        Want::ReadOnly => (read_only(conn).await?, "the session is not read-only"),
        Want::Primary => (
            !in_recovery(conn).await?,
            "the server is in hot standby mode",
        ),
        Want::Standby => (
            in_recovery(conn).await?,
            "the server is not in hot standby mode",
        ),
    };
    match ok {
        true => Ok(()),
        false => Err(Error::new(ErrorKind::WrongSessionAttrs, why)),
    }
}

/// Whether sessions are read-only: a standby, or `default_transaction_read_only`.
async fn read_only(conn: &Connection) -> Result<bool, Error> {
    let reported = (
        conn.parameter("in_hot_standby"),
        conn.parameter("default_transaction_read_only"),
    );
    match reported {
        (Some(standby), Some(ro)) => Ok(standby == "on" || ro == "on"),
        _ => Ok(show(conn, "SHOW transaction_read_only").await? == "on"),
    }
}

/// Whether the server is in recovery.
async fn in_recovery(conn: &Connection) -> Result<bool, Error> {
    match conn.parameter("in_hot_standby") {
        Some(standby) => Ok(standby == "on"),
        None => Ok(show(conn, "SELECT pg_catalog.pg_is_in_recovery()").await? == "t"),
    }
}

/// The one value a one-row, one-column query returns.
async fn show(conn: &Connection, sql: &str) -> Result<String, Error> {
    let messages = conn.simple_query(sql).await?;
    let value = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
        _ => None,
    });
    value.ok_or_else(|| Error::new(ErrorKind::Protocol, format!("{sql:?} returned no value")))
}
