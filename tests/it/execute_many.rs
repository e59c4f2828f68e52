//! `execute_many`: many parameter sets, pipelined, as one unit.

use crate::common;

use std::time::Duration;

use pgkeel::{ErrorKind, ToSql, TransactionStatus};

async fn table(conn: &pgkeel::Connection) {
    conn.batch_execute("CREATE TABLE many (id int8 PRIMARY KEY, name text, score float8)")
        .await
        .unwrap();
}

async fn count(conn: &pgkeel::Connection) -> i64 {
    conn.query_one("SELECT count(*) FROM many", &[])
        .await
        .unwrap()
        .get(0)
}

fn rows(n: i64) -> Vec<(i64, String, Option<f64>)> {
    (0..n)
        .map(|i| {
            (
                i,
                format!("name {i}"),
                (i % 3 != 0).then_some(i as f64 / 2.0),
            )
        })
        .collect()
}

fn params(rows: &[(i64, String, Option<f64>)]) -> Vec<[&(dyn ToSql + Sync); 3]> {
    rows.iter()
        .map(|(i, n, s)| [i as &(dyn ToSql + Sync), n, s])
        .collect()
}

#[tokio::test]
async fn ten_thousand_rows_over_several_chunks_are_all_inserted() {
    let (_db, conn) = common::db().await;
    table(&conn).await;
    let data = rows(10_000);
    let p = params(&data);
    let n = conn
        .execute_many(
            "INSERT INTO many VALUES ($1, $2, $3)",
            p.iter().map(|r| &r[..]),
        )
        .await
        .unwrap();
    assert_eq!(n, 10_000);
    assert_eq!(count(&conn).await, 10_000);
    let row = conn
        .query_one("SELECT name, score FROM many WHERE id = $1", &[&4_001i64])
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "name 4001");
    assert_eq!(row.get::<_, Option<f64>>(1), Some(2000.5));
    let nulls: i64 = conn
        .query_one("SELECT count(*) FROM many WHERE score IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(nulls, 3_334);
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
}

#[tokio::test]
async fn a_prepared_statement_works_and_an_empty_run_sends_nothing() {
    let (_db, conn) = common::db().await;
    table(&conn).await;
    let stmt = conn
        .prepare("INSERT INTO many (id, name) VALUES ($1, $2)")
        .await
        .unwrap();
    let data: Vec<(i64, &str)> = (0..1500).map(|i| (i, "x")).collect();
    let p: Vec<[&(dyn ToSql + Sync); 2]> = data
        .iter()
        .map(|(i, n)| [i as &(dyn ToSql + Sync), n])
        .collect();
    assert_eq!(
        conn.execute_many(&stmt, p.iter().map(|r| &r[..]))
            .await
            .unwrap(),
        1500
    );
    let none: Vec<&[&(dyn ToSql + Sync)]> = Vec::new();
    assert_eq!(conn.execute_many(&stmt, none).await.unwrap(), 0);
    assert_eq!(count(&conn).await, 1500);
}

#[tokio::test]
async fn a_server_error_in_a_late_chunk_keeps_nothing_outside_a_transaction() {
    let (_db, conn) = common::db().await;
    table(&conn).await;
    let mut data = rows(5_000);
    data[4_000].0 = 17; // duplicate key, in the fourth chunk
    let p = params(&data);
    let err = conn
        .execute_many(
            "INSERT INTO many VALUES ($1, $2, $3)",
            p.iter().map(|r| &r[..]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("23505"), "{err}");
    assert_eq!(count(&conn).await, 0, "the run is one unit");
    assert!(!conn.is_broken());
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
}

#[tokio::test]
async fn an_unencodable_parameter_in_a_late_chunk_rolls_back_the_run() {
    let (_db, conn) = common::db().await;
    table(&conn).await;
    let data = rows(3_000);
    let mut p: Vec<Vec<&(dyn ToSql + Sync)>> = params(&data).iter().map(|r| r.to_vec()).collect();
    let wrong = 5i32; // an int4 where the statement takes int8
    p[2_500][0] = &wrong;
    let err = conn
        .execute_many(
            "INSERT INTO many VALUES ($1, $2, $3)",
            p.iter().map(|r| &r[..]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Encode, "{err}");
    assert!(err.to_string().contains("parameter set"), "{err}");
    assert_eq!(
        count(&conn).await,
        0,
        "chunks already sent were rolled back"
    );
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
    assert_eq!(
        conn.query_one("SELECT 1::int4", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
}

#[tokio::test]
async fn an_unencodable_parameter_in_the_first_chunk_sends_nothing() {
    let (_db, conn) = common::db().await;
    table(&conn).await;
    let (a, b, bad) = (1i64, 2i64, "not an int8");
    let p: Vec<[&(dyn ToSql + Sync); 3]> = vec![
        [&a, &"a", &None::<f64>],
        [&b, &"b", &None::<f64>],
        [&bad, &"c", &None::<f64>],
    ];
    let err = conn
        .execute_many(
            "INSERT INTO many VALUES ($1, $2, $3)",
            p.iter().map(|r| &r[..]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Encode, "{err}");
    assert!(!conn.is_broken());
    assert_eq!(count(&conn).await, 0);
}

#[tokio::test]
async fn inside_a_transaction_an_error_fails_the_transaction_and_success_commits_with_it() {
    let (_db, conn) = common::db().await;
    table(&conn).await;
    let data = rows(2_000);
    let p = params(&data);
    let tx = conn.transaction().await.unwrap();
    let n = tx
        .execute_many(
            "INSERT INTO many VALUES ($1, $2, $3)",
            p.iter().map(|r| &r[..]),
        )
        .await
        .unwrap();
    assert_eq!(n, 2_000);
    assert_eq!(tx.transaction_status(), TransactionStatus::InTransaction);
    let err = tx
        .execute_many(
            "INSERT INTO many VALUES ($1, $2, $3)",
            p.iter().map(|r| &r[..]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("23505"));
    assert_eq!(tx.transaction_status(), TransactionStatus::Failed);
    tx.rollback().await.unwrap();
    assert_eq!(count(&conn).await, 0);

    let tx = conn.transaction().await.unwrap();
    tx.execute_many(
        "INSERT INTO many VALUES ($1, $2, $3)",
        p.iter().map(|r| &r[..]),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(count(&conn).await, 2_000);
}

#[tokio::test]
async fn a_run_dropped_mid_way_breaks_the_connection_and_keeps_nothing() {
    let (db, conn) = common::db().await;
    table(&conn).await;
    conn.batch_execute(
        "CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_sleep(0.001); RETURN NEW; END $$; \
         CREATE TRIGGER slow BEFORE INSERT ON many FOR EACH ROW EXECUTE FUNCTION slow_insert()",
    )
    .await
    .unwrap();
    let data = rows(5_000);
    let p = params(&data);
    let run = conn.execute_many(
        "INSERT INTO many VALUES ($1, $2, $3)",
        p.iter().map(|r| &r[..]),
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(100), run)
            .await
            .is_err()
    );
    let err = conn.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken);
    let watcher = common::connect(&db).await;
    common::wait_query_gone(&watcher, "INSERT INTO many", Duration::from_secs(2))
        .await
        .unwrap();
    let left: i64 = watcher
        .query_one("SELECT count(*) FROM many", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[tokio::test]
async fn tuples_arrays_vecs_and_references_are_parameter_sets() {
    let (_db, conn) = common::db().await;
    table(&conn).await;
    let sql = "INSERT INTO many VALUES ($1, $2, $3)";
    // Tuples by value, built on the way from any iterator (no slices up front, no Send).
    let n = conn
        .execute_many(
            sql,
            (0..100i64).map(|i| (i, format!("t{i}"), Some(i as f64))),
        )
        .await
        .unwrap();
    assert_eq!(n, 100);
    // Tuples by reference, as a slice of owned data.
    let owned: Vec<(i64, String, Option<f64>)> = rows(200).into_iter().skip(100).collect();
    assert_eq!(conn.execute_many(sql, &owned).await.unwrap(), 100);
    // A tuple of references to fields.
    let n = conn
        .execute_many(
            "INSERT INTO many (id, name) VALUES ($1, $2)",
            owned.iter().map(|(id, name, _)| (id + 1000, name)),
        )
        .await
        .unwrap();
    assert_eq!(n, 100);
    // Arrays of one type and Vecs.
    let ids: Vec<[i64; 1]> = (2000..2050).map(|i| [i]).collect();
    assert_eq!(
        conn.execute_many("INSERT INTO many (id) VALUES ($1)", &ids)
            .await
            .unwrap(),
        50
    );
    let pairs: Vec<Vec<i64>> = (3000..3050).map(|i| vec![i, i * 2]).collect();
    assert_eq!(
        conn.execute_many(
            "INSERT INTO many (id, score) VALUES ($1, $2::int8::float8)",
            pairs.iter()
        )
        .await
        .unwrap(),
        50
    );
    // The tokio-postgres shape still works: slices of `&dyn ToSql`, and a Vec of them.
    let dynamic: Vec<Vec<&(dyn ToSql + Sync)>> = vec![vec![&4000i64, &"dyn", &None::<f64>]];
    assert_eq!(
        conn.execute_many(sql, dynamic.iter().map(|p| &p[..]))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        conn.execute_many(sql, &dynamic).await.unwrap_err().code(),
        Some("23505")
    );
    assert_eq!(count(&conn).await, 100 + 100 + 100 + 50 + 50 + 1);
    let row = conn
        .query_one("SELECT name, score FROM many WHERE id = $1", &[&3010i64])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<&str>>(0), None);
    assert_eq!(row.get::<_, Option<f64>>(1), Some(6020.0));
    let row = conn
        .query_one("SELECT name FROM many WHERE id = $1", &[&1150i64])
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "name 150");
}

/// The iterator's items are produced as the run is written, never collected: a lazily
/// generated run of 100,000 sets counts how many were taken when the server failed.
#[tokio::test]
async fn a_bad_set_among_a_hundred_thousand_is_named_by_its_index_and_nothing_is_kept() {
    let (_db, conn) = common::db().await;
    table(&conn).await;
    const BAD: i64 = 73_412;
    let sql = "INSERT INTO many VALUES ($1, $2, $3)";
    // A server error: a duplicate key at index 73,412.
    let err = conn
        .execute_many(
            sql,
            (0..100_000i64).map(|i| (if i == BAD { 5 } else { i }, "x", None::<f64>)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("23505"), "{err}");
    assert!(err.to_string().contains("parameter set 73412 "), "{err}");
    assert_eq!(count(&conn).await, 0, "the run is one unit");
    let ids: Vec<i64> = (0..100_000).collect();
    let run = |bad: &'static (dyn ToSql + Sync)| {
        let ids = &ids;
        (0..100_000usize).map(move |i| -> Vec<&(dyn ToSql + Sync)> {
            match i == BAD as usize {
                true => vec![bad, &"x", &None::<f64>],
                false => vec![&ids[i], &"x", &None::<f64>],
            }
        })
    };
    // Text that is no int8: against a described statement text binds to any type and
    // the server fails to parse it; against one parsed from the first set's types (no
    // statement cache, pooler mode) it is refused before it is sent.
    let err = conn
        .execute_many(sql, run(&"not a number"))
        .await
        .unwrap_err();
    assert!(
        err.code() == Some("22P02") || err.kind() == ErrorKind::Encode,
        "{err}"
    );
    assert!(err.to_string().contains("parameter set 73412 "), "{err}");
    assert_eq!(count(&conn).await, 0);
    // A client-side encoding failure at the same index: an int4 where int8 is expected.
    let err = conn.execute_many(sql, run(&5i32)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Encode, "{err}");
    assert!(err.to_string().contains("parameter set 73412 "), "{err}");
    assert_eq!(
        count(&conn).await,
        0,
        "the sets sent before it were rolled back"
    );
    assert!(!conn.is_broken());
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
    // A failure of the first set names index 0.
    let err = conn
        .execute_many(sql, [(1i64, "a", None::<f64>), (1, "b", None)])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("parameter set 1 "), "{err}");
    let err = conn
        .execute_many("INSERT INTO many (id) VALUES ($1::int8 / 0)", [[1i64], [2]])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("22012"), "{err}");
    assert!(err.to_string().contains("parameter set 0 "), "{err}");
}
