//! TLS against throwaway clusters with `ssl=on` and certificates made at run time: every
//! sslmode, channel binding, client certificates, the cancel over TLS, and failures
//! that say why (wrong name, unknown CA, expired certificate, a server without TLS).

use crate::common;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use futures::StreamExt;
use pgkeel::{BinaryCopyInWriter, BinaryCopyOutStream, Connection, ErrorKind, Type};
use pgkeel_testkit::{AuthMethod, Cluster};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

pub(crate) const PASSWORD: &str = "tls-s3cret";

/// A CA: its certificate (PEM) and what signs with it.
pub(crate) struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    Ca {
        cert: params.self_signed(&key).unwrap(),
        key,
    }
}

/// A certificate for `names` (or, with no names, for CN `cn` only) signed by `ca`.
fn leaf(ca: &Ca, names: &[&str], cn: &str, expired: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A file in a temp dir of this test binary, mode 0600.
fn temp_file(name: &str, contents: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("pgkeel-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// pg_hba lines: `tls_only` must use TLS, `plain_only` must not, `cert_user` shows a
/// client certificate; everyone else as the test kit says.
const HBA: &str = "\
hostssl all tls_only 127.0.0.1/32 scram-sha-256
host all tls_only 127.0.0.1/32 reject
hostnossl all plain_only 127.0.0.1/32 trust
host all plain_only 127.0.0.1/32 reject
hostssl all cert_user 127.0.0.1/32 cert
";

/// A cluster with TLS on (shared with `faults_paths`, which puts a proxy in front).
pub(crate) struct TlsServer {
    pub(crate) cluster: Cluster,
    pub(crate) ca_file: PathBuf,
}

/// Starts a cluster serving `cert`/`key`, trusting `ca` for client certificates.
fn tls_cluster(ca: &Ca, cert: &(String, String)) -> TlsServer {
    let cluster = Cluster::start().expect("start a cluster");
    let crt = cluster
        .install_file("server.crt", cert.0.as_bytes())
        .unwrap();
    let key = cluster
        .install_file("server.key", cert.1.as_bytes())
        .unwrap();
    let ca_pem = ca.cert.pem();
    let root = cluster.install_file("root.crt", ca_pem.as_bytes()).unwrap();
    let sql = format!(
        "ALTER SYSTEM SET ssl_cert_file = '{}';\nALTER SYSTEM SET ssl_key_file = '{}';\n\
         ALTER SYSTEM SET ssl_ca_file = '{}';\nALTER SYSTEM SET ssl = on;\n",
        crt.display(),
        key.display(),
        root.display()
    );
    cluster.psql("postgres", &sql).unwrap();
    cluster.prepend_hba(HBA).unwrap();
    for role in ["tls_only", "plain_only"] {
        cluster
            .create_role(role, PASSWORD, AuthMethod::ScramSha256)
            .unwrap();
    }
    cluster
        .psql("postgres", "CREATE ROLE cert_user LOGIN")
        .unwrap();
    let ca_file = temp_file(&format!("ca-{}.pem", cluster.port()), &ca_pem);
    TlsServer { cluster, ca_file }
}

/// The good server: a certificate for `localhost`; role `tls_only` must use TLS.
pub(crate) fn server() -> &'static (TlsServer, Ca) {
    static SERVER: OnceLock<(TlsServer, Ca)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let ca = ca("pgkeel test CA");
        let server = tls_cluster(&ca, &leaf(&ca, &["localhost"], "localhost", false));
        (server, ca)
    })
}

fn conninfo(server: &TlsServer, user: &str, extra: &str) -> String {
    format!(
        "host=localhost hostaddr=127.0.0.1 port={} user={user} password={PASSWORD} dbname=postgres connect_timeout=5 {extra}",
        server.cluster.port()
    )
}

async fn uses_tls(conn: &Connection) -> bool {
    let row = conn
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    row.get(0)
}

async fn connect(info: &str) -> Connection {
    Connection::connect(info)
        .await
        .unwrap_or_else(|e| panic!("{info}: {e}"))
}

async fn tls_error(info: &str) -> String {
    let err = Connection::connect(info).await.expect_err(info);
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    err.to_string()
}

#[tokio::test]
async fn verify_full_with_the_right_ca_and_name_connects_with_channel_binding_required() {
    let (server, _) = server();
    let ca = server.ca_file.display();
    let info = conninfo(
        server,
        "tls_only",
        &format!("sslmode=verify-full sslrootcert={ca} channel_binding=require"),
    );
    let conn = connect(&info).await;
    assert!(uses_tls(&conn).await);
}

#[tokio::test]
async fn require_without_a_root_certificate_does_not_verify_as_libpq() {
    let (server, _) = server();
    let conn = connect(&conninfo(server, "tls_only", "sslmode=require")).await;
    assert!(uses_tls(&conn).await);
}

#[tokio::test]
async fn prefer_really_uses_tls_when_the_server_offers_it() {
    let (server, _) = server();
    let conn = connect(&conninfo(server, "tls_only", "")).await;
    assert!(uses_tls(&conn).await, "sslmode=prefer is the default");
}

#[tokio::test]
async fn prefer_starts_over_without_tls_when_the_server_refuses_the_tls_session() {
    let (server, _) = server();
    let conn = connect(&conninfo(server, "plain_only", "sslmode=prefer")).await;
    assert!(!uses_tls(&conn).await);
}

#[tokio::test]
async fn allow_tries_tls_after_the_server_refuses_a_plain_session() {
    let (server, _) = server();
    let conn = connect(&conninfo(server, "tls_only", "sslmode=allow")).await;
    assert!(uses_tls(&conn).await);
    let plain = connect(&conninfo(server, "plain_only", "sslmode=allow")).await;
    assert!(!uses_tls(&plain).await);
}

#[tokio::test]
async fn disable_never_uses_tls() {
    let (server, _) = server();
    let err = Connection::connect(conninfo(server, "tls_only", "sslmode=disable"))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some("28000"),
        "pg_hba rejects tls_only without TLS: {err}"
    );
}

#[tokio::test]
async fn verify_ca_accepts_a_wrong_host_name_and_verify_full_refuses_it_saying_so() {
    let (server, _) = server();
    let ca = server.ca_file.display();
    let port = server.cluster.port();
    let base = format!(
        "host=127.0.0.1 port={port} user=tls_only password={PASSWORD} dbname=postgres sslrootcert={ca}"
    );
    let conn = connect(&format!("{base} sslmode=verify-ca")).await;
    assert!(uses_tls(&conn).await);
    let msg = tls_error(&format!("{base} sslmode=verify-full")).await;
    assert!(
        msg.contains("not valid for name") && msg.contains("127.0.0.1"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_refused_as_unknown_issuer() {
    let (server, _) = server();
    let other = ca("some other CA");
    let other_file = temp_file("other-ca.pem", &other.cert.pem());
    for mode in ["verify-ca", "verify-full", "require"] {
        let info = conninfo(
            server,
            "tls_only",
            &format!("sslmode={mode} sslrootcert={}", other_file.display()),
        );
        let msg = tls_error(&info).await;
        assert!(msg.contains("UnknownIssuer"), "{mode}: {msg}");
    }
}

#[tokio::test]
async fn verify_full_without_a_root_certificate_says_what_to_provide() {
    let (server, _) = server();
    let msg = tls_error(&conninfo(server, "tls_only", "sslmode=verify-full")).await;
    assert!(
        msg.contains("root certificate") && msg.contains("sslrootcert"),
        "{msg}"
    );
}

#[tokio::test]
async fn an_expired_server_certificate_is_refused_as_expired() {
    let ca = ca("pgkeel expiry CA");
    let server = tls_cluster(&ca, &leaf(&ca, &["localhost"], "localhost", true));
    let info = conninfo(
        &server,
        "tls_only",
        &format!(
            "sslmode=verify-full sslrootcert={}",
            server.ca_file.display()
        ),
    );
    let msg = tls_error(&info).await;
    assert!(msg.contains("expired"), "{msg}");
}

#[tokio::test]
async fn a_server_without_tls_fails_require_and_serves_prefer_in_plain_text() {
    let (db, _conn) = common::db().await;
    let cluster = db.cluster();
    let base = format!(
        "host=127.0.0.1 port={} user={} dbname={}",
        cluster.port(),
        cluster.superuser(),
        db.name()
    );
    let msg = tls_error(&format!("{base} sslmode=require")).await;
    assert!(msg.contains("does not support TLS"), "{msg}");
    let conn = connect(&format!("{base} sslmode=prefer")).await;
    assert!(!uses_tls(&conn).await);
}

#[tokio::test]
async fn channel_binding_require_without_tls_is_refused_before_any_password_is_sent() {
    let (server, _) = server();
    let err = Connection::connect(conninfo(
        server,
        "plain_only",
        "sslmode=disable channel_binding=require",
    ))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    assert!(err.to_string().contains("channel_binding=require"), "{err}");
}

#[tokio::test]
async fn channel_binding_disable_still_authenticates_over_tls() {
    let (server, _) = server();
    let conn = connect(&conninfo(
        server,
        "tls_only",
        "sslmode=require channel_binding=disable",
    ))
    .await;
    assert!(uses_tls(&conn).await);
}

#[tokio::test]
async fn a_client_certificate_authenticates_with_pg_hba_cert() {
    let (server, ca) = server();
    let (cert, key) = leaf(ca, &[], "cert_user", false);
    let cert_file = temp_file("client.crt", &cert);
    let key_file = temp_file("client.key", &key);
    let info = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=cert_user dbname=postgres sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
        server.cluster.port(),
        server.ca_file.display(),
        cert_file.display(),
        key_file.display()
    );
    let conn = connect(&info).await;
    assert!(uses_tls(&conn).await);
}

#[tokio::test]
async fn a_query_on_a_tls_session_is_cancelled_over_tls() {
    let (server, _) = server();
    let conn = connect(&conninfo(server, "tls_only", "sslmode=require")).await;
    let token = conn.cancel_token();
    let sleeper = tokio::spawn(async move { conn.execute("SELECT pg_sleep(30)", &[]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    token
        .cancel_query()
        .await
        .expect("the cancel is delivered over TLS");
    let err = tokio::time::timeout(Duration::from_secs(5), sleeper)
        .await
        .expect("the query stops")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), Some("57014"), "{err}");
}

/// Calls of 16 tasks share one TLS connection through its pipeline, under random
/// client timeouts: each answered call gets its own row, writes carry several calls,
/// and the connection serves again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_calls_over_tls_each_get_their_own_rows() {
    let (server, _) = server();
    let conn = connect(&conninfo(server, "tls_only", "sslmode=require")).await;
    assert!(uses_tls(&conn).await);
    let sql = "SELECT $1::int8, repeat('z', $2::int4)";
    conn.query(sql, &[&0i64, &1i32]).await.unwrap(); // prepared: later calls pipeline
    let tasks: Vec<_> = (0..16i64)
        .map(|task| {
            let conn = conn.clone();
            tokio::spawn(async move {
                for i in 0..150i64 {
                    let n = task * 1_000_000 + i;
                    let len = (n % 3000) as i32; // some answers span TLS records
                    let limit =
                        std::time::Duration::from_micros(((n * 7919) % 40_000) as u64 + 500);
                    let params: [&(dyn pgkeel::ToSql + Sync); 2] = [&n, &len];
                    let call = conn.query_one(sql, &params);
                    if let Ok(r) = tokio::time::timeout(limit, call).await {
                        let row = r.unwrap_or_else(|e| panic!("task {task} call {i}: {e}"));
                        assert_eq!(row.get::<_, i64>(0), n, "task {task} got another's row");
                        assert_eq!(row.get::<_, String>(1).len(), len as usize);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("a task panicked");
    }
    let counts = conn.pipeline_counts();
    assert!(counts.writes < counts.calls, "{counts:?}");
    let n: i64 = conn.query_one(sql, &[&7i64, &0i32]).await.unwrap().get(0);
    assert_eq!(n, 7);
}

/// The length of row `id`'s text in [`binary_copy_both_ways_over_tls`]: mostly short,
/// now and then longer than a TLS record (16 KiB).
fn tls_copy_len(id: i64) -> usize {
    (id % 97) as usize + if id % 20_000 == 7 { 40_000 } else { 0 }
}

/// A binary COPY both ways over TLS: 200,000 rows, some longer than a TLS record, go in
/// and come back out equal (COPY OUT takes whole CopyData messages from
/// whatever the TLS layer has decrypted so far), and a COPY OUT dropped part-way leaves
/// the connection usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_copy_both_ways_over_tls() {
    let (server, _) = server();
    let conn = connect(&conninfo(server, "tls_only", "sslmode=require")).await;
    assert!(uses_tls(&conn).await);
    conn.batch_execute("CREATE TEMP TABLE tls_copy (id int8, body text)")
        .await
        .unwrap();
    let types = [Type::INT8, Type::TEXT];
    let n = 200_000i64;
    let sink = conn
        .copy_in("COPY tls_copy (id, body) FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    let mut w = BinaryCopyInWriter::new(sink, &types);
    for id in 0..n {
        let body = "t".repeat(tls_copy_len(id));
        w.write(&[&id, &body]).await.unwrap();
    }
    assert_eq!(w.finish().await.unwrap(), n as u64);

    let out_sql = "COPY tls_copy (id, body) TO STDOUT (FORMAT binary)";
    let mut rows = BinaryCopyOutStream::new(conn.copy_out(out_sql).await.unwrap(), &types);
    // Rows come in the table's physical order, which COPY FROM need not keep (it fills
    // free space first): every id must come exactly once, with its own text.
    let mut seen = vec![false; n as usize];
    while let Some(row) = rows.next().await {
        let row = row.unwrap();
        let (id, body): (i64, String) = (row.get(0), row.get(1));
        assert!(
            !std::mem::replace(&mut seen[id as usize], true),
            "row {id} twice"
        );
        assert_eq!(body.len(), tls_copy_len(id), "row {id}");
    }
    assert!(seen.iter().all(|s| *s), "a row was lost");

    let mut rows = BinaryCopyOutStream::new(conn.copy_out(out_sql).await.unwrap(), &types);
    for _ in 0..25_000 {
        rows.next().await.unwrap().unwrap();
    }
    drop(rows);
    let count: i64 = conn
        .query_one("SELECT count(*) FROM tls_copy", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, n);
    assert!(!conn.is_broken());
}

/// A large result streamed over TLS arrives whole while the reads under the TLS session
/// spin; with `read_spin_us=0` they never do.
#[tokio::test]
async fn a_stream_over_tls_spins_under_the_session_and_arrives_whole() {
    let (server, _) = server();
    let conn = connect(&conninfo(server, "tls_only", "sslmode=require")).await;
    assert!(uses_tls(&conn).await);
    let mut spins = conn.read_spin_counts();
    for _ in 0..5 {
        crate::streams::stream_wide_rows(&conn, 200_000).await;
        spins = conn.read_spin_counts();
        if spins.hits + spins.misses > 0 {
            break;
        }
    }
    assert!(spins.hits + spins.misses > 0, "{spins:?}");
    let off = connect(&conninfo(
        server,
        "tls_only",
        "sslmode=require read_spin_us=0",
    ))
    .await;
    crate::streams::stream_wide_rows(&off, 200_000).await;
    assert_eq!(off.read_spin_counts(), pgkeel::ReadSpinCounts::default());
}
