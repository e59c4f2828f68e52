//! The authentication exchange of startup: cleartext, MD5 and SCRAM-SHA-256.

use super::{recv, send};
use crate::config::{ChannelBindingMode, Config, Target, pgpass};
use crate::connection::wire::Io;
use crate::error::{Error, ErrorKind};
use crate::protocol::auth::{self, ChannelBinding, ScramSha256};
use crate::protocol::backend::Authentication;
use crate::protocol::{BackendMessage, ProtocolError, frontend};

fn auth_error(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Authentication, msg)
}

/// The password: the configured one, else the password file's line for `target`.
fn password(config: &Config, target: &Target) -> Result<Vec<u8>, Error> {
    config
        .get_password()
        .or_else(|| pgpass::lookup(config, target))
        .ok_or_else(|| {
            auth_error(
                "the server asked for a password, but none was given (set it in the URL, \
                 Config::password, PGPASSWORD with Config::from_env, or the password file)",
            )
        })
}

/// What the session's transport offers SCRAM channel binding.
pub(super) struct Channel {
    /// Whether the session runs over TLS.
    pub(super) tls: bool,
    /// The `tls-server-end-point` data, when the certificate allows it.
    pub(super) end_point: Option<Vec<u8>>,
}

/// Answers the server's authentication requests until AuthenticationOk.
///
/// With `channel_binding=require`, no password is sent in any form the server could
/// use without proving it holds the TLS certificate's key, and an AuthenticationOk that
/// did not come after channel-bound SCRAM is refused, as libpq does.
pub(super) async fn run(
    io: &mut Io,
    config: &Config,
    target: &Target,
    channel: Channel,
) -> Result<(), Error> {
    let require = config.channel_binding == ChannelBindingMode::Require;
    let mut bound = false;
    loop {
        let request = match recv(io).await? {
            BackendMessage::Authentication(a) => a,
            BackendMessage::NegotiateProtocolVersion {
                newest_minor,
                unrecognized,
            } => {
                negotiated(config, newest_minor, &unrecognized)?;
                continue;
            }
            other => {
                return Err(ProtocolError::Unexpected {
                    got: other.name(),
                    during: "authenticating",
                }
                .into());
            }
        };
        if require && !matches!(request, Authentication::Ok | Authentication::Sasl(_)) {
            return Err(auth_error(format!(
                "channel_binding=require, but the server asked for {} authentication, which cannot be channel-bound",
                request_name(&request)
            )));
        }
        match request {
            Authentication::Ok if require && !bound => {
                return Err(auth_error(
                    "channel_binding=require, but the server authenticated the client without channel binding",
                ));
            }
            Authentication::Ok => return Ok(()),
            Authentication::CleartextPassword => {
                let pw = password(config, target)?;
                send(io, |b| frontend::password(&pw, b)).await?;
            }
            Authentication::Md5Password(salt) => {
                let pw = password(config, target)?;
                let hashed = auth::md5_password(config.get_user().as_bytes(), &pw, salt);
                send(io, |b| frontend::password(hashed.as_bytes(), b)).await?;
            }
            Authentication::Sasl(mechanisms) => {
                let binding = binding(config, &channel, &mechanisms)?;
                bound = matches!(binding, ChannelBinding::TlsServerEndPoint(_));
                scram(io, config, target, binding).await?
            }
            other => {
                return Err(auth_error(format!(
                    "the server asked for {other:?} authentication, which pgkeel does not support"
                )));
            }
        }
    }
}

/// The server speaks an older minor version than the StartupMessage asked for: go on
/// with it if `min_protocol_version` allows (PostgreSQL manual, "Protocol versions").
fn negotiated(config: &Config, newest: i32, unrecognized: &[String]) -> Result<(), Error> {
    // The manual says "newest minor version"; servers send the whole version number
    // (major << 16 | minor), as libpq reads it. Take either.
    let newest_minor = if newest > 0xffff {
        newest & 0xffff
    } else {
        newest
    };
    let min = i32::from(config.min_protocol_version.minor());
    // Options we never sent, or a version not below the one asked for, are odd but
    // harmless (libpq refuses them; earlier pgkeel accepted them and still does).
    if !unrecognized.is_empty() {
        tracing::debug!(
            ?unrecognized,
            "the server does not know protocol options we did not send"
        );
    }
    if newest_minor < min {
        return Err(Error::protocol(format!(
            "the server supports protocol 3.{newest_minor} at most, and min_protocol_version is 3.{min}"
        )));
    }
    tracing::debug!(
        newest_minor,
        "the server speaks an older protocol version; going on with it"
    );
    Ok(())
}

fn request_name(request: &Authentication) -> &'static str {
    match request {
        Authentication::CleartextPassword => "cleartext password",
        Authentication::Md5Password(_) => "MD5 password",
        _ => "non-SASL",
    }
}

/// The gs2 channel binding flag for this session (RFC 5802 §6, PostgreSQL's SASL docs).
fn binding(
    config: &Config,
    channel: &Channel,
    mechanisms: &[String],
) -> Result<ChannelBinding, Error> {
    let plus_offered = mechanisms.iter().any(|m| m == auth::SCRAM_SHA_256_PLUS);
    let plain_offered = mechanisms.iter().any(|m| m == auth::SCRAM_SHA_256);
    let mode = config.channel_binding;
    if mode != ChannelBindingMode::Disable
        && plus_offered
        && let Some(hash) = &channel.end_point
    {
        return Ok(ChannelBinding::TlsServerEndPoint(hash.clone()));
    }
    if mode == ChannelBindingMode::Require {
        return Err(auth_error(match (channel.tls, plus_offered) {
            (false, _) => "channel_binding=require, but the session does not use TLS".to_owned(),
            (true, false) => "channel_binding=require, but the server does not offer SCRAM-SHA-256-PLUS".to_owned(),
            (true, true) => "channel_binding=require, but the server certificate's signature algorithm has no tls-server-end-point hash".to_owned(),
        }));
    }
    if !plain_offered {
        return Err(auth_error(format!(
            "the server offers SASL mechanisms {mechanisms:?}; pgkeel supports SCRAM-SHA-256 and SCRAM-SHA-256-PLUS"
        )));
    }
    // "y": we could bind, but the server did not offer it (a downgrade the server detects).
    match (mode, channel.tls && channel.end_point.is_some()) {
        (ChannelBindingMode::Prefer, true) => Ok(ChannelBinding::Unrequested),
        _ => Ok(ChannelBinding::Unsupported),
    }
}

async fn scram(
    io: &mut Io,
    config: &Config,
    target: &Target,
    binding: ChannelBinding,
) -> Result<(), Error> {
    let scram_err =
        |e: auth::ScramError| Error::with_source(ErrorKind::Authentication, "SCRAM-SHA-256", e);
    let mut scram = ScramSha256::new(&password(config, target)?, binding).map_err(scram_err)?;
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
            .into());
        }
    };
    // PBKDF2 with the server's iteration count (up to millions) would stall the runtime
    // thread: it runs on the blocking pool.
    let (scram, client_final) = tokio::task::spawn_blocking(move || {
        let client_final = scram.handle_server_first(&server_first);
        (scram, client_final)
    })
    .await
    .map_err(|e| {
        Error::new(
            ErrorKind::Authentication,
            format!("SCRAM key derivation failed: {e}"),
        )
    })?;
    let client_final = client_final.map_err(scram_err)?;
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
