//! What COPY FROM STDIN and COPY TO STDOUT share: starting one, and turning a COPY the
//! caller left between calls back into a live exchange.
//!
//! A COPY goes out as a simple Query, so it owes one ReadyForQuery and the server ends
//! it at once on an error (PostgreSQL manual, "COPY Operations": after an error in a
//! simple Query, any CopyData, CopyDone or CopyFail that follows is dropped). Between
//! the caller's calls the ledger says [`State::CopyIn`] or [`State::CopyOut`]; the next
//! exchange that begins on the wire ends such a COPY first (CopyFail, or reading and
//! dropping the rest), so a COPY left unfinished commits nothing.

use bytes::BytesMut;

use super::ledger::{Ledger, State};
use super::stream::WireSlot;
use super::wire::{Closes, Ended, Flow, Handler, InFlight, Wire};
use crate::error::{Error, ErrorKind};
use crate::protocol::backend::CopyResponse;
use crate::protocol::{BackendMessage, frontend};

/// Which way a COPY runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// COPY … FROM STDIN.
    In,
    /// COPY … TO STDOUT.
    Out,
}

impl Direction {
    fn what(self) -> &'static str {
        match self {
            Direction::In => "COPY FROM STDIN",
            Direction::Out => "COPY TO STDOUT",
        }
    }

    fn state(self) -> State {
        match self {
            Direction::In => State::CopyIn,
            Direction::Out => State::CopyOut,
        }
    }

    fn not_this_copy(self) -> Error {
        let msg = match self {
            Direction::In => "copy_in needs a `COPY … FROM STDIN` statement",
            Direction::Out => "copy_out needs a `COPY … TO STDOUT` statement",
        };
        Error::new(ErrorKind::Misuse, msg)
    }
}

/// Ends a COPY the caller left between calls, at the start of the next exchange: a
/// COPY FROM STDIN gets CopyFail (nothing of it is committed); either way its owed
/// ReadyForQuery, and everything before it, is read and dropped.
pub(super) fn end_left_copy(ledger: &mut Ledger, buf: &mut BytesMut) {
    if matches!(ledger.state, State::CopyIn) {
        // A fixed, NUL-free reason: this cannot fail.
        let _ = frontend::copy_fail("the COPY was dropped unfinished", buf);
    }
    ledger.discard += 1;
}

impl Wire {
    /// Sends `sql` as a simple Query and reads to its CopyInResponse or
    /// CopyOutResponse; the COPY is then left between calls ([`State::CopyIn`] or
    /// [`State::CopyOut`]).
    ///
    /// # Errors
    /// A server error; [`ErrorKind::Misuse`] when `sql` is not a COPY in direction `dir`
    /// (a COPY the other way is ended at once).
    pub(super) async fn start_copy(
        &mut self,
        sql: &str,
        dir: Direction,
    ) -> Result<CopyResponse, Error> {
        let mut f = self.begin(dir.what(), Closes::Synced)?;
        f.copy_exchange();
        if let Err(e) = f.query(sql) {
            f.abandon_unsent();
            return Err(e);
        }
        f.flush().await?;
        let mut h = Starting { response: None };
        match f.read(&mut h).await? {
            Ended::Stopped => {}
            Ended::Ready => return Err(f.take_error().unwrap_or_else(|| dir.not_this_copy())),
        }
        match h.response {
            Some((got, response)) if got == dir => {
                f.park(dir.state());
                Ok(response)
            }
            Some((got, _)) => {
                f.park(got.state());
                drop(f);
                self.settle().await?;
                Err(dir.not_this_copy())
            }
            None => unreachable!("the start of a COPY stops only at its response"),
        }
    }

    /// Turns a COPY left between calls back into a live exchange.
    ///
    /// # Errors
    /// [`ErrorKind::Broken`]/[`ErrorKind::Closed`] when the connection failed.
    pub(super) fn resume_copy(&mut self, what: &'static str) -> Result<InFlight<'_>, Error> {
        self.shared.check()?;
        if self.io.is_none() || !self.ledger.is_copying() {
            return Err(Error::broken());
        }
        let before = self.mark();
        self.ledger.state = State::Exchange;
        let mut f = InFlight::new(self, Vec::new(), what, before);
        f.copy_exchange();
        Ok(f)
    }
}

/// Reads the answer to a COPY's Query up to its CopyInResponse or CopyOutResponse.
struct Starting {
    response: Option<(Direction, CopyResponse)>,
}

impl Handler for Starting {
    fn message(&mut self, msg: BackendMessage) -> Result<Flow, BackendMessage> {
        match msg {
            BackendMessage::CopyInResponse(r) => self.response = Some((Direction::In, r)),
            BackendMessage::CopyOutResponse(r) => self.response = Some((Direction::Out, r)),
            // Not a COPY: its answer runs to ReadyForQuery and the caller is told so.
            BackendMessage::RowDescription(_)
            | BackendMessage::DataRow(_)
            | BackendMessage::CommandComplete(_)
            | BackendMessage::EmptyQueryResponse => return Ok(Flow::Continue),
            msg => return Err(msg),
        }
        Ok(Flow::Stop)
    }
}

/// Reads the end of a COPY: its CommandComplete (the row count) and the answers of any
/// statements after it in the same Query (dropped).
#[derive(Default)]
pub(super) struct Ending {
    pub(super) rows: Option<u64>,
}

impl Handler for Ending {
    fn message(&mut self, msg: BackendMessage) -> Result<Flow, BackendMessage> {
        match msg {
            BackendMessage::CommandComplete(tag) => {
                let n = crate::protocol::backend::rows_affected(&tag);
                self.rows.get_or_insert(n);
            }
            BackendMessage::RowDescription(_)
            | BackendMessage::DataRow(_)
            | BackendMessage::EmptyQueryResponse
            | BackendMessage::CopyData(_)
            | BackendMessage::CopyDone
            | BackendMessage::CopyOutResponse(_) => {}
            msg => return Err(msg),
        }
        Ok(Flow::Continue)
    }
}

impl super::Connection {
    /// Starts a `COPY … FROM STDIN` and returns the sink its data goes to; the COPY holds
    /// the wire lock until [`finish`](super::CopyIn::finish) or a drop (which sends
    /// CopyFail: nothing is committed). For typed rows, wrap it in a
    /// [`super::BinaryCopyInWriter`].
    ///
    /// ```no_run
    /// # async fn demo(conn: pgkeel::Connection) -> Result<(), pgkeel::Error> {
    /// let mut copy = conn.copy_in("COPY people (id, name) FROM STDIN (FORMAT csv)").await?;
    /// copy.send("1,Ada\n2,Grace\n").await?;
    /// assert_eq!(copy.finish().await?, 2);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A server error; [`ErrorKind::Misuse`] when `sql` is not a COPY FROM STDIN, or this
    /// task already holds the connection.
    ///
    /// # Cancel safety
    /// As [`super::Connection::query`].
    pub async fn copy_in(&self, sql: &str) -> Result<super::CopyIn<'static>, Error> {
        let span = self.span(crate::telemetry::Call::CopyIn, Some(sql));
        super::bounded_call!(self.inner.shared.limits.query, span, {
            let wire = self.lock("copy_in").await?;
            let holder = super::wire::HolderMark::new(wire.shared.clone());
            super::CopyIn::start(WireSlot::Owned(wire), Some(holder), sql).await
        })
    }

    /// Starts a `COPY … TO STDOUT` and returns the stream of its data; the COPY holds
    /// the wire lock until the stream ends or is dropped. For typed rows, wrap it in a
    /// [`super::BinaryCopyOutStream`].
    ///
    /// # Errors
    /// A server error; [`ErrorKind::Misuse`] when `sql` is not a COPY TO STDOUT, or this
    /// task already holds the connection.
    ///
    /// # Cancel safety
    /// As [`super::Connection::query`].
    pub async fn copy_out(&self, sql: &str) -> Result<super::CopyOut<'static>, Error> {
        let span = self.span(crate::telemetry::Call::CopyOut, Some(sql));
        super::bounded_call!(self.inner.shared.limits.query, span, {
            let wire = self.lock("copy_out").await?;
            let holder = super::wire::HolderMark::new(wire.shared.clone());
            super::CopyOut::start(WireSlot::Owned(wire), Some(holder), sql).await
        })
    }
}
