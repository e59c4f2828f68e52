//! Rows into tuples by position and, with the `derive` feature, into structs by name.

use crate::common;

use pgkeel::{ErrorKind, FromRow};

#[tokio::test]
async fn a_row_reads_into_a_tuple_by_position() {
    let (_db, conn) = common::db().await;
    let row = conn
        .query_one("SELECT 1::int4, 'two'::text, NULL::int8", &[])
        .await
        .unwrap();
    let (a, b, c): (i32, String, Option<i64>) = row.to().unwrap();
    assert_eq!((a, b.as_str(), c), (1, "two", None));
    let err = row.to::<(i32, String)>().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    let err = <(i64, String, i64)>::from_row(&row).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode, "NULL into i64: {err}");
    let wide = conn
        .query_one("SELECT 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16", &[])
        .await
        .unwrap();
    type Sixteen = (
        i32,
        i32,
        i32,
        i32,
        i32,
        i32,
        i32,
        i32,
        i32,
        i32,
        i32,
        i32,
        i32,
        i32,
        i32,
        i32,
    );
    let t: Sixteen = wide.to().unwrap();
    assert_eq!(t.15, 16);
}

#[cfg(feature = "derive")]
#[tokio::test]
async fn a_derived_struct_reads_columns_by_name_with_renames_and_options() {
    #[derive(Debug, PartialEq, pgkeel::FromRow)]
    struct User {
        id: i64,
        #[pgkeel(rename = "user_name")]
        name: String,
        email: Option<String>,
    }
    let (_db, conn) = common::db().await;
    let rows = conn
        .query(
            "SELECT 'ann' AS user_name, NULL::text AS email, 7::int8 AS id \
             UNION ALL SELECT 'bob', 'b@x', 8",
            &[],
        )
        .await
        .unwrap();
    let users: Vec<User> = rows
        .iter()
        .map(|r| r.to())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        users[0],
        User {
            id: 7,
            name: "ann".into(),
            email: None
        }
    );
    assert_eq!(users[1].email.as_deref(), Some("b@x"));
    let err = conn
        .query_one("SELECT 1::int8 AS id", &[])
        .await
        .unwrap()
        .to::<User>()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ColumnNotFound);
}
