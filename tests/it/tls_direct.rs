//! `sslnegotiation=direct` (PostgreSQL 17+): TLS from the first byte, ALPN
//! `postgresql`, against a scripted rustls server (the installed PostgreSQL is older);
//! the cancel goes the same direct way. An older real server fails with a TLS error.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use pgkeel::{Connection, ErrorKind};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// AuthenticationOk, BackendKeyData (pid 1234, key 0x01020304), ReadyForQuery.
const STARTUP: &[u8] = b"R\0\0\0\x08\0\0\0\0K\0\0\0\x0c\0\0\x04\xd2\x01\x02\x03\x04Z\0\0\0\x05I";

/// A CA file and a server configuration with a `localhost` certificate it signed.
fn server_config(alpn: bool) -> (std::path::PathBuf, Arc<rustls::ServerConfig>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "direct CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca_cert, &ca_key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(leaf.pem().as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    if alpn {
        config.alpn_protocols = vec![b"postgresql".to_vec()];
    }
    let n = std::process::id();
    let ca_file = std::env::temp_dir().join(format!("pgkeel-direct-ca-{n}-{alpn}.pem"));
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    (ca_file, Arc::new(config))
}

/// Serves one session and then one cancel request, both TLS from the first byte;
/// returns the cancel request's bytes.
async fn scripted(alpn: bool) -> (u16, std::path::PathBuf, tokio::task::JoinHandle<Vec<u8>>) {
    let (ca_file, config) = server_config(alpn);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let Ok(mut session) = acceptor.accept(tcp).await else {
            return Vec::new();
        };
        let mut startup = [0u8; 1024];
        let n = session.read(&mut startup).await.unwrap();
        assert!(
            n > 8 && startup[4..8] == *b"\0\x03\0\0",
            "a StartupMessage inside TLS"
        );
        session.write_all(STARTUP).await.unwrap();
        session.flush().await.unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        let mut cancel = acceptor.accept(tcp).await.unwrap();
        let mut request = vec![0u8; 16];
        cancel.read_exact(&mut request).await.unwrap();
        drop(cancel);
        drop(session);
        request
    });
    (port, ca_file, task)
}

fn info(port: u16, ca_file: &std::path::Path) -> String {
    format!(
        "host=localhost hostaddr=127.0.0.1 port={port} user=u dbname=db sslmode=verify-full sslrootcert={} sslnegotiation=direct connect_timeout=5",
        ca_file.display()
    )
}

#[tokio::test]
async fn direct_tls_connects_with_alpn_and_the_cancel_goes_the_same_way() {
    let (port, ca_file, server) = scripted(true).await;
    let conn = Connection::connect(info(port, &ca_file)).await.unwrap();
    assert_eq!(conn.backend_pid(), 1234);
    let token = conn.cancel_token();
    let cancel = tokio::spawn(async move { token.cancel_query().await });
    let request = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    cancel.await.unwrap().unwrap();
    assert_eq!(
        request,
        b"\0\0\0\x10\x04\xd2\x16\x2e\0\0\x04\xd2\x01\x02\x03\x04"
    );
}

#[tokio::test]
async fn a_server_that_does_not_agree_to_alpn_postgresql_is_refused_saying_so() {
    let (port, ca_file, server) = scripted(false).await;
    let err = Connection::connect(info(port, &ca_file)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(err.to_string().contains("ALPN"), "{err}");
    server.abort();
}

#[tokio::test]
async fn a_server_older_than_17_fails_direct_tls_with_a_tls_error() {
    let (db, _conn) = common::db().await;
    let cluster = db.cluster();
    let info = format!(
        "host=127.0.0.1 port={} user={} dbname={} sslmode=require sslnegotiation=direct connect_timeout=5",
        cluster.port(),
        cluster.superuser(),
        db.name()
    );
    let err = Connection::connect(info).await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Tls | ErrorKind::Io),
        "{err}"
    );
}

#[test]
fn direct_needs_a_mode_that_never_falls_back_to_plain_text() {
    let err = "host=h sslnegotiation=direct"
        .parse::<pgkeel::Config>()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("sslnegotiation=direct needs sslmode"),
        "{err}"
    );
}
