//! Tracing spans: every exchange, connect, cancel and pool checkout runs in a span with
//! OpenTelemetry's database fields; parameter values and passwords never reach a span
//! or an event, whatever the level.

use crate::common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use pgkeel::{Connection, Pool};
use pgkeel_testkit::{AuthMethod, TestDb};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

/// One span as the capture saw it: its name, target and every field recorded on it.
#[derive(Debug, Clone, Default)]
struct SeenSpan {
    name: String,
    target: String,
    fields: HashMap<String, String>,
}

/// What a capture saw: every span, and every event as text.
#[derive(Debug, Default)]
struct Seen {
    spans: Vec<SeenSpan>,
    by_id: HashMap<u64, usize>,
    events: Vec<String>,
}

impl Seen {
    /// Everything recorded, as one text to search.
    fn all_text(&self) -> String {
        let mut text = String::new();
        for s in &self.spans {
            let _ = writeln!(text, "{} {} {:?}", s.target, s.name, s.fields);
        }
        for e in &self.events {
            text.push_str(e);
            text.push('\n');
        }
        text
    }

    fn named(&self, name: &str) -> Vec<&SeenSpan> {
        self.spans.iter().filter(|s| s.name == name).collect()
    }
}

/// A layer that keeps every field of every span and event, at every level.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Seen>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut span = SeenSpan {
            name: attrs.metadata().name().to_owned(),
            target: attrs.metadata().target().to_owned(),
            ..SeenSpan::default()
        };
        attrs.record(&mut Fields(&mut span.fields));
        let mut seen = self.0.lock().unwrap();
        let at = seen.spans.len();
        seen.spans.push(span);
        seen.by_id.insert(id.into_u64(), at);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut seen = self.0.lock().unwrap();
        if let Some(&at) = seen.by_id.get(&id.into_u64()) {
            values.record(&mut Fields(&mut seen.spans[at].fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        let text = format!("{} {:?}", event.metadata().target(), fields);
        self.0.lock().unwrap().events.push(text);
    }
}

/// Runs `body` with a capture installed for this thread (the tests run on a
/// current-thread runtime, so every task of theirs is on it) and returns what it saw.
async fn capture<F: std::future::Future<Output = ()>>(body: F) -> Seen {
    // While only one subscriber is registered, tracing-core computes a call site's
    // interest from the subscriber of the thread that first reaches it: a call site
    // first reached by another test's thread (which has none) would be cached as
    // uninteresting, and this capture would never see its spans. A second subscriber,
    // kept registered for the whole run, makes it ask every registered one.
    static SECOND: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
    SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
    let layer = Capture::default();
    let seen = layer.0.clone();
    let subscriber = Registry::default()
        .with(layer)
        .with(tracing_subscriber::filter::LevelFilter::TRACE);
    let guard = tracing::subscriber::set_default(subscriber);
    body.await;
    drop(guard);
    std::mem::take(&mut *seen.lock().unwrap())
}

const SECRET_PARAM: &str = "sekrit-param-4711";
const SECRET_INT: i64 = 987_654_321_987;
const SECRET_PASSWORD: &str = "pa55-sekrit-0815";
const WRONG_PASSWORD: &str = "wr0ng-sekrit-2342";
const SECRET_COPY: &str = "sekrit-copy-row";
const SECRET_PAYLOAD: &str = "sekrit-payload-1234";

#[tokio::test]
async fn no_parameter_or_password_ever_reaches_a_span_or_an_event() {
    let db = TestDb::new();
    if db.cluster().is_external() {
        eprintln!("skipped: password roles cannot be created on an external server");
        return;
    }
    let user = format!("tele_{}", std::process::id());
    db.cluster()
        .create_role(&user, SECRET_PASSWORD, AuthMethod::ScramSha256)
        .expect("create role");
    db.psql(&format!("GRANT ALL ON SCHEMA public TO {user}"))
        .expect("grant");
    let url = db.url_as(&user, SECRET_PASSWORD);
    let seen = capture(async {
        let wrong = Connection::connect(db.url_as(&user, WRONG_PASSWORD)).await;
        assert_eq!(wrong.expect_err("wrong password").code(), Some("28P01"));
        let conn = Connection::connect(&url).await.expect("connect");
        exchanges_with_secrets(&conn).await;
        copy_and_notify_with_secrets(&conn).await;
        let pool = Pool::builder(&url).max_size(2).build().unwrap();
        let tx = pool.begin().await.unwrap();
        tx.execute("SELECT $1::text", &[&SECRET_PARAM])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let rows = pool.query("SELECT $1::text", &[&SECRET_PARAM]).await;
        assert_eq!(rows.unwrap().len(), 1);
        pool.close().await;
    })
    .await;
    assert!(!seen.named("query").is_empty(), "no query span: {seen:?}");
    assert!(!seen.named("connect").is_empty(), "no connect span");
    let text = seen.all_text();
    for secret in [
        SECRET_PARAM,
        &SECRET_INT.to_string(),
        SECRET_PASSWORD,
        WRONG_PASSWORD,
        SECRET_COPY,
        SECRET_PAYLOAD,
    ] {
        assert!(!text.contains(secret), "{secret:?} was recorded:\n{text}");
    }
}

/// Queries, typed queries, pipelined inserts, a prepared statement and a unique
/// violation, all with secret parameter values.
async fn exchanges_with_secrets(conn: &Connection) {
    conn.batch_execute("CREATE TABLE t (s text PRIMARY KEY, n int8)")
        .await
        .unwrap();
    conn.execute(
        "INSERT INTO t VALUES ($1, $2)",
        &[&SECRET_PARAM, &SECRET_INT],
    )
    .await
    .unwrap();
    let dup = conn
        .execute(
            "INSERT INTO t VALUES ($1, $2)",
            &[&SECRET_PARAM, &SECRET_INT],
        )
        .await
        .expect_err("duplicate key");
    assert_eq!(dup.code(), Some("23505"));
    let typed = conn
        .query_typed("SELECT $1", &[(&SECRET_PARAM, pgkeel::Type::TEXT)])
        .await
        .unwrap();
    assert_eq!(typed.len(), 1);
    let sets: Vec<[&(dyn pgkeel::ToSql + Sync); 2]> = vec![[&"x1", &SECRET_INT]];
    let params = sets.iter().map(|p| &p[..]);
    conn.execute_many("INSERT INTO t VALUES ($1, $2)", params)
        .await
        .unwrap();
    let stmt = conn.prepare("SELECT n FROM t WHERE s = $1").await.unwrap();
    let row = conn.query_one(&stmt, &[&SECRET_PARAM]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), SECRET_INT);
}

/// COPY in and out of secret rows, and a notification with a secret payload.
async fn copy_and_notify_with_secrets(conn: &Connection) {
    let mut copy = conn.copy_in("COPY t FROM STDIN").await.unwrap();
    copy.send(format!("{SECRET_COPY}\t1\n")).await.unwrap();
    copy.finish().await.unwrap();
    let out: Vec<_> = conn
        .copy_out("COPY t TO STDOUT")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(
        String::from_utf8(out.concat())
            .unwrap()
            .contains(SECRET_COPY)
    );
    conn.batch_execute("LISTEN tele").await.unwrap();
    conn.execute("SELECT pg_notify('tele', $1)", &[&SECRET_PAYLOAD])
        .await
        .unwrap();
    let note = tokio::time::timeout(Duration::from_secs(10), conn.next_notification())
        .await
        .expect("notification");
    assert_eq!(note.payload(), SECRET_PAYLOAD);
}

#[tokio::test]
async fn query_spans_carry_the_database_conventions() {
    let (db, conn) = common::db().await;
    let cluster = db.cluster();
    let seen = capture(async {
        conn.batch_execute("CREATE TABLE u (id int PRIMARY KEY)")
            .await
            .unwrap();
        conn.query("SELECT 1 + $1", &[&1i32]).await.unwrap();
        conn.execute("INSERT INTO u VALUES (1)", &[]).await.unwrap();
        let dup = conn.execute("INSERT INTO u VALUES (1)", &[]).await;
        assert_eq!(dup.unwrap_err().code(), Some("23505"));
    })
    .await;
    let query = &seen.named("query")[0];
    let f = &query.fields;
    assert_eq!(query.target, "pgkeel::query");
    assert_eq!(f["db.system.name"], "postgresql");
    assert_eq!(f["db.namespace"], db.name());
    assert_eq!(f["db.operation.name"], "SELECT");
    assert_eq!(f["db.query.text"], "SELECT 1 + $1");
    assert_eq!(f["server.address"], cluster.host());
    assert_eq!(f["server.port"], cluster.port().to_string());
    assert_eq!(f["otel.name"], format!("SELECT {}", db.name()));
    assert_eq!(f["otel.kind"], "client");
    assert!(!f.contains_key("db.response.status_code"), "{f:?}");
    let executes = seen.named("execute");
    assert_eq!(executes.len(), 2, "{seen:?}");
    assert_eq!(executes[0].fields["db.operation.name"], "INSERT");
    assert!(!executes[0].fields.contains_key("error.type"));
    let failed = &executes[1].fields;
    assert_eq!(failed["db.response.status_code"], "23505");
    assert_eq!(failed["error.type"], "23505");
    assert_eq!(failed["otel.status_code"], "ERROR");
    let simple = &seen.named("simple_query")[0].fields;
    assert_eq!(simple["db.operation.name"], "CREATE");
}

#[tokio::test]
async fn connect_pool_transaction_and_cancel_have_spans_of_their_own() {
    let db = TestDb::new();
    let seen = capture(async {
        let pool = Pool::builder(db.url())
            .name("telemetry-pool")
            .max_size(1)
            .build()
            .unwrap();
        let tx = pool.begin().await.unwrap();
        tx.query("SELECT 1", &[]).await.unwrap();
        tx.commit().await.unwrap();
        let conn = pool.get().await.unwrap();
        let token = conn.cancel_token();
        let sleeper = conn.execute("SELECT pg_sleep(30)", &[]);
        let cancel = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            token.cancel_query().await.unwrap();
        };
        let (slept, ()) = tokio::join!(sleeper, cancel);
        assert_eq!(slept.unwrap_err().code(), Some("57014"));
        // Returned inside a transaction: the pool rolls it back in the background.
        conn.batch_execute("BEGIN").await.unwrap();
        drop(conn);
        let again = pool.get().await.unwrap();
        drop(again);
        pool.close().await;
    })
    .await;
    let acquire = &seen.named("pool.acquire");
    assert_eq!(acquire.len(), 3, "{seen:?}");
    let pool_name = &acquire[0].fields["db.client.connection.pool.name"];
    assert_eq!(pool_name, "telemetry-pool");
    let connect = &seen.named("connect")[0].fields;
    assert_eq!(connect["db.namespace"], db.name());
    let attempt = &seen.named("connect_attempt")[0].fields;
    assert_eq!(attempt["server.address"], db.cluster().host());
    for name in ["begin", "query", "commit", "cancel", "pool.restore"] {
        assert!(!seen.named(name).is_empty(), "no {name} span: {seen:?}");
    }
    let restore = &seen.named("pool.restore")[0].fields;
    assert_eq!(restore["pgkeel.return_state"], "needs_cleanup");
}

#[tokio::test]
async fn a_failed_connect_records_its_sqlstate() {
    let db = TestDb::new();
    let url = db.cluster().url("no_such_role_for_telemetry", db.name());
    let seen = capture(async {
        Connection::connect(&url).await.expect_err("no such role");
    })
    .await;
    let connect = &seen.named("connect")[0].fields;
    assert_eq!(connect["db.response.status_code"], "28000", "{connect:?}");
    assert_eq!(connect["otel.status_code"], "ERROR");
}

/// Starts a sleep on `conn` and cancels it a moment later; fails unless that one
/// CancelRequest stops it (one the server ignored would leave the sleep running).
async fn cancel_one_sleep(conn: &Connection, round: usize) {
    let token = conn.cancel_token();
    let sleeper = conn.execute("SELECT pg_sleep(30)", &[]);
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        token.cancel_query().await.unwrap();
    };
    let both = async { tokio::join!(sleeper, cancel) };
    let (slept, ()) = tokio::time::timeout(Duration::from_secs(10), both)
        .await
        .unwrap_or_else(|_| panic!("round {round}: the cancel did not stop the sleep"));
    assert_eq!(slept.unwrap_err().code(), Some("57014"), "round {round}");
}

/// Runs `work`; returns the `pgkeel.cancel.socket` of each cancel span it made.
async fn cancel_sockets(work: impl std::future::Future<Output = ()>) -> Vec<String> {
    let seen = capture(work).await;
    seen.named("cancel")
        .iter()
        .map(|s| s.fields["pgkeel.cancel.socket"].clone())
        .collect()
}

/// Cancels `rounds` sleeps on `conn`, one after another, each a moment after it
/// started; returns the `pgkeel.cancel.socket` of each cancel span.
async fn cancel_sleeps(conn: &Connection, rounds: usize) -> Vec<String> {
    cancel_sockets(async {
        for round in 0..rounds {
            cancel_one_sleep(conn, round).await;
            let row = conn.query_one("SELECT $1::int4", &[&7i32]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), 7);
        }
    })
    .await
}

/// Cancels a sleep on each of `conns` at once, `rounds` times; returns the
/// `pgkeel.cancel.socket` of each cancel span.
async fn cancel_together(conns: &[Connection], rounds: usize) -> Vec<String> {
    cancel_sockets(async {
        for round in 0..rounds {
            let each = conns.iter().map(|conn| cancel_one_sleep(conn, round));
            futures::future::join_all(each).await;
        }
    })
    .await
}

/// After a cancel, the next one to the same server goes through a socket opened ahead
/// of time and still stops its statement. A session that began after the spare (which,
/// up to PostgreSQL 17, the spare's server process does not know) gets a new socket;
/// pooler mode opens none. On a cluster of its own: other tests' cancels on the shared
/// one would take the spares.
#[tokio::test]
async fn a_cancel_after_a_cancel_goes_through_the_spare_socket_except_in_pooler_mode() {
    let cluster = tokio::task::spawn_blocking(pgkeel_testkit::Cluster::start)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.url(cluster.superuser(), "postgres");
    let conn = Connection::connect(url.as_str()).await.unwrap();
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(Connection::connect(url.as_str()).await.unwrap());
    }
    let sockets = cancel_sleeps(&conn, 8).await;
    if !cluster.is_external() {
        assert_eq!(sockets.len(), 8, "{sockets:?}");
        assert_eq!(
            sockets[..2],
            ["new", "new"],
            "a spare only once cancels come in a burst"
        );
        let warm = sockets.iter().filter(|s| *s == "warm").count();
        assert!(warm >= 1, "{sockets:?}");
        assert!(sockets.iter().all(|s| s == "warm" || s == "new"));
    }

    // A spare is left from the last cancel; each newer session's one cancel must still
    // stop its sleep (`cancel_sleeps` fails otherwise): a new socket, or a spare that
    // began to open after that session was ready.
    for _ in 0..3 {
        let newer = Connection::connect(url.as_str()).await.unwrap();
        cancel_sleeps(&newer, 1).await;
    }
    let sockets = cancel_sleeps(&conn, 2).await;
    assert_eq!(sockets.len(), 2, "{sockets:?}");

    // Cancels four at a time: as many spares are kept as the burst needs, not one.
    others.insert(0, conn);
    cancel_together(&others, 1).await;
    let sockets = cancel_together(&others, 3).await;
    if !cluster.is_external() {
        assert_eq!(sockets.len(), 12, "{sockets:?}");
        let warm = sockets.iter().filter(|s| *s == "warm").count();
        assert!(warm >= 9, "{sockets:?}");
    }

    let pooled = Connection::connect(common::with_param(&url, "pgbouncer=true"))
        .await
        .unwrap();
    let sockets = cancel_sleeps(&pooled, 3).await;
    assert!(sockets.iter().all(|s| s == "new"), "{sockets:?}");

    // A session-mode PgBouncer without pooler mode: the spares go to PgBouncer, which
    // forwards the request it reads on one to the server.
    let builder = pgkeel_testkit::Pgbouncer::builder().pool_mode(pgkeel_testkit::PoolMode::Session);
    let Some(bouncer) = builder.start_or_skip(&cluster) else {
        return;
    };
    let bounced = Connection::connect(bouncer.url(cluster.superuser(), "postgres").as_str())
        .await
        .unwrap();
    let sockets = cancel_sleeps(&bounced, 6).await;
    assert!(sockets.iter().any(|s| s == "warm"), "{sockets:?}");
}
