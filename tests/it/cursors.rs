//! Portals (`bind` / `query_portal`) and scroll cursors (`declare_cursor`) against a real
//! server: positions by PostgreSQL's rules, forward moves in batches, lazy closing, held
//! cursors, a tiny statement cache, PgBouncer in transaction mode, and a fetch dropped
//! by a timeout.

use std::time::Duration;

use crate::common;
use pgkeel::{Connection, CursorOptions, ErrorKind, Pool, Row, TransactionStatus};
use pgkeel_testkit::{Pgbouncer, TestDb};

const TEN_THOUSAND: &str = "SELECT g FROM generate_series(1, 10000) g";

fn value(row: Option<Row>) -> Option<i32> {
    row.map(|r| r.get(0))
}

/// Portals and cursors of this session still open on the server.
async fn open_portals(tx: &mut pgkeel::Transaction) -> i64 {
    tx.query_one(
        "SELECT count(*) FROM pg_cursors WHERE name LIKE 'pgkeel_%'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn a_scroll_cursor_over_10000_rows_visits_1_10000_5000_and_the_last() {
    let (_db, conn) = common::db().await;
    let mut tx = conn.transaction().await.unwrap();
    let mut c = tx
        .declare_cursor(TEN_THOUSAND, &[], CursorOptions::new())
        .await
        .unwrap();
    assert_eq!(c.position(), 0);
    for (n, want) in [(1, 1), (10_000, 10_000), (5_000, 5_000), (-1, 10_000)] {
        assert_eq!(
            value(c.absolute(n).await.unwrap()),
            Some(want),
            "absolute({n})"
        );
        assert_eq!(c.position(), want as u64, "position after absolute({n})");
    }
    assert_eq!(c.total_rows(), Some(10_000));
    assert_eq!(c.round_trips(), 4, "one round trip per jump");
    // Past the ends, by PostgreSQL's rules.
    assert_eq!(value(c.absolute(10_001).await.unwrap()), None);
    assert_eq!(c.position(), 10_001);
    assert_eq!(value(c.absolute(-10_001).await.unwrap()), None);
    assert_eq!(c.position(), 0);
    assert_eq!(value(c.absolute(0).await.unwrap()), None);
    drop(c);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn moving_forward_row_by_row_fetches_in_batches() {
    let (_db, conn) = common::db().await;
    let mut tx = conn.transaction().await.unwrap();
    let options = CursorOptions::new().batch_rows(500);
    let mut c = tx.declare_cursor(TEN_THOUSAND, &[], options).await.unwrap();
    let mut want = 1;
    while let Some(row) = c.next().await.unwrap() {
        assert_eq!(row.get::<_, i32>(0), want);
        assert_eq!(c.position(), want as u64);
        want += 1;
    }
    assert_eq!(want, 10_001);
    assert_eq!(c.position(), 10_001, "after the last row");
    assert_eq!(c.total_rows(), Some(10_000));
    // 20 full batches and the one that found the end.
    assert_eq!(c.round_trips(), 21);
    // Backward from after the last row: the window still holds the last batch.
    let back = c.backward(3).await.unwrap();
    let back: Vec<i32> = back.iter().map(|r| r.get(0)).collect();
    assert_eq!(back, [10_000, 9_999, 9_998]);
    assert_eq!(c.round_trips(), 21, "served from the window");
    let ahead = c.forward(4).await.unwrap();
    assert_eq!(ahead.len(), 2, "fewer at the end");
    assert_eq!(c.position(), 10_001);
}

#[tokio::test]
async fn prior_relative_and_backward_stop_at_the_edges() {
    let (_db, conn) = common::db().await;
    let mut tx = conn.transaction().await.unwrap();
    let options = CursorOptions::new().batch_rows(4);
    let sql = "SELECT g FROM generate_series(1, 10) g";
    let mut c = tx.declare_cursor(sql, &[], options).await.unwrap();
    assert_eq!(
        value(c.prior().await.unwrap()),
        None,
        "before the first row"
    );
    assert_eq!(c.position(), 0);
    assert_eq!(value(c.relative(0).await.unwrap()), None);
    assert_eq!(value(c.relative(3).await.unwrap()), Some(3));
    assert_eq!(
        value(c.relative(0).await.unwrap()),
        Some(3),
        "the current row"
    );
    assert_eq!(value(c.relative(-2).await.unwrap()), Some(1));
    assert_eq!(value(c.prior().await.unwrap()), None);
    assert_eq!(c.position(), 0);
    assert_eq!(value(c.next().await.unwrap()), Some(1));
    assert_eq!(value(c.relative(100).await.unwrap()), None, "past the end");
    assert_eq!(c.position(), 11);
    assert_eq!(c.total_rows(), Some(10));
    assert_eq!(value(c.next().await.unwrap()), None);
    assert_eq!(c.position(), 11, "stays after the last row");
    assert_eq!(value(c.prior().await.unwrap()), Some(10));
    assert_eq!(value(c.relative(-8).await.unwrap()), Some(2));
    let back: Vec<i32> = c
        .backward(5)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(back, [1], "only row 1 lies before row 2");
    assert_eq!(c.position(), 0);
    assert_eq!(value(c.first().await.unwrap()), Some(1));
    assert_eq!(value(c.last().await.unwrap()), Some(10));
    assert_eq!(value(c.absolute(-10).await.unwrap()), Some(1));
    assert_eq!(value(c.absolute(-11).await.unwrap()), None);
    assert_eq!(c.position(), 0);
}

#[tokio::test]
async fn an_empty_result_has_no_first_or_last_row() {
    let (_db, conn) = common::db().await;
    let mut tx = conn.transaction().await.unwrap();
    let sql = "SELECT g FROM generate_series(1, 0) g";
    let mut c = tx
        .declare_cursor(sql, &[], CursorOptions::new())
        .await
        .unwrap();
    assert_eq!(value(c.last().await.unwrap()), None);
    assert_eq!((c.position(), c.total_rows()), (0, Some(0)));
    assert_eq!(value(c.next().await.unwrap()), None);
    assert_eq!(c.position(), 1, "after the last of no rows");
}

#[tokio::test]
async fn cursor_parameters_and_rows_are_typed_like_a_query() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TYPE mood AS ENUM ('sad', 'ok')")
        .await
        .unwrap();
    let mut tx = conn.transaction().await.unwrap();
    let sql =
        "SELECT g::int8, $2 || g, 'ok'::mood::text, now() FROM generate_series(1, $1::int4) g";
    let mut c = tx
        .declare_cursor(sql, &[&3i32, &"n"], CursorOptions::new())
        .await
        .unwrap();
    let row = c.last().await.unwrap().unwrap();
    assert_eq!(row.get::<_, i64>(0), 3);
    assert_eq!(row.get::<_, String>(1), "n3");
    assert_eq!(row.columns()[0].type_(), &pgkeel::Type::INT8);
    drop(c);
    let err = tx
        .declare_cursor("SELECT nope", &[], CursorOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.as_db_error().map(|d| d.code()), Some("42703"));
    assert_eq!(tx.transaction_status(), TransactionStatus::Failed);
}

#[tokio::test]
async fn a_cursor_without_scroll_refuses_backward_moves_before_sending_them() {
    let (_db, conn) = common::db().await;
    let mut tx = conn.transaction().await.unwrap();
    let options = CursorOptions::new().scroll(false).batch_rows(2);
    let mut c = tx.declare_cursor(TEN_THOUSAND, &[], options).await.unwrap();
    assert_eq!(value(c.absolute(50).await.unwrap()), Some(50));
    assert_eq!(value(c.next().await.unwrap()), Some(51));
    assert_eq!(value(c.next().await.unwrap()), Some(52));
    assert_eq!(
        value(c.prior().await.unwrap()),
        Some(51),
        "still in the window"
    );
    let err = c.first().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Misuse, "{err}");
    assert_eq!(
        value(c.next().await.unwrap()),
        Some(52),
        "the cursor still works"
    );
    drop(c);
    assert_eq!(tx.transaction_status(), TransactionStatus::InTransaction);
}

#[tokio::test]
async fn a_portal_pages_through_1000_rows_100_at_a_time() {
    let (_db, conn) = common::db().await;
    let mut tx = conn.transaction().await.unwrap();
    let sql = "SELECT g FROM generate_series(1, $1::int4) g";
    let portal = tx.bind(sql, &[&1000i32]).await.unwrap();
    assert_eq!(portal.columns().len(), 1);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = tx.query_portal(&portal, 100).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert_eq!(page.len(), 100, "a full page until the end");
        seen.extend(page.iter().map(|r| r.get::<_, i32>(0)));
        pages += 1;
    }
    assert_eq!(pages, 10);
    assert_eq!(seen, (1..=1000).collect::<Vec<_>>());
    // Two portals read in turn, and one bound from a prepared statement.
    let stmt = tx
        .prepare("SELECT $1::int4 * g FROM generate_series(1, 5) g")
        .await
        .unwrap();
    let a = tx.bind(&stmt, &[&1i32]).await.unwrap();
    let b = tx.bind_raw(&stmt, [10i32]).await.unwrap();
    let a1: Vec<i32> = tx
        .query_portal(&a, 2)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let b1: Vec<i32> = tx
        .query_portal(&b, 2)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let a2: Vec<i32> = tx
        .query_portal(&a, 0)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!((a1, b1, a2), (vec![1, 2], vec![10, 20], vec![3, 4, 5]));
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn dropped_portals_and_cursors_are_closed_and_the_transaction_goes_on() {
    let (_db, conn) = common::db().await;
    let mut tx = conn.transaction().await.unwrap();
    for _ in 0..3 {
        let portal = tx.bind("SELECT 1", &[]).await.unwrap();
        assert_eq!(open_portals(&mut tx).await, 1);
        drop(portal);
        let c = tx
            .declare_cursor(TEN_THOUSAND, &[], CursorOptions::new())
            .await
            .unwrap();
        drop(c);
        // The Closes go out ahead of this query, in the same round trip.
        assert_eq!(open_portals(&mut tx).await, 0);
    }
    let mut c = tx
        .declare_cursor(TEN_THOUSAND, &[], CursorOptions::new())
        .await
        .unwrap();
    assert_eq!(value(c.next().await.unwrap()), Some(1));
    c.close().await.unwrap();
    assert_eq!(open_portals(&mut tx).await, 0);
    // A portal used after its transaction ended: the server's own error.
    let portal = tx.bind("SELECT 1", &[]).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = conn.transaction().await.unwrap();
    let err = tx.query_portal(&portal, 1).await.unwrap_err();
    assert_eq!(err.as_db_error().map(|d| d.code()), Some("34000"), "{err}");
}

#[tokio::test]
async fn a_held_cursor_survives_commit_and_is_closed_when_dropped() {
    let (_db, conn) = common::db().await;
    let options = CursorOptions::new().with_hold(true).batch_rows(10);
    let err = conn
        .declare_cursor(TEN_THOUSAND, &[], CursorOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Misuse, "{err}");
    let mut c = conn
        .declare_cursor(TEN_THOUSAND, &[], options)
        .await
        .unwrap();
    assert_eq!(value(c.next().await.unwrap()), Some(1));
    let tx = conn.transaction().await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(value(c.absolute(9_999).await.unwrap()), Some(9_999));
    assert_eq!(value(c.next().await.unwrap()), Some(10_000));
    let held: i64 = conn
        .query_one("SELECT count(*) FROM pg_cursors WHERE is_holdable", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 1);
    drop(c);
    let held: i64 = conn
        .query_one("SELECT count(*) FROM pg_cursors WHERE is_holdable", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 0, "closed with the next exchange");
}

#[tokio::test]
async fn portals_and_cursors_work_with_a_statement_cache_of_one() {
    let db = TestDb::new();
    let url = common::with_param(&db.url(), "statement_cache_capacity=1");
    let conn = Connection::connect(&url).await.unwrap();
    let mut tx = conn.transaction().await.unwrap();
    let portal = tx
        .bind("SELECT g FROM generate_series(1, 10) g", &[])
        .await
        .unwrap();
    let mut c = tx
        .declare_cursor(
            "SELECT g FROM generate_series(1, 10) g",
            &[],
            CursorOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(value(c.last().await.unwrap()), Some(10));
    drop(c);
    // Each of these evicts the statement before it, and closes it on the server.
    for sql in ["SELECT 1", "SELECT 2", "SELECT 3"] {
        tx.query(sql, &[]).await.unwrap();
    }
    let rows = tx.query_portal(&portal, 0).await.unwrap();
    assert_eq!(
        rows.len(),
        10,
        "the portal outlives its statement's eviction"
    );
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn behind_pgbouncer_portals_and_cursors_work_inside_transactions_only() {
    let db = TestDb::new();
    let Some(bouncer) = Pgbouncer::builder().start_or_skip(db.cluster()) else {
        return;
    };
    let url = bouncer.url(db.cluster().superuser(), db.name()) + "?pgbouncer=true";
    let conn = Connection::connect(&url).await.unwrap();
    let mut tx = conn.transaction().await.unwrap();
    let portal = tx.bind(TEN_THOUSAND, &[]).await.unwrap();
    assert_eq!(tx.query_portal(&portal, 10).await.unwrap().len(), 10);
    let mut c = tx
        .declare_cursor(TEN_THOUSAND, &[], CursorOptions::new())
        .await
        .unwrap();
    assert_eq!(value(c.absolute(-1).await.unwrap()), Some(10_000));
    drop(c);
    let held = CursorOptions::new().with_hold(true);
    let err = tx
        .declare_cursor(TEN_THOUSAND, &[], held)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Misuse);
    assert!(err.to_string().contains("pooler mode"), "{err}");
    tx.commit().await.unwrap();
    let err = conn
        .declare_cursor(TEN_THOUSAND, &[], held)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Misuse);
}

#[tokio::test]
async fn a_cursor_fetch_dropped_by_a_timeout_breaks_the_connection_and_the_pool_stays_clean() {
    let db = TestDb::new();
    let pool = Pool::builder(db.url())
        .max_size(1)
        .abandon_policy(pgkeel::pool::AbandonPolicy::Evict)
        .build()
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    let pid = tx.connection().backend_pid();
    let slow = "SELECT g, pg_sleep(0.2) FROM generate_series(1, 100) g";
    let mut c = tx
        .declare_cursor(slow, &[], CursorOptions::new().batch_rows(50))
        .await
        .unwrap();
    let fetch = tokio::time::timeout(Duration::from_millis(100), c.next()).await;
    assert!(fetch.is_err(), "the fetch takes 10 s");
    let err = c.next().await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Misuse,
        "the position is unknown: {err}"
    );
    drop(c);
    assert!(tx.connection().is_broken());
    let err = tx.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken);
    drop(tx);
    let conn = pool.get().await.unwrap();
    assert_ne!(conn.backend_pid(), pid, "the broken connection was evicted");
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
    let one: i32 = conn.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    assert_eq!(pool.status().evicted_broken, 1);
}

#[tokio::test]
async fn query_raw_takes_any_iterator_of_parameters() {
    use futures::TryStreamExt;
    let (db, conn) = common::db().await;
    let conn_url = |_: &Connection| db.url();
    let sql = "SELECT $1::int8 + $2::int8";
    let sum = |rows: Vec<Row>| rows[0].get::<_, i64>(0);
    let owned: Vec<Row> = conn
        .query_raw(sql, vec![1i64, 2])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(sum(owned), 3);
    let values = [3i64, 4];
    let refs: Vec<Row> = conn
        .query_raw(sql, values.iter())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(sum(refs), 7);
    let dyns: Vec<&(dyn pgkeel::ToSql + Sync)> = vec![&5i64, &6i64];
    let dyns: Vec<Row> = conn
        .query_raw(sql, dyns)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(sum(dyns), 11);
    let boxed: Vec<Box<dyn pgkeel::ToSql + Sync>> = vec![Box::new(7i64), Box::new(8i64)];
    let boxed: Vec<Row> = conn
        .query_raw(sql, boxed)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(sum(boxed), 15);
    let slice: Vec<Row> = conn
        .query_raw(sql, &[&9i64, &10i64])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(sum(slice), 19);
    let pool = Pool::builder(conn_url(&conn)).max_size(1).build().unwrap();
    let pooled = pool.get().await.unwrap();
    let from_pool: Vec<Row> = pooled
        .query_raw(sql, [1i64, 1])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(sum(from_pool), 2);
    drop(pooled);
    let ptx = pool.begin().await.unwrap();
    let pool_tx: Vec<Row> = ptx
        .query_raw(sql, vec![2i64, 2])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(sum(pool_tx), 4);
    drop(ptx);
    let tx = conn.transaction().await.unwrap();
    let in_tx: Vec<Row> = tx
        .query_raw(sql, [11i64, 12].into_iter())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(sum(in_tx), 23);
}

#[tokio::test]
async fn a_cursor_parameter_the_server_infers_is_described_first() {
    let (_db, conn) = common::db().await;
    let mut tx = conn.transaction().await.unwrap();
    let sql = "SELECT g FROM generate_series(1, $1) g";
    let mut c = tx
        .declare_cursor(sql, &[&pgkeel::types::Infer(7i32)], CursorOptions::new())
        .await
        .unwrap();
    assert_eq!(value(c.last().await.unwrap()), Some(7));
}

#[tokio::test]
async fn portals_and_cursors_work_in_a_savepoint_and_die_with_its_rollback() {
    let (_db, conn) = common::db().await;
    let mut tx = conn.transaction().await.unwrap();
    let mut sp = tx.savepoint().await.unwrap();
    let portal = sp.bind(TEN_THOUSAND, &[]).await.unwrap();
    assert_eq!(sp.query_portal(&portal, 3).await.unwrap().len(), 3);
    let mut c = sp
        .declare_cursor(TEN_THOUSAND, &[], CursorOptions::new())
        .await
        .unwrap();
    assert_eq!(value(c.absolute(-2).await.unwrap()), Some(9_999));
    drop(c);
    sp.rollback().await.unwrap();
    let err = tx.query_portal(&portal, 1).await.unwrap_err();
    assert_eq!(err.as_db_error().map(|d| d.code()), Some("34000"), "{err}");
}
