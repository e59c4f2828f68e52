//! The oracle test: for each type, a corpus of values (the edges, then seeded random
//! values) is generated on the server; pgkeel decodes each in binary, renders it where
//! its `Display` is PostgreSQL's text form and compares with the server's own
//! `value::text`, then binds the decoded value back and asks the server whether it
//! equals the original.

use crate::common;

use std::fmt::{Debug, Display};
use std::net::IpAddr;
use std::time::SystemTime;

use pgkeel::Connection;
use pgkeel::types::{
    Array, BitString, Interval, IpNet, MacAddr, MacAddr8, Money, Multirange, Numeric, PgDate,
    PgLsn, PgTime, PgTimeTz, PgTimestamp, PgTimestampTz, PgUuid, Range, RawJson, Timestamp,
};
use pgkeel::types::{FromSqlOwned, ToSql};

/// How a decoded value is checked against the server.
struct Check<T> {
    /// Renders the value as the server's `::text` would, when the Rust form has one.
    render: Option<fn(&T) -> String>,
    /// The SQL that must be true, with `$1` the bound value and `$2` the original's text.
    equal: String,
}

impl<T> Check<T> {
    /// Binding back must give `$1 IS NOT DISTINCT FROM` the original.
    fn bind_back(ty: &str) -> Check<T> {
        Check {
            render: None,
            equal: format!("SELECT $1::{ty} IS NOT DISTINCT FROM $2::text::{ty}"),
        }
    }

    /// Binding back as above, and the rendering must match the server's text.
    fn rendered(ty: &str, render: fn(&T) -> String) -> Check<T> {
        Check {
            render: Some(render),
            ..Check::bind_back(ty)
        }
    }
}

/// Display as the server's text form.
fn shown<T: Display>(v: &T) -> String {
    v.to_string()
}

/// A corpus query over SQL literals, each cast to `ty`, in order.
fn values(ty: &str, literals: &[&str]) -> String {
    let rows: Vec<String> = literals
        .iter()
        .enumerate()
        .map(|(i, l)| format!("({i}, ({l})::{ty})"))
        .collect();
    format!(
        "SELECT v FROM (VALUES {}) t(i, v) ORDER BY i",
        rows.join(", ")
    )
}

/// Runs the oracle over the rows of `corpus` (a query with one column `v` of type `ty`);
/// returns how many values were checked.
async fn oracle<T>(conn: &Connection, ty: &str, corpus: &str, check: &Check<T>) -> usize
where
    T: ToSql + FromSqlOwned + Debug,
{
    // Prepared, so the types are the server's own (user and extension types resolved).
    let sql = format!("SELECT v, v::text FROM ({corpus}) c");
    let corpus = conn
        .prepare(&sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let equal = conn.prepare(&check.equal).await.unwrap();
    let rows = conn
        .query(&corpus, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert!(!rows.is_empty(), "{sql} returned no rows");
    for row in &rows {
        let text: Option<String> = row.get(1);
        let value: Option<T> = row
            .try_get(0)
            .unwrap_or_else(|e| panic!("{ty} {text:?}: {e}"));
        assert_eq!(value.is_none(), text.is_none(), "{ty} {text:?}: NULL-ness");
        if let (Some(render), Some(v), Some(t)) = (check.render, &value, &text) {
            assert_eq!(&render(v), t, "{ty}: rendering of {v:?}");
        }
        let same: bool = conn
            .query_one(&equal, &[&value, &text])
            .await
            .unwrap_or_else(|e| panic!("{ty} {text:?} bound back as {value:?}: {e}"))
            .get(0);
        assert!(same, "{ty}: {value:?} bound back is not {text:?}");
    }
    rows.len()
}

/// A connection whose text output is the form the renderings follow.
async fn oracle_db() -> (pgkeel_testkit::TestDb, Connection) {
    let (db, conn) = common::db().await;
    conn.batch_execute(
        "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; \
         SET extra_float_digits = 1; SELECT setseed(0.4242)",
    )
    .await
    .unwrap();
    (db, conn)
}

/// `n` seeded random rows of `expr` (which may use `random()`) as a corpus of `ty`.
fn random(ty: &str, expr: &str, n: usize) -> String {
    format!("SELECT ({expr})::{ty} AS v FROM generate_series(1, {n})")
}

#[tokio::test]
async fn integers_booleans_and_oids_match_the_server() {
    let (_db, conn) = oracle_db().await;
    let mut n = 0;
    let ints = ["0", "1", "-1", "NULL"];
    let c = Check::<i16>::rendered("int2", shown);
    n += oracle(
        &conn,
        "int2",
        &values("int2", &[&ints[..], &["-32768", "32767"]].concat()),
        &c,
    )
    .await;
    n += oracle(
        &conn,
        "int2",
        &random("int2", "(random() - 0.5) * 65535", 50),
        &c,
    )
    .await;
    let c = Check::<i32>::rendered("int4", shown);
    let edges = [&ints[..], &["-2147483648", "2147483647"]].concat();
    n += oracle(&conn, "int4", &values("int4", &edges), &c).await;
    n += oracle(
        &conn,
        "int4",
        &random("int4", "(random() - 0.5) * 4e9", 50),
        &c,
    )
    .await;
    let c = Check::<i64>::rendered("int8", shown);
    let edges = [&ints[..], &["-9223372036854775808", "9223372036854775807"]].concat();
    n += oracle(&conn, "int8", &values("int8", &edges), &c).await;
    n += oracle(
        &conn,
        "int8",
        &random("int8", "(random() - 0.5) * 1.8e19", 50),
        &c,
    )
    .await;
    let c = Check::<u32>::rendered("oid", shown);
    n += oracle(
        &conn,
        "oid",
        &values("oid", &["0", "4294967295", "NULL"]),
        &c,
    )
    .await;
    let c = Check::<bool>::rendered("bool", |b| b.to_string());
    n += oracle(
        &conn,
        "bool",
        &values("bool", &["true", "false", "NULL"]),
        &c,
    )
    .await;
    let c = Check::<i8>::bind_back("\"char\"");
    n += oracle(
        &conn,
        "\"char\"",
        &values("\"char\"", &["'a'", "'\\x01'", "'\\xff'", "NULL"]),
        &c,
    )
    .await;
    assert!(n > 150, "{n}");
}

#[tokio::test]
async fn floats_including_nan_infinities_and_negative_zero_match_the_server() {
    let (_db, conn) = oracle_db().await;
    let edges = [
        "0",
        "'-0'",
        "'NaN'",
        "'Infinity'",
        "'-Infinity'",
        "1.5",
        "NULL",
        "'1.7976931348623157e308'",
        "'-1.7976931348623157e308'",
        "'5e-324'",
        "'2.2250738585072014e-308'",
    ];
    let c = Check::<f64>::bind_back("float8");
    oracle(&conn, "float8", &values("float8", &edges), &c).await;
    oracle(
        &conn,
        "float8",
        &random(
            "float8",
            "(random() - 0.5) * 10 ^ (random() * 600 - 300)",
            100,
        ),
        &c,
    )
    .await;
    let edges = [
        "0",
        "'-0'",
        "'NaN'",
        "'Infinity'",
        "'-Infinity'",
        "'3.4028235e38'",
        "'-3.4028235e38'",
        "'1e-45'",
        "NULL",
    ];
    let c = Check::<f32>::bind_back("float4");
    oracle(&conn, "float4", &values("float4", &edges), &c).await;
    oracle(
        &conn,
        "float4",
        &random(
            "float4",
            "(random() - 0.5) * 10 ^ (random() * 70 - 35)",
            100,
        ),
        &c,
    )
    .await;
    // Negative zero keeps its sign bit through the binary form.
    let z: f64 = conn
        .query_one("SELECT '-0'::float8", &[])
        .await
        .unwrap()
        .get(0);
    assert!(z == 0.0 && z.is_sign_negative());
}

#[tokio::test]
async fn numerics_keep_every_digit() {
    let (_db, conn) = oracle_db().await;
    let edges = [
        "0",
        "'-0'",
        "0.000",
        "1",
        "-1",
        "'NaN'",
        "'Infinity'",
        "'-Infinity'",
        "NULL",
        "12345.6789",
        "-0.00001",
        "1e-20",
        "10000",
        "99990000",
        "0.1",
        "1e100",
        "repeat('9', 1000)",
        "'-' || repeat('1', 999) || '.' || repeat('7', 1000)",
        "'0.' || repeat('0', 500) || '1'",
        "'1' || repeat('0', 1000)",
    ];
    let c = Check::<Numeric>::rendered("numeric", shown);
    let mut n = oracle(&conn, "numeric", &values("numeric", &edges), &c).await;
    let expr =
        "round(((random() - 0.5) * 10 ^ (random() * 60 - 20))::numeric, (random() * 30)::int)";
    n += oracle(&conn, "numeric", &random("numeric", expr, 200), &c).await;
    assert!(n >= 220);
}

#[tokio::test]
async fn text_types_and_bytea_match_the_server() {
    let (_db, conn) = oracle_db().await;
    let texts = [
        "''",
        "'hello'",
        "'héllo wörld ✓ 🐘'",
        "'quote '' and \\ backslash'",
        "' spaces  '",
        "repeat('x', 100000)",
        "NULL",
        "'日本語'",
        "E'tab\\tnewline\\n'",
    ];
    for ty in [
        "text",
        "varchar",
        "bpchar",
        "name",
        "char(12)",
        "varchar(30)",
    ] {
        // bpchar's cast to text drops the padding; its binary form keeps it.
        let c = match ty {
            "bpchar" | "char(12)" => {
                Check::<String>::rendered(ty, |s| s.trim_end_matches(' ').into())
            }
            _ => Check::<String>::rendered(ty, |s| s.clone()),
        };
        let short: Vec<&str> = match ty {
            "name" | "char(12)" | "varchar(30)" => texts
                .iter()
                .copied()
                .filter(|t| !t.starts_with("repeat"))
                .collect(),
            _ => texts.to_vec(),
        };
        oracle(&conn, ty, &values(ty, &short), &c).await;
    }
    let c = Check::<String>::rendered("text", |s| s.clone());
    let expr = "(SELECT string_agg(chr(1 + (random() * 55000)::int), '') FROM generate_series(1, 20 + g * 0))";
    oracle(
        &conn,
        "text",
        &format!("SELECT {expr}::text AS v FROM generate_series(1, 50) g"),
        &c,
    )
    .await;
    let c = Check::<Vec<u8>>::rendered("bytea", |b| {
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!("\\x{hex}")
    });
    let bytes = [
        "''",
        "'\\x00ff10'",
        "decode(repeat('ab', 5000), 'hex')",
        "NULL",
    ];
    oracle(&conn, "bytea", &values("bytea", &bytes), &c).await;
}

#[tokio::test]
async fn bit_strings_money_lsn_uuid_and_macs_match_the_server() {
    let (_db, conn) = oracle_db().await;
    let c = Check::<BitString>::rendered("varbit", shown);
    oracle(
        &conn,
        "varbit",
        &values(
            "varbit",
            &["B''", "B'1'", "B'101100001'", "B'11111111'", "NULL"],
        ),
        &c,
    )
    .await;
    let c = Check::<BitString>::rendered("bit(9)", shown);
    oracle(
        &conn,
        "bit(9)",
        &values("bit(9)", &["B'101100001'", "B'000000000'"]),
        &c,
    )
    .await;
    let c = Check::<Money>::bind_back("money");
    let money = [
        "0",
        "'-92233720368547758.08'",
        "'92233720368547758.07'",
        "12.34",
        "NULL",
    ];
    oracle(&conn, "money", &values("money", &money), &c).await;
    let c = Check::<PgLsn>::rendered("pg_lsn", shown);
    oracle(
        &conn,
        "pg_lsn",
        &values(
            "pg_lsn",
            &["'0/0'", "'16/B374D848'", "'FFFFFFFF/FFFFFFFF'", "NULL"],
        ),
        &c,
    )
    .await;
    let c = Check::<PgUuid>::rendered("uuid", shown);
    let uuids = [
        "'00000000-0000-0000-0000-000000000000'",
        "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
        "NULL",
    ];
    oracle(&conn, "uuid", &values("uuid", &uuids), &c).await;
    oracle(
        &conn,
        "uuid",
        &random("uuid", "md5(random()::text)::uuid", 30),
        &c,
    )
    .await;
    let c = Check::<MacAddr>::rendered("macaddr", shown);
    oracle(
        &conn,
        "macaddr",
        &values(
            "macaddr",
            &["'08:00:2b:01:02:03'", "'ff:ff:ff:ff:ff:ff'", "NULL"],
        ),
        &c,
    )
    .await;
    let c = Check::<MacAddr8>::rendered("macaddr8", shown);
    oracle(
        &conn,
        "macaddr8",
        &values("macaddr8", &["'08:00:2b:01:02:03:04:05'", "NULL"]),
        &c,
    )
    .await;
}

#[tokio::test]
async fn network_addresses_match_the_server() {
    let (_db, conn) = oracle_db().await;
    let inets = [
        "'10.1.2.3'",
        "'10.1.2.3/8'",
        "'0.0.0.0/0'",
        "'::1'",
        "'2001:db8::1/64'",
        "'::ffff:1.2.3.4'",
        "'fe80::1:2:3:4'",
        "'255.255.255.255'",
        "NULL",
    ];
    // `inet::text` always shows the prefix; inet_out (and IpNet's Display) omits a full one.
    let c = Check::<IpNet>::rendered("inet", |n| format!("{}/{}", n.addr(), n.prefix()));
    oracle(&conn, "inet", &values("inet", &inets), &c).await;
    let c = Check::<IpNet>::rendered("cidr", |n| format!("{}/{}", n.addr(), n.prefix()));
    let cidrs = [
        "'10.0.0.0/8'",
        "'192.168.1.0/24'",
        "'2001:db8::/32'",
        "'1.2.3.4/32'",
        "NULL",
    ];
    oracle(&conn, "cidr", &values("cidr", &cidrs), &c).await;
    let c = Check::<IpAddr>::rendered("inet", |a| format!("{a}/{}", IpNet::from(*a).prefix()));
    oracle(
        &conn,
        "inet",
        &values("inet", &["'10.1.2.3'", "'::1'", "NULL"]),
        &c,
    )
    .await;
}

#[tokio::test]
async fn dates_and_times_match_the_server_to_the_microsecond_and_at_both_ends() {
    let (_db, conn) = oracle_db().await;
    let dates = [
        "'2000-01-01'",
        "'2000-02-29'",
        "'1900-02-28'",
        "'2024-02-29'",
        "'0001-01-01'",
        "'0001-12-31 BC'",
        "'4714-11-24 BC'",
        "'5874897-12-31'",
        "'infinity'",
        "'-infinity'",
        "NULL",
    ];
    let c = Check::<PgDate>::rendered("date", shown);
    oracle(&conn, "date", &values("date", &dates), &c).await;
    oracle(
        &conn,
        "date",
        &random(
            "date",
            "'2000-01-01'::date + ((random() - 0.5) * 3e6)::int",
            100,
        ),
        &c,
    )
    .await;
    let stamps = [
        "'2000-01-01 00:00:00'",
        "'2000-02-29 12:34:56.789'",
        "'1999-12-31 23:59:59.999999'",
        "'4714-11-24 00:00:00 BC'",
        "'294276-12-31 23:59:59.999999'",
        "'2016-12-31 23:59:60'",
        "'0001-01-01 00:00:00.000001 BC'",
        "'infinity'",
        "'-infinity'",
        "NULL",
    ];
    let c = Check::<PgTimestamp>::rendered("timestamp", shown);
    oracle(&conn, "timestamp", &values("timestamp", &stamps), &c).await;
    let expr = "'2000-01-01'::timestamp + (random() - 0.5) * interval '2000000 days'";
    oracle(&conn, "timestamp", &random("timestamp", expr, 100), &c).await;
    let c = Check::<PgTimestampTz>::rendered("timestamptz", shown);
    oracle(&conn, "timestamptz", &values("timestamptz", &stamps), &c).await;
    let c = Check::<Timestamp<SystemTime>>::bind_back("timestamptz");
    oracle(&conn, "timestamptz", &values("timestamptz", &stamps), &c).await;
    let times = [
        "'00:00'",
        "'24:00:00'",
        "'23:59:59.999999'",
        "'12:34:56.5'",
        "NULL",
    ];
    let c = Check::<PgTime>::rendered("time", shown);
    oracle(&conn, "time", &values("time", &times), &c).await;
    let tzs = [
        "'00:00+00'",
        "'24:00:00-15:59'",
        "'12:34:56.789+05:30'",
        "'01:02:03-03:30:15'",
        "'23:59:59.999999+15:59'",
        "NULL",
    ];
    let c = Check::<PgTimeTz>::rendered("timetz", shown);
    oracle(&conn, "timetz", &values("timetz", &tzs), &c).await;
    let intervals = [
        "'0'",
        "'1 year 2 mons 3 days 04:05:06.789'",
        "'-1 year +1 day'",
        "'-1 mon -1 day -00:00:00.000001'",
        "'178000000 years'",
        "'-178000000 years'",
        "'2147483647 days'",
        "'-2147483648 days'",
        "'2562047788:00:54.775807'",
        "'-2562047788:00:54.775807'",
        "'1 day -01:00'",
        "NULL",
    ];
    let c = Check::<Interval>::rendered("interval", shown);
    oracle(&conn, "interval", &values("interval", &intervals), &c).await;
    let expr = "make_interval(months => ((random() - 0.5) * 1e4)::int, days => ((random() - 0.5) * 1e4)::int, secs => (random() - 0.5) * 1e7)";
    oracle(&conn, "interval", &random("interval", expr, 100), &c).await;
}

#[tokio::test]
async fn json_and_jsonb_match_the_server() {
    let (_db, conn) = oracle_db().await;
    let docs = [
        "'{}'",
        "'[]'",
        "'null'",
        "'{\"a\": [1, 2.50, \"é\"], \"b\": {\"c\": null}}'",
        "'\"\\u00e9\"'",
        "'  1  '",
        "NULL",
    ];
    let c = Check::<RawJson> {
        render: Some(|j| j.0.clone()),
        // json has no `=`: the text sent back must be the very text read.
        equal: "SELECT $1::json::text IS NOT DISTINCT FROM $2::text".into(),
    };
    oracle(&conn, "json", &values("json", &docs), &c).await;
    let c = Check::<RawJson>::rendered("jsonb", |j| j.0.clone());
    oracle(&conn, "jsonb", &values("jsonb", &docs), &c).await;
}

#[tokio::test]
async fn arrays_of_every_shape_match_the_server() {
    let (_db, conn) = oracle_db().await;
    let ints = [
        "'{}'",
        "'{1,2,3}'",
        "'{NULL,1}'",
        "'{{1,2},{3,4}}'",
        "'[0:1]={5,6}'",
        "'[-3:-2][1:1]={{1},{2}}'",
        "'{{{{{{1}}}}}}'",
        "array_fill(7, ARRAY[2,2,2,2,2,2])",
        "NULL",
    ];
    let c = Check::<Array<i32>>::rendered("int4[]", shown);
    oracle(&conn, "int4[]", &values("int4[]", &ints), &c).await;
    let c = Check::<Vec<i64>>::bind_back("int8[]");
    oracle(
        &conn,
        "int8[]",
        &values("int8[]", &["'{}'", "'{1,-9223372036854775808}'", "NULL"]),
        &c,
    )
    .await;
    let texts = [
        "'{}'",
        "'{\"a b\",\"\",\"NULL\",NULL,\"q\\\"\",é,\"{x}\"}'",
        "'{{a,b},{c,d}}'",
    ];
    let c = Check::<Array<String>>::rendered("text[]", shown);
    oracle(&conn, "text[]", &values("text[]", &texts), &c).await;
    let c = Check::<Vec<Option<String>>>::bind_back("varchar[]");
    oracle(
        &conn,
        "varchar[]",
        &values("varchar[]", &["'{a,NULL,\"\"}'"]),
        &c,
    )
    .await;
    let c = Check::<Array<Numeric>>::rendered("numeric[]", shown);
    oracle(
        &conn,
        "numeric[]",
        &values("numeric[]", &["'{1.50,NaN,-Infinity,NULL}'"]),
        &c,
    )
    .await;
    let c = Check::<Array<PgTimestampTz>>::rendered("timestamptz[]", shown);
    oracle(
        &conn,
        "timestamptz[]",
        &values(
            "timestamptz[]",
            &["'{\"2000-01-01 00:00:00+00\",infinity}'"],
        ),
        &c,
    )
    .await;
    let c = Check::<Vec<bool>>::bind_back("bool[]");
    oracle(&conn, "bool[]", &values("bool[]", &["'{t,f}'"]), &c).await;
    let c = Check::<Vec<PgUuid>>::bind_back("uuid[]");
    oracle(
        &conn,
        "uuid[]",
        &values("uuid[]", &["ARRAY[gen_random_uuid(), gen_random_uuid()]"]),
        &c,
    )
    .await;
    let c = Check::<Vec<Vec<u8>>>::bind_back("bytea[]");
    oracle(
        &conn,
        "bytea[]",
        &values("bytea[]", &["'{\"\\\\x01\",\"\\\\x\"}'"]),
        &c,
    )
    .await;
    let expr = "(SELECT array_agg((random() * 1000)::int) FROM generate_series(1, (random() * 20)::int + 1 + g * 0))";
    let c = Check::<Vec<i32>>::bind_back("int4[]");
    oracle(
        &conn,
        "int4[]",
        &format!("SELECT {expr} AS v FROM generate_series(1, 30) g"),
        &c,
    )
    .await;
}

#[tokio::test]
async fn ranges_and_multiranges_match_the_server() {
    let (_db, conn) = oracle_db().await;
    let c = Check::<Range<i32>>::rendered("int4range", shown);
    let ranges = [
        "'empty'",
        "'[1,5)'",
        "'(,5]'",
        "'[3,)'",
        "'(,)'",
        "'[-2147483648,2147483647)'",
        "NULL",
    ];
    oracle(&conn, "int4range", &values("int4range", &ranges), &c).await;
    let c = Check::<Range<i64>>::rendered("int8range", shown);
    oracle(
        &conn,
        "int8range",
        &values("int8range", &["'empty'", "'[1,9223372036854775807)'"]),
        &c,
    )
    .await;
    let c = Check::<Range<Numeric>>::rendered("numrange", shown);
    oracle(
        &conn,
        "numrange",
        &values(
            "numrange",
            &["'(1.5,2.25]'", "'(,NaN]'", "'[-Infinity,0)'", "'empty'"],
        ),
        &c,
    )
    .await;
    let c = Check::<Range<PgTimestampTz>>::rendered("tstzrange", shown);
    let stamps = [
        "'[2000-01-01, infinity)'",
        "'(-infinity,2000-01-01 00:00:00.5]'",
        "'empty'",
    ];
    oracle(&conn, "tstzrange", &values("tstzrange", &stamps), &c).await;
    let c = Check::<Range<PgTimestamp>>::rendered("tsrange", shown);
    oracle(
        &conn,
        "tsrange",
        &values("tsrange", &["'[4714-11-24 00:00:00 BC,)'"]),
        &c,
    )
    .await;
    let c = Check::<Range<PgDate>>::rendered("daterange", shown);
    oracle(
        &conn,
        "daterange",
        &values(
            "daterange",
            &["'[2000-02-28,2000-03-01]'", "'(,infinity)'", "'empty'"],
        ),
        &c,
    )
    .await;
    let c = Check::<Multirange<i32>>::rendered("int4multirange", shown);
    let multi = ["'{}'", "'{[1,3),[5,7)}'", "'{(,0),[10,)}'", "NULL"];
    oracle(
        &conn,
        "int4multirange",
        &values("int4multirange", &multi),
        &c,
    )
    .await;
    let c = Check::<Multirange<PgDate>>::rendered("datemultirange", shown);
    oracle(
        &conn,
        "datemultirange",
        &values("datemultirange", &["'{[2000-01-01,2000-01-05)}'"]),
        &c,
    )
    .await;
}

#[tokio::test]
async fn enums_domains_citext_and_hstore_of_the_database_match_the_server() {
    let (_db, conn) = oracle_db().await;
    conn.batch_execute(
        "CREATE EXTENSION citext; CREATE EXTENSION hstore; \
         CREATE TYPE mood AS ENUM ('sad', 'ok', 'é ü', ''); \
         CREATE DOMAIN posint AS int4 CHECK (VALUE > 0); CREATE DOMAIN email AS citext",
    )
    .await
    .unwrap();
    let c = Check::<String>::rendered("mood", |s| s.clone());
    oracle(
        &conn,
        "mood",
        &values("mood", &["'sad'", "'é ü'", "''", "NULL"]),
        &c,
    )
    .await;
    let c = Check::<Vec<String>>::bind_back("mood[]");
    oracle(
        &conn,
        "mood[]",
        &values("mood[]", &["'{sad,ok}'", "'{}'"]),
        &c,
    )
    .await;
    let c = Check::<String>::rendered("citext", |s| s.clone());
    oracle(
        &conn,
        "citext",
        &values("citext", &["'MiXeD Case'", "''", "'straße'", "NULL"]),
        &c,
    )
    .await;
    let c = Check::<String>::rendered("email", |s| s.clone());
    oracle(
        &conn,
        "email",
        &values("email", &["'Ann@Example.COM'", "NULL"]),
        &c,
    )
    .await;
    let c = Check::<i32>::rendered("posint", shown);
    oracle(
        &conn,
        "posint",
        &values("posint", &["1", "2147483647", "NULL"]),
        &c,
    )
    .await;
    let c = Check::<std::collections::HashMap<String, Option<String>>>::bind_back("hstore");
    let maps = ["''", "'a=>1, b=>NULL, \"é k\"=>\"v,w\"'", "NULL"];
    oracle(&conn, "hstore", &values("hstore", &maps), &c).await;
}

#[cfg(feature = "chrono")]
#[tokio::test]
async fn chrono_values_bind_back_to_the_original() {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
    let (_db, conn) = oracle_db().await;
    let stamps = [
        "'2000-02-29 12:34:56.789'",
        "'1970-01-01'",
        "'0001-01-01 00:00:00 BC'",
        "NULL",
    ];
    oracle(
        &conn,
        "timestamp",
        &values("timestamp", &stamps),
        &Check::<NaiveDateTime>::bind_back("timestamp"),
    )
    .await;
    oracle(
        &conn,
        "timestamptz",
        &values("timestamptz", &stamps),
        &Check::<DateTime<Utc>>::bind_back("timestamptz"),
    )
    .await;
    let dates = ["'2000-02-29'", "'0044-03-15 BC'", "NULL"];
    oracle(
        &conn,
        "date",
        &values("date", &dates),
        &Check::<NaiveDate>::bind_back("date"),
    )
    .await;
    oracle(
        &conn,
        "time",
        &values("time", &["'23:59:59.999999'", "NULL"]),
        &Check::<NaiveTime>::bind_back("time"),
    )
    .await;
    let far = conn
        .query_one("SELECT '5874897-12-31'::date", &[])
        .await
        .unwrap();
    let err = far.try_get::<_, NaiveDate>(0).unwrap_err();
    assert!(err.to_string().contains("out of chrono's range"), "{err}");
}

#[cfg(feature = "time")]
#[tokio::test]
async fn time_crate_values_bind_back_to_the_original() {
    use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};
    let (_db, conn) = oracle_db().await;
    let stamps = [
        "'2000-02-29 12:34:56.789'",
        "'1970-01-01'",
        "'9999-12-31 23:59:59.999999'",
        "NULL",
    ];
    oracle(
        &conn,
        "timestamp",
        &values("timestamp", &stamps),
        &Check::<PrimitiveDateTime>::bind_back("timestamp"),
    )
    .await;
    oracle(
        &conn,
        "timestamptz",
        &values("timestamptz", &stamps),
        &Check::<OffsetDateTime>::bind_back("timestamptz"),
    )
    .await;
    oracle(
        &conn,
        "date",
        &values("date", &["'2000-02-29'", "NULL"]),
        &Check::<Date>::bind_back("date"),
    )
    .await;
    oracle(
        &conn,
        "time",
        &values("time", &["'00:00:00.000001'"]),
        &Check::<Time>::bind_back("time"),
    )
    .await;
}

#[cfg(feature = "uuid")]
#[tokio::test]
async fn uuid_crate_values_bind_back_to_the_original() {
    let (_db, conn) = oracle_db().await;
    let c = Check::<uuid::Uuid>::rendered("uuid", shown);
    oracle(&conn, "uuid", &random("uuid", "gen_random_uuid()", 20), &c).await;
}

#[cfg(feature = "serde_json")]
#[tokio::test]
async fn serde_json_values_bind_back_to_the_original() {
    use pgkeel::types::Json;
    let (_db, conn) = oracle_db().await;
    let docs = ["'{\"a\": [1, 2.5, \"é\"], \"b\": null}'", "'[]'", "NULL"];
    oracle(
        &conn,
        "jsonb",
        &values("jsonb", &docs),
        &Check::<serde_json::Value>::bind_back("jsonb"),
    )
    .await;
    let c = Check::<Json<Vec<i64>>>::bind_back("jsonb");
    oracle(
        &conn,
        "jsonb",
        &values("jsonb", &["'[1, -9007199254740993]'"]),
        &c,
    )
    .await;
}

#[cfg(feature = "rust_decimal")]
#[tokio::test]
async fn rust_decimal_values_bind_back_or_fail_clearly() {
    use rust_decimal::Decimal;
    let (_db, conn) = oracle_db().await;
    let nums = [
        "0",
        "-12.345",
        "79228162514264337593543950335",
        "-7922816251426433759354395033.5",
        "0.0000000000000000000000000001",
        "1.50",
        "10000",
        "-0.0500",
        "99999999.99990000",
        "NULL",
    ];
    oracle(
        &conn,
        "numeric",
        &values("numeric", &nums),
        &Check::<Decimal>::bind_back("numeric"),
    )
    .await;
    let row = conn
        .query_one("SELECT 'NaN'::numeric, 1e40::numeric", &[])
        .await
        .unwrap();
    assert!(
        row.try_get::<_, Decimal>(0)
            .unwrap_err()
            .to_string()
            .contains("does not fit")
    );
    assert!(row.try_get::<_, Decimal>(1).is_err());
}

#[cfg(feature = "bigdecimal")]
#[tokio::test]
async fn bigdecimal_values_bind_back_or_fail_clearly() {
    use bigdecimal::BigDecimal;
    let (_db, conn) = oracle_db().await;
    let thousand = format!("-{}.{}", "9".repeat(600), "1234567890".repeat(40));
    let thousand = format!("'{thousand}'");
    let nums = [
        "0",
        "-12.345",
        "1.50",
        "0.000000000000000000000000000000000000001",
        "1e40",
        "123456789012345678901234567890.123456789",
        &thousand,
        "NULL",
    ];
    oracle(
        &conn,
        "numeric",
        &values("numeric", &nums),
        &Check::<BigDecimal>::bind_back("numeric"),
    )
    .await;
    let row = conn
        .query_one("SELECT 'NaN'::numeric, '-Infinity'::numeric", &[])
        .await
        .unwrap();
    for i in 0..2 {
        let err = row.try_get::<_, BigDecimal>(i).unwrap_err();
        let msg = format!("{err:?}");
        assert!(msg.contains("does not fit bigdecimal"), "{msg}");
    }
}

#[cfg(feature = "jiff")]
#[tokio::test]
async fn jiff_values_bind_back_or_fail_clearly() {
    use jiff::civil::{Date, DateTime, Time};
    use jiff::{SignedDuration, Span, Timestamp};
    let (_db, conn) = oracle_db().await;
    let stamps = [
        "'2000-02-29 12:34:56.789'",
        "'1970-01-01'",
        "'9999-12-31 23:59:59.999999'",
        "'4713-01-01 00:00:00 BC'",
        "NULL",
    ];
    // jiff's Timestamp stops where an offset could take it past ±9999 in civil time.
    let stamps_tz = [
        "'2000-02-29 12:34:56.789+05:30'",
        "'9999-12-30 21:59:59.999999+00'",
        "'4713-01-01 00:00:00+00 BC'",
        "NULL",
    ];
    oracle(
        &conn,
        "timestamp",
        &values("timestamp", &stamps),
        &Check::<DateTime>::bind_back("timestamp"),
    )
    .await;
    oracle(
        &conn,
        "timestamptz",
        &values("timestamptz", &stamps_tz),
        &Check::<Timestamp>::bind_back("timestamptz"),
    )
    .await;
    let dates = ["'2000-02-29'", "'0044-03-15 BC'", "'9999-12-31'", "NULL"];
    oracle(
        &conn,
        "date",
        &values("date", &dates),
        &Check::<Date>::bind_back("date"),
    )
    .await;
    let times = [
        "'00:00:00'",
        "'23:59:59.999999'",
        "'12:00:00.000001'",
        "NULL",
    ];
    oracle(
        &conn,
        "time",
        &values("time", &times),
        &Check::<Time>::bind_back("time"),
    )
    .await;
    let exact = [
        "'1 hour 2 minutes 3.000004 seconds'",
        "'-0.000001 seconds'",
        "'0'",
    ];
    oracle(
        &conn,
        "interval",
        &values("interval", &exact),
        &Check::<SignedDuration>::bind_back("interval"),
    )
    .await;
    let spans = [
        "'1 year 2 mons 3 days 04:05:06.7'",
        "'-1 mons -2 days'",
        "'0'",
        "NULL",
    ];
    oracle(
        &conn,
        "interval",
        &values("interval", &spans),
        &Check::<Span>::bind_back("interval"),
    )
    .await;
    let row = conn
        .query_one(
            "SELECT 'infinity'::timestamptz, '-infinity'::date, '10001-01-01'::timestamp, \
                    '1 day'::interval, '200000 years'::interval, '1 mon -2 days'::interval",
            &[],
        )
        .await
        .unwrap();
    let errors = [
        format!("{:?}", row.try_get::<_, Timestamp>(0).unwrap_err()),
        format!("{:?}", row.try_get::<_, Date>(1).unwrap_err()),
        format!("{:?}", row.try_get::<_, DateTime>(2).unwrap_err()),
        format!("{:?}", row.try_get::<_, SignedDuration>(3).unwrap_err()),
        format!("{:?}", row.try_get::<_, Span>(4).unwrap_err()),
        format!("{:?}", row.try_get::<_, Span>(5).unwrap_err()),
    ];
    let wants = [
        "infinity does not fit jiff",
        "infinity does not fit jiff",
        "out of jiff's range",
        "a day is not always 24 hours",
        "does not fit jiff::Span",
        "mixes signs",
    ];
    for (e, want) in errors.iter().zip(wants) {
        assert!(e.contains(want), "{e}");
    }
}
