//! `GenericClient`: one repository function runs on a connection, a transaction, a
//! savepoint, a pooled connection and a pool transaction; its futures are `Send`;
//! `&self` transaction methods joined in one task run one after the other; a row stream
//! held by the task makes a second call fail at once instead of hanging; a transaction
//! guard moves to another task and still rolls back when dropped there.

use crate::common;

use std::time::Duration;

use futures::StreamExt;
use pgkeel::{Error, ErrorKind, GenericClient, Pool, TransactionStatus};
use tokio::time::timeout;

/// Repository code written once, for any client.
async fn add_user<C: GenericClient>(db: &C, name: &str) -> Result<i64, Error> {
    let row = db
        .query_one(
            "INSERT INTO users (name) VALUES ($1) RETURNING id",
            &[&name],
        )
        .await?;
    Ok(row.get(0))
}

/// Every trait method, once, through a generic client; returns the users it saw.
async fn exercise<C: GenericClient>(db: &C, name: &str) -> Result<Vec<String>, Error> {
    let id = add_user(db, name).await?;
    let n = db
        .execute("UPDATE users SET name = name WHERE id = $1", &[&id])
        .await?;
    assert_eq!(n, 1);
    assert!(db.query_opt("SELECT 1 WHERE false", &[]).await?.is_none());
    let typed = db
        .query_typed("SELECT $1::text", &[(&name, pgkeel::Type::TEXT)])
        .await?;
    assert_eq!(typed[0].get::<_, String>(0), name);
    let stmt = db.prepare("SELECT name FROM users WHERE id = $1").await?;
    let same: String = db.query_one(&stmt, &[&id]).await?.get(0);
    assert_eq!(same, name);
    let stmt = db
        .prepare_typed("SELECT $1 + 1", &[pgkeel::Type::INT8])
        .await?;
    assert_eq!(db.query_one(&stmt, &[&1i64]).await?.get::<_, i64>(0), 2);
    let extra = format!("{name}-extra");
    let params: [&(dyn pgkeel::ToSql + Sync); 1] = [&extra];
    let many = db
        .execute_many("INSERT INTO users (name) VALUES ($1)", &[&params[..]])
        .await?;
    assert_eq!(many, 1);
    db.batch_execute("SELECT 1; SELECT 2").await?;
    assert_eq!(db.simple_query("SELECT 1").await?.len(), 2);
    let mut names = Vec::new();
    let mut stream = db
        .query_raw("SELECT name FROM users ORDER BY id", &[])
        .await?;
    while let Some(row) = stream.next().await {
        names.push(row?.get::<_, String>(0));
    }
    Ok(names)
}

async fn setup() -> (pgkeel_testkit::TestDb, pgkeel::Connection, Pool) {
    let (db, conn) = common::db().await;
    conn.batch_execute(
        "CREATE TABLE users (id int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL)",
    )
    .await
    .unwrap();
    let pool = Pool::builder(db.url()).max_size(2).build().unwrap();
    (db, conn, pool)
}

async fn user_names(conn: &pgkeel::Connection) -> Vec<String> {
    let rows = conn
        .query("SELECT name FROM users ORDER BY id", &[])
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn one_repository_function_runs_on_every_kind_of_client() {
    let (db, conn, pool) = setup().await;

    let seen = exercise(&conn, "conn").await.unwrap();
    assert_eq!(seen, ["conn", "conn-extra"]);

    let mut tx = conn.transaction().await.unwrap();
    exercise(&tx, "tx").await.unwrap();
    {
        let sp = GenericClient::transaction(&mut tx).await.unwrap();
        let seen = exercise(&sp, "sp-rolled-back").await.unwrap();
        assert!(seen.contains(&"sp-rolled-back".to_owned()), "{seen:?}");
        // Dropped unfinished: rolled back before the transaction's next statement.
    }
    {
        let mut sp = tx.savepoint().await.unwrap();
        exercise(&sp, "sp").await.unwrap();
        let inner = GenericClient::transaction(&mut sp).await.unwrap();
        exercise(&inner, "nested").await.unwrap();
        inner.commit().await.unwrap();
        sp.commit().await.unwrap();
    }
    tx.commit().await.unwrap();

    let pooled = pool.get().await.unwrap();
    exercise(&pooled, "pooled").await.unwrap();
    drop(pooled);

    let mut ptx = pool.begin().await.unwrap();
    exercise(&ptx, "pool-tx").await.unwrap();
    let sp = GenericClient::transaction(&mut ptx).await.unwrap();
    exercise(&sp, "pool-sp").await.unwrap();
    sp.commit().await.unwrap();
    ptx.commit().await.unwrap();

    let mut pooled = pool.get().await.unwrap();
    let tx = GenericClient::transaction(&mut pooled).await.unwrap();
    exercise(&tx, "pooled-tx-dropped").await.unwrap();
    drop(tx);

    let names = user_names(&conn).await;
    let expected: Vec<String> = ["conn", "tx", "sp", "nested", "pooled", "pool-tx", "pool-sp"]
        .iter()
        .flat_map(|n| [n.to_string(), format!("{n}-extra")])
        .collect();
    assert_eq!(names, expected);
    drop(db);
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[tokio::test]
async fn generic_futures_are_send_and_run_in_spawned_tasks() {
    let (_db, conn, pool) = setup().await;
    // Each spawn below only compiles if the generic future is Send.
    let c = conn.clone();
    let id = tokio::spawn(async move { add_user(&c, "spawned-conn").await })
        .await
        .unwrap()
        .unwrap();
    assert!(id > 0);
    let p = pool.clone();
    tokio::spawn(async move {
        let tx = p.begin().await?;
        add_user(&tx, "spawned-pool-tx").await?;
        let mut tx = tx;
        let sp = GenericClient::transaction(&mut tx).await?;
        add_user(&sp, "spawned-sp").await?;
        sp.commit().await?;
        tx.commit().await
    })
    .await
    .unwrap()
    .unwrap();
    let p = pool.clone();
    let n = tokio::spawn(async move {
        p.transaction(async |tx| {
            add_user(tx, "spawned-closure").await?;
            let row = tx.query_one("SELECT count(*) FROM users", &[]).await?;
            Ok(row.get::<_, i64>(0))
        })
        .await
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(n, 4);
    let tx = conn.transaction().await.unwrap();
    drop(assert_send(exercise(&tx, "checked")));
    drop(tx);
}

#[tokio::test]
async fn two_queries_of_one_transaction_joined_in_one_task_run_one_after_the_other() {
    let (_db, conn, _pool) = setup().await;
    let tx = conn.transaction().await.unwrap();
    let slow = tx.query_one("SELECT pg_sleep(0.2)::text, clock_timestamp()", &[]);
    let fast = tx.query_one("SELECT 'fast', clock_timestamp()", &[]);
    let both = timeout(Duration::from_secs(10), async { tokio::join!(slow, fast) });
    let (slow, fast) = both.await.expect("joined queries finish, no deadlock");
    let (slow, fast) = (slow.unwrap(), fast.unwrap());
    // The second ran after the first ended: never interleaved on the wire.
    let t_slow: std::time::SystemTime = slow.get(1);
    let t_fast: std::time::SystemTime = fast.get(1);
    assert!(t_fast >= t_slow, "{t_fast:?} < {t_slow:?}");
    assert_eq!(fast.get::<_, String>(0), "fast");
    // A hundred at once, all inside the one transaction.
    let ids: Vec<i64> = (0..100).collect();
    let params: Vec<[&(dyn pgkeel::ToSql + Sync); 1]> = ids.iter().map(|i| [i as _]).collect();
    let sql = "INSERT INTO users (name) VALUES ($1::int8::text)";
    let futs = params.iter().map(|p| tx.execute(sql, p));
    let counts = futures::future::try_join_all(futs).await.unwrap();
    assert_eq!(counts.iter().sum::<u64>(), 100);
    assert_eq!(tx.transaction_status(), TransactionStatus::InTransaction);
    tx.rollback().await.unwrap();
    assert!(user_names(&conn).await.is_empty());
}

#[tokio::test]
async fn a_call_while_this_task_holds_a_stream_of_the_transaction_fails_at_once() {
    let (_db, conn, _pool) = setup().await;
    let tx = conn.transaction().await.unwrap();
    let mut stream = tx
        .query_raw("SELECT g FROM generate_series(1, 10000) g", &[])
        .await
        .unwrap();
    let first: i32 = stream.next().await.unwrap().unwrap().get(0);
    assert_eq!(first, 1);
    let err = timeout(Duration::from_secs(5), tx.query("SELECT 1", &[]))
        .await
        .expect("fails at once, does not wait for itself")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Misuse, "{err}");
    assert!(err.to_string().contains("row stream"), "{err}");
    // Joined with the stream still open: same answer, no hang.
    let (next, other) = timeout(Duration::from_secs(5), async {
        tokio::join!(stream.next(), tx.execute("SELECT 1", &[]))
    })
    .await
    .expect("no deadlock");
    assert_eq!(next.unwrap().unwrap().get::<_, i32>(0), 2);
    assert_eq!(other.unwrap_err().kind(), ErrorKind::Misuse);
    drop(stream);
    // Once the stream is gone the transaction works again, its portal closed first.
    let n: i64 = tx.query_one("SELECT 7::int8", &[]).await.unwrap().get(0);
    assert_eq!(n, 7);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_transaction_moved_to_another_task_works_there_and_rolls_back_when_dropped_there() {
    let (_db, conn, _pool) = setup().await;
    let tx = conn.transaction().await.unwrap();
    add_user(&tx, "before-move").await.unwrap();
    let tx = tokio::spawn(async move {
        add_user(&tx, "in-task").await.unwrap();
        // The connection's holder mark followed the transaction here.
        tx
    })
    .await
    .unwrap();
    // Back in the first task: usable here too; from its next use the connection knows
    // this task holds it, so a direct call fails at once instead of waiting for itself.
    add_user(&tx, "back").await.unwrap();
    let err = conn.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Misuse, "{err}");
    tokio::spawn(async move {
        add_user(&tx, "dropped-in-task").await.unwrap();
        drop(tx);
    })
    .await
    .unwrap();
    // The rollback ran while the wire was held, so this waits for it and sees nothing.
    assert!(user_names(&conn).await.is_empty());
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
}
