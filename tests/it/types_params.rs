//! Parameter typing that does not surprise: `&str` is an untyped text literal the server
//! types (citext stays case-insensitive, enums, domains and ltree bind), `Infer` and
//! `query_typed` name types explicitly or let the server infer them, mismatches name the
//! parameter, and user types resolve on every path (streams, execute_many, a tiny
//! statement cache, a dropped lookup).

use crate::common::{self, Cancellable, Outcome};

use futures::StreamExt;
use pgkeel::types::{Infer, ToSql, Type};
use pgkeel::{Connection, ErrorKind};

const SCHEMA: &str = "
    CREATE EXTENSION IF NOT EXISTS citext;
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE DOMAIN label AS text CHECK (VALUE <> '');
    CREATE TABLE people (id int8, name citext, feeling mood, tag label);
    INSERT INTO people VALUES (1, 'Ada', 'happy', 'x'), (2, 'Grace', 'sad', 'y');
";

async fn with_schema() -> (pgkeel_testkit::TestDb, Connection) {
    let (db, conn) = common::db().await;
    conn.batch_execute(SCHEMA).await.unwrap();
    (db, conn)
}

#[tokio::test]
async fn a_str_compared_with_citext_stays_case_insensitive() {
    let (_db, conn) = with_schema().await;
    let rows = conn
        .query("SELECT id FROM people WHERE name = $1", &[&"ADA"])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "citext = citext, not text = text");
    let owned = String::from("grace");
    let row = conn
        .query_one("SELECT id FROM people WHERE name = $1", &[&owned])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 2);
}

#[tokio::test]
async fn enums_and_domains_bind_from_str_and_none() {
    let (_db, conn) = with_schema().await;
    let n = conn
        .query("SELECT id FROM people WHERE feeling = $1", &[&"happy"])
        .await
        .unwrap();
    assert_eq!(n.len(), 1);
    let none: Option<&str> = None;
    conn.execute(
        "INSERT INTO people VALUES ($1, $2, $3, $4)",
        &[&3i64, &"Linus", &none, &"z"],
    )
    .await
    .unwrap();
    conn.execute(
        "INSERT INTO people VALUES ($1, $2, $3, $4)",
        &[&4i64, &"Ken", &Some("ok"), &Some("w")],
    )
    .await
    .unwrap();
    let row = conn
        .query_one("SELECT feeling, tag FROM people WHERE id = 4", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "ok");
    assert_eq!(row.get::<_, String>(1), "w");
    let err = conn
        .execute("INSERT INTO people (tag) VALUES ($1)", &[&""])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("23514"), "the domain's check ran: {err}");
}

#[tokio::test]
async fn ltree_binds_from_str_when_the_extension_is_there() {
    let (_db, conn) = common::db().await;
    if conn
        .batch_execute("CREATE EXTENSION IF NOT EXISTS ltree")
        .await
        .is_err()
    {
        return; // the extension is not installed here
    }
    let row = conn
        .query_one("SELECT $1::ltree @> $2, nlevel($2)", &[&"a.b", &"a.b.c"])
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, i32>(1), 3);
}

#[tokio::test]
async fn a_str_with_nothing_to_infer_from_is_text() {
    let (_db, conn) = common::db().await;
    let sql = "SELECT $1 IS NULL, concat($1, '!'), $1";
    let row = conn.query_one(sql, &[&"hi"]).await.unwrap();
    assert!(!row.get::<_, bool>(0));
    assert_eq!(row.get::<_, String>(1), "hi!");
    assert_eq!(row.columns()[2].type_(), &Type::TEXT);
}

#[tokio::test]
async fn infer_describes_first_and_checks_the_inferred_type() {
    let (_db, conn) = common::db().await;
    for _ in 0..2 {
        let row = conn
            .query_one("SELECT $1 + 1", &[&Infer(2i32)])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), 3);
    }
    let err = conn
        .query_one("SELECT $1 + 1", &[&Infer(2i64)])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Encode, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("$1") && msg.contains("int4") && msg.contains("i64"),
        "{msg}"
    );
    assert!(!conn.is_broken());
    let mut stream = conn
        .query_raw("SELECT $1 * 2::int8", &[&Infer(4i64)])
        .await
        .unwrap();
    let row = stream.next().await.unwrap().unwrap();
    assert_eq!(row.get::<_, i64>(0), 8);
}

#[tokio::test]
async fn query_typed_and_prepare_typed_name_the_types() {
    let (_db, conn) = with_schema().await;
    let row = conn
        .query_typed(
            "SELECT $1 IS NULL, $2",
            &[(&None::<i64>, Type::INT8), (&"x", Type::TEXT)],
        )
        .await
        .unwrap();
    assert!(row[0].get::<_, bool>(0));
    assert_eq!(row[0].columns()[1].type_(), &Type::TEXT);
    let err = conn
        .query_typed("SELECT $1", &[(&1i32, Type::INT8)])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Encode);
    assert!(err.to_string().contains("$1 has type int8"), "{err}");
    let inferred = conn
        .query_typed("SELECT $1 + 1", &[(&5i32, Type::UNSPECIFIED)])
        .await
        .unwrap();
    assert_eq!(inferred[0].get::<_, i32>(0), 6);
    let stmt = conn
        .prepare_typed("SELECT $1, $2::mood", &[Type::INT8])
        .await
        .unwrap();
    assert_eq!(stmt.params()[0], Type::INT8);
    assert_eq!(stmt.params()[1].name(), "mood");
    let tx = conn.transaction().await.unwrap();
    let rows = tx
        .query_typed(
            "SELECT feeling FROM people WHERE id = $1",
            &[(&1i64, Type::INT8)],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, String>(0), "happy");
    let stmt = tx.prepare_typed("SELECT $1::mood", &[]).await.unwrap();
    assert_eq!(
        stmt.params()[0].name(),
        "mood",
        "resolved in a transaction too"
    );
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_mismatch_the_server_finds_names_the_parameter_and_keeps_the_connection() {
    let (_db, conn) = with_schema().await;
    let err = conn
        .query("SELECT id FROM people WHERE feeling = $1", &[&1i32])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("42883"), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("parameter $1") && msg.contains("i32") && msg.contains("int4"),
        "{msg}"
    );
    let err = conn
        .query("SELECT $1 + 1", &[&"not a number"])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("22P02"), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("parameter $1") && msg.contains("&str") && msg.contains("int4"),
        "{msg}"
    );
    assert!(!conn.is_broken());
    let one = conn.query_one("SELECT 1::int4", &[]).await.unwrap();
    assert_eq!(one.get::<_, i32>(0), 1);
}

#[tokio::test]
async fn user_types_resolve_in_streams_and_execute_many() {
    let (_db, conn) = with_schema().await;
    let mut stream = conn
        .query_raw_batched("SELECT name, feeling FROM people ORDER BY id", &[], 1)
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Some(row) = stream.next().await {
        let row = row.unwrap();
        seen.push((row.get::<_, String>(0), row.get::<_, String>(1)));
    }
    assert_eq!(seen[0], ("Ada".to_owned(), "happy".to_owned()));
    drop(stream);
    let data: Vec<(i64, &str)> = (10..200)
        .map(|i| (i, ["sad", "ok"][i as usize % 2]))
        .collect();
    let params: Vec<[&(dyn ToSql + Sync); 2]> =
        data.iter().map(|(i, m)| [i as _, m as _]).collect();
    let n = conn
        .execute_many(
            "INSERT INTO people (id, feeling) VALUES ($1, $2)",
            params.iter().map(|p| &p[..]),
        )
        .await
        .unwrap();
    assert_eq!(n, 190);
    let row = conn
        .query_one("SELECT count(*) FROM people WHERE feeling = $1", &[&"ok"])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 95);
}

#[tokio::test]
async fn a_statement_cache_of_one_churns_with_user_types() {
    let db = pgkeel_testkit::TestDb::new();
    let url = common::with_param(&db.url(), "statement_cache_capacity=1");
    let Ok(conn) = Connection::connect(url.as_str()).await else {
        return; // pooler mode refuses a cache: covered by the run through PgBouncer
    };
    conn.batch_execute(SCHEMA).await.unwrap();
    for i in 0..20 {
        let (sql, want) = match i % 3 {
            0 => ("SELECT feeling FROM people WHERE id = $1", "happy"),
            1 => ("SELECT name FROM people WHERE id = $1", "Ada"),
            _ => ("SELECT tag FROM people WHERE id = $1", "x"),
        };
        let row = conn.query_one(sql, &[&1i64]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), want, "round {i}");
        let mut s = conn.query_raw(sql, &[&1i64]).await.unwrap();
        let row = s.next().await.unwrap().unwrap();
        assert_eq!(row.get::<_, String>(0), want, "stream, round {i}");
    }
}

#[tokio::test]
async fn a_query_dropped_during_its_type_lookup_leaves_a_clean_state() {
    let (db, setup) = with_schema().await;
    drop(setup);
    let sql = "SELECT feeling, name FROM people WHERE id = $1";
    for i in 0..200 {
        // A new connection has not met the types yet: the query needs its lookup.
        let conn = common::connect(&db).await;
        match Cancellable::new(conn.query(sql, &[&1i64]), i).await {
            Outcome::Done(rows) => {
                let rows = rows.unwrap();
                assert_eq!(rows[0].get::<_, String>(0), "happy");
                assert!(i > 2, "the query and its lookup took several polls");
                return;
            }
            Outcome::Dropped => match conn.query_one(sql, &[&2i64]).await {
                Ok(row) => {
                    assert_eq!(row.get::<_, String>(0), "sad", "dropped after {i} polls");
                    assert_eq!(row.get::<_, String>(1), "Grace");
                }
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Broken, "dropped after {i} polls: {e}");
                    assert!(conn.is_broken());
                }
            },
        }
    }
    panic!("the query never finished");
}

#[tokio::test]
async fn an_anonymous_record_reads_fields_of_user_types() {
    let (_db, conn) = with_schema().await;
    let row = conn
        .query_one(
            "SELECT ROW(feeling, id, name), ROW(1, 'x'::text) FROM people WHERE id = $1",
            &[&1i64],
        )
        .await
        .unwrap();
    let rec: pgkeel::types::Record = row.get(0);
    assert_eq!(rec.field_type(0).unwrap().name(), "mood");
    assert_eq!(rec.get::<String>(0).unwrap(), "happy");
    assert_eq!(rec.get::<i64>(1).unwrap(), 1);
    assert_eq!(rec.get::<String>(2).unwrap(), "Ada");
    assert_eq!(row.columns()[1].type_(), &Type::RECORD);
    let plain: pgkeel::types::Record = row.get(1);
    assert_eq!(plain.get::<String>(1).unwrap(), "x");
}
