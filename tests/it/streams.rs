//! Row streams: rows come in bounded batches from a portal. Dropped between batches, the
//! portal is closed and the connection stays usable; dropped while a batch is in flight,
//! the connection breaks and the server is told to cancel. A server error mid-stream
//! arrives after the rows before it, and the connection goes on.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{wait_query_gone, wait_quiet};
use futures::StreamExt;
use pgkeel::{Connection, ErrorKind, RowStream, TransactionStatus};

/// Reads the next row's first column as int4.
async fn next_int(stream: &mut RowStream<'_>) -> i32 {
    stream
        .next()
        .await
        .expect("a row")
        .expect("no error")
        .get(0)
}

/// Asserts the connection answers its own question and is idle.
async fn assert_usable(conn: &Connection, marker: i32) {
    let rows = conn.query("SELECT $1::int4", &[&marker]).await.unwrap();
    assert_eq!(rows.len(), 1, "one row, none left over from the stream");
    assert_eq!(rows[0].get::<_, i32>(0), marker);
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
    assert!(!conn.is_broken());
}

#[tokio::test]
async fn query_raw_yields_100000_rows_in_order() {
    let (_db, conn) = common::db().await;
    let mut stream = conn
        .query_raw(
            "SELECT g FROM generate_series(1, 100000) g",
            &[] as pgkeel::Params,
        )
        .await
        .unwrap();
    let mut expected = 1;
    while let Some(row) = stream.next().await {
        assert_eq!(row.unwrap().get::<_, i32>(0), expected);
        expected += 1;
    }
    assert_eq!(expected, 100_001);
    assert!(
        stream.rows_affected().is_some(),
        "set once the stream ended"
    );
    drop(stream);
    assert_usable(&conn, 7).await;
}

#[tokio::test]

async fn query_raw_reports_all_100000_rows_affected_at_the_end() {
    let (_db, conn) = common::db().await;
    let mut stream = conn
        .query_raw(
            "SELECT g FROM generate_series(1, 100000) g",
            &[] as pgkeel::Params,
        )
        .await
        .unwrap();
    let mut n = 0;
    while let Some(row) = stream.next().await {
        row.unwrap();
        n += 1;
    }
    assert_eq!(n, 100_000);
    assert_eq!(stream.rows_affected(), Some(100_000));
}

#[tokio::test]
async fn rows_affected_of_a_single_batch_stream_is_its_row_count() {
    let (_db, conn) = common::db().await;
    let mut stream = conn
        .query_raw_batched("SELECT g FROM generate_series(1, 5) g", &[], 10)
        .await
        .unwrap();
    let rows: Vec<i32> = (&mut stream)
        .map(|r| r.unwrap().get::<_, i32>(0))
        .collect()
        .await;
    assert_eq!(rows, vec![1, 2, 3, 4, 5]);
    assert_eq!(stream.rows_affected(), Some(5));
}

#[tokio::test]
async fn stream_dropped_between_batches_leaves_the_connection_usable() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let pid = conn.backend_pid();
    let mut stream = conn
        .query_raw_batched("SELECT g FROM generate_series(1, 10) g", &[], 2)
        .await
        .unwrap();
    for expected in 1..=3 {
        assert_eq!(next_int(&mut stream).await, expected);
    }
    // Row 4 is buffered, batch three not asked for: nothing is in flight.
    drop(stream);
    assert!(!conn.is_broken());
    wait_quiet(&watcher, pid, Duration::from_millis(200))
        .await
        .unwrap();
    assert_usable(&conn, 77).await;
    wait_quiet(&watcher, pid, Duration::from_millis(200))
        .await
        .unwrap();
}

#[tokio::test]
async fn stream_dropped_before_its_first_next_leaves_the_connection_usable() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let stream = conn
        .query_raw_batched("SELECT g FROM generate_series(1, 10) g", &[], 2)
        .await
        .unwrap();
    drop(stream);
    assert_usable(&conn, 78).await;
    wait_quiet(&watcher, conn.backend_pid(), Duration::from_millis(200))
        .await
        .unwrap();
}

#[tokio::test]
async fn stream_dropped_after_its_last_row_leaves_nothing_to_clean_up() {
    let (_db, conn) = common::db().await;
    let mut stream = conn
        .query_raw_batched("SELECT g FROM generate_series(1, 4) g", &[], 2)
        .await
        .unwrap();
    for expected in 1..=4 {
        assert_eq!(next_int(&mut stream).await, expected);
    }
    assert!(stream.next().await.is_none());
    drop(stream);
    assert_usable(&conn, 79).await;
}

#[tokio::test]

async fn stream_dropped_while_a_batch_is_in_flight_breaks_the_connection() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let pid = conn.backend_pid();
    // Batch one is rows 1 and 2; row 3 takes 5 s to compute.
    let sql = "SELECT g, CASE WHEN g = 3 THEN pg_sleep(5)::text END /* stream_in_flight */ \
               FROM generate_series(1, 10) g";
    let mut stream = conn.query_raw_batched(sql, &[], 2).await.unwrap();
    assert_eq!(next_int(&mut stream).await, 1);
    assert_eq!(next_int(&mut stream).await, 2);
    let waited = tokio::time::timeout(Duration::from_millis(50), stream.next()).await;
    assert!(waited.is_err(), "batch two cannot arrive in 50 ms");
    drop(stream);

    assert!(conn.is_broken());
    let started = Instant::now();
    let err = conn.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken);
    assert!(started.elapsed() < Duration::from_millis(50));
    wait_query_gone(&watcher, "/* stream_in_flight */", Duration::from_secs(1))
        .await
        .unwrap();
    wait_quiet(&watcher, pid, Duration::from_secs(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn stream_dropped_while_a_batch_is_in_flight_fails_at_once_and_stops_the_server_work() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let pid = conn.backend_pid();
    let sql = "SELECT g, CASE WHEN g = 3 THEN pg_sleep(5)::text END \
               FROM generate_series(1, 10) g";
    let mut stream = conn.query_raw_batched(sql, &[], 2).await.unwrap();
    assert_eq!(next_int(&mut stream).await, 1);
    assert_eq!(next_int(&mut stream).await, 2);
    let waited = tokio::time::timeout(Duration::from_millis(50), stream.next()).await;
    assert!(waited.is_err(), "batch two cannot arrive in 50 ms");
    drop(stream);

    assert!(conn.is_broken());
    for err in [
        conn.query("SELECT 1", &[]).await.unwrap_err(),
        conn.execute("SELECT 1", &[]).await.unwrap_err(),
        conn.simple_query("SELECT 1").await.unwrap_err(),
        conn.query_raw("SELECT 1", &[] as pgkeel::Params)
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Broken);
    }
    // The CancelRequest interrupted pg_sleep: the backend no longer waits on it.
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let row = watcher
            .query_opt(
                "SELECT coalesce(wait_event, '') FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .await
            .unwrap();
        match row.map(|r| r.get::<_, String>(0)) {
            Some(w) if w == "PgSleep" => {
                assert!(Instant::now() < deadline, "pg_sleep still running");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            _ => break,
        }
    }
}

#[tokio::test]
async fn next_dropped_mid_batch_is_resumed_by_the_next_call() {
    // `StreamExt::next` is cancel safe: the batch being fetched lives in the stream, not
    // in the `next()` future, so a timed-out `next()` loses nothing.
    let (_db, conn) = common::db().await;
    let sql = "SELECT g, CASE WHEN g = 3 THEN pg_sleep(0.3)::text END \
               FROM generate_series(1, 6) g";
    let mut stream = conn.query_raw_batched(sql, &[], 2).await.unwrap();
    assert_eq!(next_int(&mut stream).await, 1);
    assert_eq!(next_int(&mut stream).await, 2);
    let waited = tokio::time::timeout(Duration::from_millis(20), stream.next()).await;
    assert!(waited.is_err());
    assert!(!conn.is_broken(), "the stream still owns the exchange");
    for expected in 3..=6 {
        assert_eq!(next_int(&mut stream).await, expected);
    }
    assert!(stream.next().await.is_none());
    drop(stream);
    assert_usable(&conn, 80).await;
}

#[tokio::test]
async fn stream_over_an_erroring_query_yields_the_rows_before_the_error_then_the_error() {
    let (_db, conn) = common::db().await;
    let mut stream = conn
        .query_raw_batched("SELECT 1/(g-5) FROM generate_series(1, 10) g", &[], 2)
        .await
        .unwrap();
    let mut values = Vec::new();
    let err = loop {
        match stream.next().await.expect("the error comes before the end") {
            Ok(row) => values.push(row.get::<_, i32>(0)),
            Err(e) => break e,
        }
    };
    assert_eq!(values, vec![0, 0, 0, -1], "1/(g-5) for g = 1..4");
    assert_eq!(err.kind(), ErrorKind::Db);
    assert_eq!(err.code(), Some("22012"));
    assert!(
        stream.next().await.is_none(),
        "the stream ends after its error"
    );
    drop(stream);
    assert_usable(&conn, 81).await;
}

#[tokio::test]

async fn stream_error_mid_batch_still_yields_the_rows_of_that_batch_before_it() {
    let (_db, conn) = common::db().await;
    // Batches of two: [1, 2], [3, 4], [5, error at 6]: the server sends row 5, then the
    // error.
    let mut stream = conn
        .query_raw_batched("SELECT g, 1/(g-6) FROM generate_series(1, 10) g", &[], 2)
        .await
        .unwrap();
    let mut values = Vec::new();
    let err = loop {
        match stream.next().await.expect("the error comes before the end") {
            Ok(row) => values.push(row.get::<_, i32>(0)),
            Err(e) => break e,
        }
    };
    assert_eq!(err.code(), Some("22012"));
    assert_eq!(values, vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn stream_whose_first_batch_fails_returns_the_error_and_the_connection_goes_on() {
    let (_db, conn) = common::db().await;
    let err = conn
        .query_raw_batched("SELECT 1/(g-1) FROM generate_series(1, 10) g", &[], 2)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("22012"));
    assert_usable(&conn, 82).await;
}

#[tokio::test]
async fn stream_in_a_transaction_dropped_early_lets_the_transaction_continue_and_commit() {
    let (db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (id int4)")
        .await
        .unwrap();
    let watcher = common::connect(&db).await;
    let tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    {
        // More rows than one default batch (8,192), so the portal stays open.
        let mut stream = tx
            .query_raw(
                "SELECT g FROM generate_series(1, 10000) g",
                &[] as pgkeel::Params,
            )
            .await
            .unwrap();
        for expected in 1..=5 {
            assert_eq!(next_int(&mut stream).await, expected);
        }
    }
    assert_eq!(tx.transaction_status(), TransactionStatus::InTransaction);
    tx.execute("INSERT INTO t VALUES (2)", &[]).await.unwrap();
    {
        let mut stream = tx
            .query_raw("SELECT id FROM t ORDER BY id", &[] as pgkeel::Params)
            .await
            .unwrap();
        assert_eq!(next_int(&mut stream).await, 1);
        assert_eq!(next_int(&mut stream).await, 2);
        assert!(stream.next().await.is_none());
    }
    {
        // Dropped early again, just before COMMIT.
        let mut stream = tx
            .query_raw(
                "SELECT g FROM generate_series(1, 10000) g",
                &[] as pgkeel::Params,
            )
            .await
            .unwrap();
        assert_eq!(next_int(&mut stream).await, 1);
    }
    tx.commit().await.unwrap();
    let rows = watcher
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .unwrap();
    let ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![1, 2]);
    assert_usable(&conn, 83).await;
}

#[tokio::test]
async fn stream_in_a_transaction_dropped_early_then_the_transaction_dropped_rolls_back() {
    let (db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (id int4)")
        .await
        .unwrap();
    let watcher = common::connect(&db).await;
    let pid = conn.backend_pid();
    let tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    {
        let mut stream = tx
            .query_raw(
                "SELECT g FROM generate_series(1, 10000) g",
                &[] as pgkeel::Params,
            )
            .await
            .unwrap();
        assert_eq!(next_int(&mut stream).await, 1);
    }
    drop(tx);
    wait_quiet(&watcher, pid, Duration::from_millis(200))
        .await
        .unwrap();
    let n: i64 = watcher
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    assert_usable(&conn, 84).await;
}

#[tokio::test]

async fn stream_in_a_transaction_dropped_mid_batch_breaks_the_connection_and_ends_the_session() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    let pid = conn.backend_pid();
    let tx = conn.transaction().await.unwrap();
    {
        // The first row of the second batch sleeps: the fetch of that batch is in flight.
        let batch = pgkeel::DEFAULT_BATCH_ROWS;
        let sql = format!(
            "SELECT g, CASE WHEN g = {} THEN pg_sleep(5)::text END /* tx_stream */ \
             FROM generate_series(1, {}) g",
            batch + 1,
            batch * 3
        );
        let mut stream = tx.query_raw(&sql, &[] as pgkeel::Params).await.unwrap();
        for expected in 1..=batch {
            assert_eq!(next_int(&mut stream).await, expected);
        }
        let waited = tokio::time::timeout(Duration::from_millis(50), stream.next()).await;
        assert!(waited.is_err());
    }
    assert!(conn.is_broken());
    let err = tx.execute("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken);
    drop(tx);
    wait_query_gone(&watcher, "/* tx_stream */", Duration::from_secs(1))
        .await
        .unwrap();
    wait_quiet(&watcher, pid, Duration::from_secs(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_zero_or_negative_batch_size_is_taken_as_one_row_per_batch_not_a_panic() {
    let (_db, conn) = common::db().await;
    for batch in [0, -1, i32::MIN] {
        let stream = conn
            .query_raw_batched("SELECT g::int4 FROM generate_series(1, 3) g", &[], batch)
            .await
            .unwrap();
        let rows: Vec<i32> = stream.map(|r| r.unwrap().get::<_, i32>(0)).collect().await;
        assert_eq!(rows, vec![1, 2, 3], "batch {batch}");
    }
}

/// In a transaction, a stream dropped between batches leaves its portal paused; the next
/// stream of a cached statement (no describe round trip first) settles that portal in an
/// exchange of its own, so it gets every one of its rows and nothing of the old portal
/// reaches it or any later call. Also with a prepared statement, and through the pool's
/// recovery when the transaction is dropped afterwards.
#[tokio::test]
async fn a_stream_dropped_between_batches_leaves_nothing_for_the_next_stream_of_its_transaction() {
    let (db, conn) = common::db().await;
    let big = "SELECT g FROM generate_series(1, 50000) g";
    // One int4 column, as `big` has: stale rows would decode without an error.
    let small = "SELECT g FROM generate_series(100001, 100000 + $1::int4) g";
    let prepared = conn.prepare(small).await.unwrap();
    let tx = conn.transaction().await.unwrap();
    tx.query(small, &[&1i32]).await.unwrap(); // now cached
    for round in 0..4 {
        let mut s = tx.query_raw(big, &[] as pgkeel::Params).await.unwrap();
        for want in 1..=10 {
            assert_eq!(s.next().await.unwrap().unwrap().get::<_, i32>(0), want);
        }
        drop(s);
        let n = 20_000 + round;
        let next = match round % 2 {
            0 => tx.query_raw(small, [&n]).await.unwrap(),
            _ => tx.query_raw(&prepared, [&n]).await.unwrap(),
        };
        let got: Vec<i32> = next.map(|r| r.unwrap().get::<_, i32>(0)).collect().await;
        assert_eq!(got.len(), n as usize, "round {round}");
        assert!(
            got.iter().copied().eq(100_001..=100_000 + n),
            "round {round}: rows of another portal"
        );
        let row = tx.query_one("SELECT $1::int4", &[&round]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), round);
    }
    tx.commit().await.unwrap();
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);

    // A pooled transaction dropped with a paused stream, then a stream on the same
    // connection: the pool's cleanup and the next stream both settle what is left.
    let pool = pgkeel::Pool::builder(db.url()).max_size(1).build().unwrap();
    for round in 0..3i32 {
        let tx = pool.begin().await.unwrap();
        tx.query(small, &[&1i32]).await.unwrap();
        let mut s = tx.query_raw(big, &[] as pgkeel::Params).await.unwrap();
        s.next().await.unwrap().unwrap();
        drop(s);
        let next = tx.query_raw(small, [&(1000 + round)]).await.unwrap();
        let got: Vec<i32> = next.map(|r| r.unwrap().get::<_, i32>(0)).collect().await;
        assert_eq!(got.len(), 1000 + round as usize);
        let mut s = tx.query_raw(big, &[] as pgkeel::Params).await.unwrap();
        s.next().await.unwrap().unwrap();
        drop(s);
        drop(tx);
        let row = pool.query_one("SELECT $1::int4", &[&round]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), round);
    }
}

/// Streams `rows` wide rows and checks every one arrived, in order.
pub(crate) async fn stream_wide_rows(conn: &Connection, rows: i32) {
    let mut s = conn
        .query_raw(
            "SELECT g, repeat('x', 200) FROM generate_series(1, $1) g",
            [&rows],
        )
        .await
        .unwrap();
    let mut want = 1;
    while let Some(row) = s.next().await {
        let row = row.unwrap();
        assert_eq!(row.get::<_, i32>(0), want);
        assert_eq!(row.get::<_, &str>(1).len(), 200);
        want += 1;
    }
    assert_eq!(want, rows + 1);
}

#[tokio::test]
async fn a_streamed_result_spins_its_reads_point_queries_never_do_and_zero_turns_it_off() {
    let db = pgkeel_testkit::TestDb::new();
    let conn = Connection::connect(db.url()).await.unwrap();
    for i in 0..300i32 {
        let row = conn.query_one("SELECT $1::int4", &[&i]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), i);
    }
    let spins = conn.read_spin_counts();
    assert_eq!(
        spins,
        pgkeel::ReadSpinCounts::default(),
        "small answers never spin"
    );
    // The server streams 8 KiB at a time; the reader drains each piece and spins for
    // the next (whether it finds it in time depends on the machine's load).
    let mut spins = conn.read_spin_counts();
    for _ in 0..5 {
        stream_wide_rows(&conn, 200_000).await;
        spins = conn.read_spin_counts();
        if spins.hits + spins.misses > 0 {
            break;
        }
    }
    assert!(
        spins.hits + spins.misses > 0,
        "a bulk stream spins: {spins:?}"
    );
    assert_usable(&conn, 1).await;

    let off = Connection::connect(common::with_param(&db.url(), "read_spin_us=0"))
        .await
        .unwrap();
    stream_wide_rows(&off, 200_000).await;
    assert_eq!(off.read_spin_counts(), pgkeel::ReadSpinCounts::default());
    let mut config: pgkeel::Config = db.url().parse().unwrap();
    config.read_spin(Duration::ZERO);
    let off = Connection::connect(config).await.unwrap();
    stream_wide_rows(&off, 200_000).await;
    assert_eq!(off.read_spin_counts(), pgkeel::ReadSpinCounts::default());
}
