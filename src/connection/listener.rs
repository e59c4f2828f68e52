//! [`Listener`]: LISTEN on a connection of its own, read while idle, that survives the
//! loss of its session.
//!
//! A background task owns the listener's connection and holds its wire lock for its
//! whole life (nobody else uses that connection): while idle it waits on the socket for
//! notifications, and `listen`/`unlisten` reach it over a channel and run between reads.
//! When the session is lost (a server restart, `pg_terminate_backend`, a dead network),
//! the task reconnects with exponential backoff up to a cap, re-issues every LISTEN, and
//! yields [`ListenerEvent::Reconnected`]: notifications sent meanwhile were not seen.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{mpsc, oneshot};

use super::notify::Notification;
use super::{Connection, IntoConfig};
use crate::config::Config;
use crate::error::{Error, ErrorKind};

/// What a [`Listener`] yields.
#[derive(Debug)]
pub enum ListenerEvent {
    /// A notification on one of the channels listened to.
    Notification(Notification),
    /// The connection was lost and opened again, with every LISTEN re-issued:
    /// notifications sent in between **may have been missed**.
    Reconnected {
        /// Why the old connection was lost.
        error: Error,
    },
}

/// How a [`Listener`] reconnects and how much it buffers.
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    /// The wait before the second reconnection attempt (the first is at once); doubled
    /// after every failed attempt.
    pub min_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// How many events wait for the reader before the listener stops reading its socket
    /// (the server then keeps the notifications queued).
    pub buffer: usize,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            buffer: 1024,
        }
    }
}

enum Command {
    Listen(String, oneshot::Sender<Result<(), Error>>),
    Unlisten(String, oneshot::Sender<Result<(), Error>>),
}

/// LISTEN on a connection of its own: a [`Stream`] of [`ListenerEvent`]s that reads
/// while idle and reconnects when its session is lost (see the module docs).
///
/// ```no_run
/// # async fn demo() -> Result<(), pgkeel::Error> {
/// use futures::StreamExt;
/// let mut listener = pgkeel::Listener::connect("postgres://localhost/app").await?;
/// listener.listen("jobs").await?;
/// while let Some(event) = listener.next().await {
///     match event {
///         pgkeel::ListenerEvent::Notification(n) => println!("{}: {}", n.channel(), n.payload()),
///         pgkeel::ListenerEvent::Reconnected { .. } => println!("rescan: we may have missed some"),
///     }
/// }
/// # Ok(()) }
/// ```
pub struct Listener {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<ListenerEvent>,
    pid: Arc<AtomicI32>,
}

impl Listener {
    /// Opens the listener's connection with the default [`ListenerOptions`].
    ///
    /// # Errors
    /// As [`Connection::connect`] (later reconnections are retried, not returned).
    pub async fn connect(config: impl IntoConfig) -> Result<Listener, Error> {
        Listener::connect_with(config, ListenerOptions::default()).await
    }

    /// Opens the listener's connection with `options`.
    ///
    /// # Errors
    /// As [`Connection::connect`]; [`ErrorKind::Config`] for a zero buffer or a zero `min_backoff`.
    pub async fn connect_with(
        config: impl IntoConfig,
        options: ListenerOptions,
    ) -> Result<Listener, Error> {
        if options.buffer == 0 {
            return Err(Error::config("ListenerOptions::buffer must be at least 1"));
        }
        if options.min_backoff.is_zero() {
            return Err(Error::config(
                "ListenerOptions::min_backoff must be above zero (else a lost server is \
                 reconnected to without pause)",
            ));
        }
        let config = config.into_config()?;
        let conn = Connection::connect(&config).await?;
        let pid = Arc::new(AtomicI32::new(conn.backend_pid()));
        let (commands, rx) = mpsc::channel(16);
        let (tx, events) = mpsc::channel(options.buffer);
        let task = Task {
            config,
            options,
            channels: BTreeSet::new(),
            commands: rx,
            events: tx,
            pid: pid.clone(),
        };
        tokio::spawn(task.run(conn));
        Ok(Listener {
            commands,
            events,
            pid,
        })
    }

    /// Starts listening on `channel` (quoted as an identifier: the exact name given).
    ///
    /// # Errors
    /// A server error; [`ErrorKind::Broken`] while the listener is reconnecting.
    pub async fn listen(&self, channel: &str) -> Result<(), Error> {
        self.command(|tx| Command::Listen(channel.to_owned(), tx))
            .await
    }

    /// Stops listening on `channel`.
    ///
    /// # Errors
    /// As [`Listener::listen`].
    pub async fn unlisten(&self, channel: &str) -> Result<(), Error> {
        self.command(|tx| Command::Unlisten(channel.to_owned(), tx))
            .await
    }

    /// The backend process id of the listener's current session.
    pub fn backend_pid(&self) -> i32 {
        self.pid.load(Ordering::Relaxed)
    }

    async fn command(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), Error>>) -> Command,
    ) -> Result<(), Error> {
        let gone = || Error::new(ErrorKind::Closed, "the listener's task has ended");
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

impl Stream for Listener {
    type Item = ListenerEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ListenerEvent>> {
        self.events.poll_recv(cx)
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("backend_pid", &self.backend_pid())
            .finish()
    }
}

/// The background task that owns a listener's connection.
struct Task {
    config: Config,
    options: ListenerOptions,
    channels: BTreeSet<String>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<ListenerEvent>,
    pid: Arc<AtomicI32>,
}

/// Why serving a connection stopped.
enum Stop {
    /// The listener was dropped.
    Done,
    Lost(Error),
}

impl Task {
    async fn run(mut self, mut conn: Connection) {
        loop {
            let error = match self.serve(&conn).await {
                Stop::Done => return drop(conn.close().await),
                Stop::Lost(error) => error,
            };
            tracing::warn!(error = %error, "listener connection lost; reconnecting");
            drop(conn);
            conn = match self.reconnect().await {
                Some(conn) => conn,
                None => return,
            };
            self.pid.store(conn.backend_pid(), Ordering::Relaxed);
            if self
                .events
                .send(ListenerEvent::Reconnected { error })
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// Reads notifications and runs commands until the listener is dropped or the
    /// connection lost.
    async fn serve(&mut self, conn: &Connection) -> Stop {
        let mut wire = match conn.lock("listener").await {
            Ok(wire) => wire,
            Err(e) => return Stop::Lost(e),
        };
        loop {
            for n in conn.take_notifications() {
                if self
                    .events
                    .send(ListenerEvent::Notification(n))
                    .await
                    .is_err()
                {
                    return Stop::Done;
                }
            }
            let step = tokio::select! {
                cmd = self.commands.recv() => Ok(cmd),
                read = wire.read_idle() => Err(read),
            };
            match step {
                Ok(None) => return Stop::Done,
                Ok(Some(cmd)) => {
                    let (sql, reply, listen, channel) = Self::prepare(cmd);
                    let result = wire.simple_query(&sql).await.map(drop);
                    // The set changes only when the server agreed: a LISTEN it refused
                    // would otherwise fail every later reconnection.
                    if result.is_ok() {
                        match listen {
                            true => self.channels.insert(channel),
                            false => self.channels.remove(&channel),
                        };
                    }
                    let lost = result.as_ref().is_err_and(|_| !wire.is_usable());
                    let _ = reply.send(result);
                    if lost {
                        let e = Error::new(ErrorKind::Broken, "the listener's connection failed");
                        return Stop::Lost(e);
                    }
                }
                Err(Ok(())) => {}
                Err(Err(e)) => return Stop::Lost(e),
            }
        }
    }

    /// The SQL for a command, its reply, whether it listens, and its channel.
    fn prepare(cmd: Command) -> (String, oneshot::Sender<Result<(), Error>>, bool, String) {
        match cmd {
            Command::Listen(ch, reply) => (format!("LISTEN {}", quote(&ch)), reply, true, ch),
            Command::Unlisten(ch, reply) => (format!("UNLISTEN {}", quote(&ch)), reply, false, ch),
        }
    }

    /// Opens a new connection and re-issues every LISTEN, backing off between failed
    /// attempts; `None` when the listener was dropped meanwhile.
    async fn reconnect(&mut self) -> Option<Connection> {
        let mut delay = self.options.min_backoff;
        loop {
            match self.open().await {
                Ok(conn) => return Some(conn),
                Err(e) => tracing::warn!(error = %e, ?delay, "listener reconnection failed"),
            }
            if !self.wait(delay).await {
                return None;
            }
            delay = delay.saturating_mul(2).min(self.options.max_backoff);
        }
    }

    async fn open(&self) -> Result<Connection, Error> {
        let conn = Connection::connect(&self.config).await?;
        if !self.channels.is_empty() {
            let sql: Vec<String> = self
                .channels
                .iter()
                .map(|ch| format!("LISTEN {}", quote(ch)))
                .collect();
            conn.batch_execute(&sql.join("; ")).await?;
        }
        Ok(conn)
    }

    /// Sleeps `delay`, refusing commands meanwhile; false when the listener was dropped.
    async fn wait(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                cmd = self.commands.recv() => match cmd {
                    None => return false,
                    Some(Command::Listen(_, reply) | Command::Unlisten(_, reply)) => {
                        let msg = "the listener lost its connection and is reconnecting";
                        let _ = reply.send(Err(Error::new(ErrorKind::Broken, msg)));
                    }
                },
            }
        }
    }
}

/// `name` as a quoted SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
