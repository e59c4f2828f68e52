//! Opening a session: pick the hosts, and for each one in turn, within the connect
//! timeout: socket, StartupMessage, authentication, the parameters the server reports
//! before its first ReadyForQuery, then the `target_session_attrs` check. Reference:
//! PostgreSQL manual, "Message Flow" → "Start-up", and libpq's "Multiple Hosts".

mod attrs;
mod authenticate;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{SinkExt, StreamExt};
use tokio::sync::Mutex;
use tokio_util::codec::Framed;

use super::shared::Limits;
use super::wire::{Io, Shared, Wire};
use super::{Connection, Inner};
use crate::cancel::CancelToken;
use crate::codec::{Frontend, PgCodec};
use crate::config::{Config, Host, LoadBalanceHosts, SslMode, Target};
use crate::error::{DbError, Error, ErrorKind, TimeoutKind};
use crate::protocol::{BackendMessage, ProtocolError, frontend};
use crate::transport::tls::{self, Negotiated, TlsSetup};
use crate::transport::{self, Liveness, Stream};

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
    crate::telemetry::traced(crate::telemetry::connect(config), connect_any(config)).await
}

/// [`connect`] once the configuration is checked.
async fn connect_any(config: &Config) -> Result<Connection, Error> {
    let targets = ordered(config.targets()?, config.load_balance_hosts);
    let mut failures = Vec::new();
    for want in Want::passes(config.target_session_attrs) {
        for target in &targets {
            let span = crate::telemetry::connect_attempt(target);
            match crate::telemetry::traced(span, attempt(config, target, want)).await {
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

/// One session to `target` under the TLS mode, with libpq's retries: `allow` tries
/// TLS after a plain session the server refused; `prefer` goes on in plain text when
/// the server does not do TLS, and starts over without TLS when the handshake or a TLS
/// session fails. Unix sockets never use TLS, as in libpq.
async fn connect_one(config: &Config, target: &Target) -> Result<Connection, Error> {
    let mode = match target.host {
        Host::Unix(_) => SslMode::Disable,
        Host::Tcp(_) => config.get_ssl_mode(),
    };
    let setup = || tls::setup(config, target, mode);
    match mode {
        SslMode::Disable => open(config, target, None).await.0,
        SslMode::Allow => match open(config, target, None).await.0 {
            Err(e) if e.as_db_error().is_some() => {
                open(config, target, Some((&setup()?, true))).await.0
            }
            other => other,
        },
        SslMode::Prefer => match open(config, target, Some((&setup()?, false))).await {
            (Err(e), true) if e.kind() == ErrorKind::Tls || e.as_db_error().is_some() => {
                tracing::debug!(%target, error = %e, "TLS attempt failed; sslmode=prefer tries without");
                open(config, target, None).await.0
            }
            (result, _) => result,
        },
        _ => open(config, target, Some((&setup()?, true))).await.0,
    }
}

/// Opens one session: TLS when `tls` is given (required or not); the flag says whether
/// TLS was attempted past the server's 'S'.
async fn open(
    config: &Config,
    target: &Target,
    tls: Option<(&TlsSetup, bool)>,
) -> (Result<Connection, Error>, bool) {
    let mut tried_tls = false;
    let result = async {
        let (stream, peer, killswitch) = transport::connect(target, Liveness::of(config)).await?;
        let (mut stream, error_follows) = secure(config, stream, tls, &mut tried_tls).await?;
        tried_tls = matches!(stream, Stream::Tls(_));
        let session_tls = tls.filter(|_| tried_tls).map(|(setup, _)| setup.clone());
        let channel = authenticate::Channel {
            tls: tried_tls,
            end_point: match &stream {
                Stream::Tls(s) => tls::end_point(s),
                _ => None,
            },
        };
        stream.set_read_spin(config.read_spin);
        let codec = PgCodec::new(config.max_message_len);
        let mut io = Framed::with_capacity(stream, codec, READ_BUFFER);
        if error_follows {
            return Err(error_after_ssl_request(io).await);
        }
        startup(&mut io, config).await?;
        authenticate::run(&mut io, config, target, channel).await?;
        finish(io, config, target, peer, killswitch, session_tls).await
    }
    .await;
    (result, tried_tls)
}

/// SSLRequest (or direct TLS) and the handshake when `tls` asks for them: the stream to
/// speak on, and whether an ErrorResponse follows in place of an answer. `tried` is set
/// before the handshake, so a failed one counts as tried.
async fn secure(
    config: &Config,
    stream: Stream,
    tls: Option<(&TlsSetup, bool)>,
    tried: &mut bool,
) -> Result<(Stream, bool), Error> {
    let (tcp, setup, required) = match (stream, tls) {
        (Stream::Tcp(tcp), Some((setup, required))) => (tcp, setup, required),
        (stream, _) => return Ok((stream, false)),
    };
    *tried = true;
    Ok(match tls::negotiate(tcp, setup).await? {
        Negotiated::Tls(s) => (Stream::Tls(s), false),
        Negotiated::Plain(_) if required => return Err(no_tls(config)),
        Negotiated::Plain(tcp) => (Stream::Tcp(tcp), false),
        Negotiated::ErrorFollows(tcp) => (Stream::Tcp(tcp), true),
    })
}

fn no_tls(config: &Config) -> Error {
    let mode = match config.get_ssl_mode() {
        SslMode::Allow => "allow (after the plain session was refused)",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
        _ => "require",
    };
    Error::new(
        ErrorKind::Tls,
        format!(
            "the server does not support TLS (it answered 'N' to SSLRequest), and sslmode={mode} requires it"
        ),
    )
}

/// The read buffer's initial size: a batch of rows or many pipelined answers arrive in
/// one read instead of several (the codec's default is 8 KiB).
const READ_BUFFER: usize = 64 * 1024;

/// The ErrorResponse a server sent instead of answering SSLRequest (its 'E' already read).
async fn error_after_ssl_request(io: Io) -> Error {
    let mut parts = io.into_parts();
    let mut read_buf = bytes::BytesMut::from(&b"E"[..]);
    read_buf.extend_from_slice(&parts.read_buf);
    parts.read_buf = read_buf;
    let mut io = Framed::from_parts(parts);
    match recv(&mut io).await {
        Err(e) => e,
        Ok(other) => Error::protocol(ProtocolError::Unexpected {
            got: other.name(),
            during: "reading the answer to SSLRequest",
        }),
    }
}

/// Reads to ReadyForQuery and builds the connection.
async fn finish(
    mut io: Io,
    config: &Config,
    target: &Target,
    peer: transport::PeerAddr,
    killswitch: transport::Killswitch,
    tls: Option<TlsSetup>,
) -> Result<Connection, Error> {
    let (params, key) = read_until_ready(&mut io).await?;
    if key.is_none() {
        tracing::debug!(%target, "the server sent no BackendKeyData: queries cannot be cancelled");
    }
    let cancel = CancelToken {
        peer,
        process_id: key.as_ref().map_or(0, |k| k.0),
        secret_key: key.as_ref().map(|k| k.1.clone()),
        timeout: config.cancel_timeout,
        warm: tls.is_none() && !config.pooler_mode,
        ready_at: std::time::Instant::now(),
        tls,
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let limits = Limits {
        query: config.query_timeout,
        lock: config.lock_timeout,
    };
    let mut shared = Shared::new(
        id,
        params,
        cancel,
        killswitch,
        limits,
        config.pooler_mode,
        config.statement_cache_capacity,
    );
    shared.telemetry = crate::telemetry::Peer::new(config, target);
    shared.read_spin = io.get_ref().read_spin_counter();
    let shared = Arc::new(shared);
    let wire = Wire::new(io, shared.clone());
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
    let minor = config.max_protocol_version.minor();
    frontend::startup_with_minor(minor, &params, io.write_buffer_mut())?;
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

type Key = Option<(i32, bytes::Bytes)>;

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
                .into());
            }
        }
    }
}
