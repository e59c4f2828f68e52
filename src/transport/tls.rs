//! TLS over the TCP socket: the SSLRequest answer, then a rustls handshake (ring
//! provider) checked as libpq's `sslmode` says. PostgreSQL manual, "SSL Session
//! Encryption" and libpq's "SSL Support" (the table of what each mode protects).

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::spin::Spin;

use crate::config::{Config, Host, SslMode, SslRootCert, Target, TlsVersion, env};
use crate::error::{Error, ErrorKind};
use crate::protocol::{auth, frontend};
use crate::transport::blocking::{Bounded, Deadline, deadline_error, send_and_wait_close};

/// What a TLS handshake with one target needs; kept by the cancel token so a
/// CancelRequest travels the same way as its session.
#[derive(Clone)]
pub(crate) struct TlsSetup {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    /// `sslnegotiation=direct`: the handshake starts at once, no SSLRequest.
    direct: bool,
}

impl PartialEq for TlsSetup {
    fn eq(&self, other: &TlsSetup) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
            && self.name == other.name
            && self.direct == other.direct
    }
}

impl Eq for TlsSetup {}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// How the server answered SSLRequest.
pub(crate) enum Negotiated {
    /// 'S', and the handshake succeeded.
    Tls(Box<TlsStream<Spin<TcpStream>>>),
    /// 'N': the server does not do TLS; the socket goes on in plain text.
    Plain(Spin<TcpStream>),
    /// 'E': an ErrorResponse follows (its first byte already read).
    ErrorFollows(Spin<TcpStream>),
}

/// The ALPN protocol name of PostgreSQL.
const ALPN: &[u8] = b"postgresql";

fn tls_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Tls, message)
}

/// The rustls configuration and server name for `target` under `mode`.
///
/// # Errors
/// [`ErrorKind::Tls`] when a certificate or key file cannot be used, or a verifying mode
/// has no root certificate.
pub(crate) fn setup(config: &Config, target: &Target, mode: SslMode) -> Result<TlsSetup, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = versions(config);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| Error::with_source(ErrorKind::Tls, "TLS versions", e))?;
    let verifier = Verifier::new(config, mode, provider)?;
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut tls = match client_cert(config)? {
        Some((certs, key)) => builder.with_client_auth_cert(certs, key).map_err(|e| {
            Error::with_source(ErrorKind::Tls, "the client certificate (sslcert/sslkey)", e)
        })?,
        None => builder.with_no_client_auth(),
    };
    tls.enable_sni = config.ssl_sni;
    if config.ssl_direct {
        tls.alpn_protocols = vec![ALPN.to_vec()];
    }
    let name = match &target.host {
        Host::Tcp(name) => ServerName::try_from(name.clone())
            .map_err(|_| tls_error(format!("{name:?} is not a valid TLS server name")))?,
        Host::Unix(_) => return Err(tls_error("TLS is not used over Unix sockets")),
    };
    Ok(TlsSetup {
        config: Arc::new(tls),
        name,
        direct: config.ssl_direct,
    })
}

fn versions(config: &Config) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let max = config.ssl_max_protocol_version.unwrap_or(TlsVersion::Tls13);
    [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| *v >= config.ssl_min_protocol_version && *v <= max)
    .map(|(_, v)| v)
    .collect()
}

/// Sends SSLRequest on `tcp` and acts on the one-byte answer.
///
/// # Errors
/// [`ErrorKind::Tls`] when the handshake fails (the message says why: unknown issuer,
/// expired, wrong name...); [`ErrorKind::Protocol`] for an answer that is not S, N or E.
pub(crate) async fn negotiate(
    mut tcp: Spin<TcpStream>,
    setup: &TlsSetup,
) -> Result<Negotiated, Error> {
    if setup.direct {
        return handshake(tcp, setup).await;
    }
    let mut buf = BytesMut::with_capacity(8);
    frontend::ssl_request(&mut buf);
    tcp.write_all(&buf).await?;
    // Exactly one byte: anything the server sent after it must go through rustls.
    let mut answer = [0u8; 1];
    if tcp.read(&mut answer).await? == 0 {
        return Err(Error::new(
            ErrorKind::Closed,
            "the server closed the connection in answer to SSLRequest",
        ));
    }
    match answer[0] {
        b'S' => handshake(tcp, setup).await,
        b'N' => Ok(Negotiated::Plain(tcp)),
        b'E' => Ok(Negotiated::ErrorFollows(tcp)),
        other => Err(Error::protocol(format!(
            "the server answered SSLRequest with byte {other:#04x}, not 'S', 'N' or 'E'"
        ))),
    }
}

/// The TLS handshake; with direct negotiation the server must agree to ALPN `postgresql`
/// (PostgreSQL manual, "Direct SSL/TLS").
async fn handshake(tcp: Spin<TcpStream>, setup: &TlsSetup) -> Result<Negotiated, Error> {
    let connector = tokio_rustls::TlsConnector::from(setup.config.clone());
    let tls = connector
        .connect(setup.name.clone(), tcp)
        .await
        .map_err(|e| Error::with_source(ErrorKind::Tls, "TLS handshake failed", e))?;
    if setup.direct && tls.get_ref().1.alpn_protocol() != Some(ALPN) {
        return Err(tls_error(
            "sslnegotiation=direct: the server did not agree to ALPN \"postgresql\"",
        ));
    }
    Ok(Negotiated::Tls(Box::new(tls)))
}

/// The channel binding data of the session (`tls-server-end-point`), if the server
/// certificate's signature algorithm allows it.
pub(crate) fn end_point(stream: &TlsStream<Spin<TcpStream>>) -> Option<Vec<u8>> {
    let cert = stream.get_ref().1.peer_certificates()?.first()?;
    auth::tls_server_end_point(cert.as_ref())
}

/// Sends a CancelRequest inside TLS with blocking calls (for a drop path without a
/// runtime), negotiated as the session was: SSLRequest first, or direct TLS whose
/// server must agree to ALPN `postgresql`. Every step is bounded by `deadline`.
pub(crate) fn cancel_blocking(
    mut tcp: std::net::TcpStream,
    setup: &TlsSetup,
    request: &[u8],
    deadline: &Deadline,
) -> io::Result<()> {
    use std::io::{Read, Write};
    if !setup.direct {
        let mut buf = BytesMut::with_capacity(8);
        frontend::ssl_request(&mut buf);
        tcp.bound(deadline)?;
        tcp.write_all(&buf).map_err(deadline_error)?;
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer).map_err(deadline_error)?;
        if answer[0] != b'S' {
            return Err(io::Error::other(
                "the server refused TLS for the cancel request",
            ));
        }
    }
    let conn = rustls::ClientConnection::new(setup.config.clone(), setup.name.clone())
        .map_err(io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.sock.bound(deadline)?;
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(deadline_error)?;
    }
    if setup.direct && tls.conn.alpn_protocol() != Some(ALPN) {
        return Err(io::Error::other(
            "sslnegotiation=direct: the server did not agree to ALPN \"postgresql\" for the cancel request",
        ));
    }
    send_and_wait_close(&mut tls, |t| t.sock.bound(deadline), request)
}

/// libpq's checks: chain and name for verify-full, chain for verify-ca (and for the
/// weaker modes when a root certificate is at hand), nothing otherwise.
#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl Verifier {
    fn new(
        config: &Config,
        mode: SslMode,
        provider: Arc<CryptoProvider>,
    ) -> Result<Verifier, Error> {
        let verifying = matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull);
        let roots = match env::root_cert(config) {
            Some(root) => Some(load_roots(&root)?),
            None if verifying => {
                return Err(tls_error(format!(
                    "sslmode={} needs a root certificate: set sslrootcert to a CA file, use \
                     sslrootcert=system for the platform's trusted roots, or create \
                     ~/.postgresql/root.crt",
                    if mode == SslMode::VerifyCa {
                        "verify-ca"
                    } else {
                        "verify-full"
                    }
                )));
            }
            None => None,
        };
        let webpki = roots
            .map(|roots| {
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| Error::with_source(ErrorKind::Tls, "the root certificates", e))
            })
            .transpose()?;
        Ok(Verifier {
            webpki,
            check_name: mode == SslMode::VerifyFull,
            provider,
        })
    }
}

fn load_roots(root: &SslRootCert) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    match root {
        SslRootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
        }
        SslRootCert::File(path) => {
            let certs = read_certs(path, "sslrootcert")?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(tls_error(format!(
                    "sslrootcert {} holds no usable certificate",
                    path.display()
                )));
            }
        }
    }
    Ok(store)
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| {
        Error::with_source(
            ErrorKind::Tls,
            format!("cannot read {what} {}", path.display()),
            e,
        )
    })?;
    iter.collect::<Result<_, _>>().map_err(|e| {
        Error::with_source(
            ErrorKind::Tls,
            format!("cannot parse {what} {}", path.display()),
            e,
        )
    })
}

type ClientCert = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The client certificate and key: as set, else `~/.postgresql/postgresql.{crt,key}`.
fn client_cert(config: &Config) -> Result<Option<ClientCert>, Error> {
    let Some(cert) = config
        .ssl_cert
        .clone()
        .or_else(|| env::default_ssl_file("postgresql.crt"))
    else {
        return Ok(None);
    };
    let key = config
        .ssl_key
        .clone()
        .or_else(|| env::default_ssl_file("postgresql.key"))
        .ok_or_else(|| tls_error(format!("sslcert {} is set but no sslkey", cert.display())))?;
    check_key_permissions(&key)?;
    let certs = read_certs(&cert, "sslcert")?;
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| {
        Error::with_source(
            ErrorKind::Tls,
            format!("cannot read sslkey {}", key.display()),
            e,
        )
    })?;
    Ok(Some((certs, key)))
}

/// libpq's rule: the key must be u=rw (0600) or less, or u=rw,g=r (0640) owned by root.
fn check_key_permissions(key: &Path) -> Result<(), Error> {
    let meta = fs::metadata(key).map_err(|e| {
        Error::with_source(
            ErrorKind::Tls,
            format!("cannot read sslkey {}", key.display()),
            e,
        )
    })?;
    let mode = meta.permissions().mode();
    let ok = mode & 0o077 == 0 || (meta.uid() == 0 && mode & 0o037 == 0);
    match ok {
        true => Ok(()),
        false => Err(tls_error(format!(
            "private key file {} has group or world access; permissions should be u=rw (0600) or less",
            key.display()
        ))),
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            // The chain was good (webpki checks it first); verify-ca does not ask for the name.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
