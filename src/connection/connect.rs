//! Opening a session: pick the hosts, and for each one in turn, within the connect
//! timeout: socket, StartupMessage, authentication, the parameters the server reports
//! before its first ReadyForQuery, then the `target_session_attrs` check. Reference:
//! PostgreSQL manual, "Message Flow" → "Start-up", and libpq's "Multiple Hosts".

mod attrs;
mod authenticate;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use tokio::sync::Mutex;
use tokio_util::codec::Framed;

use super::shared::Limits;
use super::wire::{Io, Shared, Wire};
use super::{Connection, Inner};
use crate::cancel::CancelToken;
use crate::codec::{Frontend, PgCodec};
use crate::config::{Config, LoadBalanceHosts, Target};
use crate::error::{DbError, Error, ErrorKind, TimeoutKind};
use crate::protocol::{frontend, BackendMessage, ProtocolError};
use crate::transport::{self, Liveness};

use attrs::Want;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Tries each host in turn (twice for `prefer-standby`: standbys first, then any);
/// returns the first session that opens and matches `target_session_attrs`.
///
/// # Errors
/// When every host fails, the last host's error, its message listing every host tried
/// with its own cause.
pub(crate) async fn connect(config: &Config) -> Result<Connection, Error> {
    config.validate()?;
    if config.get_ssl_mode().requires_tls() {
        return Err(Error::new(
            ErrorKind::Tls,
            "TLS is not available in this build yet",
        ));
    }
    let targets = ordered(config.targets()?, config.load_balance_hosts);
    let mut failures = Vec::new();
    for want in Want::passes(config.target_session_attrs) {
        for target in &targets {
            match attempt(config, target, want).await {
                Ok(conn) => return Ok(conn),
                Err(e) => {
                    tracing::debug!(%target, error = %e, "connect attempt failed");
                    failures.push((target.clone(), e));
                }
            }
        }
    }
    Err(all_failed(failures))
}

/// The targets in the order to try them.
fn ordered(mut targets: Vec<Target>, order: LoadBalanceHosts) -> Vec<Target> {
    if order == LoadBalanceHosts::Random {
        // Fisher-Yates with the system RNG ring already gives us.
        for i in (1..targets.len()).rev() {
            let mut b = [0u8; 4];
            let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
            targets.swap(i, u32::from_le_bytes(b) as usize % (i + 1));
        }
    }
    targets
}

/// One error for all failed attempts: the last one's kind, code and source, and a
/// message that names each host with its own cause.
fn all_failed(mut failures: Vec<(Target, Error)>) -> Error {
    let Some((last_target, last)) = failures.pop() else {
        return Error::config("no host to connect to");
    };
    if failures.is_empty() {
        return last.context(last_target);
    }
    let earlier: Vec<String> = failures.iter().map(|(t, e)| format!("{t}: {e}")).collect();
    last.context(format!(
        "all {} connection attempts failed; {}; {last_target}",
        failures.len() + 1,
        earlier.join("; ")
    ))
}

/// One host, bounded by the connect timeout: TCP, TLS, authentication and the
/// session attributes check all count.
async fn attempt(config: &Config, target: &Target, want: Want) -> Result<Connection, Error> {
    let work = async {
        let conn = connect_one(config, target).await?;
        attrs::check(&conn, want).await?;
        Ok(conn)
    };
    match config.get_connect_timeout() {
        None => work.await,
        Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(Error::timeout(
                TimeoutKind::Connect,
                format!("did not finish connecting within {limit:?}"),
            ))
        }),
    }
}

async fn connect_one(config: &Config, target: &Target) -> Result<Connection, Error> {
    let (stream, peer, killswitch) = transport::connect(target, Liveness::of(config)).await?;
    let mut io = Framed::new(stream, PgCodec::new(config.max_message_len));
    startup(&mut io, config).await?;
    authenticate::run(&mut io, config, target).await?;
    let (params, key) = read_until_ready(&mut io).await?;
    if key.is_none() {
        tracing::debug!(%target, "the server sent no BackendKeyData: queries cannot be cancelled");
    }
    let cancel = CancelToken {
        peer,
        process_id: key.map_or(0, |k| k.0),
        secret_key: key.map(|k| k.1),
        timeout: config.cancel_timeout,
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let limits = Limits {
        query: config.query_timeout,
        lock: config.lock_timeout,
    };
    let shared = Arc::new(Shared::new(id, params, cancel, killswitch, limits));
    let wire = Wire::new(io, shared.clone(), config.statement_cache_capacity);
    tracing::debug!(conn = id, pid = key.map(|k| k.0), "connected");
    Ok(Connection {
        inner: Arc::new(Inner {
            wire: Arc::new(Mutex::new(wire)),
            shared,
        }),
    })
}

async fn startup(io: &mut Io, config: &Config) -> Result<(), Error> {
    let user = config.get_user();
    let dbname = config.get_dbname();
    let app = config.get_application_name();
    let mut params = vec![
        ("user", user.as_str()),
        ("database", dbname.as_str()),
        ("client_encoding", "UTF8"),
    ];
    if let Some(app) = &app {
        params.push(("application_name", app));
    }
    if let Some(options) = &config.options {
        params.push(("options", options));
    }
    frontend::startup(&params, io.write_buffer_mut())?;
    SinkExt::<Frontend<'_>>::flush(io).await
}

/// The next message; an ErrorResponse becomes the error.
async fn recv(io: &mut Io) -> Result<BackendMessage, Error> {
    match io.next().await {
        Some(Ok(BackendMessage::ErrorResponse(fields))) => {
            Err(Error::db(DbError::from_fields(fields)))
        }
        Some(msg) => msg,
        None => Err(Error::new(
            ErrorKind::Closed,
            "the server closed the connection during startup",
        )),
    }
}

async fn send(
    io: &mut Io,
    write: impl FnOnce(&mut bytes::BytesMut) -> Result<(), ProtocolError>,
) -> Result<(), Error> {
    write(io.write_buffer_mut())?;
    SinkExt::<Frontend<'_>>::flush(io).await
}

type Key = Option<(i32, i32)>;

/// Reads to the first ReadyForQuery. BackendKeyData may be missing: libpq accepts
/// that too, and such a session only cannot be cancelled.
async fn read_until_ready(io: &mut Io) -> Result<(HashMap<String, String>, Key), Error> {
    let mut params = HashMap::new();
    let mut key = None;
    loop {
        match recv(io).await? {
            BackendMessage::ParameterStatus { name, value } => {
                params.insert(name, value);
            }
            BackendMessage::BackendKeyData {
                process_id,
                secret_key,
            } => key = Some((process_id, secret_key)),
            BackendMessage::NoticeResponse(_) | BackendMessage::NegotiateProtocolVersion { .. } => {
            }
            BackendMessage::ReadyForQuery(_) => return Ok((params, key)),
            other => {
                return Err(ProtocolError::Unexpected {
                    got: other.name(),
                    during: "starting up",
                }
                .into())
            }
        }
    }
}
