//! One `Connection`, cloned into many tasks on a multi-thread runtime: every task gets
//! exactly its own answers, with no error and no hang.

use crate::common;

use std::time::Duration;

use pgkeel::{Connection, SimpleQueryMessage};

const TASKS: i64 = 64;
const QUERIES_PER_TASK: i64 = 500;
const MIXED_ITERATIONS: i64 = 150;
/// Bounds a whole test: a lost wake-up or a crossed reply shows up as a failure here.
const LIMIT: Duration = Duration::from_secs(60);

/// A value that only task `task` sends in iteration `i`.
fn unique(task: i64, i: i64) -> i64 {
    task * 1_000_000 + i
}

/// Runs `tasks` to completion within [`LIMIT`], failing on the first panic.
async fn join_all_within_limit(tasks: Vec<tokio::task::JoinHandle<()>>) {
    let all = async {
        for t in tasks {
            t.await.expect("a task panicked");
        }
    };
    tokio::time::timeout(LIMIT, all)
        .await
        .expect("the tasks did not finish within 60 s: a hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_tasks_sharing_one_connection_each_get_exactly_their_own_rows() {
    let (_db, conn) = common::db().await;
    let tasks = (0..TASKS)
        .map(|task| {
            let conn = conn.clone();
            tokio::spawn(async move {
                for i in 0..QUERIES_PER_TASK {
                    let n = unique(task, i);
                    let text = format!("task {task} iteration {i}");
                    let rows = conn
                        .query("SELECT $1::int8, $2::text", &[&n, &text])
                        .await
                        .unwrap_or_else(|e| panic!("task {task} iteration {i}: {e}"));
                    assert_eq!(rows.len(), 1, "task {task} iteration {i}");
                    assert_eq!(
                        rows[0].get::<_, i64>(0),
                        n,
                        "task {task} got another's number"
                    );
                    assert_eq!(
                        rows[0].get::<_, String>(1),
                        text,
                        "task {task} got another's text"
                    );
                }
            })
        })
        .collect();
    join_all_within_limit(tasks).await;
    assert!(!conn.is_broken());
    // The session itself is in a clean state afterwards.
    assert_eq!(conn.transaction_status(), pgkeel::TransactionStatus::Idle);
    let one: i32 = conn.query_one("SELECT 1::int4", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

/// Iteration `i` of a task that uses `query` with SQL text.
async fn by_query(conn: &Connection, task: i64, i: i64) {
    let n = unique(task, i);
    let row = conn
        .query_one(
            "SELECT $1::int8 + 1, $2::text || '!'",
            &[&n, &format!("q{n}")],
        )
        .await
        .unwrap_or_else(|e| panic!("query task {task} iteration {i}: {e}"));
    assert_eq!(row.get::<_, i64>(0), n + 1);
    assert_eq!(row.get::<_, String>(1), format!("q{n}!"));
}

/// Iteration `i` of a task that uses `execute`.
async fn by_execute(conn: &Connection, task: i64, i: i64) {
    let inserted = conn
        .execute(
            "INSERT INTO log (task, n) VALUES ($1, $2)",
            &[&task, &unique(task, i)],
        )
        .await
        .unwrap_or_else(|e| panic!("execute task {task} iteration {i}: {e}"));
    assert_eq!(inserted, 1);
}

/// Iteration `i` of a task that uses `simple_query` (values spelled into the SQL).
async fn by_simple_query(conn: &Connection, task: i64, i: i64) {
    let n = unique(task, i);
    let messages = conn
        .simple_query(&format!("SELECT {n}::int8, 's{n}'; SELECT {task}"))
        .await
        .unwrap_or_else(|e| panic!("simple_query task {task} iteration {i}: {e}"));
    let texts: Vec<Vec<Option<String>>> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|c| r.get(c).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect();
    let expected = vec![
        vec![Some(n.to_string()), Some(format!("s{n}"))],
        vec![Some(task.to_string())],
    ];
    assert_eq!(texts, expected, "simple_query task {task} iteration {i}");
}

/// Iteration `i` of a task that uses a statement it prepared, re-preparing now and then
/// so dropped statements get closed while other tasks run.
async fn by_prepared(conn: &Connection, task: i64, i: i64, stmt: &mut Option<pgkeel::Statement>) {
    if i % 10 == 0 {
        *stmt = None;
    }
    if stmt.is_none() {
        let s = conn
            .prepare("SELECT $1::int8 * 2, $2::text")
            .await
            .unwrap_or_else(|e| panic!("prepare task {task} iteration {i}: {e}"));
        *stmt = Some(s);
    }
    let n = unique(task, i);
    let text = format!("p{n}");
    let row = conn
        .query_one(stmt.as_ref().unwrap(), &[&n, &text])
        .await
        .unwrap_or_else(|e| panic!("prepared task {task} iteration {i}: {e}"));
    assert_eq!(row.get::<_, i64>(0), n * 2);
    assert_eq!(row.get::<_, String>(1), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_mixing_query_execute_simple_query_and_prepared_statements_do_not_cross() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE TABLE log (task int8, n int8)")
        .await
        .unwrap();
    let shared_stmt = conn.prepare("SELECT $1::int8 - 1").await.unwrap();
    let tasks = (0..TASKS)
        .map(|task| {
            let conn = conn.clone();
            let shared_stmt = shared_stmt.clone();
            tokio::spawn(async move {
                let mut own = None;
                for i in 0..MIXED_ITERATIONS {
                    match (task + i) % 5 {
                        0 => by_query(&conn, task, i).await,
                        1 => by_execute(&conn, task, i).await,
                        2 => by_simple_query(&conn, task, i).await,
                        3 => by_prepared(&conn, task, i, &mut own).await,
                        _ => {
                            let n = unique(task, i);
                            let row = conn.query_one(&shared_stmt, &[&n]).await.unwrap();
                            assert_eq!(row.get::<_, i64>(0), n - 1);
                        }
                    }
                }
            })
        })
        .collect();
    join_all_within_limit(tasks).await;
    assert!(!conn.is_broken());

    // Every execute landed exactly once, under its own task.
    let rows = conn
        .query(
            "SELECT task, count(*), count(DISTINCT n), min(n / 1000000), max(n / 1000000) \
             FROM log GROUP BY task ORDER BY task",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), TASKS as usize);
    for row in &rows {
        let task: i64 = row.get(0);
        let expected = (0..MIXED_ITERATIONS)
            .filter(|i| (task + i) % 5 == 1)
            .count() as i64;
        assert_eq!(row.get::<_, i64>(1), expected, "inserts of task {task}");
        assert_eq!(
            row.get::<_, i64>(2),
            expected,
            "distinct inserts of task {task}"
        );
        assert_eq!(row.get::<_, i64>(3), task);
        assert_eq!(row.get::<_, i64>(4), task);
    }

    // The statements the tasks prepared and dropped were closed on the server: one
    // exchange carries the Closes, the next one sees the result.
    conn.query("SELECT 1", &[]).await.unwrap();
    let user_prepared: i64 = conn
        .query_one(
            "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgkeel_p%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        user_prepared, 1,
        "only the shared statement is still prepared"
    );
    drop(shared_stmt);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_in_one_task_does_not_leak_into_the_others() {
    let (_db, conn) = common::db().await;
    let tasks = (0..16i64)
        .map(|task| {
            let conn = conn.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    let n = unique(task, i);
                    if (task + i) % 3 == 0 {
                        let err = conn
                            .query_one("SELECT $1::int8 / 0", &[&n])
                            .await
                            .unwrap_err();
                        assert_eq!(err.code(), Some("22012"), "task {task} iteration {i}");
                    } else {
                        let got: i64 = conn
                            .query_one("SELECT $1::int8", &[&n])
                            .await
                            .unwrap_or_else(|e| panic!("task {task} iteration {i}: {e}"))
                            .get(0);
                        assert_eq!(got, n);
                    }
                }
            })
        })
        .collect();
    join_all_within_limit(tasks).await;
    assert!(!conn.is_broken());
}
