//! `#[derive(ToSql, FromSql)]`: Rust enums as PostgreSQL enums, structs as composite
//! types (nested, with array and NULL fields), and a transparent newtype over a domain,
//! round-tripped through parameters and rows of a real server; labels and fields that
//! do not match are errors that name them.
#![cfg(feature = "derive")]

use crate::common;

use pgkeel::{ErrorKind, FromSql, ToSql};

const SCHEMA: &str = "
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'very_happy');
    CREATE TYPE inner_t AS (label text, score float8);
    CREATE TYPE outer_t AS (id int8, mood mood, inner_v inner_t, tags text[], moods mood[], note text);
    CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%');
    CREATE TABLE diary (entry outer_t, feeling mood, mail email);
";

#[derive(Debug, Clone, Copy, PartialEq, ToSql, FromSql)]
#[pgkeel(name = "mood", rename_all = "snake_case")]
enum Mood {
    Sad,
    #[pgkeel(rename = "ok")]
    Fine,
    VeryHappy,
}

#[derive(Debug, Clone, PartialEq, ToSql, FromSql)]
#[pgkeel(name = "inner_t")]
struct Inner {
    label: Option<String>,
    score: f64,
}

#[derive(Debug, Clone, PartialEq, ToSql, FromSql)]
struct Outer {
    id: i64,
    mood: Mood,
    #[pgkeel(rename = "inner_v")]
    inner: Option<Inner>,
    tags: Vec<Option<String>>,
    moods: Vec<Mood>,
    note: Option<String>,
}

#[derive(Debug, PartialEq, ToSql, FromSql)]
#[pgkeel(transparent)]
struct Email(String);

fn sample() -> Outer {
    Outer {
        id: 7,
        mood: Mood::VeryHappy,
        inner: Some(Inner {
            label: Some("x, \"y\"".into()),
            score: 1.5,
        }),
        tags: vec![Some("a".into()), None],
        moods: vec![Mood::Sad, Mood::Fine],
        note: None,
    }
}

#[tokio::test]
async fn an_enum_round_trips_by_label_alone_and_in_arrays() {
    let (_db, conn) = common::db().await;
    conn.batch_execute(SCHEMA).await.unwrap();
    let stmt = conn
        .prepare(
            "SELECT $1::mood AS m, $1::mood::text AS t, $2::mood[] AS ms, $2::mood[]::text AS mst",
        )
        .await
        .unwrap();
    let moods = vec![Mood::Sad, Mood::Fine, Mood::VeryHappy];
    let row = conn
        .query_one(&stmt, &[&Mood::VeryHappy, &moods])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Mood>("m"), Mood::VeryHappy);
    assert_eq!(row.get::<_, String>("t"), "very_happy");
    assert_eq!(row.get::<_, Vec<Mood>>("ms"), moods);
    assert_eq!(row.get::<_, String>("mst"), "{sad,ok,very_happy}");
    let rows = conn
        .query(
            "SELECT unnest(enum_range(NULL::mood)) AS m UNION ALL SELECT NULL",
            &[],
        )
        .await
        .unwrap();
    let read: Vec<Option<Mood>> = rows.iter().map(|r| r.get("m")).collect();
    assert_eq!(
        read,
        [
            Some(Mood::Sad),
            Some(Mood::Fine),
            Some(Mood::VeryHappy),
            None
        ]
    );
}

#[tokio::test]
async fn a_nested_composite_with_arrays_and_nulls_round_trips_both_ways() {
    let (_db, conn) = common::db().await;
    conn.batch_execute(SCHEMA).await.unwrap();
    let insert = conn
        .prepare("INSERT INTO diary (entry, feeling) VALUES ($1, $2) RETURNING entry, entry::text AS text")
        .await
        .unwrap();
    let value = sample();
    let row = conn
        .query_one(&insert, &[&value, &Mood::Sad])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Outer>("entry"), value);
    let text: String = row.get("text");
    assert_eq!(
        text,
        r#"(7,very_happy,"(""x, """"y"""""",1.5)","{a,NULL}","{sad,ok}",)"#
    );
    // Built by the server, with a NULL nested composite and empty arrays.
    let row = conn
        .query_one(
            "SELECT ROW(-1, 'ok', NULL, '{}', '{}', 'n')::outer_t AS o, \
                    ROW(NULL, 2.5)::inner_t AS i",
            &[],
        )
        .await
        .unwrap();
    let o: Outer = row.get("o");
    assert_eq!(
        (o.id, o.mood, o.inner, o.note.as_deref()),
        (-1, Mood::Fine, None, Some("n"))
    );
    assert!(o.tags.is_empty() && o.moods.is_empty());
    let i: Inner = row.get("i");
    assert_eq!(
        i,
        Inner {
            label: None,
            score: 2.5
        }
    );
    // The server compares what pgkeel sent with its own value.
    let same = conn
        .prepare("SELECT $1::outer_t = (SELECT entry FROM diary) AS same, $2::inner_t IS NOT DISTINCT FROM ROW(NULL, 2.5)::inner_t AS i")
        .await
        .unwrap();
    let row = conn.query_one(&same, &[&value, &i]).await.unwrap();
    assert!(row.get::<_, bool>("same") && row.get::<_, bool>("i"));
    let arrays = conn.prepare("SELECT $1::inner_t[] AS a").await.unwrap();
    let list = vec![
        i.clone(),
        Inner {
            label: Some("é".into()),
            score: -0.0,
        },
    ];
    let back: Vec<Inner> = conn.query_one(&arrays, &[&list]).await.unwrap().get("a");
    assert_eq!(back, list);
}

#[tokio::test]
async fn a_transparent_newtype_binds_and_reads_as_a_domain() {
    let (_db, conn) = common::db().await;
    conn.batch_execute(SCHEMA).await.unwrap();
    let stmt = conn
        .prepare("INSERT INTO diary (mail) VALUES ($1) RETURNING mail")
        .await
        .unwrap();
    assert_eq!(stmt.params()[0].name(), "email");
    let row = conn
        .query_one(&stmt, &[&Email("a@b".into())])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Email>("mail"), Email("a@b".into()));
    let err = conn
        .query_one(&stmt, &[&Email("nope".into())])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(pgkeel::sqlstate::CHECK_VIOLATION));
}

#[tokio::test]
async fn a_label_missing_on_either_side_is_an_error_that_names_it() {
    #[derive(Debug, PartialEq, ToSql, FromSql)]
    #[pgkeel(rename_all = "snake_case")]
    enum Extra {
        Sad,
        Ok,
        VeryHappy,
        Meh,
    }
    #[derive(Debug, PartialEq, ToSql, FromSql)]
    #[pgkeel(rename_all = "lowercase")]
    enum Fewer {
        Sad,
        Ok,
    }
    #[derive(Debug, PartialEq, ToSql, FromSql)]
    #[pgkeel(name = "feeling", rename_all = "snake_case")]
    enum Named {
        Sad,
        Ok,
        VeryHappy,
    }
    let (_db, conn) = common::db().await;
    conn.batch_execute(SCHEMA).await.unwrap();
    let row = conn.query_one("SELECT 'ok'::mood AS m", &[]).await.unwrap();
    let err = row.try_get::<_, Extra>("m").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    let msg = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        msg.contains("Extra") && msg.contains("mood has no label \"meh\""),
        "{msg}"
    );
    let err = row.try_get::<_, Fewer>("m").unwrap_err().to_string();
    let err = format!("{err} {:?}", row.try_get::<_, Fewer>("m").unwrap_err());
    assert!(
        err.contains("label \\\"very_happy\\\" of mood has no Rust variant"),
        "{err}"
    );
    let err = format!("{:?}", row.try_get::<_, Named>("m").unwrap_err());
    assert!(
        err.contains("names PostgreSQL type \\\"feeling\\\""),
        "{err}"
    );
    let stmt = conn.prepare("SELECT $1::mood").await.unwrap();
    let err = conn.query_one(&stmt, &[&Extra::Meh]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Encode);
    let msg = err.to_string();
    assert!(
        msg.contains("$1") && msg.contains("mood") && msg.contains("Extra"),
        "{msg}"
    );
    // Strings still read every label.
    assert_eq!(row.get::<_, String>("m"), "ok");
}

#[tokio::test]
async fn a_field_missing_or_of_another_type_is_an_error_that_names_it() {
    #[derive(Debug, ToSql, FromSql)]
    #[pgkeel(name = "inner_t")]
    struct Renamed {
        label: Option<String>,
        points: f64,
    }
    #[derive(Debug, ToSql, FromSql)]
    struct Retyped {
        label: Option<i32>,
        score: f64,
    }
    #[derive(Debug, ToSql, FromSql)]
    struct Short {
        label: Option<String>,
    }
    let (_db, conn) = common::db().await;
    conn.batch_execute(SCHEMA).await.unwrap();
    let row = conn
        .query_one("SELECT ROW('a', 1)::inner_t AS i, ROW(1, 2) AS anon", &[])
        .await
        .unwrap();
    let err = format!("{:?}", row.try_get::<_, Renamed>("i").unwrap_err());
    assert!(
        err.contains("Renamed") && err.contains("inner_t has no field \\\"points\\\""),
        "{err}"
    );
    let err = format!("{:?}", row.try_get::<_, Retyped>("i").unwrap_err());
    assert!(err.contains("field \\\"label\\\" is of type text"), "{err}");
    let err = format!("{:?}", row.try_get::<_, Short>("i").unwrap_err());
    assert!(
        err.contains("field \\\"score\\\" of inner_t has no Rust field"),
        "{err}"
    );
    let err = format!("{:?}", row.try_get::<_, Short>("anon").unwrap_err());
    assert!(err.contains("record is not a composite type"), "{err}");
    let stmt = conn.prepare("SELECT $1::inner_t").await.unwrap();
    let value = Retyped {
        label: Some(1),
        score: 0.0,
    };
    let err = conn.query_one(&stmt, &[&value]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Encode, "{err}");
    // The connection is still usable after both errors.
    let n: i32 = conn.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
}

/// Derived types bound by SQL text (no `prepare`): the statement is described first,
/// with and without the statement cache.
#[tokio::test]
async fn derived_types_bind_by_sql_text_without_prepare() {
    let (db, conn) = common::db().await;
    conn.batch_execute(SCHEMA).await.unwrap();
    let uncached =
        pgkeel::Connection::connect(common::with_param(&db.url(), "statement_cache_capacity=0"))
            .await
            .unwrap();
    for c in [&conn, &uncached] {
        for _ in 0..2 {
            let row = c
                .query_one(
                    "SELECT $1::mood AS m, $2::outer_t AS o, $3::mood[] AS ms",
                    &[&Mood::Fine, &sample(), &vec![Mood::Sad, Mood::VeryHappy]],
                )
                .await
                .unwrap();
            assert_eq!(row.get::<_, Mood>("m"), Mood::Fine);
            assert_eq!(row.get::<_, Outer>("o"), sample());
            assert_eq!(
                row.get::<_, Vec<Mood>>("ms"),
                vec![Mood::Sad, Mood::VeryHappy]
            );
        }
        c.execute(
            "INSERT INTO diary (entry, feeling) VALUES ($1, $2)",
            &[&sample(), &Mood::Sad],
        )
        .await
        .unwrap();
    }
}
