//! The blocking cancel (the path with no runtime left): bounded as a whole, and over
//! TLS negotiated as its session was (direct TLS needs ALPN `postgresql`).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::CancelToken;
use crate::config::Config;
use crate::transport::{PeerAddr, tls};

fn token(port: u16, timeout: Duration, tls: Option<tls::TlsSetup>) -> CancelToken {
    CancelToken {
        peer: PeerAddr::Tcp(([127, 0, 0, 1], port).into()),
        process_id: 1234,
        secret_key: Some(Bytes::from_static(&[1, 2, 3, 4])),
        timeout,
        tls,
        warm: false,
        ready_at: Instant::now(),
    }
}

/// Runs the blocking cancel on a thread; its result, or None if it did not end in `within`.
fn cancel_within(token: CancelToken, within: Duration) -> Option<std::io::Result<()>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || drop(tx.send(token.cancel_blocking())));
    rx.recv_timeout(within).ok()
}

#[test]
fn a_blocking_cancel_to_a_server_that_answers_a_byte_at_a_time_ends_at_the_cancel_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        // Never closes: one byte every 50 ms, each read well within any per-read limit.
        while s.write_all(b"x").is_ok() {
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let started = Instant::now();
    let result = cancel_within(
        token(port, Duration::from_millis(300), None),
        Duration::from_secs(5),
    )
    .expect("the blocking cancel must end at its deadline");
    let err = result.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// A CA file and a server configuration with a `localhost` certificate it signed.
fn server_config(alpn: bool) -> (std::path::PathBuf, Arc<rustls::ServerConfig>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "cancel CA");
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
    let ca_file = std::env::temp_dir().join(format!(
        "pgkeel-cancel-ca-{}-{alpn}.pem",
        std::process::id()
    ));
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    (ca_file, Arc::new(config))
}

/// A direct-TLS server for one cancel request: the request's bytes, if any came.
fn direct_server(alpn: bool) -> (u16, std::path::PathBuf, mpsc::Receiver<Option<Vec<u8>>>) {
    let (ca_file, config) = server_config(alpn);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut request = vec![0u8; 16];
        let got = tls.read_exact(&mut request).ok().map(|()| request);
        drop(tx.send(got));
    });
    (port, ca_file, rx)
}

fn direct_setup(port: u16, ca_file: &std::path::Path) -> tls::TlsSetup {
    let info = format!(
        "host=localhost hostaddr=127.0.0.1 port={port} sslmode=verify-full sslrootcert={} sslnegotiation=direct",
        ca_file.display()
    );
    let config: Config = info.parse().unwrap();
    let target = config.targets().unwrap().remove(0);
    tls::setup(&config, &target, config.get_ssl_mode()).unwrap()
}

#[test]
fn a_blocking_cancel_goes_by_direct_tls_with_alpn_like_its_session() {
    let (port, ca_file, got) = direct_server(true);
    let token = token(
        port,
        Duration::from_secs(3),
        Some(direct_setup(port, &ca_file)),
    );
    let result = cancel_within(token, Duration::from_secs(5)).expect("ends");
    let request = got.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        request.as_deref(),
        Some(&b"\0\0\0\x10\x04\xd2\x16\x2e\0\0\x04\xd2\x01\x02\x03\x04"[..])
    );
    result.unwrap();
}

#[test]
fn a_blocking_cancel_by_direct_tls_is_not_sent_to_a_server_that_refuses_alpn() {
    let (port, ca_file, got) = direct_server(false);
    let token = token(
        port,
        Duration::from_secs(3),
        Some(direct_setup(port, &ca_file)),
    );
    let err = cancel_within(token, Duration::from_secs(5))
        .expect("ends")
        .unwrap_err();
    assert!(err.to_string().contains("ALPN"), "{err}");
    assert_eq!(got.recv_timeout(Duration::from_secs(5)).unwrap(), None);
}
