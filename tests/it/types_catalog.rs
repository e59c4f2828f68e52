//! Types of the database (enums, composites, domains, citext, hstore) are looked up once
//! per connection from the catalogue, and then bind and decode like built-ins.

use crate::common;

use std::collections::HashMap;

use pgkeel::types::{Kind, Record, ToSql};

const SCHEMA: &str = "
    CREATE EXTENSION IF NOT EXISTS citext;
    CREATE EXTENSION IF NOT EXISTS hstore;
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'é ü');
    CREATE TYPE pair AS (m mood, n int4, t text, moods mood[]);
    CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
    CREATE DOMAIN email AS citext;
    CREATE TYPE floatrange AS RANGE (subtype = float8);
    CREATE TABLE people (id posint, mail email, feeling mood);
";

#[tokio::test]
async fn an_enum_is_looked_up_once_with_its_labels_and_binds_from_str() {
    let (_db, conn) = common::db().await;
    conn.batch_execute(SCHEMA).await.unwrap();
    let stmt = conn
        .prepare("SELECT $1::mood AS m, ARRAY['sad', 'happy']::mood[] AS ms")
        .await
        .unwrap();
    let mood = &stmt.params()[0];
    assert_eq!(mood.name(), "mood");
    assert_eq!(mood.schema(), "public");
    let labels = ["sad", "ok", "happy", "é ü"].map(String::from).to_vec();
    assert_eq!(mood.kind(), &Kind::Enum(labels));
    let row = conn.query_one(&stmt, &[&"é ü"]).await.unwrap();
    assert_eq!(row.get::<_, String>("m"), "é ü");
    assert_eq!(row.get::<_, Vec<String>>("ms"), ["sad", "happy"]);
    let again = conn.resolve_type(mood.oid()).await.unwrap();
    assert_eq!(&again, mood);
    let same: bool = conn
        .query_one("SELECT $1::mood = 'happy'::mood", &[&"happy"])
        .await
        .unwrap()
        .get(0);
    assert!(same);
}

#[tokio::test]
async fn citext_and_a_domain_over_it_take_and_give_strings() {
    let (_db, conn) = common::db().await;
    conn.batch_execute(SCHEMA).await.unwrap();
    let stmt = conn
        .prepare("INSERT INTO people (id, mail, feeling) VALUES ($1, $2, $3) RETURNING id, mail, feeling")
        .await
        .unwrap();
    assert_eq!(stmt.params()[0].name(), "posint");
    assert_eq!(stmt.params()[0].base(), &pgkeel::Type::INT4);
    assert_eq!(stmt.params()[1].name(), "email");
    assert_eq!(stmt.params()[1].base().name(), "citext");
    let row = conn
        .query_one(&stmt, &[&7i32, &"Ann@Example.COM", &"ok"])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>("id"), 7);
    assert_eq!(row.get::<_, String>("mail"), "Ann@Example.COM");
    let found = conn
        .prepare("SELECT count(*) FROM people WHERE mail = $1::citext")
        .await
        .unwrap();
    let n: i64 = conn
        .query_one(&found, &[&"ann@example.com"])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let err = conn
        .query_one(&stmt, &[&-1i32, &"x", &"ok"])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(pgkeel::sqlstate::CHECK_VIOLATION));
    let wrong = conn
        .query_one(&stmt, &[&1i64, &"x", &"ok"])
        .await
        .unwrap_err();
    assert!(wrong.to_string().contains("posint"), "{wrong}");
}

#[tokio::test]
async fn a_composite_reads_as_a_record_with_named_field_types() {
    let (_db, conn) = common::db().await;
    conn.batch_execute(SCHEMA).await.unwrap();
    let stmt = conn
        .prepare("SELECT ROW('happy', 2, NULL, '{sad}')::pair AS p")
        .await
        .unwrap();
    let pair = stmt.columns()[0].type_();
    let Kind::Composite(fields) = pair.kind() else {
        panic!("{pair:?} is not a composite")
    };
    let names: Vec<&str> = fields.iter().map(|f| f.name()).collect();
    assert_eq!(names, ["m", "n", "t", "moods"]);
    assert!(matches!(fields[3].type_().kind(), Kind::Array(e) if e.name() == "mood"));
    let row = conn.query_one(&stmt, &[]).await.unwrap();
    let record: Record = row.get("p");
    assert_eq!(record.get::<String>(0).unwrap(), "happy");
    assert_eq!(record.get::<i32>(1).unwrap(), 2);
    assert_eq!(record.get::<Option<String>>(2).unwrap(), None);
    assert_eq!(record.get::<Vec<String>>(3).unwrap(), ["sad"]);
}

#[tokio::test]
async fn hstore_and_a_user_range_bind_and_decode() {
    let (_db, conn) = common::db().await;
    conn.batch_execute(SCHEMA).await.unwrap();
    let stmt = conn.prepare("SELECT $1::hstore AS h").await.unwrap();
    assert_eq!(stmt.params()[0].name(), "hstore");
    let map: HashMap<String, Option<String>> = [
        ("a".to_owned(), Some("1".to_owned())),
        ("é".to_owned(), None),
    ]
    .into();
    let row = conn.query_one(&stmt, &[&map]).await.unwrap();
    assert_eq!(row.get::<_, HashMap<String, Option<String>>>("h"), map);
    let text: String = conn
        .query_one("SELECT 'a=>1'::hstore::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(text, "\"a\"=>\"1\"");
    let stmt = conn
        .prepare("SELECT '[1.5,2.5)'::floatrange AS r")
        .await
        .unwrap();
    assert_eq!(
        stmt.columns()[0].type_().kind(),
        &Kind::Range(pgkeel::Type::FLOAT8)
    );
    let r: pgkeel::types::Range<f64> = conn.query_one(&stmt, &[]).await.unwrap().get("r");
    assert_eq!(r.to_string(), "[1.5,2.5)");
}

#[tokio::test]
async fn one_lookup_resolves_a_batch_and_unknown_oids_stay_placeholders() {
    let (_db, conn) = common::db().await;
    conn.batch_execute(SCHEMA).await.unwrap();
    let oids: Vec<u32> = conn
        .query("SELECT oid FROM pg_type WHERE typname IN ('mood', '_mood', 'pair', 'email') ORDER BY typname", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut wanted = oids.clone();
    wanted.push(4_000_000_000);
    let types = conn.resolve_types(&wanted).await.unwrap();
    let names: Vec<&str> = types.iter().map(|t| t.name()).collect();
    assert_eq!(names, ["_mood", "email", "mood", "pair", ""]);
    assert!(!types[4].is_resolved());
    let params: Vec<&(dyn ToSql + Sync)> = vec![&1i32];
    let n: i32 = conn
        .query_one("SELECT $1::int4", &params)
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

/// An impl as written for tokio-postgres: no `sql_type`, so the server infers the type.
#[derive(Debug)]
struct Mood(String);

impl ToSql for Mood {
    fn to_sql(
        &self,
        _ty: &pgkeel::Type,
        out: &mut pgkeel::types::BytesMut,
    ) -> Result<pgkeel::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(pgkeel::types::IsNull::No)
    }

    fn accepts(ty: &pgkeel::Type) -> bool {
        ty.name() == "mood"
    }

    pgkeel::to_sql_checked!();
}

impl<'a> pgkeel::types::FromSql<'a> for Mood {
    fn from_sql(
        _ty: &pgkeel::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Mood(std::str::from_utf8(raw)?.to_owned()))
    }

    fn accepts(ty: &pgkeel::Type) -> bool {
        ty.name() == "mood"
    }
}

#[tokio::test]
async fn an_impl_ported_from_tokio_postgres_binds_through_a_prepared_statement() {
    let (_db, conn) = common::db().await;
    conn.batch_execute(SCHEMA).await.unwrap();
    let stmt = conn
        .prepare("SELECT $1::mood AS m, $1::mood::text AS t")
        .await
        .unwrap();
    let sad = Mood("sad".into());
    let params: Vec<&(dyn ToSql + Sync)> = vec![&sad];
    let row = conn.query_one(&stmt, &params).await.unwrap();
    assert_eq!(row.get::<_, Mood>("m").0, "sad");
    assert_eq!(row.get::<_, String>("t"), "sad");
    let wrong = conn.prepare("SELECT $1::int4").await.unwrap();
    let err = conn.query_one(&wrong, &params).await.unwrap_err();
    assert!(err.to_string().contains("int4"), "{err}");
}

#[tokio::test]
async fn a_query_by_sql_text_reads_enum_citext_and_composite_columns() {
    let (_db, conn) = common::db().await;
    conn.batch_execute(SCHEMA).await.unwrap();
    conn.execute(
        "INSERT INTO people VALUES (1, 'Ann@X.org', 'happy'), (2, NULL, 'sad')",
        &[],
    )
    .await
    .unwrap();
    let rows = conn
        .query(
            "SELECT mail, feeling, ROW(feeling, id, 'x', '{}')::pair AS p FROM people ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        rows[0].get::<_, Option<String>>("mail").as_deref(),
        Some("Ann@X.org")
    );
    assert_eq!(rows[1].get::<_, Option<String>>("mail"), None);
    assert_eq!(rows[1].get::<_, String>("feeling"), "sad");
    assert_eq!(rows[0].columns()[1].type_().name(), "mood");
    let p: Record = rows[0].get("p");
    assert_eq!(p.get::<String>(0).unwrap(), "happy");
    // The second time the types come from the connection's cache.
    let again = conn.query_one("SELECT 'ok'::mood", &[]).await.unwrap();
    assert_eq!(again.get::<_, String>(0), "ok");
}

#[tokio::test]
async fn rows_read_inside_a_transaction_resolve_their_types_on_the_held_wire() {
    let (_db, conn) = common::db().await;
    conn.batch_execute(SCHEMA).await.unwrap();
    let tx = conn.transaction().await.unwrap();
    let rows = tx
        .query(
            "SELECT 'Ann@X.org'::email::citext AS m, 'ok'::mood AS f",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, String>("m"), "Ann@X.org");
    assert_eq!(rows[0].get::<_, String>("f"), "ok");
    tx.commit().await.unwrap();
}
