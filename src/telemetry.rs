//! Tracing spans after OpenTelemetry's database semantic conventions, and (feature
//! `metrics`) the pool's metrics; see `docs/OBSERVABILITY.md` for what users see.
//!
//! Every span carries the SQL text at most, never a parameter value, a password or a
//! connection string. With no subscriber interested, building a span is a level check
//! that returns `None`, and the call sites then run their work inline, without the extra
//! future that instrumenting it would cost. (That check comes before tracing's own, so a
//! `log` logger without a tracing subscriber does not get pgkeel's spans as log lines.)

use std::future::Future;
use std::time::Duration;

use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::config::{Config, Host, Target};
use crate::connection::StatementRef;
use crate::error::{Error, ErrorKind};

#[cfg(feature = "metrics")]
pub(crate) mod metrics;

/// `db.system.name` for every span.
const SYSTEM: &str = "postgresql";

/// The server and database a connection talks to, as its spans name them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Peer {
    /// `db.namespace`: the database name.
    pub(crate) namespace: String,
    /// `server.address`: the host name as configured (or the socket directory).
    pub(crate) address: String,
    /// `server.port`.
    pub(crate) port: u16,
}

impl Peer {
    /// The peer of a session opened to `target` with `config`.
    pub(crate) fn new(config: &Config, target: &Target) -> Peer {
        Peer {
            namespace: config.get_dbname(),
            address: host_name(&target.host),
            port: target.port,
        }
    }
}

fn host_name(host: &Host) -> String {
    match host {
        Host::Tcp(name) => name.clone(),
        Host::Unix(dir) => dir.display().to_string(),
    }
}

/// The public call an exchange span stands for; its name is the span's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Query,
    QueryTyped,
    Execute,
    ExecuteMany,
    Batch,
    Prepare,
    QueryRaw,
    SimpleQuery,
    CopyIn,
    CopyOut,
    Begin,
    Commit,
    Rollback,
}

/// Builds the span of one call, with a literal name per call (tracing span names are
/// static) and the same fields for all.
macro_rules! exchange_span {
    ($name:literal, $peer:expr) => {
        tracing::info_span!(
            target: "pgkeel::query",
            $name,
            otel.name = Empty,
            otel.kind = "client",
            otel.status_code = Empty,
            db.system.name = SYSTEM,
            db.namespace = $peer.namespace.as_str(),
            db.operation.name = Empty,
            db.query.text = Empty,
            server.address = $peer.address.as_str(),
            server.port = $peer.port,
            db.response.status_code = Empty,
            error.type = Empty,
        )
    };
}

/// Whether any subscriber may want INFO spans: the cheapest check there is (a constant
/// and one atomic load), made before anything else is built.
fn info_enabled() -> bool {
    use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
    STATIC_MAX_LEVEL >= LevelFilter::INFO && LevelFilter::current() >= LevelFilter::INFO
}

/// `span`, unless no subscriber wants it.
fn wanted(span: Span) -> Option<Span> {
    (!span.is_disabled()).then_some(span)
}

/// The span of one exchange, or `None` when no subscriber wants it. `sql` is the
/// statement's text, when known; parameters are never given here.
pub(crate) fn exchange(peer: &Peer, call: Call, sql: Option<&str>) -> Option<Span> {
    if !info_enabled() {
        return None;
    }
    let span = match call {
        Call::Query => exchange_span!("query", peer),
        Call::QueryTyped => exchange_span!("query_typed", peer),
        Call::Execute => exchange_span!("execute", peer),
        Call::ExecuteMany => exchange_span!("execute_many", peer),
        Call::Batch => exchange_span!("run_batch", peer),
        Call::Prepare => exchange_span!("prepare", peer),
        Call::QueryRaw => exchange_span!("query_raw", peer),
        Call::SimpleQuery => exchange_span!("simple_query", peer),
        Call::CopyIn => exchange_span!("copy_in", peer),
        Call::CopyOut => exchange_span!("copy_out", peer),
        Call::Begin => exchange_span!("begin", peer),
        Call::Commit => exchange_span!("commit", peer),
        Call::Rollback => exchange_span!("rollback", peer),
    };
    let span = wanted(span)?;
    let operation = sql.and_then(operation_name);
    if let Some(sql) = sql {
        span.record("db.query.text", sql);
    }
    if let Some(op) = operation {
        span.record("db.operation.name", op);
    }
    let name = match operation {
        Some(op) => format!("{op} {}", peer.namespace),
        None => peer.namespace.clone(),
    };
    span.record("otel.name", name.as_str());
    Some(span)
}

/// The SQL text of a statement, when the call has it: prepared statements are named on
/// the server and keep no text.
pub(crate) fn statement_text<'a>(statement: &'a StatementRef<'a>) -> Option<&'a str> {
    match statement {
        StatementRef::Sql(sql) => Some(sql),
        StatementRef::Prepared(stmt) => stmt.reparse_sql(),
    }
}

/// The first keyword of `sql` (after blanks, comments and parentheses), upper case for
/// the common ones; `None` when there is no word.
pub(crate) fn operation_name(sql: &str) -> Option<&str> {
    let rest = skip_noise(sql);
    let end = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    let word = &rest[..end];
    if word.is_empty() {
        return None;
    }
    const KEYWORDS: [&str; 24] = [
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "MERGE",
        "WITH",
        "VALUES",
        "TABLE",
        "COPY",
        "BEGIN",
        "START",
        "COMMIT",
        "END",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
        "CREATE",
        "ALTER",
        "DROP",
        "TRUNCATE",
        "SET",
        "SHOW",
        "LISTEN",
        "NOTIFY",
    ];
    let known = KEYWORDS.iter().find(|k| k.eq_ignore_ascii_case(word));
    Some(known.copied().unwrap_or(word))
}

/// `sql` past leading white space, `--` and `/* */` comments and opening parentheses.
fn skip_noise(mut sql: &str) -> &str {
    loop {
        let trimmed = sql.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(line) = trimmed.strip_prefix("--") {
            sql = line.find('\n').map_or("", |i| &line[i..]);
        } else if let Some(block) = trimmed.strip_prefix("/*") {
            sql = block.find("*/").map_or("", |i| &block[i + 2..]);
        } else {
            return trimmed;
        }
    }
}

/// Notes a failed call on its span: the SQLSTATE as `db.response.status_code`, and
/// `error.type` (the SQLSTATE for a server error, else the error's kind).
pub(crate) fn record_result<T>(span: &Span, result: &Result<T, Error>) {
    let Err(e) = result else { return };
    if span.is_disabled() {
        return;
    }
    if let Some(code) = e.code() {
        span.record("db.response.status_code", code);
    }
    let kind = error_type(e);
    span.record("error.type", kind.as_str());
    span.record("otel.status_code", "ERROR");
}

/// A low-cardinality name for an error: its SQLSTATE, else its kind in snake case.
fn error_type(e: &Error) -> String {
    if let Some(code) = e.code() {
        return code.to_owned();
    }
    match e.kind() {
        ErrorKind::Timeout(_) => "timeout".to_owned(),
        kind => format!("{kind:?}").to_lowercase(),
    }
}

/// Runs `call` in `span` within `limit`, and records its outcome there; the body of
/// `bounded_call!` when a span or a limit is set.
pub(crate) async fn traced_within<T>(
    limit: Option<Duration>,
    span: Span,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let call = call.instrument(span.clone());
    let result = match limit {
        None => call.await,
        Some(limit) => crate::connection::with_timeout(limit, call).await,
    };
    record_result(&span, &result);
    result
}

/// Runs `call` in `span` and records its outcome; inline without a span.
pub(crate) async fn traced<T>(
    span: Option<Span>,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match span {
        None => call.await,
        Some(span) => traced_within(None, span, call).await,
    }
}

/// The span of a whole connect: every host tried, authentication, session checks.
pub(crate) fn connect(config: &Config) -> Option<Span> {
    if !info_enabled() {
        return None;
    }
    wanted(tracing::info_span!(
        target: "pgkeel::connect",
        "connect",
        otel.kind = "client",
        otel.status_code = Empty,
        db.system.name = SYSTEM,
        db.namespace = %config.get_dbname(),
        db.response.status_code = Empty,
        error.type = Empty,
    ))
}

/// The span of one connect attempt to one host.
pub(crate) fn connect_attempt(target: &Target) -> Option<Span> {
    if !info_enabled() {
        return None;
    }
    wanted(tracing::info_span!(
        target: "pgkeel::connect",
        "connect_attempt",
        otel.kind = "client",
        otel.status_code = Empty,
        db.system.name = SYSTEM,
        server.address = %host_name(&target.host),
        server.port = target.port,
        db.response.status_code = Empty,
        error.type = Empty,
    ))
}

/// The span of a CancelRequest to the backend `pid` at `address`.
pub(crate) fn cancel(address: &crate::transport::PeerAddr, pid: i32) -> Option<Span> {
    if !info_enabled() {
        return None;
    }
    let span = wanted(tracing::info_span!(
        target: "pgkeel::cancel",
        "cancel",
        otel.kind = "client",
        otel.status_code = Empty,
        db.system.name = SYSTEM,
        server.address = Empty,
        server.port = Empty,
        pgkeel.backend_pid = pid,
        pgkeel.cancel.socket = Empty,
        error.type = Empty,
    ))?;
    match address {
        crate::transport::PeerAddr::Tcp(addr) => {
            span.record("server.address", addr.ip().to_string().as_str());
            span.record("server.port", addr.port());
        }
        crate::transport::PeerAddr::Unix(path) => {
            span.record("server.address", path.display().to_string().as_str());
        }
    }
    Some(span)
}

/// The span of a pool checkout.
pub(crate) fn acquire(pool: &str) -> Option<Span> {
    if !info_enabled() {
        return None;
    }
    wanted(tracing::info_span!(
        target: "pgkeel::pool",
        "pool.acquire",
        otel.status_code = Empty,
        db.system.name = SYSTEM,
        db.client.connection.pool.name = pool,
        error.type = Empty,
    ))
}

/// The span of the background cleanup of a returned connection: recovery of an
/// abandoned exchange, rollback of an open transaction, the reset statement.
pub(crate) fn restore(pool: &str, pid: i32, state: &'static str) -> Option<Span> {
    if !info_enabled() {
        return None;
    }
    wanted(tracing::info_span!(
        target: "pgkeel::pool",
        "pool.restore",
        otel.status_code = Empty,
        db.system.name = SYSTEM,
        db.client.connection.pool.name = pool,
        pgkeel.backend_pid = pid,
        pgkeel.return_state = state,
        error.type = Empty,
    ))
}

#[cfg(test)]
mod tests {
    use super::operation_name;

    #[test]
    fn the_operation_is_the_first_keyword_past_comments_and_parentheses() {
        assert_eq!(operation_name("select 1"), Some("SELECT"));
        assert_eq!(
            operation_name("  -- hi\n /* x */ (SELECT 1)"),
            Some("SELECT")
        );
        assert_eq!(operation_name("Insert into t values (1)"), Some("INSERT"));
        assert_eq!(operation_name("vacuum t"), Some("vacuum"));
        assert_eq!(operation_name("/* unterminated"), None);
        assert_eq!(operation_name(""), None);
        assert_eq!(operation_name("-- only a comment"), None);
    }
}
