//! pgkeel: an async PostgreSQL driver for Tokio whose promise is that the things that
//! break other drivers under real load cannot happen here.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pgkeel::Error> {
//! let conn = pgkeel::Connection::connect("postgres://app@localhost/app").await?;
//! conn.execute("CREATE TABLE IF NOT EXISTS kv (k text PRIMARY KEY, v int8)", &[]).await?;
//! conn.execute("INSERT INTO kv VALUES ($1, $2)", &[&"answer", &42i64]).await?;
//! let row = conn.query_one("SELECT v FROM kv WHERE k = $1", &[&"answer"]).await?;
//! let v: i64 = row.get("v");
//! assert_eq!(v, 42);
//! # Ok(()) }
//! ```
//!
//! # Behaviour
//!
//! - **Wire lock.** A [`Connection`] is `Clone + Send + Sync`; clones share one session.
//!   Each exchange holds the connection's `tokio::sync::Mutex` from its first write to
//!   its ReadyForQuery, so requests from different tasks never interleave.
//! - **One round trip per query.** Parameters are typed by their Rust types, so Parse,
//!   Describe, Bind, Execute and Sync go out together; statements are cached per
//!   connection (bounded LRU, [`Config::statement_cache_capacity`]) under names derived
//!   from a hash of their SQL, so they are safe behind connection poolers; with a
//!   transaction-mode pooler, [`Config::pooler_mode`] names nothing on the server.
//! - **Typed errors.** [`Error::kind`], [`Error::code`] (SQLSTATE, see [`sqlstate`]),
//!   [`Error::as_db_error`] with every field the server sent.
//!
//! # Cancellation
//!
//! A query future dropped after its request was written (by `tokio::time::timeout`,
//! `select!`, an aborted task) marks the connection **broken**: the server is sent a
//! CancelRequest (repeated until the server ends the session, so a cancel that lands
//! between the messages of an exchange cannot be lost) so the abandoned query stops, the
//! socket is closed, and every later call on that connection fails at once with
//! [`ErrorKind::Broken`]. It never returns rows
//! that belonged to the abandoned call. A future dropped while still waiting for the wire
//! lock leaves nothing behind. A pipelined call (`query`, `query_one`, `query_opt` or
//! `execute` of a statement already prepared on the connection) dropped before its
//! request was written is withdrawn; dropped after, its answer is read and dropped, and
//! the connection stays usable. A pool can recover an abandoned connection instead of
//! evicting it ([`pool::AbandonPolicy`]). See `docs/CANCELLATION.md` and `docs/USAGE.md`.
//!
//! # Pool
//!
//! Services use a [`Pool`]: `pool.query(..)` for autocommit statements on any free
//! connection, `pool.begin()` for a transaction guard that owns its connection, and
//! `pool.transaction(async |tx| { .. })` for a closure that is re-run on serialization
//! failures and deadlocks (`pool.build_transaction()` for its isolation level, read only,
//! attempts and backoff). [`GenericClient`] lets repository code run on a connection, a
//! transaction, a savepoint or the pool's handles alike. On return, a connection's fate is read from the
//! server's own transaction status: idle → back in the pool at once; inside a
//! transaction → rolled back in the background (within a deadline) before anyone else
//! gets it; broken → evicted, its slot held until its cancel and close finish, so the
//! number of server backends never exceeds `max_size`. See [`pool`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), pgkeel::Error> {
//! let pool = pgkeel::Pool::builder("postgres://app@localhost/app").max_size(8).build()?;
//! let n: i64 = pool.query_one("SELECT count(*) FROM kv", &[]).await?.get(0);
//! let tx = pool.begin().await?;
//! tx.execute("DELETE FROM kv WHERE v < $1", &[&n]).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```
//!
//! # Types
//!
//! Every common PostgreSQL type binds and decodes in binary, losslessly, with `Option<T>`
//! for NULL: see [`types`] and `docs/TYPES.md` for the full table. Enums, composites,
//! domains and extension types are looked up once per connection.
//!
//! # Large objects and fast-path calls
//!
//! [`Connection::fast_path_call`] calls a server function over the protocol's
//! FunctionCall message. Large objects are opened from a transaction
//! ([`Transaction::large_object`]), which the [`LargeObject`] borrows, and stream through
//! tokio's `AsyncRead`/`AsyncWrite`/`AsyncSeek` in bounded memory. See
//! `docs/LARGE_OBJECTS.md`.
//!
//! # Features
//!
//! - `chrono`, `time`, `jiff`: their date and time types (`jiff` also `Span` and
//!   `SignedDuration` for interval).
//! - `uuid`: `uuid::Uuid`.
//! - `serde_json`: `serde_json::Value` and `types::Json<T>` for json/jsonb.
//! - `rust_decimal`, `bigdecimal`: `rust_decimal::Decimal`, `bigdecimal::BigDecimal` for numeric.
//! - `derive`: `#[derive(FromRow)]` for structs (by column name, `#[pgkeel(rename = "..")]`),
//!   and `#[derive(ToSql, FromSql)]` for enums, composites and newtypes over a domain.
//! - `metrics`: the pool's gauges, counters and checkout wait times through the
//!   [`metrics`](https://docs.rs/metrics) facade (`db.client.connection.*`,
//!   `pgkeel.pool.*`, labelled with [`PoolBuilder::name`](pool::PoolBuilder::name)).
//!
//! # Observability
//!
//! Every exchange runs in a `tracing` span at INFO under the target `pgkeel::query`,
//! with OpenTelemetry's database fields (`db.system.name`, `db.namespace`,
//! `db.operation.name`, `db.query.text`, `server.address`, `server.port`, and
//! `db.response.status_code` on error); connects, cancels and pool checkouts have spans
//! of their own. Parameter values and passwords are never recorded. With no subscriber
//! the spans cost a level check. See `docs/OBSERVABILITY.md`.
//!
//! # Testing
//!
//! The `pgkeel-testkit` crate (in `testkit/`) starts a throwaway PostgreSQL cluster for
//! your tests; add it as a dev-dependency.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cancel;
mod client;
// Public for the integration tests (tests/it/codec_chunks.rs), but not a documented
// stable layer: hidden from the docs. The same holds for `protocol`.
#[doc(hidden)]
pub mod codec;
mod config;
mod connection;
mod cursor;
mod error;
mod large_object;
pub mod pool;
#[doc(hidden)]
pub mod protocol;
mod row;
mod statement;
mod telemetry;
mod transaction;
mod transport;
pub mod types;

pub use cancel::CancelToken;
pub use client::GenericClient;
pub use config::{
    ChannelBindingMode, Config, Host, LoadBalanceHosts, ProtocolVersion, SslMode, SslRootCert,
    Target, TargetSessionAttrs, TlsVersion,
};
pub use connection::{
    Batch, BatchOutput, BatchResults, BinaryCopyInWriter, BinaryCopyOutRow, BinaryCopyOutStream,
    Connection, CopyIn, CopyOut, DEFAULT_BATCH_ROWS, DEFAULT_NOTIFICATION_CAPACITY, Function,
    IntoConfig, Listener, ListenerEvent, ListenerOptions, NoticeHandler, Notification, ParamSet,
    Params, PipelineCounts, ReadSpinCounts, RowStream, Ticket, ToStatement,
};
pub use cursor::{Cursor, CursorOptions, DEFAULT_CURSOR_BATCH, Portal};
pub use error::{DbError, Error, ErrorKind, SqlState, TimeoutKind, sqlstate};
pub use large_object::{DEFAULT_CHUNK_SIZE, LargeObject, LoMode, MAX_CHUNK_SIZE};
pub use pool::{Pool, PoolTransaction, PooledConnection};
pub use protocol::TransactionStatus;
pub use row::{
    FromRow, Row, RowIndex, SimpleColumn, SimpleQueryMessage, SimpleQueryRow, SimpleRowIndex,
};
pub use statement::{Column, Statement};
pub use transaction::{IsolationLevel, Savepoint, Transaction, TransactionBuilder, TxClient};
pub use transport::PeerAddr;
pub use types::{FromSql, ToSql, Type};

/// docs/MIGRATING.md, compiled: its pgkeel code blocks run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/MIGRATING.md")]
pub struct MigratingGuide;

/// docs/USAGE.md, compiled: its code blocks run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/USAGE.md")]
pub struct UsageGuide;

/// `#[derive(FromRow)]`: a struct built from a row by column name (feature `derive`).
#[cfg(feature = "derive")]
pub use pgkeel_derive::FromRow;
/// `#[derive(ToSql, FromSql)]`: Rust enums as PostgreSQL enums, structs as composite
/// types, `#[pgkeel(transparent)]` newtypes as their field (feature `derive`).
#[cfg(feature = "derive")]
pub use pgkeel_derive::{FromSql, ToSql};
