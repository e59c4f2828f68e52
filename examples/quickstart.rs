//! pgkeel in five minutes.
//!
//! With `DATABASE_URL` set, it uses that server; without it, it starts a throwaway
//! PostgreSQL cluster (initdb into a temp dir) and removes it afterwards:
//!
//! ```text
//! cargo run --example quickstart
//! ```

use std::time::Duration;

use pgkeel::{Connection, ErrorKind};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. A server: DATABASE_URL, or a throwaway cluster kept alive by `_cluster`.
    let (url, _cluster) = pgkeel_testkit::database_url_or_throwaway()?;
    println!("connecting to {}", redact(&url));

    // 2. Connect. A Connection is cheap to clone and safe to share between tasks.
    let conn = Connection::connect(url.as_str()).await?;
    println!(
        "server_version = {}",
        conn.parameter("server_version").unwrap_or_default()
    );

    // 3. A table, and parameterised inserts (binary parameters, one round trip each;
    //    the statement is parsed once and cached).
    conn.batch_execute(
        "DROP TABLE IF EXISTS quickstart_people;
         CREATE TABLE quickstart_people (id int8 PRIMARY KEY, name text NOT NULL, score float8)",
    )
    .await?;
    for (id, name, score) in [
        (1i64, "Ada", Some(9.5f64)),
        (2, "Grace", None),
        (3, "Edsger", Some(7.25)),
    ] {
        conn.execute(
            "INSERT INTO quickstart_people (id, name, score) VALUES ($1, $2, $3)",
            &[&id, &name, &score],
        )
        .await?;
    }

    // 4. Select, with typed access by name or position; NULL is Option::None.
    for row in conn
        .query(
            "SELECT id, name, score FROM quickstart_people ORDER BY id",
            &[],
        )
        .await?
    {
        let id: i64 = row.get("id");
        let name: &str = row.get(1);
        let score: Option<f64> = row.get("score");
        println!("  {id} {name:<7} {score:?}");
    }

    // 5. Errors carry their SQLSTATE and every field the server sent.
    let err = conn
        .execute(
            "INSERT INTO quickstart_people (id, name) VALUES ($1, $2)",
            &[&1i64, &"Ada again"],
        )
        .await
        .unwrap_err();
    let db = err.as_db_error().expect("a server error");
    println!(
        "duplicate key: kind={:?} code={} constraint={:?} retryable={}",
        err.kind(),
        db.code(),
        db.constraint(),
        err.is_retryable()
    );

    // 6. Many tasks share one connection; their requests never interleave on the wire.
    let mut tasks = Vec::new();
    for task in 0..16i64 {
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50i64 {
                let row = conn
                    .query_one("SELECT $1::int8 * 1000 + $2::int8", &[&task, &i])
                    .await?;
                assert_eq!(
                    row.get::<_, i64>(0),
                    task * 1000 + i,
                    "every task gets its own rows"
                );
            }
            Ok::<_, pgkeel::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    println!("16 tasks x 50 queries on one shared connection: all results their own");

    // 7. A transaction is a guard: dropped without commit, it rolls back.
    {
        let tx = conn.transaction().await?;
        tx.execute("DELETE FROM quickstart_people", &[]).await?;
    } // dropped here: rolled back
    let count: i64 = conn
        .query_one("SELECT count(*) FROM quickstart_people", &[])
        .await?
        .get(0);
    println!("rows after a dropped transaction: {count}");

    // 8. A timed-out query leaves its connection broken (and cancelled on the server),
    //    never returning someone else's rows.
    let slow = tokio::time::timeout(
        Duration::from_millis(50),
        conn.query("SELECT pg_sleep(5)", &[]),
    )
    .await;
    assert!(slow.is_err());
    let after = conn.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(after.kind(), ErrorKind::Broken);
    println!("after a timeout: {after}");

    let fresh = Connection::connect(url.as_str()).await?;
    fresh.batch_execute("DROP TABLE quickstart_people").await?;
    fresh.close().await?;
    println!("done");
    Ok(())
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if url[s + 3..at].contains(':') => {
            let user_end = s + 3 + url[s + 3..at].find(':').unwrap_or(0);
            format!("{}:***{}", &url[..user_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}
