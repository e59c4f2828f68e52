//! Server errors arrive with their SQLSTATE and fields, leave the connection usable, and
//! row-count mismatches are typed errors of their own.

use crate::common;

use pgkeel::{Connection, ErrorKind, SimpleQueryMessage, sqlstate};

/// The connection still answers, and is not marked broken.
async fn assert_still_usable(conn: &Connection) {
    assert!(
        !conn.is_broken(),
        "a server error must not break the connection"
    );
    let one: i32 = conn
        .query_one("SELECT 1::int4", &[])
        .await
        .expect("SELECT 1 after an error")
        .get(0);
    assert_eq!(one, 1);
    let messages = conn
        .simple_query("SELECT 2")
        .await
        .expect("simple query after an error");
    let SimpleQueryMessage::Row(row) = &messages[0] else {
        panic!("expected a row, got {messages:?}");
    };
    assert_eq!(row.get(0), Some("2"));
}

#[tokio::test]
async fn unknown_table_is_42p01_with_message_and_position() {
    let (_db, conn) = common::db().await;
    let sql = "SELECT * FROM no_such_table";
    let err = conn.query(sql, &[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Db, "{err}");
    assert_eq!(err.code(), Some("42P01"));
    assert_eq!(err.code(), Some(sqlstate::UNDEFINED_TABLE));
    let db = err.as_db_error().expect("a server error has its fields");
    assert_eq!(db.severity(), "ERROR");
    assert_eq!(db.message(), "relation \"no_such_table\" does not exist");
    // 1-based character position of `no_such_table` in the statement.
    let expected = sql.find("no_such_table").unwrap() as u32 + 1;
    assert_eq!(db.position(), Some(expected));
    assert!(!err.is_connection_fatal());
    assert!(!err.is_retryable());
    assert_still_usable(&conn).await;
}

#[tokio::test]
async fn unique_violation_is_23505_naming_the_constraint_with_detail() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE u (id int4 CONSTRAINT u_id_key UNIQUE)")
        .await
        .unwrap();
    conn.execute("INSERT INTO u VALUES ($1)", &[&1i32])
        .await
        .unwrap();
    let err = conn
        .execute("INSERT INTO u VALUES ($1)", &[&1i32])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Db, "{err}");
    assert_eq!(err.code(), Some(sqlstate::UNIQUE_VIOLATION));
    let db = err.as_db_error().unwrap();
    assert_eq!(db.constraint(), Some("u_id_key"));
    assert_eq!(db.table(), Some("u"));
    assert_eq!(db.schema(), Some("public"));
    assert_eq!(db.detail(), Some("Key (id)=(1) already exists."));
    assert_still_usable(&conn).await;
    let count: i64 = conn
        .query_one("SELECT count(*) FROM u", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1, "the failed insert left nothing behind");
}

#[tokio::test]
async fn division_by_zero_is_22012() {
    let (_db, conn) = common::db().await;
    let err = conn
        .query_one("SELECT 1 / $1::int4", &[&0i32])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Db, "{err}");
    assert_eq!(err.code(), Some("22012"));
    assert_eq!(err.as_db_error().unwrap().message(), "division by zero");
    assert_still_usable(&conn).await;
}

#[tokio::test]
async fn syntax_error_is_42601_with_position() {
    let (_db, conn) = common::db().await;
    let err = conn.query("SELEC 1", &[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Db, "{err}");
    assert_eq!(err.code(), Some("42601"));
    let db = err.as_db_error().unwrap();
    assert_eq!(db.message(), "syntax error at or near \"SELEC\"");
    assert_eq!(db.position(), Some(1));
    assert_still_usable(&conn).await;
}

#[tokio::test]
async fn the_same_failing_sql_twice_fails_the_same_way_each_time() {
    let (_db, conn) = common::db().await;
    // A statement that fails at Parse is never cached; one that fails at Execute is, and
    // must keep working.
    for _ in 0..3 {
        let err = conn.query("SELECT * FROM missing", &[]).await.unwrap_err();
        assert_eq!(err.code(), Some("42P01"));
        let err = conn
            .query("SELECT 1 / $1::int4", &[&0i32])
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("22012"));
        let ok: i32 = conn
            .query_one("SELECT 1 / $1::int4", &[&1i32])
            .await
            .unwrap()
            .get(0);
        assert_eq!(ok, 1);
    }
    assert_still_usable(&conn).await;
}

#[tokio::test]
async fn server_errors_through_simple_query_have_their_code_too() {
    let (_db, conn) = common::db().await;
    let err = conn.simple_query("SELECT 1/0").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Db);
    assert_eq!(err.code(), Some("22012"));
    let err = conn.batch_execute("SELEC 1").await.unwrap_err();
    assert_eq!(err.code(), Some("42601"));
    assert_still_usable(&conn).await;
}

#[tokio::test]
async fn an_error_in_a_multi_statement_simple_query_stops_the_rest() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE log (step int4)")
        .await
        .unwrap();
    let err = conn
        .simple_query("INSERT INTO log VALUES (1); SELECT 1/0; INSERT INTO log VALUES (3)")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("22012"));
    // A multi-statement Query runs as one implicit transaction: the first insert is rolled
    // back too, and the third never ran.
    let steps: Vec<i32> = conn
        .query("SELECT step FROM log ORDER BY step", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(steps, Vec::<i32>::new());
    assert_eq!(conn.transaction_status(), pgkeel::TransactionStatus::Idle);
    assert_still_usable(&conn).await;
}

#[tokio::test]
async fn an_error_after_an_explicit_commit_in_a_simple_query_keeps_the_earlier_work() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE log (step int4)")
        .await
        .unwrap();
    let err = conn
        .batch_execute(
            "BEGIN; INSERT INTO log VALUES (1); COMMIT; SELECT 1/0; INSERT INTO log VALUES (3)",
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("22012"));
    let steps: Vec<i32> = conn
        .query("SELECT step FROM log ORDER BY step", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(steps, vec![1]);
    assert_still_usable(&conn).await;
}

#[tokio::test]
async fn query_one_with_zero_or_two_rows_is_a_row_count_error() {
    let (_db, conn) = common::db().await;
    let err = conn
        .query_one("SELECT 1 WHERE false", &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RowCount, "{err}");
    assert_eq!(err.code(), None);
    assert!(err.to_string().contains("0 rows"), "{err}");
    let err = conn
        .query_one("SELECT * FROM generate_series(1, 2)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RowCount, "{err}");
    assert!(err.to_string().contains("2 rows"), "{err}");
    assert_still_usable(&conn).await;
}

#[tokio::test]
async fn query_opt_with_zero_rows_is_none_one_row_is_some_and_two_is_an_error() {
    let (_db, conn) = common::db().await;
    let none = conn.query_opt("SELECT 1 WHERE false", &[]).await.unwrap();
    assert!(none.is_none());
    let some = conn
        .query_opt("SELECT 7::int4", &[])
        .await
        .unwrap()
        .expect("one row");
    assert_eq!(some.get::<_, i32>(0), 7);
    let err = conn
        .query_opt("SELECT * FROM generate_series(1, 2)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RowCount, "{err}");
    assert_still_usable(&conn).await;
}

#[tokio::test]
async fn error_display_includes_the_sqlstate_and_the_message() {
    let (_db, conn) = common::db().await;
    let err = conn.query("SELECT * FROM nowhere", &[]).await.unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("42P01"), "{shown}");
    assert!(
        shown.contains("relation \"nowhere\" does not exist"),
        "{shown}"
    );
    assert!(shown.contains("ERROR"), "{shown}");
    let debug = format!("{err:?}");
    assert!(debug.contains("42P01"), "{debug}");
}

#[tokio::test]
async fn notices_do_not_disturb_the_exchange() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("DO $$ BEGIN RAISE NOTICE 'hi'; END $$")
        .await
        .unwrap();
    let n = conn
        .execute(
            "DO $$ BEGIN RAISE NOTICE 'hi'; RAISE WARNING 'careful'; END $$",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 0);
    conn.batch_execute(
        "CREATE FUNCTION chatty(n int4) RETURNS int4 LANGUAGE plpgsql AS
         $$ BEGIN RAISE NOTICE 'row %', n; RETURN n * 2; END $$",
    )
    .await
    .unwrap();
    let doubled: Vec<i32> = conn
        .query("SELECT chatty(g) FROM generate_series(1, 50) g", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(doubled, (1..=50).map(|n| n * 2).collect::<Vec<i32>>());
    let messages = conn
        .simple_query("SELECT chatty(21); SELECT chatty(1)")
        .await
        .unwrap();
    let texts: Vec<&str> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0),
            _ => None,
        })
        .collect();
    assert_eq!(texts, vec!["42", "2"]);
    assert_still_usable(&conn).await;
}

#[tokio::test]
async fn an_error_inside_a_transaction_aborts_it_until_rollback() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("BEGIN").await.unwrap();
    let err = conn.query("SELECT 1/0", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some("22012"));
    assert_eq!(conn.transaction_status(), pgkeel::TransactionStatus::Failed);
    let err = conn.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(sqlstate::IN_FAILED_SQL_TRANSACTION));
    conn.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(conn.transaction_status(), pgkeel::TransactionStatus::Idle);
    assert_still_usable(&conn).await;
}

#[tokio::test]
async fn several_statements_through_the_extended_protocol_are_42601_and_harmless() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (n int4)").await.unwrap();
    let err = conn
        .execute("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("42601"), "{err}");
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "cannot insert multiple commands into a prepared statement"
    );
    let n: i64 = conn
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    assert_still_usable(&conn).await;
}

#[tokio::test]
async fn an_empty_query_is_not_an_error() {
    let (_db, conn) = common::db().await;
    assert_eq!(conn.query("", &[]).await.unwrap().len(), 0);
    assert_eq!(conn.execute("  ", &[]).await.unwrap(), 0);
    assert_eq!(conn.simple_query("").await.unwrap().len(), 0);
    assert_still_usable(&conn).await;
}

#[tokio::test]
async fn copy_from_stdin_through_a_plain_call_is_refused_and_the_connection_stays_usable() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE t (n int4)").await.unwrap();
    let err = conn.execute("COPY t FROM STDIN", &[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Misuse, "{err}");
    assert_still_usable(&conn).await;
    let err = conn.simple_query("COPY t FROM STDIN").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Misuse, "{err}");
    assert_still_usable(&conn).await;
    let n: i64 = conn
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    assert_eq!(conn.transaction_status(), pgkeel::TransactionStatus::Idle);
}

#[tokio::test]

async fn sql_text_with_a_nul_byte_is_a_client_side_error_that_is_not_connection_fatal() {
    let (_db, conn) = common::db().await;
    let err = conn.query("SELECT 1\0", &[]).await.unwrap_err();
    // Nothing was sent and the connection is fine...
    assert!(!conn.is_broken());
    assert_still_usable(&conn).await;
    // ...so the error must not claim the server broke the protocol or that the
    // connection is gone (a pool would evict a healthy connection on it).
    assert_ne!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(!err.is_connection_fatal(), "{err}");
}

#[tokio::test]

async fn too_many_parameters_is_a_client_side_error_that_is_not_connection_fatal() {
    let (_db, conn) = common::db().await;
    let values: Vec<i32> = (0..70_000).collect();
    let params: Vec<&(dyn pgkeel::ToSql + Sync)> = values
        .iter()
        .map(|v| v as &(dyn pgkeel::ToSql + Sync))
        .collect();
    let err = conn.query("SELECT 1", &params).await.unwrap_err();
    assert!(!conn.is_broken());
    assert_still_usable(&conn).await;
    assert_ne!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(!err.is_connection_fatal(), "{err}");
}
