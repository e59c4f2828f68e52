//! Opening sessions: URL, key=value string, `Config` builder, Unix socket, host lists,
//! `connect_timeout`, startup errors, and what a session reports about itself; `close()`.

use crate::common;

use std::time::{Duration, Instant};

use pgkeel::{Config, Connection, ErrorKind, TimeoutKind};
use pgkeel_testkit::TestDb;

/// `(current_database, current_user, client address is NULL)` as the server sees them.
async fn whoami(conn: &Connection) -> (String, String, bool) {
    let row = conn
        .query_one(
            "SELECT current_database()::text, current_user::text, inet_client_addr() IS NULL",
            &[],
        )
        .await
        .expect("whoami");
    (row.get(0), row.get(1), row.get(2))
}

/// Checks that `conn` is a TCP session to `db` as the superuser.
async fn assert_tcp_session_to(conn: &Connection, db: &TestDb) {
    let (dbname, user, unix) = whoami(conn).await;
    assert_eq!(dbname, db.name());
    assert_eq!(user, db.cluster().superuser());
    assert!(!unix, "expected a TCP session");
}

#[tokio::test]
async fn connects_by_url_over_tcp() {
    let (db, _conn) = common::db().await;
    let conn = Connection::connect(db.url()).await.unwrap();
    assert_tcp_session_to(&conn, &db).await;
    let port: i32 = conn
        .query_one("SELECT inet_server_port()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(port, i32::from(db.cluster().port()));
}

#[tokio::test]
async fn connects_by_url_with_the_postgresql_scheme_and_application_name() {
    let (db, _conn) = common::db().await;
    let url = db.url().replacen("postgres://", "postgresql://", 1);
    let conn = Connection::connect(common::with_param(&url, "application_name=pgkeel%20url"))
        .await
        .unwrap();
    assert_tcp_session_to(&conn, &db).await;
    let app: String = conn
        .query_one("SELECT current_setting('application_name')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(app, "pgkeel url");
}

#[tokio::test]
async fn connects_by_key_value_string() {
    let (db, _conn) = common::db().await;
    let cluster = db.cluster();
    let conninfo = format!(
        "host={} port={} user={} dbname='{}' application_name='key value app'",
        cluster.host(),
        cluster.port(),
        cluster.superuser(),
        db.name()
    );
    let conn = Connection::connect(&conninfo).await.unwrap();
    assert_tcp_session_to(&conn, &db).await;
    let app: String = conn
        .query_one("SELECT current_setting('application_name')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(app, "key value app");
}

#[tokio::test]
async fn connects_by_config_builder() {
    let (db, _conn) = common::db().await;
    let cluster = db.cluster();
    let mut config = Config::new();
    config
        .host(cluster.host())
        .port(cluster.port())
        .user(cluster.superuser())
        .dbname(db.name())
        .application_name("builder app")
        .options("-c search_path=builder_schema");
    let conn = Connection::connect(&config).await.unwrap();
    assert_tcp_session_to(&conn, &db).await;
    let row = conn
        .query_one(
            "SELECT current_setting('application_name'), current_setting('search_path')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "builder app");
    assert_eq!(row.get::<_, String>(1), "builder_schema");
    // The same Config connects again: it is a value, not consumed.
    let again = Connection::connect(config).await.unwrap();
    assert_ne!(again.backend_pid(), conn.backend_pid());
}

#[tokio::test]
async fn connects_over_the_unix_socket() {
    let (db, _conn) = common::db().await;
    let Some(dir) = db.cluster().socket_dir() else {
        eprintln!("skipped: an external server has no known Unix socket");
        return;
    };
    let mut config = Config::new();
    config
        .host_path(dir)
        .port(db.cluster().port())
        .user("postgres")
        .dbname(db.name());
    let conn = Connection::connect(&config).await.unwrap();
    let (dbname, user, unix) = whoami(&conn).await;
    assert_eq!(dbname, db.name());
    assert_eq!(user, "postgres");
    assert!(unix, "a Unix-socket session has no client address");
    // The URL form: a percent-encoded directory as the host.
    let encoded: String = dir
        .to_str()
        .unwrap()
        .bytes()
        .map(|b| match b {
            b'/' => "%2F".to_string(),
            b => char::from(b).to_string(),
        })
        .collect();
    let url = format!(
        "postgres://postgres@{encoded}:{}/{}",
        db.cluster().port(),
        db.name()
    );
    let conn = Connection::connect(url).await.unwrap();
    assert!(whoami(&conn).await.2, "the URL form uses the socket too");
}

#[tokio::test]
async fn a_query_dropped_on_a_unix_socket_session_is_cancelled_too() {
    let (db, _conn) = common::db().await;
    let Some(dir) = db.cluster().socket_dir() else {
        eprintln!("skipped: an external server has no known Unix socket");
        return;
    };
    let watcher = common::connect(&db).await;
    let mut config = Config::new();
    config
        .host_path(dir)
        .port(db.cluster().port())
        .user("postgres")
        .dbname(db.name());
    let conn = Connection::connect(&config).await.unwrap();
    let dropped = tokio::time::timeout(
        Duration::from_millis(50),
        conn.query("SELECT pg_sleep(5) /* unix_cancel */", &[]),
    )
    .await;
    assert!(dropped.is_err());
    assert!(conn.is_broken());
    common::wait_query_gone(&watcher, "unix_cancel", Duration::from_secs(1))
        .await
        .expect("the CancelRequest goes over the Unix socket too");
}

#[tokio::test]
async fn a_url_with_two_hosts_skips_the_one_that_refuses() {
    let (db, _conn) = common::db().await;
    let cluster = db.cluster();
    let url = format!(
        "postgres://{}@127.0.0.1:1,{}:{}/{}",
        cluster.superuser(),
        cluster.host(),
        cluster.port(),
        db.name()
    );
    let conn = Connection::connect(url)
        .await
        .expect("the second host works");
    assert_tcp_session_to(&conn, &db).await;
}

#[tokio::test]
async fn when_every_host_refuses_the_error_is_io() {
    let url = "postgres://postgres@127.0.0.1:1,127.0.0.1:1/db";
    let err = Connection::connect(url).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert_eq!(err.code(), None);
}

/// A TCP listener that accepts connections and never says a word.
async fn silent_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

#[tokio::test]
async fn connect_timeout_is_honoured_against_a_server_that_never_answers() {
    let (port, server) = silent_server().await;
    let url = format!("postgres://postgres@127.0.0.1:{port}/db?connect_timeout=1");
    let started = Instant::now();
    let err = Connection::connect(url).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(
        err.kind(),
        ErrorKind::Timeout(TimeoutKind::Connect),
        "{err}"
    );
    assert_eq!(err.timeout_kind(), Some(TimeoutKind::Connect));
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(1500),
        "connect_timeout=1 took {took:?}"
    );
    server.abort();
}

#[tokio::test]
async fn connect_timeout_applies_per_host_so_a_silent_first_host_falls_through() {
    let (db, _conn) = common::db().await;
    let (silent, server) = silent_server().await;
    let cluster = db.cluster();
    let url = format!(
        "postgres://{}@127.0.0.1:{silent},{}:{}/{}?connect_timeout=1",
        cluster.superuser(),
        cluster.host(),
        cluster.port(),
        db.name()
    );
    let started = Instant::now();
    let conn = Connection::connect(url)
        .await
        .expect("the second host works");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_tcp_session_to(&conn, &db).await;
    server.abort();
}

#[tokio::test]
async fn connect_timeout_set_through_config_builder_is_honoured() {
    let (port, server) = silent_server().await;
    let mut config = Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname("db")
        .connect_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = Connection::connect(&config).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.timeout_kind(), Some(TimeoutKind::Connect), "{err}");
    assert!(
        took >= Duration::from_millis(280) && took < Duration::from_millis(800),
        "{took:?}"
    );
    server.abort();
}

#[tokio::test]
async fn an_unknown_database_is_3d000() {
    let (db, _conn) = common::db().await;
    let url = db
        .cluster()
        .url(db.cluster().superuser(), "pgkeel_no_such_database");
    let err = Connection::connect(url).await.unwrap_err();
    assert_eq!(err.code(), Some("3D000"), "{err}");
    assert_eq!(err.kind(), ErrorKind::Db, "{err}");
    let db_err = err.as_db_error().unwrap();
    assert_eq!(db_err.severity(), "FATAL");
    assert_eq!(
        db_err.message(),
        "database \"pgkeel_no_such_database\" does not exist"
    );
    assert!(err.is_connection_fatal());
}

#[tokio::test]
async fn an_invalid_connection_string_is_a_config_error() {
    for bad in [
        "postgres://127.0.0.1/db?no_such_option=1",
        "postgres://127.0.0.1:notaport/db",
        "host=127.0.0.1 port",
    ] {
        let err = Connection::connect(bad).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{bad}: {err}");
    }
}

#[tokio::test]
async fn the_server_reports_its_version_and_encoding_at_startup() {
    let (_db, conn) = common::db().await;
    let version = conn.parameter("server_version").expect("server_version");
    let shown: String = conn
        .query_one("SELECT current_setting('server_version')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, shown);
    assert!(
        version.chars().next().unwrap().is_ascii_digit(),
        "{version}"
    );
    assert_eq!(conn.parameter("client_encoding").as_deref(), Some("UTF8"));
    assert_eq!(conn.parameter("no_such_parameter"), None);
}

#[tokio::test]
async fn parameter_changes_during_the_session_are_seen() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("SET application_name = 'renamed'")
        .await
        .unwrap();
    assert_eq!(
        conn.parameter("application_name").as_deref(),
        Some("renamed")
    );
}

#[tokio::test]
async fn backend_pid_is_the_servers_pg_backend_pid() {
    let (_db, conn) = common::db().await;
    let pid: i32 = conn
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(conn.backend_pid(), pid);
    assert_eq!(conn.cancel_token().process_id(), pid);
    assert_eq!(conn.clone().backend_pid(), pid);
}

#[tokio::test]
async fn close_is_idempotent_and_later_calls_fail_with_closed() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let pid = conn.backend_pid();
    let clone = conn.clone();
    conn.close().await.expect("first close");
    conn.close().await.expect("second close");
    clone.close().await.expect("close through a clone");
    assert!(conn.is_closed() && clone.is_closed());
    assert!(!conn.is_broken(), "a clean close is not a breakage");
    for c in [&conn, &clone] {
        let err = c.query("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
        let err = c.simple_query("SELECT 1").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
        let err = c.prepare("SELECT 1").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    }
    // Terminate reached the server: the session is gone.
    common::wait_quiet(&watcher, pid, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(common::backend_state(&watcher, pid).await, None);
}

#[tokio::test]
async fn close_while_another_task_runs_a_long_query_ends_that_call_with_closed() {
    let (_db, conn) = common::db().await;
    let runner = {
        let conn = conn.clone();
        tokio::spawn(async move { conn.query("SELECT pg_sleep(3)", &[]).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    conn.close().await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "close() waited {took:?}");
    let err = tokio::time::timeout(Duration::from_secs(2), runner)
        .await
        .expect("the running call ends once the socket is shut")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    assert!(conn.is_closed());
}

#[tokio::test]
async fn dropping_the_last_handle_ends_the_session_on_the_server() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let pid = conn.backend_pid();
    let clone = conn.clone();
    drop(conn);
    assert_eq!(
        clone
            .query_one("SELECT 1::int4", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    drop(clone);
    let deadline = Instant::now() + Duration::from_secs(2);
    while common::backend_state(&watcher, pid).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "backend {pid} outlived its last handle"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A TCP listener that reads the startup message, answers `reply`, and hangs up.
async fn scripted_server(reply: &'static [u8]) -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut startup = [0u8; 1024];
            let _ = socket.read(&mut startup).await;
            let _ = socket.write_all(reply).await;
            let _ = socket.shutdown().await;
        }
    });
    (port, task)
}

/// Connects to a scripted server, failing the test if it takes more than 5 s.
async fn connect_to_script(reply: &'static [u8]) -> pgkeel::Error {
    let (port, server) = scripted_server(reply).await;
    let url = format!("postgres://u:p@127.0.0.1:{port}/db");
    let result = tokio::time::timeout(Duration::from_secs(5), Connection::connect(url))
        .await
        .expect("a misbehaving peer must not hang connect()");
    server.abort();
    match result {
        Ok(_) => panic!("connected to a script that is not a server"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_peer_that_is_not_postgres_is_a_protocol_error_not_a_hang() {
    let err = connect_to_script(b"HTTP/1.0 400 Bad Request\r\n\r\n").await;
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert_eq!(err.code(), None);
}

#[tokio::test]
async fn a_peer_that_hangs_up_during_startup_is_closed() {
    let err = connect_to_script(b"").await;
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
}

#[tokio::test]
async fn a_fatal_error_during_startup_keeps_its_sqlstate() {
    // ErrorResponse: severity FATAL, code 53300 (too_many_connections), a message.
    let err = connect_to_script(b"E\0\0\0\x25SFATAL\0C53300\0Mtoo many clients\0\0").await;
    assert_eq!(err.kind(), ErrorKind::Db, "{err}");
    assert_eq!(err.code(), Some("53300"));
    assert_eq!(err.as_db_error().unwrap().message(), "too many clients");
    assert!(err.is_connection_fatal());
}
