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
//!   connection (bounded LRU, [`Config::statement_cache_capacity`]).
//! - **Typed errors.** [`Error::kind`], [`Error::code`] (SQLSTATE, see [`sqlstate`]),
//!   [`Error::as_db_error`] with every field the server sent.
//!
//! # Cancellation
//!
//! A query future dropped after its request was written (by `tokio::time::timeout`,
//! `select!`, an aborted task) marks the connection **broken**: the server is sent a
//! CancelRequest so the abandoned query stops, the socket is closed, and every later call
//! on that connection fails at once with [`ErrorKind::Broken`]. It never returns rows
//! that belonged to the abandoned call. A future dropped while still waiting for the wire
//! lock leaves nothing behind. See `docs/CANCELLATION.md`.
//!
//! # Pool
//!
//! Services use a [`Pool`]: `pool.query(..)` for autocommit statements on any free
//! connection, `pool.begin()` for a transaction guard that owns its connection, and
//! `pool.transaction(|tx| Box::pin(async move { .. }))` for a closure that is re-run on
//! serialization failures and deadlocks. On return, a connection's fate is read from the
//! server's own transaction status: idle → back in the pool at once; inside a
//! transaction → rolled back in the background (within a deadline) before anyone else
//! gets it; broken → evicted, its slot held until its cancel and close finish, so the
//! number of server backends never exceeds `max_size`. See [`pool`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), pgkeel::Error> {
//! let pool = pgkeel::Pool::builder("postgres://app@localhost/app").max_size(8).build()?;
//! let n: i64 = pool.query_one("SELECT count(*) FROM kv", &[]).await?.get(0);
//! let mut tx = pool.begin().await?;
//! tx.execute("DELETE FROM kv WHERE v < $1", &[&n]).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! - `testkit`: `pgkeel::testkit`, a throwaway PostgreSQL cluster for tests.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cancel;
pub mod codec;
mod config;
mod connection;
mod error;
pub mod pool;
pub mod protocol;
mod row;
mod statement;
mod transaction;
mod transport;
pub mod types;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use cancel::CancelToken;
pub use config::{
    ChannelBindingMode, Config, Host, LoadBalanceHosts, ProtocolVersion, SslMode, SslRootCert,
    Target, TargetSessionAttrs, TlsVersion,
};
pub use connection::{Connection, IntoConfig, Params, RowStream, ToStatement, DEFAULT_BATCH_ROWS};
pub use error::{sqlstate, DbError, Error, ErrorKind, TimeoutKind};
pub use pool::{Pool, PoolTransaction, PooledConnection};
pub use protocol::TransactionStatus;
pub use row::{Row, RowIndex, SimpleColumn, SimpleQueryMessage, SimpleQueryRow, SimpleRowIndex};
pub use statement::{Column, Statement};
pub use transaction::{IsolationLevel, Savepoint, Transaction, TransactionBuilder};
pub use transport::PeerAddr;
pub use types::{FromSql, ToSql, Type};
