//! COPY in and out: binary rows of every supported type round-trip exactly through Rust
//! values; text and CSV bytes come back as they went in; a COPY dropped unfinished or
//! failed by a bad row commits nothing and leaves the connection usable (or, dropped
//! while its data is going out, broken); a pooled connection returned mid-COPY is
//! cleaned before the next checkout.

use crate::common;

use std::time::Duration;

use crate::common::{Cancellable, Outcome};
use futures::{SinkExt, StreamExt, TryStreamExt};
use pgkeel::types::{
    BitString, Interval, IpNet, MacAddr, Money, Numeric, PgDate, PgLsn, PgTime, PgTimeTz,
    PgTimestamp, PgTimestampTz, PgUuid, Range, RawJson,
};
use pgkeel::{
    BinaryCopyInWriter, BinaryCopyOutRow, BinaryCopyOutStream, Connection, ErrorKind, Pool, ToSql,
    TransactionStatus, Type,
};

type Value = Box<dyn ToSql + Sync + Send>;
type Take = fn(&BinaryCopyOutRow, usize) -> Value;

fn take<T>(row: &BinaryCopyOutRow, i: usize) -> Value
where
    T: for<'a> pgkeel::FromSql<'a> + ToSql + Send + 'static,
{
    Box::new(row.get::<Option<T>>(i))
}

/// Every column of the round trip: SQL type, its Type, a generator over `g`, and the
/// Rust type it is read into (then written back from).
fn columns() -> Vec<(&'static str, Type, &'static str, Take)> {
    vec![
        ("bool", Type::BOOL, "g % 2 = 0", take::<bool>),
        (
            "\"char\"",
            Type::CHAR,
            "chr(65 + g % 26)::\"char\"",
            take::<i8>,
        ),
        ("int2", Type::INT2, "(g % 30000 - 15000)::int2", take::<i16>),
        ("int4", Type::INT4, "g * 7 - 350000", take::<i32>),
        ("int8", Type::INT8, "g::int8 * 1000000007", take::<i64>),
        ("oid", Type::OID, "g::oid", take::<u32>),
        ("float4", Type::FLOAT4, "(g / 7.0)::float4", take::<f32>),
        ("float8", Type::FLOAT8, "g / 3.0::float8 - 1e6", take::<f64>),
        (
            "numeric",
            Type::NUMERIC,
            "g::numeric / 7 - 5000",
            take::<Numeric>,
        ),
        (
            "text",
            Type::TEXT,
            "repeat(md5(g::text), g % 4) || E'\\t\\n\\\\'",
            take::<String>,
        ),
        ("varchar(64)", Type::VARCHAR, "md5(g::text)", take::<String>),
        (
            "char(5)",
            Type::BPCHAR,
            "left(md5(g::text), g % 6)",
            take::<String>,
        ),
        ("name", Type::NAME, "md5(g::text)::name", take::<String>),
        (
            "bytea",
            Type::BYTEA,
            "decode(md5(g::text), 'hex')",
            take::<Vec<u8>>,
        ),
        (
            "date",
            Type::DATE,
            "date '1999-12-31' + g - 50000",
            take::<PgDate>,
        ),
        (
            "time",
            Type::TIME,
            "time '00:00' + g * interval '863 ms'",
            take::<PgTime>,
        ),
        (
            "timetz",
            Type::TIMETZ,
            "(time '00:00' + g * interval '1 s')::timetz",
            take::<PgTimeTz>,
        ),
        (
            "timestamp",
            Type::TIMESTAMP,
            "timestamp '2000-01-01' + g * interval '1 hour 1 microsecond'",
            take::<PgTimestamp>,
        ),
        (
            "timestamptz",
            Type::TIMESTAMPTZ,
            "timestamptz '1970-01-01Z' + g * interval '17 minutes 3 microseconds'",
            take::<PgTimestampTz>,
        ),
        (
            "interval",
            Type::INTERVAL,
            "make_interval(0, g % 13, 0, g % 31, 0, 0, g / 1000.0)",
            take::<Interval>,
        ),
        ("uuid", Type::UUID, "md5(g::text)::uuid", take::<PgUuid>),
        (
            "inet",
            Type::INET,
            "('10.' || g % 256 || '.' || g / 256 % 256 || '.7/' || 8 + g % 25)::inet",
            take::<IpNet>,
        ),
        (
            "cidr",
            Type::CIDR,
            "('10.' || g % 256 || '.0.0/16')::cidr",
            take::<IpNet>,
        ),
        (
            "macaddr",
            Type::MACADDR,
            "('08:00:2b:01:' || lpad(to_hex(g % 256), 2, '0') || ':05')::macaddr",
            take::<MacAddr>,
        ),
        (
            "json",
            Type::JSON,
            "json_build_object('g', g, 's', md5(g::text))",
            take::<RawJson>,
        ),
        (
            "jsonb",
            Type::JSONB,
            "jsonb_build_object('g', g, 'a', jsonb_build_array(g, 'x'))",
            take::<RawJson>,
        ),
        (
            "varbit",
            Type::VARBIT,
            "(g::bit(32))::varbit",
            take::<BitString>,
        ),
        ("money", Type::MONEY, "(g * 1.01)::money", take::<Money>),
        (
            "pg_lsn",
            Type::PG_LSN,
            "('0/' || to_hex(g))::pg_lsn",
            take::<PgLsn>,
        ),
        (
            "int4[]",
            Type::INT4_ARRAY,
            "ARRAY[g, NULL, -g]",
            take::<Vec<Option<i32>>>,
        ),
        (
            "text[]",
            Type::TEXT_ARRAY,
            "ARRAY[md5(g::text), '', 'a,\"b']",
            take::<Vec<String>>,
        ),
        (
            "int4range",
            Type::INT4_RANGE,
            "int4range(g, g + g % 10)",
            take::<Range<i32>>,
        ),
    ]
}

/// `src` filled with `n` rows of every column (every tenth value NULL), `dst` empty.
async fn every_type_tables(conn: &Connection, n: i32) {
    let cols = columns();
    let defs: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, (ty, ..))| format!("c{i} {ty}"))
        .collect();
    let gens: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, (_, _, expr, _))| {
            format!("CASE WHEN (g + {i}) % 10 = 0 THEN NULL ELSE {expr} END")
        })
        .collect();
    let sql = format!(
        "CREATE TABLE src (id int4, {defs}); CREATE TABLE dst (LIKE src);
         INSERT INTO src SELECT g, {gens} FROM generate_series(1, {n}) g",
        defs = defs.join(", "),
        gens = gens.join(", "),
    );
    conn.batch_execute(&sql).await.unwrap();
}

/// The table's rows in id order, as binary COPY bytes.
async fn binary_bytes(conn: &Connection, table: &str) -> Vec<u8> {
    let sql = format!("COPY (SELECT * FROM {table} ORDER BY id) TO STDOUT (FORMAT binary)");
    let chunks: Vec<_> = conn
        .copy_out(&sql)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    chunks.concat()
}

#[tokio::test]
async fn binary_copy_of_100000_rows_of_every_type_round_trips_exactly() {
    let (db, reader) = common::db().await;
    let writer = common::connect(&db).await;
    every_type_tables(&reader, 100_000).await;
    let cols = columns();
    let mut types = vec![Type::INT4];
    types.extend(cols.iter().map(|c| c.1.clone()));
    let out = reader
        .copy_out("COPY src TO STDOUT (FORMAT binary)")
        .await
        .unwrap();
    let mut rows = BinaryCopyOutStream::new(out, &types);
    let sink = writer
        .copy_in("COPY dst FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    let mut sink = BinaryCopyInWriter::new(sink, &types);
    let mut nulls = 0;
    while let Some(row) = rows.next().await {
        let row = row.unwrap();
        let mut values: Vec<Value> = vec![Box::new(row.get::<i32>(0))];
        for (i, (.., take)) in cols.iter().enumerate() {
            nulls += usize::from(row.is_null(i + 1));
            values.push(take(&row, i + 1));
        }
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| &**v as _).collect();
        sink.write(&refs).await.unwrap();
    }
    assert_eq!(sink.finish().await.unwrap(), 100_000);
    assert_eq!(
        nulls,
        100_000 * cols.len() / 10,
        "every tenth value is NULL"
    );
    let (a, b) = (
        binary_bytes(&reader, "src").await,
        binary_bytes(&reader, "dst").await,
    );
    assert!(a.len() > 10 << 20, "{} bytes of COPY data", a.len());
    assert!(
        a == b,
        "dst differs from src after the round trip through Rust values"
    );
}

/// A text or CSV COPY of `data` sent in `chunk`-byte pieces (lines split anywhere) into
/// `t`, then copied out the same way, gives back exactly `data`.
async fn text_round_trip(conn: &Connection, format: &str, data: &str, chunk: usize) {
    conn.batch_execute("DROP TABLE IF EXISTS t; CREATE TABLE t (id int4, s text, n numeric)")
        .await
        .unwrap();
    let mut copy = conn
        .copy_in(&format!("COPY t FROM STDIN ({format})"))
        .await
        .unwrap();
    for piece in data.as_bytes().chunks(chunk) {
        copy.send(piece).await.unwrap();
    }
    let lines = data.lines().count() as u64;
    assert_eq!(copy.finish().await.unwrap(), lines);
    let sql = format!("COPY (SELECT * FROM t ORDER BY id) TO STDOUT ({format})");
    let out: Vec<_> = conn
        .copy_out(&sql)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(String::from_utf8(out.concat()).unwrap(), data);
}

#[tokio::test]
async fn text_and_csv_copies_round_trip_byte_for_byte() {
    let (_db, conn) = common::db().await;
    let text: String = (1..=20_000)
        .map(|i| match i % 3 {
            0 => format!("{i}\t\\N\t{i}.5\n"),
            1 => format!("{i}\ttab\\there\\\\ and newline\\n {i}\t-{i}\n"),
            _ => format!("{i}\tünïcødé {i}\t0\n"),
        })
        .collect();
    text_round_trip(&conn, "FORMAT text", &text, 7).await;
    text_round_trip(&conn, "FORMAT text", &text, 1 << 20).await;
    let csv: String = (1..=20_000)
        .map(|i| match i % 3 {
            0 => format!("{i},,{i}.5\n"),
            1 => format!("{i},\"comma, \"\"quote\"\" and\nnewline\",-{i}\n"),
            _ => format!("{i},plain {i},0\n"),
        })
        .collect();
    let lines = csv.matches('\n').count() as u64;
    assert!(lines > 20_000, "some CSV fields hold newlines");
    conn.batch_execute("CREATE TABLE c (id int4, s text, n numeric)")
        .await
        .unwrap();
    let mut copy = conn
        .copy_in("COPY c FROM STDIN (FORMAT csv)")
        .await
        .unwrap();
    for piece in csv.as_bytes().chunks(13) {
        copy.send(piece).await.unwrap();
    }
    assert_eq!(copy.finish().await.unwrap(), 20_000);
    let sql = "COPY (SELECT * FROM c ORDER BY id) TO STDOUT (FORMAT csv)";
    let out: Vec<_> = conn
        .copy_out(sql)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(String::from_utf8(out.concat()).unwrap(), csv);
}

#[tokio::test]
async fn copy_in_works_as_a_futures_sink() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (id int4)")
        .await
        .unwrap();
    let mut copy = conn.copy_in("COPY t FROM STDIN").await.unwrap();
    let lines = futures::stream::iter(1..=50_000).map(|i| Ok(bytes::Bytes::from(format!("{i}\n"))));
    copy.send_all(&mut lines.boxed()).await.unwrap();
    assert_eq!(copy.finish().await.unwrap(), 50_000);
    let sum: i64 = conn
        .query_one("SELECT sum(id) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sum, 50_000 * 50_001 / 2);
}

async fn count(conn: &Connection, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {table}");
    conn.query_one(sql.as_str(), &[]).await.unwrap().get(0)
}

async fn assert_usable(conn: &Connection) {
    assert!(!conn.is_broken());
    let rows = conn.query("SELECT 41 + $1::int4", &[&1i32]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i32>(0), 42);
    assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
}

/// Sends `n` text rows `1..=n` of a one-column COPY.
async fn send_rows(copy: &mut pgkeel::CopyIn<'_>, n: i32) -> Result<(), pgkeel::Error> {
    for i in 1..=n {
        copy.send(format!("{i}\n")).await?;
    }
    Ok(())
}

#[tokio::test]
async fn copy_in_dropped_unfinished_commits_nothing_and_the_connection_stays_usable() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (id int4)")
        .await
        .unwrap();
    let mut copy = conn.copy_in("COPY t FROM STDIN").await.unwrap();
    // About 600 KB: several flushes have reached the server before the drop.
    send_rows(&mut copy, 100_000).await.unwrap();
    drop(copy);
    assert_usable(&conn).await;
    assert_eq!(count(&conn, "t").await, 0);
    // The same inside a transaction: the COPY fails, and with it the transaction.
    let tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (-1)", &[]).await.unwrap();
    let mut copy = tx.copy_in("COPY t FROM STDIN").await.unwrap();
    send_rows(&mut copy, 100_000).await.unwrap();
    drop(copy);
    let e = tx.commit().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RolledBack, "{e}");
    assert_usable(&conn).await;
    assert_eq!(count(&conn, "t").await, 0);
}

#[tokio::test]
async fn copy_in_dropped_while_its_data_goes_out_breaks_the_connection_and_commits_nothing() {
    let (db, conn) = common::db().await;
    let watcher = common::connect(&db).await;
    // A row trigger keeps the server slower than the client, so the 32 MiB cannot all
    // be in the socket buffers (or a pooler's) by the first poll of the finish.
    conn.batch_execute(
        "CREATE TABLE t (id int4);
         CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
         CREATE TRIGGER slow BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION slow()",
    )
    .await
    .unwrap();
    let mut copy = conn.copy_in("COPY t FROM STDIN").await.unwrap();
    // 32 MiB in one chunk is only buffered by `send`; the finish's first poll writes
    // what the socket takes (a few MiB at most) and is dropped with the rest unsent.
    copy.send("1\n".repeat(16 << 20)).await.unwrap();
    match Cancellable::new(copy.finish(), 1).await {
        Outcome::Dropped => {}
        Outcome::Done(r) => panic!("the finish did not stop mid-write: {r:?}"),
    }
    assert!(conn.is_broken(), "a COPY frame may be half sent");
    let e = conn.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Broken);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(count(&watcher, "t").await, 0);
}

#[tokio::test]
async fn a_bad_row_mid_copy_fails_with_its_line_number_and_the_connection_stays_usable() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (id int4)")
        .await
        .unwrap();
    let mut copy = conn.copy_in("COPY t FROM STDIN").await.unwrap();
    let mut failed = None;
    for i in 1..=300_000 {
        let line = match i {
            54_321 => "not a number\n".to_owned(),
            i => format!("{i}\n"),
        };
        if i == 100_000 {
            // The server has had the bad row for a while; the next flush must see its error.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if let Err(e) = copy.send(line).await {
            failed = Some((i, e));
            break;
        }
    }
    // The error comes back while rows are still being written, not only at the end.
    let (at, e) = failed.expect("the bad row's error reached a send");
    assert!(at < 150_000, "seen at row {at}");
    assert_eq!(e.code(), Some("22P02"), "{e}");
    let place = e.as_db_error().and_then(|d| d.where_()).unwrap_or_default();
    assert!(place.contains("line 54321"), "{place}");
    let after = copy.send("1\n").await.unwrap_err();
    assert_eq!(after.kind(), ErrorKind::Misuse);
    drop(copy);
    assert_usable(&conn).await;
    assert_eq!(count(&conn, "t").await, 0);
}

#[tokio::test]
async fn a_bad_row_in_the_last_buffer_fails_the_finish() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (id int4 NOT NULL)")
        .await
        .unwrap();
    let mut copy = conn.copy_in("COPY t FROM STDIN").await.unwrap();
    copy.send("1\n2\n\\N\n").await.unwrap();
    let e = copy.finish().await.unwrap_err();
    assert_eq!(e.code(), Some("23502"), "{e}");
    assert_usable(&conn).await;
    assert_eq!(count(&conn, "t").await, 0);
}

#[tokio::test]
async fn copy_out_dropped_early_leaves_the_connection_usable() {
    let (_db, conn) = common::db().await;
    let sql = "COPY (SELECT g, md5(g::text) FROM generate_series(1, 200000) g) TO STDOUT";
    let mut out = conn.copy_out(sql).await.unwrap();
    let first = out.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"1\tc4ca4238a0b923820dcc509a6f75849b\n"));
    drop(out);
    assert_usable(&conn).await;
    // Inside a transaction: the rest is read before the next statement.
    let tx = conn.transaction().await.unwrap();
    let mut out = tx.copy_out(sql).await.unwrap();
    out.next().await.unwrap().unwrap();
    drop(out);
    let n: i32 = tx.query_one("SELECT 7", &[]).await.unwrap().get(0);
    assert_eq!(n, 7);
    tx.commit().await.unwrap();
    assert_usable(&conn).await;
}

#[tokio::test]
async fn a_server_error_mid_copy_out_comes_after_the_data_before_it() {
    let (_db, conn) = common::db().await;
    let sql = "COPY (SELECT 1 / (50000 - g) FROM generate_series(1, 100000) g) TO STDOUT";
    let mut out = conn.copy_out(sql).await.unwrap();
    let mut lines = 0;
    let e = loop {
        match out.next().await.expect("an error before the end") {
            Ok(chunk) => lines += chunk.iter().filter(|&&b| b == b'\n').count(),
            Err(e) => break e,
        }
    };
    assert_eq!(e.code(), Some("22012"), "{e}");
    assert_eq!(lines, 49_999);
    assert!(out.next().await.is_none());
    drop(out);
    assert_usable(&conn).await;
}

#[tokio::test]
async fn statements_that_are_not_the_right_copy_are_refused_and_the_connection_goes_on() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (id int4)")
        .await
        .unwrap();
    for sql in ["SELECT 1", "COPY t TO STDOUT", "INSERT INTO t VALUES (1)"] {
        let e = conn.copy_in(sql).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Misuse, "{sql}: {e}");
        assert_usable(&conn).await;
    }
    let e = conn.copy_out("COPY t FROM STDIN").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Misuse, "{e}");
    assert_usable(&conn).await;
    assert_eq!(count(&conn, "t").await, 1, "only the INSERT ran");
    let e = conn.copy_in("COPY nowhere FROM STDIN").await.unwrap_err();
    assert_eq!(e.code(), Some("42P01"));
    assert_usable(&conn).await;
}

#[tokio::test]
async fn a_copy_holds_the_wire_lock_until_it_ends() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (id int4)")
        .await
        .unwrap();
    let mut copy = conn.copy_in("COPY t FROM STDIN").await.unwrap();
    // Same task: an immediate error, not a wait for itself.
    let e = conn.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Misuse, "{e}");
    let other = tokio::spawn({
        let conn = conn.clone();
        async move { count(&conn, "t").await }
    });
    send_rows(&mut copy, 10).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!other.is_finished(), "another task waits for the COPY");
    assert_eq!(copy.finish().await.unwrap(), 10);
    assert_eq!(other.await.unwrap(), 10);
}

#[tokio::test]
async fn a_pooled_connection_returned_mid_copy_is_cleaned_before_the_next_checkout() {
    let (db, setup) = common::db().await;
    setup
        .batch_execute("CREATE TABLE t (id int4)")
        .await
        .unwrap();
    let pool = Pool::builder(db.url()).max_size(1).build().unwrap();
    let conn = pool.get().await.unwrap();
    let mut copy = conn.copy_in("COPY t FROM STDIN").await.unwrap();
    send_rows(&mut copy, 100_000).await.unwrap();
    // The handle goes back first, while its COPY is still open; then the COPY goes.
    drop(conn);
    drop(copy);
    let conn = tokio::time::timeout(Duration::from_secs(5), pool.get())
        .await
        .expect("the connection came back")
        .unwrap();
    assert_usable(&conn).await;
    assert_eq!(count(&conn, "t").await, 0);
    // A COPY through the pooled handle and its transaction commit as usual.
    let mut copy = conn.copy_in("COPY t FROM STDIN").await.unwrap();
    send_rows(&mut copy, 3).await.unwrap();
    assert_eq!(copy.finish().await.unwrap(), 3);
    assert_eq!(count(&conn, "t").await, 3);
}

/// A COPY OUT moved to another task part-way: from its first chunk there, that task
/// calling the connection gets `Misuse` at once (even while chunks read in the first
/// task are still buffered), the first task waits its turn, and every byte arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_out_moved_to_another_task_holds_the_wire_there() {
    let (_db, conn) = common::db().await;
    let n = 200_000;
    let sql = format!("COPY (SELECT g FROM generate_series(1, {n}) g) TO STDOUT");
    let mut out = Box::pin(conn.copy_out(&sql).await.unwrap());
    let mut text = Vec::new();
    text.extend_from_slice(&out.next().await.unwrap().unwrap());
    let (moved_tx, moved_rx) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn({
        let conn = conn.clone();
        async move {
            let mut rest = out.next().await.unwrap().unwrap().to_vec();
            common::misuse_at_once(conn.query("SELECT 1", &[]), "stream or COPY first").await;
            moved_tx.send(()).unwrap();
            while let Some(chunk) = out.next().await {
                rest.extend_from_slice(&chunk.unwrap());
            }
            rest
        }
    });
    moved_rx.await.unwrap();
    // The first task no longer holds the wire: it waits for the COPY to end.
    let one: i32 = conn.query_one("SELECT 1::int4", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    text.extend(reader.await.unwrap());
    let expected: String = (1..=n).map(|g| format!("{g}\n")).collect();
    assert!(text == expected.as_bytes(), "the data differs");
}

/// A COPY IN moved to another task part-way: from its first `send` there (buffered, not
/// yet written), that task calling the connection gets `Misuse` at once, the first task
/// waits its turn, and every row is copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_in_moved_to_another_task_holds_the_wire_there() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (id int4)")
        .await
        .unwrap();
    let mut copy = conn.copy_in("COPY t FROM STDIN").await.unwrap();
    send_rows(&mut copy, 10).await.unwrap();
    let (moved_tx, moved_rx) = tokio::sync::oneshot::channel();
    let writer = tokio::spawn({
        let conn = conn.clone();
        async move {
            copy.send("11\n").await.unwrap();
            common::misuse_at_once(conn.query("SELECT 1", &[]), "stream or COPY first").await;
            moved_tx.send(()).unwrap();
            copy.finish().await.unwrap()
        }
    });
    moved_rx.await.unwrap();
    assert_eq!(
        count(&conn, "t").await,
        11,
        "the first task waited for the COPY"
    );
    assert_eq!(writer.await.unwrap(), 11);
}

/// A `BinaryCopyInWriter` moved to another task: a row written there (still buffered in
/// the writer) moves the hold on the wire too, so that task calling the connection gets
/// `Misuse` at once instead of waiting for itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_copy_writer_moved_to_another_task_holds_the_wire_there() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (id int4)")
        .await
        .unwrap();
    let sink = conn
        .copy_in("COPY t FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    let mut w = BinaryCopyInWriter::new(sink, &[Type::INT4]);
    w.write(&[&1i32]).await.unwrap();
    let rows = tokio::spawn({
        let conn = conn.clone();
        async move {
            w.write(&[&2i32]).await.unwrap();
            common::misuse_at_once(conn.query("SELECT 1", &[]), "stream or COPY first").await;
            w.finish().await.unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(rows, 2);
    assert_eq!(count(&conn, "t").await, 2);
}
