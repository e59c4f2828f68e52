//! Opening a session: socket, StartupMessage, authentication, and the parameters the
//! server reports before its first ReadyForQuery. Reference: PostgreSQL manual,
//! "Message Flow" → "Start-up".

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
use crate::config::{Config, Host, SslMode};
use crate::error::{DbError, Error, ErrorKind, TimeoutKind};
use crate::protocol::auth::{self, ChannelBinding, ScramSha256};
use crate::protocol::backend::Authentication;
use crate::protocol::{frontend, BackendMessage, ProtocolError};
use crate::transport;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Tries each host in turn; returns the first session that opens, or the last error.
pub(crate) async fn connect(config: &Config) -> Result<Connection, Error> {
    if config.ssl_mode == SslMode::Require {
        return Err(Error::new(
            ErrorKind::Tls,
            "sslmode=require: TLS is not available in this build yet",
        ));
    }
    let mut last = None;
    for (host, port) in config.targets()? {
        let attempt = connect_one(config, &host, port);
        let result = match config.get_connect_timeout() {
            None => attempt.await,
            Some(limit) => tokio::time::timeout(limit, attempt)
                .await
                .unwrap_or_else(|_| {
                    Err(Error::timeout(
                        TimeoutKind::Connect,
                        format!("{host:?} port {port} did not finish connecting within {limit:?}"),
                    ))
                }),
        };
        match result {
            Ok(conn) => return Ok(conn),
            Err(e) => {
                tracing::debug!(?host, port, error = %e, "connect attempt failed");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::config("no host to connect to")))
}

async fn connect_one(config: &Config, host: &Host, port: u16) -> Result<Connection, Error> {
    let (stream, peer, killswitch) = transport::connect(host, port, config.keepalives_idle).await?;
    let mut io = Framed::new(stream, PgCodec::new(config.max_message_len));
    startup(&mut io, config).await?;
    authenticate(&mut io, config).await?;
    let (params, key) = read_until_ready(&mut io).await?;
    let (process_id, secret_key) = key.ok_or_else(|| {
        Error::protocol(ProtocolError::Unexpected {
            got: "ReadyForQuery",
            during: "waiting for BackendKeyData",
        })
    })?;
    let cancel = CancelToken {
        peer,
        process_id,
        secret_key,
        timeout: config.cancel_timeout,
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let limits = Limits {
        query: config.query_timeout,
        lock: config.lock_timeout,
    };
    let shared = Arc::new(Shared::new(id, params, cancel, killswitch, limits));
    let wire = Wire::new(io, shared.clone(), config.statement_cache_capacity);
    tracing::debug!(conn = id, pid = process_id, "connected");
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

fn auth_error(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Authentication, msg)
}

fn password(config: &Config) -> Result<Vec<u8>, Error> {
    config.get_password().ok_or_else(|| auth_error("the server asked for a password, but none was given (set it in the URL, Config::password or PGPASSWORD)"))
}

async fn authenticate(io: &mut Io, config: &Config) -> Result<(), Error> {
    loop {
        let request = match recv(io).await? {
            BackendMessage::Authentication(a) => a,
            BackendMessage::NegotiateProtocolVersion { .. } => continue,
            other => {
                return Err(ProtocolError::Unexpected {
                    got: other.name(),
                    during: "authenticating",
                }
                .into())
            }
        };
        match request {
            Authentication::Ok => return Ok(()),
            Authentication::CleartextPassword => {
                let pw = password(config)?;
                send(io, |b| frontend::password(&pw, b)).await?;
            }
            Authentication::Md5Password(salt) => {
                let hashed =
                    auth::md5_password(config.get_user().as_bytes(), &password(config)?, salt);
                send(io, |b| frontend::password(hashed.as_bytes(), b)).await?;
            }
            Authentication::Sasl(mechanisms) => scram(io, config, &mechanisms).await?,
            other => {
                return Err(auth_error(format!(
                    "the server asked for {other:?} authentication, which pgkeel does not support"
                )))
            }
        }
    }
}

async fn scram(io: &mut Io, config: &Config, mechanisms: &[String]) -> Result<(), Error> {
    if !mechanisms.iter().any(|m| m == auth::SCRAM_SHA_256) {
        return Err(auth_error(format!("the server offers SASL mechanisms {mechanisms:?}; pgkeel supports SCRAM-SHA-256 (without TLS)")));
    }
    let scram_err =
        |e: auth::ScramError| Error::with_source(ErrorKind::Authentication, "SCRAM-SHA-256", e);
    let mut scram =
        ScramSha256::new(&password(config)?, ChannelBinding::Unsupported).map_err(scram_err)?;
    send(io, |b| {
        frontend::sasl_initial_response(scram.mechanism(), scram.client_first(), b)
    })
    .await?;
    let server_first = match recv(io).await? {
        BackendMessage::Authentication(Authentication::SaslContinue(data)) => data,
        other => {
            return Err(ProtocolError::Unexpected {
                got: other.name(),
                during: "waiting for SCRAM server-first",
            }
            .into())
        }
    };
    let client_final = scram
        .handle_server_first(&server_first)
        .map_err(scram_err)?;
    send(io, |b| frontend::sasl_response(&client_final, b)).await?;
    match recv(io).await? {
        BackendMessage::Authentication(Authentication::SaslFinal(data)) => {
            scram.verify_server_final(&data).map_err(scram_err)
        }
        other => Err(ProtocolError::Unexpected {
            got: other.name(),
            during: "waiting for SCRAM server-final",
        }
        .into()),
    }
}

type Key = Option<(i32, i32)>;

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
