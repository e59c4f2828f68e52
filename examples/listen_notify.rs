//! LISTEN/NOTIFY: a `Listener` receiving notifications sent from another connection, the
//! notification queue every `Connection` keeps, and the `Reconnected` event a listener
//! yields when its session is lost (here: `pg_terminate_backend` from another
//! connection), after which it listens again on every channel by itself.
//!
//! With `DATABASE_URL` set, it uses that server; without it, it starts a throwaway
//! PostgreSQL cluster (initdb into a temp dir) and removes it afterwards:
//!
//! ```text
//! cargo run --example listen_notify
//! ```

use std::time::{Duration, Instant};

use futures::StreamExt;
use pgkeel::{Connection, Listener, ListenerEvent, ListenerOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (url, _cluster) = pgkeel_testkit::database_url_or_throwaway()?;
    let sender = Connection::connect(url.as_str()).await?;

    // 1. A Listener: a connection of its own, read while idle by a background task.
    //    Channel names are quoted as identifiers: exactly the name given.
    let options = ListenerOptions {
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(2),
        buffer: 1024,
    };
    let mut listener = Listener::connect_with(url.as_str(), options).await?;
    listener.listen("jobs").await?;
    listener.listen("Audit Log").await?;
    println!("listener backend pid: {}", listener.backend_pid());

    // NOTIFY from another connection; pg_notify takes the channel as a value.
    sender.execute("NOTIFY jobs, 'job 1'", &[]).await?;
    sender
        .execute(
            "SELECT pg_notify($1, $2)",
            &[&"Audit Log", &"user 7 logged in"],
        )
        .await?;
    // In a transaction, notifications are delivered at COMMIT, in order, once each.
    let tx = sender.transaction().await?;
    for i in 2..=4 {
        tx.execute("SELECT pg_notify('jobs', $1)", &[&format!("job {i}")])
            .await?;
    }
    tx.commit().await?;
    for _ in 0..5 {
        match next_event(&mut listener).await? {
            ListenerEvent::Notification(n) => println!(
                "listener: {:?} from pid {}: {:?}",
                n.channel(),
                n.process_id(),
                n.payload()
            ),
            ListenerEvent::Reconnected { error } => println!("listener: reconnected ({error})"),
        }
    }

    // 2. A plain Connection keeps every notification it reads, during any exchange of
    //    any task sharing it, in a bounded queue. It reads its socket only during an
    //    exchange: a notification sent while it is idle is read at its next call.
    //    (A channel the listener does not hear, so its stream stays quiet meanwhile.)
    let worker = Connection::connect(url.as_str()).await?;
    worker.batch_execute("LISTEN tasks").await?;
    sender
        .execute("NOTIFY tasks, 'seen at the next call'", &[])
        .await?;
    println!(
        "worker, idle: {} notifications queued",
        worker.take_notifications().len()
    );
    // Any exchange reads what has arrived (the server sends a notification to an idle
    // session at once; one that is busy gets it when its statement ends).
    let mut queued = Vec::new();
    for _ in 0..100 {
        worker.execute("SELECT 1", &[]).await?;
        queued = worker.take_notifications();
        if !queued.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for n in &queued {
        println!("worker, after a query: {:?}", n.payload());
    }

    // `notifications()` (or `next_notification()`) waits for the next one; here a clone
    // of the connection in another task runs the exchange that reads it.
    let waiting = {
        let worker = worker.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(worker.notifications());
            let mut got = Vec::new();
            while got.len() < 2 {
                got.push(
                    stream
                        .next()
                        .await
                        .expect("never ends")
                        .payload()
                        .to_owned(),
                );
            }
            got
        })
    };
    sender.execute("NOTIFY tasks, 'a'", &[]).await?;
    sender.execute("NOTIFY tasks, 'b'", &[]).await?;
    for _ in 0..100 {
        if waiting.is_finished() {
            break;
        }
        worker.execute("SELECT 1", &[]).await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = tokio::time::timeout(Duration::from_secs(5), waiting).await??;
    println!(
        "worker, notifications() in another task: {got:?}; dropped for overflow: {}",
        worker.notifications_dropped()
    );

    // 3. The listener's session is lost: another connection terminates its backend.
    //    The listener reconnects (at once, then with backoff), re-issues every LISTEN and
    //    yields `Reconnected`: notifications sent in the gap may have been missed, so
    //    treat it as "rescan whatever the channel announces".
    let old_pid = listener.backend_pid();
    let started = Instant::now();
    let killed: bool = sender
        .query_one("SELECT pg_terminate_backend($1)", &[&old_pid])
        .await?
        .get(0);
    println!("pg_terminate_backend({old_pid}) = {killed}");
    match next_event(&mut listener).await? {
        ListenerEvent::Reconnected { error } => println!(
            "listener: Reconnected after {:?}, notifications may have been missed (lost \
             because: {error}); new backend pid {}",
            started.elapsed(),
            listener.backend_pid()
        ),
        ListenerEvent::Notification(n) => {
            return Err(format!("expected Reconnected, got {:?}", n.payload()).into());
        }
    }

    // Every channel is listened to again, without the caller doing anything.
    sender
        .execute(
            "SELECT pg_notify($1, $2)",
            &[&"Audit Log", &"after the reconnect"],
        )
        .await?;
    match next_event(&mut listener).await? {
        ListenerEvent::Notification(n) => {
            println!("listener: {:?}: {:?}", n.channel(), n.payload())
        }
        ListenerEvent::Reconnected { error } => println!("listener: reconnected ({error})"),
    }

    listener.unlisten("jobs").await?;
    drop(listener); // its task closes the connection
    worker.close().await?;
    sender.close().await?;
    Ok(())
}

/// The listener's next event, or an error after 5 s.
async fn next_event(listener: &mut Listener) -> Result<ListenerEvent, Box<dyn std::error::Error>> {
    match tokio::time::timeout(Duration::from_secs(5), listener.next()).await {
        Ok(Some(event)) => Ok(event),
        Ok(None) => Err("the listener ended".into()),
        Err(_) => Err("no listener event within 5 s".into()),
    }
}
