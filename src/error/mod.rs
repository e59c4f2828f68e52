//! The one public error type, [`Error`], and the questions it answers.
//!
//! An `Error` is opaque: ask it [`Error::kind`], [`Error::code`] (the SQLSTATE),
//! [`Error::as_db_error`] (every field the server sent), [`Error::is_retryable`] and
//! [`Error::is_connection_fatal`].

mod db;
pub mod sqlstate;
pub use self::sqlstate::SqlState;

pub use db::DbError;

use std::fmt;

use crate::types::BoxError;

/// Which limit a [`ErrorKind::Timeout`] hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// Opening the socket and the startup/authentication exchange (`connect_timeout`).
    Connect,
    /// Waiting for a pooled connection (`acquire_timeout`).
    Acquire,
    /// Waiting for another task to release a connection's wire lock.
    WireLock,
    /// A query's own deadline.
    Query,
    /// Delivering a CancelRequest to the server.
    Cancel,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutKind::Connect => "connect timeout",
            TimeoutKind::Acquire => "acquire timeout",
            TimeoutKind::WireLock => "wire lock wait timeout",
            TimeoutKind::Query => "query timeout",
            TimeoutKind::Cancel => "cancel timeout",
        })
    }
}

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server reported an error (ErrorResponse); see [`Error::as_db_error`].
    Db,
    /// Authentication failed: a wrong password (SQLSTATE 28P01), a rejected role, or a
    /// server that failed SCRAM verification.
    Authentication,
    /// A socket read or write failed.
    Io,
    /// The connection is closed: [`crate::Connection::close`] was called or the server
    /// went away.
    Closed,
    /// An earlier exchange on this connection was abandoned or failed mid-way; the
    /// connection is never used again. Open a new one (a pool does this for you).
    Broken,
    /// The server sent bytes that break the protocol; the connection is now broken.
    Protocol,
    /// A configuration string or value is invalid.
    Config,
    /// A parameter could not be encoded for its PostgreSQL type.
    Encode,
    /// A column value could not be decoded into the requested Rust type.
    Decode,
    /// No column has the requested name or index.
    ColumnNotFound,
    /// `query_one` / `query_opt` got a number of rows it does not allow.
    RowCount,
    /// A deadline passed; [`Error::timeout_kind`] says which.
    Timeout(TimeoutKind),
    /// The calling task already holds this connection's wire lock (through a transaction
    /// or an open row stream) and called the connection directly.
    Misuse,
    /// A TLS handshake or certificate check failed.
    Tls,
    /// `COMMIT` ran in a transaction where an earlier statement had failed, so the server
    /// rolled it back instead; or a batch statement's work was undone because a later
    /// statement of its all-or-nothing unit failed.
    RolledBack,
    /// The server did not run this statement of a batch: an earlier statement of its
    /// unit failed (the message names which).
    Skipped,
    /// The connection failed while `COMMIT` was in flight: the transaction may or may not
    /// have committed. Never retried blindly.
    CommitOutcomeUnknown,
    /// The pool is closed and hands out no more connections.
    PoolClosed,
    /// A server was reached but is not the kind `target_session_attrs` asks for (a
    /// standby when read-write was asked, ...).
    WrongSessionAttrs,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Db => f.write_str("db error"),
            ErrorKind::Authentication => f.write_str("authentication failed"),
            ErrorKind::Io => f.write_str("i/o error"),
            ErrorKind::Closed => f.write_str("connection closed"),
            ErrorKind::Broken => f.write_str("connection broken"),
            ErrorKind::Protocol => f.write_str("protocol error"),
            ErrorKind::Config => f.write_str("invalid configuration"),
            ErrorKind::Encode => f.write_str("cannot encode parameter"),
            ErrorKind::Decode => f.write_str("cannot decode column"),
            ErrorKind::ColumnNotFound => f.write_str("column not found"),
            ErrorKind::RowCount => f.write_str("unexpected number of rows"),
            ErrorKind::Timeout(t) => t.fmt(f),
            ErrorKind::Misuse => f.write_str("connection misuse"),
            ErrorKind::Tls => f.write_str("tls error"),
            ErrorKind::RolledBack => f.write_str("transaction rolled back"),
            ErrorKind::Skipped => f.write_str("statement skipped"),
            ErrorKind::CommitOutcomeUnknown => f.write_str("commit outcome unknown"),
            ErrorKind::PoolClosed => f.write_str("pool closed"),
            ErrorKind::WrongSessionAttrs => {
                f.write_str("server does not match target_session_attrs")
            }
        }
    }
}

struct Inner {
    kind: ErrorKind,
    message: Option<String>,
    db: Option<DbError>,
    source: Option<BoxError>,
}

/// An error from pgkeel: a server error, a broken or closed connection, a timeout, a
/// conversion failure, or a misuse.
pub struct Error(Box<Inner>);

impl Error {
    fn build(kind: ErrorKind, message: Option<String>, source: Option<BoxError>) -> Error {
        Error(Box::new(Inner {
            kind,
            message,
            db: None,
            source,
        }))
    }

    /// An error of `kind` with a message.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error::build(kind, Some(message.into()), None)
    }

    /// An error of `kind` with a message and an underlying cause.
    pub(crate) fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Error {
        Error::build(kind, Some(message.into()), Some(source.into()))
    }

    /// A server ErrorResponse; class 28 codes become [`ErrorKind::Authentication`].
    pub(crate) fn db(db: DbError) -> Error {
        let kind = if sqlstate::is_authentication(db.code()) {
            ErrorKind::Authentication
        } else {
            ErrorKind::Db
        };
        let mut e = Error::build(kind, None, None);
        e.0.db = Some(db);
        e
    }

    pub(crate) fn io(e: std::io::Error) -> Error {
        Error::with_source(ErrorKind::Io, "socket error", e)
    }

    pub(crate) fn protocol(e: impl Into<BoxError>) -> Error {
        Error::build(ErrorKind::Protocol, None, Some(e.into()))
    }

    pub(crate) fn closed() -> Error {
        Error::new(ErrorKind::Closed, "the connection is closed")
    }

    pub(crate) fn broken() -> Error {
        Error::new(
            ErrorKind::Broken,
            "an earlier exchange on this connection was abandoned or failed mid-way, \
             so it is no longer used; open a new connection (a pool does this for you)",
        )
    }

    pub(crate) fn timeout(which: TimeoutKind, message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Timeout(which), message)
    }

    pub(crate) fn config(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Config, message)
    }

    /// The same error with `context` (which host failed, ...) before its message.
    pub(crate) fn context(mut self, context: impl fmt::Display) -> Error {
        self.0.message = Some(match self.0.message.take() {
            Some(m) => format!("{context}: {m}"),
            None => context.to_string(),
        });
        self
    }

    /// A copy of this error for another caller (its source becomes text): the one
    /// failed connect attempt that several waiting callers share.
    pub(crate) fn duplicate(&self) -> Error {
        let source = self
            .0
            .source
            .as_ref()
            .map(|s| BoxError::from(s.to_string()));
        Error(Box::new(Inner {
            kind: self.0.kind,
            message: self.0.message.clone(),
            db: self.0.db.clone(),
            source,
        }))
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The SQLSTATE code when the server reported the error.
    pub fn code(&self) -> Option<&str> {
        self.0.db.as_ref().map(DbError::code)
    }

    /// The SQLSTATE as a [`SqlState`] (named constants, class helpers), when the server
    /// reported the error.
    pub fn sql_state(&self) -> Option<SqlState> {
        self.code().map(SqlState::from_code)
    }

    /// Every field of the server's ErrorResponse, when the server reported the error.
    pub fn as_db_error(&self) -> Option<&DbError> {
        self.0.db.as_ref()
    }

    /// Which limit was hit, when this is a timeout.
    pub fn timeout_kind(&self) -> Option<TimeoutKind> {
        match self.0.kind {
            ErrorKind::Timeout(t) => Some(t),
            _ => None,
        }
    }

    /// Whether re-running the whole transaction may succeed: serialization failures
    /// (40001) and deadlocks (40P01). The error is still what it was: `code()` says which.
    pub fn is_retryable(&self) -> bool {
        self.code().is_some_and(sqlstate::is_retryable)
    }

    /// Whether the connection that produced this error can no longer be used.
    pub fn is_connection_fatal(&self) -> bool {
        match self.0.kind {
            ErrorKind::Io | ErrorKind::Closed | ErrorKind::Broken | ErrorKind::Protocol => true,
            ErrorKind::Tls | ErrorKind::CommitOutcomeUnknown => true,
            _ => self
                .as_db_error()
                .is_some_and(|db| matches!(db.severity(), "FATAL" | "PANIC")),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.0.kind);
        if let Some(m) = &self.0.message {
            d.field("message", m);
        }
        if let Some(db) = &self.0.db {
            d.field("db", db);
        }
        if let Some(s) = &self.0.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.kind)?;
        if let Some(m) = &self.0.message {
            write!(f, ": {m}")?;
        }
        if let Some(db) = &self.0.db {
            write!(f, ": {db}")?;
        }
        if let Some(s) = &self.0.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match (&self.0.db, &self.0.source) {
            (Some(db), _) => Some(db),
            (None, Some(s)) => Some(s.as_ref()),
            (None, None) => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::io(e)
    }
}

impl From<crate::protocol::ProtocolError> for Error {
    /// A message we could not build is the caller's input (nothing was sent, the
    /// connection is fine): [`ErrorKind::Encode`]. Anything else came from the server.
    fn from(e: crate::protocol::ProtocolError) -> Error {
        match e {
            crate::protocol::ProtocolError::Encode { .. } => {
                Error::build(ErrorKind::Encode, None, Some(e.into()))
            }
            e => Error::protocol(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(code: &str, severity: &str) -> Error {
        Error::db(DbError::from_fields(vec![
            (b'V', severity.to_string()),
            (b'C', code.to_string()),
            (b'M', "m".to_string()),
        ]))
    }

    #[test]
    fn retryable_codes_are_serialization_failure_and_deadlock_only() {
        assert!(db("40001", "ERROR").is_retryable());
        assert!(db("40P01", "ERROR").is_retryable());
        assert!(!db("23505", "ERROR").is_retryable());
        assert!(!Error::broken().is_retryable());
    }

    #[test]
    fn authentication_codes_have_their_own_kind() {
        let e = db("28P01", "FATAL");
        assert_eq!(e.kind(), ErrorKind::Authentication);
        assert_eq!(e.code(), Some("28P01"));
        assert!(e.is_connection_fatal());
        assert!(!db("42P01", "ERROR").is_connection_fatal());
    }

    #[test]
    fn display_names_the_kind_and_the_server_message() {
        let e = db("42P01", "ERROR");
        assert_eq!(e.to_string(), "db error: ERROR 42P01: m");
        let t = Error::timeout(TimeoutKind::Acquire, "waited 1s");
        assert_eq!(t.to_string(), "acquire timeout: waited 1s");
        assert_eq!(t.timeout_kind(), Some(TimeoutKind::Acquire));
    }
}
