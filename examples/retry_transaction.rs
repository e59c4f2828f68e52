//! Serializable transfers between accounts, run by many tasks at once, with
//! `pool.build_transaction().isolation_level(Serializable).run(async move |tx| …)`
//! re-running each transfer that PostgreSQL aborts with a
//! serialization failure (40001) or a deadlock (40P01).
//!
//! With `DATABASE_URL` set, it uses that server; without it, it starts a throwaway
//! PostgreSQL cluster and removes it afterwards:
//!
//! ```text
//! cargo run --example retry_transaction
//! ```
//!
//! At the end it prints how many attempts were retried and checks the invariant the
//! retries protect: money moved between accounts, none created or lost.

use std::time::{Duration, Instant};

use pgkeel::{IsolationLevel, Pool};

const ACCOUNTS: i64 = 10;
const TASKS: usize = 8;
const TRANSFERS_PER_TASK: usize = 25;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (url, _cluster) = pgkeel_testkit::database_url_or_throwaway()?;
    let pool = Pool::builder(url.as_str())
        .max_size(8)
        .max_attempts(20)
        .retry_delays(Duration::from_millis(2), Duration::from_millis(100))
        .build()?;

    pool.execute("DROP TABLE IF EXISTS retry_accounts", &[])
        .await?;
    pool.execute(
        "CREATE TABLE retry_accounts (id int8 PRIMARY KEY, balance int8 NOT NULL)",
        &[],
    )
    .await?;
    pool.execute(
        "INSERT INTO retry_accounts SELECT g, 1000 FROM generate_series(1, $1) g",
        &[&ACCOUNTS],
    )
    .await?;

    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..TRANSFERS_PER_TASK {
                let from = ((task + n) as i64 % ACCOUNTS) + 1;
                let to = ((task + 2 * n + 1) as i64 % ACCOUNTS) + 1;
                // The closure may run several times: everything it does happens inside
                // the transaction, so a failed attempt leaves no trace. `async move`: in a
                // spawned task, a closure that borrows the task's locals is not yet
                // provably Send (a rustc limitation); moving its captures in is.
                pool.build_transaction()
                    .isolation_level(IsolationLevel::Serializable)
                    .run(async move |tx| {
                        let row = tx
                            .query_one("SELECT balance FROM retry_accounts WHERE id = $1", &[&from])
                            .await?;
                        let amount = row.get::<_, i64>(0).min(10);
                        tx.execute(
                            "UPDATE retry_accounts SET balance = balance - $2 WHERE id = $1",
                            &[&from, &amount],
                        )
                        .await?;
                        tx.execute(
                            "UPDATE retry_accounts SET balance = balance + $2 WHERE id = $1",
                            &[&to, &amount],
                        )
                        .await
                    })
                    .await?;
            }
            Ok::<_, pgkeel::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }

    let total: i64 = pool
        .query_one("SELECT sum(balance)::int8 FROM retry_accounts", &[])
        .await?
        .get(0);
    let status = pool.status();
    println!(
        "{} transfers by {TASKS} tasks in {:?}: {} attempts retried",
        TASKS * TRANSFERS_PER_TASK,
        started.elapsed(),
        status.transaction_retries
    );
    println!("total balance {total} (expected {})", ACCOUNTS * 1000);
    assert_eq!(total, ACCOUNTS * 1000, "money was created or lost");
    pool.execute("DROP TABLE retry_accounts", &[]).await?;
    pool.close().await;
    Ok(())
}
