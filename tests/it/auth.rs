//! Authentication against the real server: trust, cleartext password, MD5 and
//! SCRAM-SHA-256, with right, wrong and missing passwords.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};

use pgkeel::{Connection, ErrorKind};
use pgkeel_testkit::{AuthMethod, TestDb};

/// Numbers the roles of this test binary; roles are cluster-wide, databases are not.
static ROLE_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A role name no other test of this binary uses.
fn role_name(prefix: &str) -> String {
    let n = ROLE_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{n}", std::process::id())
}

/// Whether password tests cannot run here; prints why.
fn skip(db: &TestDb) -> bool {
    if db.cluster().is_external() {
        eprintln!(
            "skipped: password roles cannot be created on an external server (PGKEEL_TEST_URL)"
        );
        return true;
    }
    false
}

/// Creates a role that must authenticate with `method`, and returns its name.
fn create_role(db: &TestDb, prefix: &str, password: &str, method: AuthMethod) -> String {
    let name = role_name(prefix);
    db.cluster()
        .create_role(&name, password, method)
        .expect("create the test role");
    name
}

/// Connects as `user` with `password` and checks that the server says it is `user`.
async fn assert_connects_as(db: &TestDb, user: &str, password: &str) {
    let conn = Connection::connect(db.url_as(user, password))
        .await
        .unwrap_or_else(|e| panic!("connect as {user:?}: {e}"));
    let me: String = conn
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("SELECT current_user")
        .get(0);
    assert_eq!(me, user);
    conn.close().await.expect("close");
}

/// Connects as `user` with a wrong password and checks for SQLSTATE 28P01.
async fn assert_wrong_password_rejected(db: &TestDb, user: &str) {
    let err = Connection::connect(db.url_as(user, "definitely-not-the-password"))
        .await
        .expect_err("a wrong password must not connect");
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    assert_eq!(err.code(), Some("28P01"), "{err}");
    assert!(err.is_connection_fatal(), "{err}");
}

/// Connects as `user` with no password at all and checks the client-side error.
async fn assert_missing_password_rejected(db: &TestDb, user: &str) {
    if std::env::var_os("PGPASSWORD").is_some_and(|p| !p.is_empty()) {
        eprintln!("skipped the missing-password check: PGPASSWORD is set");
        return;
    }
    let url = db.cluster().url(user, db.name());
    let err = Connection::connect(url)
        .await
        .expect_err("a password role must not connect without a password");
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    assert_eq!(
        err.code(),
        None,
        "the client gives up, not the server: {err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("password") && msg.contains("none was given"),
        "the message must say that no password was given: {msg}"
    );
}

#[tokio::test]
async fn trust_superuser_url_connects_as_the_superuser() {
    let (db, conn) = common::db().await;
    let me: String = conn
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(me, db.cluster().superuser());
    let dbname: String = conn
        .query_one("SELECT current_database()::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(dbname, db.name());
}

#[tokio::test]
async fn trust_role_connects_without_a_password() {
    let (db, _conn) = common::db().await;
    if skip(&db) {
        return;
    }
    let user = create_role(&db, "trusty", "unused", AuthMethod::Trust);
    let conn = Connection::connect(db.cluster().url(&user, db.name()))
        .await
        .expect("a trust role connects without a password");
    let me: String = conn
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(me, user);
}

#[tokio::test]
async fn cleartext_password_role_connects_with_the_right_password() {
    let (db, _conn) = common::db().await;
    if skip(&db) {
        return;
    }
    let user = create_role(&db, "clear", "open sesame", AuthMethod::Password);
    assert_connects_as(&db, &user, "open sesame").await;
}

#[tokio::test]
async fn cleartext_password_role_rejects_a_wrong_password_with_28p01() {
    let (db, _conn) = common::db().await;
    if skip(&db) {
        return;
    }
    let user = create_role(&db, "clear_bad", "open sesame", AuthMethod::Password);
    assert_wrong_password_rejected(&db, &user).await;
}

#[tokio::test]
async fn cleartext_password_role_without_a_password_says_none_was_given() {
    let (db, _conn) = common::db().await;
    if skip(&db) {
        return;
    }
    let user = create_role(&db, "clear_none", "open sesame", AuthMethod::Password);
    assert_missing_password_rejected(&db, &user).await;
}

#[tokio::test]
async fn md5_role_connects_with_the_right_password() {
    let (db, _conn) = common::db().await;
    if skip(&db) {
        return;
    }
    let user = create_role(&db, "md5", "hash me", AuthMethod::Md5);
    let stored = db
        .psql(&format!(
            "SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = '{user}'"
        ))
        .unwrap();
    assert_eq!(stored, "md5", "the role must really hold an MD5 hash");
    assert_connects_as(&db, &user, "hash me").await;
}

#[tokio::test]
async fn md5_role_rejects_a_wrong_password_with_28p01() {
    let (db, _conn) = common::db().await;
    if skip(&db) {
        return;
    }
    let user = create_role(&db, "md5_bad", "hash me", AuthMethod::Md5);
    assert_wrong_password_rejected(&db, &user).await;
}

#[tokio::test]
async fn md5_role_without_a_password_says_none_was_given() {
    let (db, _conn) = common::db().await;
    if skip(&db) {
        return;
    }
    let user = create_role(&db, "md5_none", "hash me", AuthMethod::Md5);
    assert_missing_password_rejected(&db, &user).await;
}

#[tokio::test]
async fn scram_role_connects_with_the_right_password() {
    let (db, _conn) = common::db().await;
    if skip(&db) {
        return;
    }
    let user = create_role(&db, "scram", "salted and hashed", AuthMethod::ScramSha256);
    let stored = db
        .psql(&format!(
            "SELECT split_part(rolpassword, '$', 1) FROM pg_authid WHERE rolname = '{user}'"
        ))
        .unwrap();
    assert_eq!(
        stored, "SCRAM-SHA-256",
        "the role must really hold a SCRAM secret"
    );
    assert_connects_as(&db, &user, "salted and hashed").await;
}

#[tokio::test]
async fn scram_role_rejects_a_wrong_password_with_28p01() {
    let (db, _conn) = common::db().await;
    if skip(&db) {
        return;
    }
    let user = create_role(
        &db,
        "scram_bad",
        "salted and hashed",
        AuthMethod::ScramSha256,
    );
    assert_wrong_password_rejected(&db, &user).await;
}

#[tokio::test]
async fn scram_role_without_a_password_says_none_was_given() {
    let (db, _conn) = common::db().await;
    if skip(&db) {
        return;
    }
    let user = create_role(
        &db,
        "scram_none",
        "salted and hashed",
        AuthMethod::ScramSha256,
    );
    assert_missing_password_rejected(&db, &user).await;
}

/// Non-ASCII, and every character that means something in a URL's userinfo.
const AWKWARD_PASSWORD: &str = "pä$$:wörd@日本/?#%20 ✓";

#[tokio::test]
async fn scram_password_with_non_ascii_and_url_delimiters_works_through_the_url() {
    let (db, _conn) = common::db().await;
    if skip(&db) {
        return;
    }
    let user = create_role(&db, "scram_utf8", AWKWARD_PASSWORD, AuthMethod::ScramSha256);
    assert_connects_as(&db, &user, AWKWARD_PASSWORD).await;
    // The same password with one character changed must not pass.
    let err = Connection::connect(db.url_as(&user, "pä$$:wörd@日本/?#%20 ✗"))
        .await
        .expect_err("a near-miss password must not connect");
    assert_eq!(err.code(), Some("28P01"), "{err}");
}

#[tokio::test]
async fn md5_password_with_non_ascii_and_url_delimiters_works_through_the_url() {
    let (db, _conn) = common::db().await;
    if skip(&db) {
        return;
    }
    let user = create_role(&db, "md5_utf8", AWKWARD_PASSWORD, AuthMethod::Md5);
    assert_connects_as(&db, &user, AWKWARD_PASSWORD).await;
}

#[tokio::test]
async fn cleartext_password_with_non_ascii_and_url_delimiters_works_through_the_url() {
    let (db, _conn) = common::db().await;
    if skip(&db) {
        return;
    }
    let user = create_role(&db, "clear_utf8", AWKWARD_PASSWORD, AuthMethod::Password);
    assert_connects_as(&db, &user, AWKWARD_PASSWORD).await;
}

#[tokio::test]
async fn scram_password_is_saslprep_normalized_like_the_server_stores_it() {
    let (db, _conn) = common::db().await;
    if skip(&db) {
        return;
    }
    // The server stores SASLprep(password): U+2168 ROMAN NUMERAL NINE becomes "IX" and
    // U+00AD SOFT HYPHEN is mapped to nothing. A client that skips SASLprep fails here.
    let user = create_role(
        &db,
        "scram_prep",
        "\u{2168}pass\u{00AD}word",
        AuthMethod::ScramSha256,
    );
    assert_connects_as(&db, &user, "\u{2168}pass\u{00AD}word").await;
    assert_connects_as(&db, &user, "IXpassword").await;
}

#[tokio::test]
async fn password_set_through_config_builder_authenticates_with_scram() {
    let (db, _conn) = common::db().await;
    if skip(&db) {
        return;
    }
    let user = create_role(&db, "scram_cfg", AWKWARD_PASSWORD, AuthMethod::ScramSha256);
    let mut config = pgkeel::Config::new();
    config
        .host(db.cluster().host())
        .port(db.cluster().port())
        .user(&user)
        .password(AWKWARD_PASSWORD)
        .dbname(db.name());
    let conn = Connection::connect(&config)
        .await
        .expect("connect by Config");
    let me: String = conn
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(me, user);
}
