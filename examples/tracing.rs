//! pgkeel's tracing spans, printed by `tracing-subscriber`'s fmt layer: a query, a
//! failed query, a pool checkout and a transaction. Each span is printed when it closes,
//! with its OpenTelemetry fields and how long it took.
//!
//! With `DATABASE_URL` set, it uses that server; without it, it starts a throwaway
//! PostgreSQL cluster and removes it afterwards:
//!
//! ```text
//! cargo run --example tracing
//! RUST_LOG=pgkeel=debug cargo run --example tracing   # connect attempts, cancels, more
//! ```

use pgkeel::{Connection, Pool};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Spans at INFO and above from pgkeel (RUST_LOG overrides), each printed on close.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("pgkeel=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::CLOSE)
        .init();

    let (url, _cluster) = pgkeel_testkit::database_url_or_throwaway()?;

    println!("\n-- a connect and a query (parameters are never recorded, only the SQL):");
    let conn = Connection::connect(url.as_str()).await?;
    conn.query("SELECT $1::text AS greeting", &[&"a parameter value"])
        .await?;

    println!("\n-- a failed query: db.response.status_code and error.type carry the SQLSTATE:");
    let failed = conn.query("SELECT 1 / 0", &[]).await;
    println!("   (the caller sees: {})", failed.unwrap_err());

    println!("\n-- a pool checkout (pool.acquire), then a transaction on it:");
    let pool = Pool::builder(url.as_str())
        .name("example")
        .max_size(2)
        .build()?;
    let client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("CREATE TEMP TABLE visits (n int8)", &[]).await?;
    tx.execute("INSERT INTO visits VALUES ($1)", &[&1i64])
        .await?;
    tx.commit().await?;
    drop(client);
    pool.close().await;
    conn.close().await?;
    Ok(())
}
