//! Protocol 3.2 (PostgreSQL 18): asking for it, falling back to 3.0 when the server
//! answers NegotiateProtocolVersion, and the variable-length cancel key.

use crate::common;

use pgkeel::{Connection, ErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn url_with(db: &pgkeel_testkit::TestDb, params: &str) -> String {
    common::with_param(&db.url(), params)
}

#[tokio::test]
async fn asking_for_3_2_from_an_older_server_goes_on_with_what_it_offers() {
    let (db, _conn) = common::db().await;
    let conn = Connection::connect(url_with(&db, "max_protocol_version=latest"))
        .await
        .expect("the server's NegotiateProtocolVersion is accepted");
    let row = conn.query_one("SELECT 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
}

#[tokio::test]
async fn min_protocol_version_3_2_refuses_a_server_that_offers_less_saying_so() {
    let (db, _conn) = common::db().await;
    let version: i32 = _conn
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .unwrap()
        .get(0);
    if version >= 180_000 {
        eprintln!("skipped: this server speaks protocol 3.2");
        return;
    }
    let url = url_with(&db, "min_protocol_version=3.2&max_protocol_version=3.2");
    let err = Connection::connect(url).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(
        err.to_string().contains("min_protocol_version is 3.2"),
        "{err}"
    );
}

#[tokio::test]
async fn a_3_2_session_cancels_with_its_long_key() {
    let key = [0x5a_u8; 32];
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut session, _) = listener.accept().await.unwrap();
        let mut startup = [0u8; 1024];
        let n = session.read(&mut startup).await.unwrap();
        assert_eq!(&startup[4..8], b"\0\x03\0\x02", "asks for 3.2");
        assert!(n > 8);
        let mut reply = b"R\0\0\0\x08\0\0\0\0K\0\0\0\x28\0\0\x30\x39".to_vec();
        reply.extend_from_slice(&key);
        reply.extend_from_slice(b"Z\0\0\0\x05I");
        session.write_all(&reply).await.unwrap();
        let (mut cancel, _) = listener.accept().await.unwrap();
        let mut request = vec![0u8; 44];
        cancel.read_exact(&mut request).await.unwrap();
        drop(cancel);
        drop(session);
        request
    });
    let url = format!("postgres://u@127.0.0.1:{port}/db?sslmode=disable&max_protocol_version=3.2");
    let conn = Connection::connect(url).await.unwrap();
    assert_eq!(conn.backend_pid(), 12345);
    let token = conn.cancel_token();
    let cancel = tokio::spawn(async move { token.cancel_query().await });
    let request = server.await.unwrap();
    cancel.await.unwrap().unwrap();
    let mut want = b"\0\0\0\x2c\x04\xd2\x16\x2e\0\0\x30\x39".to_vec();
    want.extend_from_slice(&key);
    assert_eq!(request, want, "CancelRequest with the 32-byte key");
}

/// The server binaries of a PostgreSQL 18, from `PGKEEL_PG18_BINDIR` (`.ci/run` fetches
/// them); None, with a message, when it is not set.
fn pg18() -> Option<pgkeel_testkit::Cluster> {
    let Some(dir) = std::env::var_os("PGKEEL_PG18_BINDIR").filter(|d| !d.is_empty()) else {
        eprintln!("skipped: PGKEEL_PG18_BINDIR is not set (no PostgreSQL 18 binaries)");
        return None;
    };
    let cluster = pgkeel_testkit::ClusterBuilder::new()
        .bindir(dir)
        .start()
        .expect("start a PostgreSQL 18 cluster");
    Some(cluster)
}

/// Against a real PostgreSQL 18: a session that insists on 3.2 is granted it (with a
/// server that answered with an older version, `min_protocol_version=3.2` would fail),
/// a cancel with its long key stops a running query (a wrong key would be ignored), and a
/// 3.0 session still works there.
#[tokio::test]
async fn a_real_postgresql_18_grants_3_2_and_cancels_with_the_long_key() {
    let Some(cluster) = pg18() else { return };
    let url = cluster.url(cluster.superuser(), "postgres");
    let only_3_2 = common::with_param(&url, "min_protocol_version=3.2&max_protocol_version=3.2");
    let conn = Connection::connect(only_3_2).await.unwrap();
    let version: i32 = conn
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .unwrap()
        .get(0);
    assert!(version >= 180_000, "{version}");
    let token = conn.cancel_token();
    let slow = {
        let conn = conn.clone();
        tokio::spawn(async move { conn.query_one("SELECT pg_sleep(30)", &[]).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    token.cancel_query().await.unwrap();
    let err = tokio::time::timeout(std::time::Duration::from_secs(5), slow)
        .await
        .expect("the cancel stopped the query")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), Some("57014"), "{err}");
    conn.query_one("SELECT 1", &[]).await.unwrap();
    let latest = common::with_param(&url, "max_protocol_version=latest");
    Connection::connect(latest).await.unwrap();
    let old = Connection::connect(common::with_param(&url, "max_protocol_version=3.0"))
        .await
        .unwrap();
    old.query_one("SELECT 1", &[]).await.unwrap();
}
