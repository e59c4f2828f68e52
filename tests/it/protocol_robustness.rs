//! A scripted server that is not quite PostgreSQL: no BackendKeyData (accepted, as
//! libpq does; cancel then says it cannot), and bytes that cannot start a message
//! (refused at once, while the socket stays open, not when the server hangs up).

use std::time::{Duration, Instant};

use pgkeel::{Connection, ErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// AuthenticationOk, then ReadyForQuery (idle): a startup without BackendKeyData.
const STARTUP_WITHOUT_KEY: &[u8] = b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I";

/// Answers the startup with `STARTUP_WITHOUT_KEY`, then each later read with `after`,
/// and keeps the socket open until the test ends.
async fn server(after: &'static [u8]) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = socket.read(&mut buf).await;
        socket.write_all(STARTUP_WITHOUT_KEY).await.unwrap();
        while socket.read(&mut buf).await.is_ok_and(|n| n > 0) {
            let _ = socket.write_all(after).await;
        }
    });
    (port, task)
}

fn url(port: u16) -> String {
    format!("postgres://u@127.0.0.1:{port}/db?sslmode=disable&connect_timeout=5")
}

#[tokio::test]
async fn a_server_without_backend_key_data_is_accepted_and_cancel_says_it_cannot() {
    let (port, task) = server(b"").await;
    let conn = Connection::connect(url(port))
        .await
        .expect("libpq accepts this server too");
    let err = conn.cancel_token().cancel_query().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(err.to_string().contains("BackendKeyData"), "{err}");
    task.abort();
}

async fn query_fails_at_once(reply: &'static [u8]) {
    let (port, task) = server(reply).await;
    let conn = Connection::connect(url(port)).await.unwrap();
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(5), conn.simple_query("SELECT 1"))
        .await
        .expect("refused at once, not when the server hangs up");
    let err = result.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    task.abort();
}

#[tokio::test]
async fn random_bytes_are_a_protocol_error_at_the_first_byte() {
    // 0x07 is no message type: nothing more needs to arrive to know it.
    query_fails_at_once(b"\x07").await;
}

#[tokio::test]
async fn an_impossible_length_for_its_type_is_a_protocol_error_at_the_header() {
    // ReadyForQuery is always 5 bytes long; 4096 cannot be one.
    query_fails_at_once(b"Z\0\0\x10\0").await;
}
