//! The PostgreSQL frontend/backend protocol 3.0, with no I/O in it.
//!
//! [`frontend`] encodes the messages a client sends into a `BytesMut`; [`backend`] decodes
//! the messages a server sends from a complete frame. [`auth`] holds the MD5 and
//! SCRAM-SHA-256 computations. Nothing here touches a socket or a runtime, so every
//! message is tested byte for byte. Reference: PostgreSQL manual, "Frontend/Backend
//! Protocol" and "Message Formats".

pub mod auth;
pub mod backend;
pub mod frontend;
mod reader;

pub use backend::{BackendMessage, TransactionStatus};

/// The default upper bound on one backend message, 1 GiB plus the largest header.
///
/// PostgreSQL's own limit on a field value is 1 GiB; a length beyond this bound is taken
/// as a corrupt stream rather than a reason to allocate.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = (1 << 30) + 1024;

/// The protocol version pgkeel speaks: 3.0.
pub const PROTOCOL_VERSION: i32 = 196_608;

/// Bytes that break the protocol, from the server or in a message we were asked to build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame whose length field is below the minimum of 4.
    #[error("message {tag:?} has an invalid length {len}")]
    InvalidLength {
        /// The message type byte.
        tag: char,
        /// The length field as read.
        len: i64,
    },
    /// A frame longer than the configured maximum.
    #[error("message {tag:?} of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The message type byte.
        tag: char,
        /// The length field as read.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A message type byte this client does not know.
    #[error("unknown backend message type {0:?}")]
    UnknownTag(char),
    /// A field ran past the end of its message.
    #[error("{message} message is truncated in its {field}")]
    Truncated {
        /// The message being read.
        message: &'static str,
        /// The field that ran short.
        field: &'static str,
    },
    /// Text that must be UTF-8 is not.
    #[error("{message} message has invalid UTF-8 in its {field}")]
    InvalidUtf8 {
        /// The message being read.
        message: &'static str,
        /// The field holding the bad text.
        field: &'static str,
    },
    /// Bytes left over after the last field.
    #[error("{message} message has {extra} unexpected trailing bytes")]
    TrailingBytes {
        /// The message being read.
        message: &'static str,
        /// How many bytes were left.
        extra: usize,
    },
    /// A field with a value the protocol does not allow.
    #[error("{message} message has an invalid {field}: {detail}")]
    InvalidField {
        /// The message being read.
        message: &'static str,
        /// The offending field.
        field: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// A well-formed message that is not allowed at this point of the exchange.
    #[error("unexpected {got} message while {during}")]
    Unexpected {
        /// The message that arrived.
        got: &'static str,
        /// The exchange in progress.
        during: &'static str,
    },
    /// A frontend message that cannot be built (a NUL inside a string, too many
    /// parameters, a message over the 1 GiB frame limit).
    #[error("cannot encode {message}: {detail}")]
    Encode {
        /// The message being built.
        message: &'static str,
        /// Why it cannot be built.
        detail: String,
    },
}
