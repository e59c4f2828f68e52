//! Opening each driver's pool or connection the same way, and filling pools before a
//! measurement starts.
//!
//! Pool settings are chosen so no pool makes a round trip on checkout: pgkeel checks the
//! socket without I/O, deadpool-postgres uses `RecyclingMethod::Fast`, and sqlx gets
//! `test_before_acquire(false)` (its default pings on every acquire).

use futures::future::join_all;
use sqlx::Connection as _;

/// A pgkeel pool of `size`, with every connection open.
pub async fn pgkeel_pool(url: &str, size: usize) -> pgkeel::Pool {
    let pool = pgkeel::Pool::builder(url)
        .max_size(size)
        .build()
        .expect("pgkeel pool");
    let conns = join_all((0..size).map(|_| pool.get())).await;
    for c in conns {
        c.expect("pgkeel pool: connect");
    }
    pool
}

/// A deadpool-postgres pool of `size` over tokio-postgres, with every connection open.
pub async fn deadpool(url: &str, size: usize) -> deadpool_postgres::Pool {
    use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod, Runtime};
    let config: tokio_postgres::Config = url.parse().expect("tokio-postgres config");
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .build()
        .expect("deadpool pool");
    let conns = join_all((0..size).map(|_| pool.get())).await;
    for c in conns {
        drop(c.expect("deadpool: connect"));
    }
    pool
}

/// An sqlx pool of `size`, with every connection open.
pub async fn sqlx_pool(url: &str, size: usize) -> sqlx::PgPool {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(size as u32)
        .test_before_acquire(false)
        .connect(url)
        .await
        .expect("sqlx pool");
    let conns = join_all((0..size).map(|_| pool.acquire())).await;
    for c in conns {
        c.expect("sqlx pool: connect");
    }
    pool
}

/// One tokio-postgres connection, its connection task spawned.
pub async fn tokio_postgres(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("tokio-postgres connect");
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("tokio-postgres connection: {e}");
        }
    });
    client
}

/// One sqlx connection.
pub async fn sqlx_conn(url: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(url)
        .await
        .expect("sqlx connect")
}

/// One pgkeel connection.
pub async fn pgkeel_conn(url: &str) -> pgkeel::Connection {
    pgkeel::Connection::connect(url)
        .await
        .expect("pgkeel connect")
}

/// The process id of the server backend behind a pgkeel connection.
pub async fn pgkeel_pid(conn: &pgkeel::Connection) -> i32 {
    let row = conn.query_one("SELECT pg_backend_pid()", &[]).await;
    row.expect("pg_backend_pid").get(0)
}

/// The process id of the server backend behind a tokio-postgres client.
pub async fn tokio_postgres_pid(client: &tokio_postgres::Client) -> i32 {
    let row = client.query_one("SELECT pg_backend_pid()", &[]).await;
    row.expect("pg_backend_pid").get(0)
}

/// The process id of the server backend behind a sqlx connection.
pub async fn sqlx_pid(conn: &mut sqlx::PgConnection) -> i32 {
    let pid = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await;
    pid.expect("pg_backend_pid")
}
