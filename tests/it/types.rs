//! Every core type round-trips through the server in binary, as a parameter and back
//! (`SELECT $1::type`) and through a table column; mismatches are typed errors.

use crate::common;

use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};

use pgkeel::types::{FromSqlOwned, ToSql};
use pgkeel::{Connection, ErrorKind, Type};

/// Numbers the tables the round trips create.
static TABLE_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// `SELECT $1::<pg>` with `value`, read back as `T`.
async fn select_back<T>(conn: &Connection, pg: &str, value: &T) -> T
where
    T: ToSql + FromSqlOwned,
{
    let sql = format!("SELECT $1::{pg} AS v");
    let params: [&(dyn ToSql + Sync); 1] = [value];
    let row = conn
        .query_one(sql.as_str(), &params)
        .await
        .unwrap_or_else(|e| panic!("{sql} with {value:?}: {e}"));
    assert_eq!(row.columns()[0].type_().name(), pg.trim_matches('"'));
    row.try_get("v")
        .unwrap_or_else(|e| panic!("{sql} with {value:?}: {e}"))
}

/// Inserts `value` into a fresh one-column table of type `pg` and reads it back as `T`.
async fn through_table<T>(conn: &Connection, pg: &str, value: &T) -> T
where
    T: ToSql + FromSqlOwned,
{
    let table = format!("rt_{}", TABLE_COUNTER.fetch_add(1, Ordering::Relaxed));
    conn.batch_execute(&format!("CREATE TABLE {table} (v {pg})"))
        .await
        .unwrap();
    let params: [&(dyn ToSql + Sync); 1] = [value];
    let inserted = conn
        .execute(
            format!("INSERT INTO {table} (v) VALUES ($1)").as_str(),
            &params,
        )
        .await
        .unwrap_or_else(|e| panic!("insert {value:?} into {pg}: {e}"));
    assert_eq!(inserted, 1);
    let row = conn
        .query_one(format!("SELECT v FROM {table}").as_str(), &[])
        .await
        .unwrap();
    row.try_get("v")
        .unwrap_or_else(|e| panic!("read {value:?} back from {pg}: {e}"))
}

/// Round-trips each value both ways and compares with `same`.
async fn assert_round_trips<T>(
    conn: &Connection,
    pg: &str,
    values: &[T],
    same: impl Fn(&T, &T) -> bool,
) where
    T: ToSql + FromSqlOwned + Debug,
{
    for value in values {
        let back = select_back(conn, pg, value).await;
        assert!(
            same(value, &back),
            "SELECT $1::{pg}: sent {value:?}, got {back:?}"
        );
        let back = through_table(conn, pg, value).await;
        assert!(
            same(value, &back),
            "{pg} column: sent {value:?}, got {back:?}"
        );
    }
}

async fn assert_round_trips_eq<T>(conn: &Connection, pg: &str, values: &[T])
where
    T: ToSql + FromSqlOwned + Debug + PartialEq,
{
    assert_round_trips(conn, pg, values, |a, b| a == b).await;
}

#[tokio::test]
async fn bool_round_trips() {
    let (_db, conn) = common::db().await;
    assert_round_trips_eq(&conn, "bool", &[true, false]).await;
}

#[tokio::test]
async fn i16_round_trips_at_the_edges() {
    let (_db, conn) = common::db().await;
    assert_round_trips_eq(&conn, "int2", &[i16::MIN, i16::MAX, 0, -1, 1]).await;
}

#[tokio::test]
async fn i32_round_trips_at_the_edges() {
    let (_db, conn) = common::db().await;
    assert_round_trips_eq(&conn, "int4", &[i32::MIN, i32::MAX, 0, -1, 1]).await;
}

#[tokio::test]
async fn i64_round_trips_at_the_edges() {
    let (_db, conn) = common::db().await;
    assert_round_trips_eq(&conn, "int8", &[i64::MIN, i64::MAX, 0, -1, 1]).await;
}

#[tokio::test]
async fn i8_round_trips_as_the_char_type_and_u32_as_oid() {
    let (_db, conn) = common::db().await;
    assert_round_trips_eq(&conn, "\"char\"", &[i8::MIN, i8::MAX, 0, -1]).await;
    assert_round_trips_eq(&conn, "oid", &[0u32, 1, u32::MAX]).await;
}

#[tokio::test]
async fn f32_round_trips_bit_for_bit_including_nan_infinities_and_negative_zero() {
    let (_db, conn) = common::db().await;
    let values = [
        f32::MIN,
        f32::MAX,
        f32::MIN_POSITIVE,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        0.0,
        1.5,
    ];
    assert_round_trips(&conn, "float4", &values, |a, b| a.to_bits() == b.to_bits()).await;
}

#[tokio::test]
async fn f64_round_trips_bit_for_bit_including_nan_infinities_and_negative_zero() {
    let (_db, conn) = common::db().await;
    let values = [
        f64::MIN,
        f64::MAX,
        f64::MIN_POSITIVE,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        std::f64::consts::PI,
    ];
    assert_round_trips(&conn, "float8", &values, |a, b| a.to_bits() == b.to_bits()).await;
}

#[tokio::test]
async fn server_sees_the_float_specials_we_sent() {
    let (_db, conn) = common::db().await;
    let row = conn
        .query_one(
            "SELECT $1::float8 = 'NaN'::float8, $2::float8 = 'Infinity', $3::float8 = '-Infinity', \
             $4::float8::text, $5::float4 = 'NaN'::float4",
            &[
                &f64::NAN,
                &f64::INFINITY,
                &f64::NEG_INFINITY,
                &-0.0f64,
                &f32::NAN,
            ],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert!(row.get::<_, bool>(1));
    assert!(row.get::<_, bool>(2));
    assert_eq!(row.get::<_, String>(3), "-0");
    assert!(row.get::<_, bool>(4));
}

#[tokio::test]
async fn strings_round_trip_empty_non_ascii_and_100_kib() {
    let (_db, conn) = common::db().await;
    let big: String = "0123456789abcdef".repeat(100 * 1024 / 16);
    assert_eq!(big.len(), 100 * 1024);
    let values = [
        String::new(),
        "日本語 ✓ émoji 🦀".to_string(),
        "quote ' backslash \\ tab \t newline \n".to_string(),
        big,
    ];
    assert_round_trips_eq(&conn, "text", &values).await;
}

#[tokio::test]
async fn str_parameters_and_borrowed_str_reads_round_trip() {
    let (_db, conn) = common::db().await;
    for s in ["", "日本語 ✓ émoji 🦀"] {
        let row = conn
            .query_one("SELECT $1::text, length($1::text)", &[&s])
            .await
            .unwrap();
        let back: &str = row.get(0);
        assert_eq!(back, s);
        let chars: i32 = row.get(1);
        assert_eq!(
            chars as usize,
            s.chars().count(),
            "the server counted characters, not bytes"
        );
    }
}

#[tokio::test]
async fn text_like_columns_read_as_string() {
    let (_db, conn) = common::db().await;
    let row = conn
        .query_one(
            "SELECT 'ab'::varchar(5), 'ab'::char(4), 'ab'::name, '{\"k\": 1}'::json",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "ab");
    assert_eq!(row.get::<_, String>(1), "ab  ", "bpchar keeps its padding");
    assert_eq!(row.get::<_, String>(2), "ab");
    assert_eq!(row.get::<_, String>(3), "{\"k\": 1}");
}

#[tokio::test]
async fn byte_strings_round_trip_empty_every_byte_value_and_over_1_mib() {
    let (_db, conn) = common::db().await;
    let every_byte: Vec<u8> = (0..=255u8).collect();
    let big: Vec<u8> = (0..(1024 * 1024 + 17))
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let values = [Vec::new(), every_byte, big];
    assert_round_trips_eq(&conn, "bytea", &values).await;
}

#[tokio::test]
async fn byte_slices_are_sent_and_read_borrowed() {
    let (_db, conn) = common::db().await;
    let every_byte: Vec<u8> = (0..=255u8).collect();
    let slice: &[u8] = &every_byte;
    let row = conn
        .query_one(
            "SELECT $1::bytea, length($1::bytea), md5($1::bytea)",
            &[&slice],
        )
        .await
        .unwrap();
    let back: &[u8] = row.get(0);
    assert_eq!(back, slice);
    assert_eq!(row.get::<_, i32>(1), 256);
    // md5 of the bytes 0..=255, computed independently of the driver.
    assert_eq!(row.get::<_, String>(2), "e2c865db4162bed963bfaa9ef6ac18f0");
}

#[tokio::test]
async fn none_is_sent_as_null_and_some_as_its_value() {
    let (_db, conn) = common::db().await;
    let none: Option<i32> = None;
    let some: Option<i32> = Some(7);
    let row = conn
        .query_one("SELECT $1::int4 IS NULL, $2::int4 IS NULL", &[&none, &some])
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "None must arrive as NULL");
    assert!(!row.get::<_, bool>(1), "Some must not arrive as NULL");
    assert_round_trips_eq(&conn, "int4", &[None, Some(7i32), Some(i32::MIN)]).await;
    assert_round_trips_eq(
        &conn,
        "text",
        &[None, Some(String::new()), Some("x".to_string())],
    )
    .await;
    assert_round_trips_eq(&conn, "bytea", &[None::<Vec<u8>>, Some(vec![0u8])]).await;
}

#[tokio::test]
async fn narrower_columns_widen_into_wider_rust_integers_and_floats() {
    let (_db, conn) = common::db().await;
    conn.batch_execute(
        "CREATE TABLE w (small int2, mid int4, f float4);
         INSERT INTO w VALUES (-32768, -2147483648, 1.5)",
    )
    .await
    .unwrap();
    let row = conn
        .query_one("SELECT small, mid, f FROM w", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>("small"), -32768);
    assert_eq!(row.get::<_, i64>("small"), -32768);
    assert_eq!(row.get::<_, i64>("mid"), -2147483648);
    assert_eq!(row.get::<_, f64>("f"), 1.5);
}

/// Checks a decode error: its kind, and that it names the column, both types.
fn assert_decode_error(err: pgkeel::Error, column: &str, pg: &str, rust: &str) {
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{column:?}")),
        "names the column {column}: {msg}"
    );
    assert!(msg.contains(pg), "names the PostgreSQL type {pg}: {msg}");
    assert!(msg.contains(rust), "names the Rust type {rust}: {msg}");
}

#[tokio::test]
async fn a_rust_type_narrower_than_the_column_is_a_decode_error() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE big (id int8); INSERT INTO big VALUES (5)")
        .await
        .unwrap();
    let row = conn.query_one("SELECT id FROM big", &[]).await.unwrap();
    let err = row.try_get::<_, i32>("id").unwrap_err();
    assert_decode_error(err, "id", "int8", "i32");
    let err = row.try_get::<_, i16>(0).unwrap_err();
    assert_decode_error(err, "id", "int8", "i16");
    assert_eq!(row.get::<_, i64>("id"), 5, "the right type still reads");
}

#[tokio::test]
async fn a_string_from_an_int4_column_is_a_decode_error() {
    let (_db, conn) = common::db().await;
    let row = conn
        .query_one("SELECT 42::int4 AS answer", &[])
        .await
        .unwrap();
    let err = row.try_get::<_, String>("answer").unwrap_err();
    assert_decode_error(err, "answer", "int4", "String");
    let err = row.try_get::<_, Vec<u8>>("answer").unwrap_err();
    assert_decode_error(err, "answer", "int4", "Vec<u8>");
    let err = row.try_get::<_, bool>("answer").unwrap_err();
    assert_decode_error(err, "answer", "int4", "bool");
}

#[tokio::test]
async fn null_into_a_non_option_type_is_a_decode_error() {
    let (_db, conn) = common::db().await;
    let row = conn
        .query_one("SELECT NULL::int4 AS missing", &[])
        .await
        .unwrap();
    let err = row.try_get::<_, i32>("missing").unwrap_err();
    assert!(err.to_string().contains("NULL"), "says it was NULL: {err}");
    assert_decode_error(err, "missing", "int4", "i32");
    assert_eq!(row.get::<_, Option<i32>>("missing"), None);
}

#[tokio::test]
async fn an_i64_for_an_int4_parameter_of_a_prepared_statement_is_an_encode_error() {
    let (_db, conn) = common::db().await;
    let stmt = conn.prepare("SELECT $1::int4 + 1").await.unwrap();
    assert_eq!(stmt.params(), &[Type::INT4]);
    let err = conn.query(&stmt, &[&5i64]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Encode, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("$1"), "names the parameter: {msg}");
    assert!(msg.contains("int4"), "names the PostgreSQL type: {msg}");
    assert!(msg.contains("i64"), "names the Rust type: {msg}");
    assert!(!conn.is_broken(), "an encode error sends nothing");
    let n: i32 = conn.query_one(&stmt, &[&5i32]).await.unwrap().get(0);
    assert_eq!(n, 6);
}

#[tokio::test]
async fn sql_text_sends_the_rust_type_and_the_server_casts_it() {
    let (_db, conn) = common::db().await;
    // With SQL text the parameter is typed int8 by the Rust value; `::int4` is a cast.
    let n: i32 = conn
        .query_one("SELECT $1::int4", &[&41i64])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 41);
    let err = conn
        .query_one("SELECT $1::int4", &[&i64::MAX])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("22003"), "{err}");
    assert!(!conn.is_broken());
}

#[tokio::test]
async fn a_wrong_number_of_parameters_for_a_prepared_statement_is_an_encode_error() {
    let (_db, conn) = common::db().await;
    let stmt = conn.prepare("SELECT $1::int4, $2::text").await.unwrap();
    let err = conn.query(&stmt, &[&1i32]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Encode, "{err}");
    assert!(err.to_string().contains('2'), "{err}");
    assert!(!conn.is_broken());
}

#[tokio::test]
async fn an_unknown_column_name_or_index_is_column_not_found() {
    let (_db, conn) = common::db().await;
    let row = conn.query_one("SELECT 1::int4 AS one", &[]).await.unwrap();
    let err = row.try_get::<_, i32>("two").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ColumnNotFound, "{err}");
    assert!(err.to_string().contains("two"), "{err}");
    let err = row.try_get::<_, i32>(1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ColumnNotFound, "{err}");
    assert_eq!(row.get::<_, i32>("one"), 1);
}
