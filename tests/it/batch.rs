//! Batches of different statements: one write, answers in order, each typed; where the
//! Syncs go decides what fails together; errors name the statement's index.

use crate::common;

use std::time::Duration;

use pgkeel::types::Infer;
use pgkeel::{Batch, Connection, ErrorKind, GenericClient, TransactionStatus};

async fn table(conn: &Connection) {
    conn.batch_execute("CREATE TABLE b (id int8 PRIMARY KEY, note text)")
        .await
        .unwrap();
}

async fn ids(conn: &Connection) -> Vec<i64> {
    conn.query("SELECT id FROM b ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

const INSERT: &str = "INSERT INTO b (id, note) VALUES ($1, $2)";

#[tokio::test]
async fn independent_statements_each_commit_and_a_failure_stops_none_of_the_others() {
    let (_db, conn) = common::db().await;
    table(&conn).await;
    conn.execute(INSERT, &[&2i64, &"there already"])
        .await
        .unwrap();
    let (one, two, three) = (1i64, 2i64, 3i64);
    let mut batch = Batch::new();
    let a = batch.execute(INSERT, &[&one, &"a"]);
    let b = batch.execute(INSERT, &[&two, &"duplicate"]);
    let c = batch.execute(INSERT, &[&three, &"c"]);
    let count = batch.query_one("SELECT count(*) FROM b", &[]);
    assert_eq!(batch.len(), 4);
    let mut results = conn.run_batch(&batch).await.unwrap();
    assert_eq!(results.len(), 4);
    let (index, first) = results.first_error().expect("statement 1 failed");
    assert_eq!(index, 1);
    assert_eq!(first.code(), Some("23505"));
    assert_eq!(results.take(a).unwrap(), 1);
    let e = results.take(b).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Db);
    assert!(e.to_string().contains("batch statement 1"), "{e}");
    assert_eq!(results.take(c).unwrap(), 1);
    assert_eq!(results.take(count).unwrap().get::<_, i64>(0), 3);
    assert_eq!(ids(&conn).await, [1, 2, 3]);
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
}

#[tokio::test]
async fn all_or_nothing_undoes_the_unit_and_skips_the_rest_of_it() {
    let (_db, conn) = common::db().await;
    table(&conn).await;
    conn.execute(INSERT, &[&2i64, &"there already"])
        .await
        .unwrap();
    let mut batch = Batch::all_or_nothing();
    let a = batch.execute(INSERT, &[&1i64, &"a"]);
    let b = batch.execute(INSERT, &[&2i64, &"duplicate"]);
    let c = batch.execute(INSERT, &[&3i64, &"c"]);
    let mut results = conn.run_batch(&batch).await.unwrap();
    let cause = results.first_error().map(|(i, e)| (i, e.code()));
    assert_eq!(
        cause,
        Some((1, Some("23505"))),
        "the cause, not the undone statement 0"
    );
    let e = results.take(a).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RolledBack, "{e}");
    assert!(e.to_string().contains("batch statement 0"), "{e}");
    let e = results.take(b).unwrap_err();
    assert_eq!(e.code(), Some("23505"), "{e}");
    let e = results.take(c).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Skipped, "{e}");
    assert!(e.to_string().contains("batch statement 2"), "{e}");
    assert_eq!(ids(&conn).await, [2]);
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);

    // Cut into two units: the first commits, the second fails alone.
    let mut batch = Batch::all_or_nothing();
    let a = batch.execute(INSERT, &[&10i64, &"a"]);
    let b = batch.execute(INSERT, &[&11i64, &"b"]);
    batch.sync();
    let c = batch.execute(INSERT, &[&12i64, &"c"]);
    let d = batch.execute(INSERT, &[&2i64, &"duplicate"]);
    let mut results = conn.run_batch(&batch).await.unwrap();
    assert_eq!((results.take(a).unwrap(), results.take(b).unwrap()), (1, 1));
    assert_eq!(results.take(c).unwrap_err().kind(), ErrorKind::RolledBack);
    assert_eq!(results.take(d).unwrap_err().code(), Some("23505"));
    assert_eq!(ids(&conn).await, [2, 10, 11]);
}

#[tokio::test]
async fn results_are_typed_and_tickets_are_checked() {
    let (_db, conn) = common::db().await;
    table(&conn).await;
    let name = String::from("ada");
    let mut batch = Batch::new();
    let ins = batch.query(
        "INSERT INTO b VALUES (1, $1), (2, $1) RETURNING id, note",
        &[&name],
    );
    let one = batch.query_one("SELECT note FROM b WHERE id = $1", &[&1i64]);
    let none = batch.query_opt("SELECT note FROM b WHERE id = $1", &[&9i64]);
    let some = batch.query_opt("SELECT note FROM b WHERE id = $1", &[&2i64]);
    let too_many = batch.query_one("SELECT id FROM b", &[]);
    let empty = batch.query_one("SELECT id FROM b WHERE false", &[]);
    let updated = batch.execute("UPDATE b SET note = upper(note)", &[]);
    let mut results = conn.run_batch(&batch).await.unwrap();
    let rows = results.take(ins).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].get::<_, i64>(0), 2);
    assert_eq!(rows[1].get::<_, &str>("note"), "ada");
    assert_eq!(results.take(one).unwrap().get::<_, String>(0), "ada");
    assert!(results.take(none).unwrap().is_none());
    assert!(results.take(some).unwrap().is_some());
    let e = results.take(too_many).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RowCount);
    assert!(e.to_string().contains("batch statement 4"), "{e}");
    assert_eq!(results.take(empty).unwrap_err().kind(), ErrorKind::RowCount);
    assert_eq!(results.take(updated).unwrap(), 2);
    // Taken twice, or redeemed against another batch's results: misuse.
    assert_eq!(results.take(updated).unwrap_err().kind(), ErrorKind::Misuse);
    let mut other = Batch::new();
    let foreign = other.execute("SELECT 1", &[]);
    assert_eq!(results.take(foreign).unwrap_err().kind(), ErrorKind::Misuse);
    assert!(results.first_error().is_none());
    // An empty batch sends nothing and returns no results.
    assert!(conn.run_batch(&Batch::new()).await.unwrap().is_empty());
}

#[tokio::test]
async fn fifty_thousand_statements_returning_rows_never_deadlock() {
    let (_db, conn) = common::db().await;
    table(&conn).await;
    let n = 50_000i64;
    let values: Vec<i64> = (0..n).collect();
    // Every answer carries a row of ~200 bytes, so the server's answers fill the
    // socket long before the batch is written: the writer must read as it goes.
    let sql = "INSERT INTO b VALUES ($1, repeat('x', 200)) RETURNING id, note";
    let mut batch = Batch::all_or_nothing();
    let tickets: Vec<_> = values.iter().map(|v| batch.query_one(sql, &[v])).collect();
    let run = tokio::time::timeout(Duration::from_secs(120), conn.run_batch(&batch));
    let mut results = run.await.expect("the batch must not stall").unwrap();
    for (i, t) in tickets.into_iter().enumerate() {
        let row = results.take(t).unwrap();
        assert_eq!(row.get::<_, i64>(0), i as i64);
        assert_eq!(row.get::<_, &str>(1).len(), 200);
    }
    let count: i64 = conn
        .query_one("SELECT count(*) FROM b", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, n);
}

#[tokio::test]
async fn a_one_statement_cache_and_no_cache_give_the_same_answers() {
    let db = pgkeel_testkit::TestDb::new();
    // Through PgBouncer (pooler mode) there is no cache to size: the default runs once.
    let via_pooler = std::env::var_os("PGKEEL_TEST_VIA_PGBOUNCER").is_some();
    let capacities: &[Option<u32>] = match via_pooler {
        true => &[None],
        false => &[Some(0), Some(1), Some(100)],
    };
    for &capacity in capacities {
        let url = match capacity {
            Some(n) => common::with_param(&db.url(), &format!("statement_cache_capacity={n}")),
            None => db.url(),
        };
        let conn = Connection::connect(&url).await.unwrap();
        let texts = [
            "SELECT $1::int8 + 1",
            "SELECT $1::int8 * 2",
            "SELECT $1::int8 - 3",
            "SELECT $1::int8 * $1::int8",
        ];
        let xs: Vec<i64> = (0..400).collect();
        for round in 0..3 {
            let mut batch = Batch::new();
            let tickets: Vec<_> = xs
                .iter()
                .map(|x| batch.query_one(texts[(*x as usize + round) % 4], &[x]))
                .collect();
            let mut results = conn.run_batch(&batch).await.unwrap();
            for (x, t) in xs.iter().zip(tickets) {
                let got: i64 = results.take(t).unwrap().get(0);
                let want = match (*x as usize + round) % 4 {
                    0 => x + 1,
                    1 => x * 2,
                    2 => x - 3,
                    _ => x * x,
                };
                assert_eq!(got, want, "capacity {capacity:?}, round {round}, x {x}");
            }
        }
    }
}

#[tokio::test]
async fn a_statement_that_fails_to_parse_fails_alone_and_its_repeats_are_skipped() {
    let (_db, conn) = common::db().await;
    let mut batch = Batch::new();
    let ok = batch.query_one("SELECT 1::int4", &[]);
    let bad = batch.query_one("SELEC 2", &[]);
    let ok2 = batch.query_one("SELECT $1::int4 + 1", &[&1i32]);
    let bad_again = batch.query_one("SELEC 2", &[]);
    let mut results = conn.run_batch(&batch).await.unwrap();
    assert_eq!(results.take(ok).unwrap().get::<_, i32>(0), 1);
    assert_eq!(results.take(bad).unwrap_err().code(), Some("42601"));
    assert_eq!(results.take(ok2).unwrap().get::<_, i32>(0), 2);
    let e = results.take(bad_again).unwrap_err();
    assert!(
        e.kind() == ErrorKind::Skipped || e.code() == Some("42601"),
        "{e}"
    );
    // Nothing broken was cached: the same text fails the same way, a good one works.
    assert_eq!(
        conn.query_one("SELEC 2", &[]).await.unwrap_err().code(),
        Some("42601")
    );
    assert_eq!(
        conn.query_one("SELECT 1::int4", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
}

#[tokio::test]
async fn prepared_statements_and_server_inferred_parameters_mix_in_one_batch() {
    let (_db, conn) = common::db().await;
    table(&conn).await;
    let stmt = conn.prepare(INSERT).await.unwrap();
    let mut batch = Batch::new();
    let a = batch.execute(&stmt, &[&1i64, &"prepared"]);
    // The server decides what type `$1` is (int8 here), and the value is checked.
    let inferred = Infer(2i64);
    let b = batch.execute("INSERT INTO b (id) VALUES ($1)", &[&inferred]);
    let c = batch.query("SELECT id, note FROM b ORDER BY id", &[]);
    let mut results = conn.run_batch(&batch).await.unwrap();
    assert_eq!(results.take(a).unwrap(), 1);
    assert_eq!(results.take(b).unwrap(), 1);
    let rows = results.take(c).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, Option<&str>>(1), Some("prepared"));
    assert_eq!(rows[1].get::<_, Option<&str>>(1), None);
}

#[tokio::test]
async fn a_copy_or_a_bad_parameter_fails_the_run_with_nothing_sent() {
    let (_db, conn) = common::db().await;
    table(&conn).await;
    let mut batch = Batch::new();
    let _ = batch.execute(INSERT, &[&1i64, &"a"]);
    let _ = batch.execute("COPY b FROM STDIN", &[]);
    let e = conn.run_batch(&batch).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Misuse);
    assert!(e.to_string().contains("batch statement 1"), "{e}");

    let mut batch = Batch::new();
    let _ = batch.execute(INSERT, &[&1i64, &"a"]);
    // Text for a parameter the server infers as int8 is refused on the client: the
    // whole run fails before anything of it is written.
    let text = Infer("not a number");
    let _ = batch.execute("INSERT INTO b (id, note) VALUES ($1, 'x')", &[&text]);
    let _ = batch.execute(INSERT, &[&3i64, &"c"]);
    let e = conn.run_batch(&batch).await.unwrap_err();
    assert!(e.to_string().contains("batch statement 1"), "{e}");
    assert_eq!(ids(&conn).await, Vec::<i64>::new());
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
    conn.execute(INSERT, &[&5i64, &"after"]).await.unwrap();
    assert_eq!(ids(&conn).await, [5]);
}

#[tokio::test]
async fn inside_a_transaction_a_failure_fails_the_transaction() {
    let (_db, conn) = common::db().await;
    table(&conn).await;
    let tx = conn.transaction().await.unwrap();
    let mut batch = Batch::new();
    let a = batch.execute(INSERT, &[&1i64, &"a"]);
    let b = batch.execute(INSERT, &[&1i64, &"duplicate"]);
    let c = batch.execute(INSERT, &[&3i64, &"c"]);
    let mut results = tx.run_batch(&batch).await.unwrap();
    assert_eq!(results.take(a).unwrap(), 1);
    assert_eq!(results.take(b).unwrap_err().code(), Some("23505"));
    // A Sync does not end a transaction block: the server refuses what follows.
    assert_eq!(results.take(c).unwrap_err().code(), Some("25P02"));
    assert_eq!(tx.transaction_status(), TransactionStatus::Failed);
    tx.rollback().await.unwrap();
    assert_eq!(ids(&conn).await, Vec::<i64>::new());

    // And a batch that succeeds commits with its transaction.
    let tx = conn.transaction().await.unwrap();
    let mut batch = Batch::all_or_nothing();
    let _ = batch.execute(INSERT, &[&7i64, &"a"]);
    let _ = batch.execute(INSERT, &[&8i64, &"b"]);
    let results = tx.run_batch(&batch).await.unwrap();
    assert!(results.first_error().is_none());
    tx.commit().await.unwrap();
    assert_eq!(ids(&conn).await, [7, 8]);
}

/// Repository code written once for every client.
async fn insert_pair<C: GenericClient>(db: &C, first: i64) -> Result<u64, pgkeel::Error> {
    let second = first + 1;
    let mut batch = Batch::all_or_nothing();
    let a = batch.execute(INSERT, &[&first, &"pair"]);
    let b = batch.execute(INSERT, &[&second, &"pair"]);
    let mut results = db.run_batch(&batch).await?;
    Ok(results.take(a)? + results.take(b)?)
}

#[tokio::test]
async fn the_client_trait_runs_batches_everywhere() {
    let (db, conn) = common::db().await;
    table(&conn).await;
    assert_eq!(insert_pair(&conn, 10).await.unwrap(), 2);
    let tx = conn.transaction().await.unwrap();
    assert_eq!(insert_pair(&tx, 20).await.unwrap(), 2);
    tx.commit().await.unwrap();
    let pool = pgkeel::Pool::builder(db.url()).max_size(2).build().unwrap();
    let pooled = pool.get().await.unwrap();
    assert_eq!(insert_pair(&pooled, 30).await.unwrap(), 2);
    let handle = tokio::spawn(async move { insert_pair(&pooled, 40).await });
    assert_eq!(handle.await.unwrap().unwrap(), 2);
    assert_eq!(ids(&conn).await, [10, 11, 20, 21, 30, 31, 40, 41]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_sharing_a_connection_get_their_own_batches_answers() {
    let (_db, conn) = common::db().await;
    let mut tasks = Vec::new();
    for t in 0..8i64 {
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..50i64 {
                let xs: Vec<i64> = (0..20).map(|i| t * 1_000_000 + round * 100 + i).collect();
                let mut batch = Batch::new();
                let tickets: Vec<_> = xs
                    .iter()
                    .map(|x| batch.query_one("SELECT $1::int8 * 3", &[x]))
                    .collect();
                let mut results = conn.run_batch(&batch).await.unwrap();
                for (x, ticket) in xs.iter().zip(tickets) {
                    assert_eq!(results.take(ticket).unwrap().get::<_, i64>(0), x * 3);
                }
                // Interleave single calls, which may pipeline with other tasks' calls.
                let row = conn.query_one("SELECT $1::int8 + 1", &[&t]).await.unwrap();
                assert_eq!(row.get::<_, i64>(0), t + 1);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
