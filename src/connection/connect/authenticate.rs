//! The authentication exchange of startup: cleartext, MD5 and SCRAM-SHA-256.

use super::{recv, send};
use crate::config::{pgpass, Config, Target};
use crate::connection::wire::Io;
use crate::error::{Error, ErrorKind};
use crate::protocol::auth::{self, ChannelBinding, ScramSha256};
use crate::protocol::backend::Authentication;
use crate::protocol::{frontend, BackendMessage, ProtocolError};

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

/// Answers the server's authentication requests until AuthenticationOk.
pub(super) async fn run(io: &mut Io, config: &Config, target: &Target) -> Result<(), Error> {
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
                let pw = password(config, target)?;
                send(io, |b| frontend::password(&pw, b)).await?;
            }
            Authentication::Md5Password(salt) => {
                let pw = password(config, target)?;
                let hashed = auth::md5_password(config.get_user().as_bytes(), &pw, salt);
                send(io, |b| frontend::password(hashed.as_bytes(), b)).await?;
            }
            Authentication::Sasl(mechanisms) => scram(io, config, target, &mechanisms).await?,
            other => {
                return Err(auth_error(format!(
                    "the server asked for {other:?} authentication, which pgkeel does not support"
                )))
            }
        }
    }
}

async fn scram(
    io: &mut Io,
    config: &Config,
    target: &Target,
    mechanisms: &[String],
) -> Result<(), Error> {
    if !mechanisms.iter().any(|m| m == auth::SCRAM_SHA_256) {
        return Err(auth_error(format!(
            "the server offers SASL mechanisms {mechanisms:?}; pgkeel supports SCRAM-SHA-256"
        )));
    }
    let scram_err =
        |e: auth::ScramError| Error::with_source(ErrorKind::Authentication, "SCRAM-SHA-256", e);
    let mut scram = ScramSha256::new(&password(config, target)?, ChannelBinding::Unsupported)
        .map_err(scram_err)?;
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
