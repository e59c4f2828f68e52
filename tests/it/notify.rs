//! LISTEN/NOTIFY and notices: notifications read in the middle of any exchange are all
//! kept, in order, in a bounded queue whose overflow is counted; a `Listener` receives
//! while idle, and across the loss of its own backend it reconnects, listens again and
//! says that notifications may have been missed; notices reach a per-connection callback.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use pgkeel::{Connection, Listener, ListenerEvent, ListenerOptions, Notification};

/// Waits for the listener's next notification, failing after a few seconds.
async fn next_event(listener: &mut Listener) -> ListenerEvent {
    tokio::time::timeout(Duration::from_secs(10), listener.next())
        .await
        .expect("an event within 10 s")
        .expect("the listener goes on")
}

async fn notify(conn: &Connection, channel: &str, payload: &str) {
    conn.execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
        .await
        .unwrap();
}

#[tokio::test]
async fn notifications_sent_while_a_connection_is_busy_are_all_delivered_in_order() {
    let (db, conn) = common::db().await;
    let sender = common::connect(&db).await;
    conn.batch_execute("LISTEN busy; CREATE TABLE t (id int4)")
        .await
        .unwrap();
    let n = 500;
    let send = tokio::spawn(async move {
        for i in 0..n {
            notify(&sender, "busy", &i.to_string()).await;
        }
        sender.backend_pid()
    });
    // Every kind of exchange meanwhile: their readers keep what arrives.
    let mut round = 0;
    while !send.is_finished() || round < 3 {
        round += 1;
        conn.query("SELECT pg_sleep(0.001)", &[]).await.unwrap();
        conn.simple_query("SELECT 1; SELECT 2").await.unwrap();
        let mut rows = conn
            .query_raw("SELECT generate_series(1, 3000)", &[] as pgkeel::Params)
            .await
            .unwrap();
        while rows.next().await.is_some() {}
        drop(rows);
        let mut copy = conn.copy_in("COPY t FROM STDIN").await.unwrap();
        copy.send("1\n").await.unwrap();
        copy.finish().await.unwrap();
        let tx = conn.transaction().await.unwrap();
        tx.rollback().await.unwrap();
    }
    let sender_pid = send.await.unwrap();
    conn.execute("SELECT 1", &[]).await.unwrap();
    let got: Vec<Notification> = conn.take_notifications();
    let payloads: Vec<String> = got.iter().map(|n| n.payload().to_owned()).collect();
    let want: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    assert_eq!(payloads, want);
    assert!(
        got.iter()
            .all(|n| n.channel() == "busy" && n.process_id() == sender_pid)
    );
    assert_eq!(conn.notifications_dropped(), 0);
}

/// A notification that reaches an idle connection is read by its next call, a pipelined
/// one too, and kept: it belongs to no answer and never fails the call.
#[tokio::test]
async fn a_notification_waiting_on_an_idle_connection_is_kept_by_the_next_pipelined_call() {
    let (db, conn) = common::db().await;
    let sender = common::connect(&db).await;
    conn.batch_execute("LISTEN idle").await.unwrap();
    let sql = "SELECT $1::int4";
    conn.query_one(sql, &[&0i32]).await.unwrap(); // prepared: the next calls pipeline
    for round in 1..=20i32 {
        notify(&sender, "idle", &round.to_string()).await;
        // The server sends it to the idle listener at once: let it arrive first.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let v: i32 = conn.query_one(sql, &[&round]).await.unwrap().get(0);
        assert_eq!(v, round);
    }
    let got: Vec<String> = conn
        .take_notifications()
        .iter()
        .map(|n| n.payload().to_owned())
        .collect();
    let want: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    assert_eq!(got, want);
    assert!(
        conn.pipeline_counts().calls >= 20,
        "the calls were pipelined"
    );
}

#[tokio::test]
async fn a_waiting_notification_stream_gets_what_another_task_reads() {
    let (db, conn) = common::db().await;
    let sender = common::connect(&db).await;
    conn.batch_execute("LISTEN s").await.unwrap();
    let reader = tokio::spawn({
        let conn = conn.clone();
        async move {
            let got: Vec<Notification> = conn.notifications().take(3).collect().await;
            got.into_iter()
                .map(|n| n.payload().to_owned())
                .collect::<Vec<_>>()
        }
    });
    for p in ["a", "b", "c"] {
        notify(&sender, "s", p).await;
    }
    // The next exchange on the connection reads them; the stream wakes.
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.execute("SELECT 1", &[]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, ["a", "b", "c"]);
}

#[tokio::test]
async fn a_full_notification_queue_drops_the_oldest_and_counts_them() {
    let (db, conn) = common::db().await;
    let sender = common::connect(&db).await;
    conn.set_notification_capacity(10);
    conn.batch_execute("LISTEN q").await.unwrap();
    for i in 0..25 {
        notify(&sender, "q", &i.to_string()).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.execute("SELECT 1", &[]).await.unwrap();
    let got: Vec<String> = conn
        .take_notifications()
        .iter()
        .map(|n| n.payload().to_owned())
        .collect();
    let want: Vec<String> = (15..25).map(|i| i.to_string()).collect();
    assert_eq!(got, want, "the newest ten are kept");
    assert_eq!(conn.notifications_dropped(), 15);
}

#[tokio::test]
async fn an_idle_listener_receives_without_any_query_of_its_own() {
    let (db, sender) = common::db().await;
    let mut listener = Listener::connect(db.url()).await.unwrap();
    listener.listen("idle \"quoted\"").await.unwrap();
    notify(&sender, "idle \"quoted\"", "hello").await;
    match next_event(&mut listener).await {
        ListenerEvent::Notification(n) => {
            assert_eq!(n.channel(), "idle \"quoted\"");
            assert_eq!(n.payload(), "hello");
            assert_eq!(n.process_id(), sender.backend_pid());
        }
        other => panic!("{other:?}"),
    }
    listener.unlisten("idle \"quoted\"").await.unwrap();
    notify(&sender, "idle \"quoted\"", "unheard").await;
    listener.listen("other").await.unwrap();
    notify(&sender, "other", "heard").await;
    match next_event(&mut listener).await {
        ListenerEvent::Notification(n) => assert_eq!(n.payload(), "heard"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_listener_whose_backend_is_terminated_reconnects_and_reports_the_gap() {
    let (db, sender) = common::db().await;
    let options = ListenerOptions {
        min_backoff: Duration::from_millis(20),
        ..ListenerOptions::default()
    };
    let mut listener = Listener::connect_with(db.url(), options).await.unwrap();
    listener.listen("a").await.unwrap();
    listener.listen("b").await.unwrap();
    notify(&sender, "a", "before").await;
    assert!(
        matches!(next_event(&mut listener).await, ListenerEvent::Notification(n) if n.payload() == "before")
    );
    let old = listener.backend_pid();
    sender
        .execute("SELECT pg_terminate_backend($1)", &[&old])
        .await
        .unwrap();
    match next_event(&mut listener).await {
        ListenerEvent::Reconnected { error } => {
            assert_eq!(error.code(), Some("57P01"), "{error}");
        }
        other => panic!("expected the gap to be reported, got {other:?}"),
    }
    assert_ne!(listener.backend_pid(), old);
    // Every channel is listened to again.
    notify(&sender, "b", "after-b").await;
    notify(&sender, "a", "after-a").await;
    for want in ["after-b", "after-a"] {
        match next_event(&mut listener).await {
            ListenerEvent::Notification(n) => assert_eq!(n.payload(), want),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn notices_reach_the_connections_callback() {
    let (_db, conn) = common::db().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    conn.set_notice_handler(Some(Arc::new({
        let seen = seen.clone();
        move |n: &pgkeel::DbError| seen.lock().unwrap().push(n.message().to_owned())
    })));
    conn.batch_execute("DO $$ BEGIN RAISE NOTICE 'one'; RAISE WARNING 'two'; END $$")
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), ["one", "two"]);
    conn.set_notice_handler(None);
    conn.batch_execute("DO $$ BEGIN RAISE NOTICE 'three'; END $$")
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2);
}
