//! libpq-style configuration against the real server: the password file and its
//! permission rule, `hostaddr` paired with `host`, `options=-c …`, liveness options,
//! and values that are refused instead of ignored.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use pgkeel::{Connection, ErrorKind};
use pgkeel_testkit::AuthMethod;

static N: AtomicUsize = AtomicUsize::new(0);

fn passfile(contents: &str, mode: u32) -> PathBuf {
    let n = N.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("pgkeel-pgpass-{}-{n}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn role_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[tokio::test]
async fn the_password_file_supplies_the_password_when_none_is_given() {
    let (db, _conn) = common::db().await;
    let cluster = db.cluster();
    let role = role_name("pgpass");
    cluster
        .create_role(&role, "from-the-file", AuthMethod::ScramSha256)
        .unwrap();
    let file = passfile(
        &format!(
            "# comment\nother:*:*:*:wrong\n127.0.0.1:{}:*:{role}:from-the-file\n",
            cluster.port()
        ),
        0o600,
    );
    let info = format!(
        "host=127.0.0.1 port={} dbname={} user={role} passfile={}",
        cluster.port(),
        db.name(),
        file.display()
    );
    let conn = Connection::connect(info.as_str())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let row = conn
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), role);
}

#[tokio::test]
async fn a_password_file_others_can_read_is_ignored_as_libpq_ignores_it() {
    let (db, _conn) = common::db().await;
    let cluster = db.cluster();
    let role = role_name("pgpass_open");
    cluster
        .create_role(&role, "from-the-file", AuthMethod::ScramSha256)
        .unwrap();
    let file = passfile(&format!("*:*:*:{role}:from-the-file\n"), 0o644);
    let info = format!(
        "host=127.0.0.1 port={} dbname={} user={role} passfile={}",
        cluster.port(),
        db.name(),
        file.display()
    );
    let err = Connection::connect(info.as_str()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    assert!(err.to_string().contains("none was given"), "{err}");
}

#[tokio::test]
async fn hostaddr_is_dialled_and_host_is_only_a_name() {
    let (db, _conn) = common::db().await;
    let cluster = db.cluster();
    let info = format!(
        "host=db.invalid hostaddr=127.0.0.1 port={} user={} dbname={}",
        cluster.port(),
        cluster.superuser(),
        db.name()
    );
    let conn = Connection::connect(info.as_str())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    conn.simple_query("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn options_dash_c_set_the_sessions_settings() {
    let (db, _conn) = common::db().await;
    let url = common::with_param(
        &db.url(),
        "options=-c%20search_path%3Dpgkeel_x%20-c%20work_mem%3D7MB",
    );
    let conn = Connection::connect(url).await.unwrap();
    let row = conn
        .query_one(
            "SELECT current_setting('search_path'), current_setting('work_mem')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "pgkeel_x");
    assert_eq!(row.get::<_, String>(1), "7MB");
}

#[tokio::test]
async fn liveness_options_are_taken_and_the_session_works() {
    let (db, _conn) = common::db().await;
    for params in [
        "keepalives=0",
        "keepalives_idle=30&keepalives_interval=10&keepalives_count=2&tcp_user_timeout=0",
    ] {
        let conn = Connection::connect(common::with_param(&db.url(), params))
            .await
            .unwrap();
        conn.simple_query("SELECT 1").await.unwrap();
    }
}

#[tokio::test]
async fn values_that_libpq_would_refuse_are_refused_before_connecting() {
    let (db, _conn) = common::db().await;
    for (params, needle) in [
        ("target_session_attrs=bogus-value", "target_session_attrs"),
        ("keepalives=sometimes", "keepalives"),
        ("service=prod", "service"),
        ("sslmode=verify-everything", "sslmode"),
    ] {
        let err = Connection::connect(common::with_param(&db.url(), params))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{params}: {err}");
        assert!(err.to_string().contains(needle), "{params}: {err}");
    }
}

#[tokio::test]
async fn a_wrong_password_error_does_not_contain_the_password() {
    let (db, _conn) = common::db().await;
    let role = role_name("pw_echo");
    db.cluster()
        .create_role(&role, "right", AuthMethod::ScramSha256)
        .unwrap();
    let err = Connection::connect(db.url_as(&role, "hunter2-wrong"))
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
}
