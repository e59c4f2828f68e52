//! Multi-host connects on a real primary and streaming standby on loopback:
//! `target_session_attrs` picks the right server whatever the host order, and after the
//! primary stops and the standby is promoted, the same URL reaches the new primary.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pgkeel::{Connection, ErrorKind};
use pgkeel_testkit::Cluster;

/// A primary and its standby, shared by the tests that only read them.
fn pair() -> &'static (Cluster, Cluster) {
    static PAIR: OnceLock<(Cluster, Cluster)> = OnceLock::new();
    PAIR.get_or_init(start_pair)
}

fn start_pair() -> (Cluster, Cluster) {
    let primary = Cluster::start().expect("start the primary");
    let standby = primary.start_standby().expect("start a standby");
    (primary, standby)
}

fn url(first: &Cluster, second: &Cluster, attrs: &str) -> String {
    format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs={attrs}&connect_timeout=5",
        first.port(),
        second.port()
    )
}

async fn port_and_recovery(conn: &Connection) -> (i32, bool) {
    let row = conn
        .query_one(
            "SELECT current_setting('port')::int, pg_is_in_recovery()",
            &[],
        )
        .await
        .expect("ask the server who it is");
    (row.get(0), row.get(1))
}

async fn lands_on(url: &str) -> (i32, bool) {
    let conn = Connection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    port_and_recovery(&conn).await
}

#[tokio::test]
async fn read_write_and_primary_reach_the_primary_in_either_host_order() {
    let (primary, standby) = pair();
    let want = (i32::from(primary.port()), false);
    for attrs in ["read-write", "primary"] {
        assert_eq!(
            lands_on(&url(primary, standby, attrs)).await,
            want,
            "{attrs}"
        );
        assert_eq!(
            lands_on(&url(standby, primary, attrs)).await,
            want,
            "{attrs}"
        );
    }
}

#[tokio::test]
async fn standby_read_only_and_prefer_standby_reach_the_standby_in_either_host_order() {
    let (primary, standby) = pair();
    let want = (i32::from(standby.port()), true);
    for attrs in ["standby", "read-only", "prefer-standby"] {
        assert_eq!(
            lands_on(&url(primary, standby, attrs)).await,
            want,
            "{attrs}"
        );
        assert_eq!(
            lands_on(&url(standby, primary, attrs)).await,
            want,
            "{attrs}"
        );
    }
}

#[tokio::test]
async fn any_takes_the_first_host_that_answers() {
    let (primary, standby) = pair();
    assert_eq!(
        lands_on(&url(standby, primary, "any")).await.0,
        i32::from(standby.port())
    );
}

#[tokio::test]
async fn prefer_standby_falls_back_to_the_primary_when_no_standby_answers() {
    let (primary, _) = pair();
    let url = format!(
        "postgres://postgres@127.0.0.1:1,127.0.0.1:{}/postgres?target_session_attrs=prefer-standby",
        primary.port()
    );
    assert_eq!(lands_on(&url).await, (i32::from(primary.port()), false));
}

#[tokio::test]
async fn when_no_host_matches_the_error_names_each_host_and_its_cause() {
    let (_, standby) = pair();
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:1/postgres?target_session_attrs=read-write",
        standby.port()
    );
    let err = Connection::connect(url).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "127.0.0.1:{}: server does not match target_session_attrs: the session is read-only",
            standby.port()
        )),
        "{msg}"
    );
    assert!(
        msg.contains("127.0.0.1:1: ") && msg.contains("refused"),
        "{msg}"
    );
    assert_eq!(err.kind(), ErrorKind::Io, "the last host's kind: {err}");
}

#[tokio::test]
async fn after_promotion_the_same_read_write_url_reaches_the_new_primary() {
    let (primary, standby) = start_pair();
    let url = url(&primary, &standby, "read-write");
    assert_eq!(lands_on(&url).await.0, i32::from(primary.port()));

    primary.stop_server().expect("stop the primary");
    let err = Connection::connect(url.as_str()).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::WrongSessionAttrs,
        "only a standby is left: {err}"
    );

    let started = Instant::now();
    standby.promote().expect("promote the standby");
    let mut attempts = 0;
    let conn = loop {
        attempts += 1;
        match Connection::connect(url.as_str()).await {
            Ok(conn) => break conn,
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                eprintln!("attempt {attempts}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("no read-write host 30 s after promotion: {e}"),
        }
    };
    eprintln!(
        "failover: read-write reached the new primary {:?} after promote began, {attempts} attempt(s)",
        started.elapsed()
    );
    assert_eq!(
        port_and_recovery(&conn).await,
        (i32::from(standby.port()), false)
    );
    conn.batch_execute("CREATE TABLE written_after_failover (id int)")
        .await
        .expect("the new primary takes writes");

    // The old primary comes back as a standby of the new one: the same URL, old
    // primary first, still writes to the primary, and standby finds the old one.
    primary
        .rejoin_as_standby_of(&standby)
        .expect("rejoin as a standby");
    let fresh = Connection::connect(url.as_str())
        .await
        .expect("read-write after the rejoin");
    assert_eq!(
        port_and_recovery(&fresh).await,
        (i32::from(standby.port()), false)
    );
    fresh
        .batch_execute("INSERT INTO written_after_failover VALUES (1)")
        .await
        .expect("writes go to the new primary");
    let standby_url = url.replace("read-write", "standby");
    assert_eq!(
        lands_on(&standby_url).await,
        (i32::from(primary.port()), true)
    );
}
