//! An exhaustive model check of the wire ledger (tests only).
//!
//! The ledger ([`super::ledger`]) is a pure state machine: a [`State`](super::ledger::State),
//! a count of owed ReadyForQuery messages and, of those, how many end work nobody waits
//! for (`discard`). This module restates the transitions the driver makes on it, with no
//! I/O, and drives them against a small PostgreSQL server model, exploring every
//! interleaving breadth-first up to a bound of a few client calls.
//!
//! The client's side mirrors, rule for rule:
//! - `Wire::begin` (wire.rs): refused unless `Ledger::can_begin`; a paused portal is
//!   settled first (Close + Sync, one more owed, one more to discard); a COPY left
//!   between calls is ended first (`copy::end_left_copy`: CopyFail for COPY IN, one more
//!   to discard);
//! - the calls built on it: `simple_query` (simple.rs), `run_limited` without and with a
//!   row limit (query.rs: Execute + Sync, or Execute + Flush whose Sync goes out once the
//!   command ends), the stream's prefetch and next batch (`stream_prefetch`, `resume`,
//!   `stream_next`), `start_copy` / `resume_copy` (copy.rs), COPY IN's `finish`
//!   (copy_in.rs), COPY OUT's `fetch` (copy_out.rs), `settle` and `drain_abandoned`
//!   (wire.rs);
//! - the reader (`InFlight::dispatch`, `discarding`, `ready` in inflight.rs) and the
//!   handlers it hands messages to (`AnswerReader`, `Starting`, `Ending`, `Reading`,
//!   `NoAnswer`);
//! - a future dropped at any await point (`Drop for InFlight` → `Wire::abandon`: left
//!   [`Ls::Abandoned`] when recoverable and the whole request went out, else broken), and
//!   a socket failure while writing (`InFlight::fail` → `Wire::break_off`).
//!
//! The server answers in order: one ReadyForQuery per Sync or Query; after an error in
//! the extended protocol it skips to the next Sync; a COPY FROM STDIN waits for
//! CopyDone or CopyFail (and, as PostgreSQL does, swallows a Sync meanwhile); a row
//! limit may end in PortalSuspended. Every message either side sends carries the id of
//! the exchange whose work it is, so the check can tell whose answer is read.
//!
//! Checked after every step:
//! - `owed` never underflows and always equals the Syncs and Queries written minus the
//!   ReadyForQuery messages read; `discard` never exceeds it;
//! - a new exchange begins only once everything owed is marked to be discarded (it
//!   settles what came before);
//! - every answer read belongs to the exchange reading it, or (while discarding) to work
//!   that was settled or abandoned: never to a later exchange, never to an earlier one
//!   that is still waited for;
//! - `Ready` means a quiet wire: nothing unsent, nothing unanswered, nothing unread, so
//!   an abandoned exchange is never reused before recovery has read all of it;
//! - a reader never waits for an answer that can never come; no Sync is swallowed;
//! - `Broken` is final.
//!
//! Each rule is also broken on purpose ([`Flaw`]) to show the check finds it. Out of the
//! model: pipelined calls (`State::Pipelined`), queued statement Closes, refusing a COPY
//! FROM STDIN reached through a plain query, transaction status, notices.

use std::collections::{HashSet, VecDeque};

/// An exchange's id; 0 is recovery, which has no answers of its own.
type Id = u8;

/// What a simple Query runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Sql {
    /// A statement that is not a COPY.
    Plain,
    /// `COPY … FROM STDIN`.
    CopyIn,
    /// `COPY … TO STDOUT`.
    CopyOut,
}

/// A frontend message, tagged with the exchange whose work it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Msg {
    /// Sync: one ReadyForQuery.
    Sync(Id),
    /// A simple Query: one ReadyForQuery.
    Query(Id, Sql),
    /// Bind + Execute; with a row limit (`true`) it may end in PortalSuspended.
    Execute(Id, bool),
    /// The end of COPY IN data.
    CopyDone(Id),
    /// COPY IN given up.
    CopyFail(Id),
}

/// A backend message, tagged with the exchange whose request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Ans {
    /// ReadyForQuery.
    Ready(Id),
    /// ErrorResponse.
    Error(Id),
    /// CommandComplete.
    Complete(Id),
    /// PortalSuspended: the row limit was reached.
    Suspended(Id),
    /// CopyInResponse: the server waits for data.
    CopyInResponse(Id),
    /// CopyOutResponse: data follows.
    CopyOutResponse(Id),
    /// CopyData (of COPY OUT).
    CopyData(Id),
}

impl Ans {
    /// The exchange it answers.
    fn id(self) -> Id {
        match self {
            Ans::Ready(i)
            | Ans::Error(i)
            | Ans::Complete(i)
            | Ans::Suspended(i)
            | Ans::CopyInResponse(i)
            | Ans::CopyOutResponse(i)
            | Ans::CopyData(i) => i,
        }
    }
}

/// The server's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Server {
    /// Taking messages as they come.
    Normal,
    /// An error in the extended protocol: everything up to the next Sync is dropped.
    Skip,
    /// COPY FROM STDIN of exchange `Id`, waiting for CopyDone or CopyFail.
    CopyIn(Id),
}

/// The ledger's state, as `ledger::State` (the portal's columns left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Ls {
    /// Nothing owed.
    Ready,
    /// An armed guard owns the wire.
    Exchange,
    /// A row stream between batches.
    PortalPaused {
        /// An Execute for the next batch was sent.
        prefetched: bool,
    },
    /// Dropped after its whole request went out; awaits recovery.
    Abandoned,
    /// Final.
    Broken,
    /// A COPY FROM STDIN between the caller's calls.
    CopyIn,
    /// A COPY TO STDOUT between the caller's calls.
    CopyOut,
}

impl Ls {
    /// `Ledger::can_begin`.
    fn can_begin(self) -> bool {
        matches!(
            self,
            Ls::Ready | Ls::PortalPaused { .. } | Ls::CopyIn | Ls::CopyOut
        )
    }
}

/// A call the client makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// `Wire::simple_query`.
    Simple,
    /// `run_limited` with no row limit: Execute + Sync.
    Extended,
    /// `run_limited` with a row limit (a stream's first batch), then its prefetch.
    StreamStart,
    /// `stream_next` on a paused portal, then its prefetch.
    StreamNext,
    /// `start_copy` in one direction.
    CopyStart(Sql),
    /// COPY IN's `finish`: CopyDone, read to the end.
    CopyFinish,
    /// COPY OUT's `fetch`: one batch of data, or the end.
    CopyRead,
    /// `Wire::settle` (a dropped stream's or COPY's cleanup task).
    Settle,
    /// `Wire::recover` after the cancel was confirmed.
    Recover,
}

/// The handler an exchange reads with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Handler {
    /// `AnswerReader` (query.rs).
    Answer {
        /// A row limit: PortalSuspended stops the reader.
        streaming: bool,
        /// The Sync of a streamed batch is still to be written.
        need_sync: bool,
        /// The server reported an error.
        failed: bool,
    },
    /// `NoAnswer` (wire.rs) and, for what is modelled, `SimpleReader`.
    NoAnswer,
    /// `Starting` (copy.rs): up to the COPY's response.
    Starting,
    /// `Ending` (copy.rs): the end of a COPY.
    Ending,
    /// `Reading` (copy_out.rs): a batch of COPY OUT data.
    Reading,
}

/// Where an exchange is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Phase {
    /// Flushing the write buffer; then reading, or (a prefetch) pausing.
    Flush {
        /// A prefetch: the portal pauses once it is sent.
        then_pause: bool,
    },
    /// Reading answers.
    Read,
}

/// An armed in-flight guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Op {
    /// The call.
    kind: Kind,
    /// The exchange whose answers it reads.
    id: Id,
    /// Its next await.
    phase: Phase,
    /// What it reads with.
    h: Handler,
    /// `InFlight::recoverable`.
    recoverable: bool,
    /// `InFlight::copy`.
    copy: bool,
    /// A settle run by `run_limited`: the stream starts when it is done.
    then_stream: bool,
}

/// What a read step ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The last owed ReadyForQuery was read.
    Ready,
    /// The handler stopped the reader; the exchange goes on.
    Stopped,
}

/// A handler's verdict (`Flow`, or a message not allowed here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Read on.
    Continue,
    /// Return to the caller.
    Stop,
    /// Write Sync, read on.
    Sync,
    /// Not allowed here: a protocol error breaks the connection.
    Unexpected,
}

/// A rule broken on purpose, to show that the check catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Flaw {
    /// The driver as it is.
    None,
    /// `InFlight::sync` writes a Sync without `owe()`.
    ForgetOweOnSync,
    /// `discarding` drops a ReadyForQuery without `paid()`.
    DiscardedReadyNotPaid,
    /// `begin` from a paused portal neither closes it nor syncs.
    BeginPausedWithoutSettle,
    /// `begin` from a COPY IN left between calls sends no CopyFail.
    LeftCopyWithoutCopyFail,
    /// Recovery discards only the first owed ReadyForQuery.
    RecoverReadsFirstOnly,
    /// `abandon` leaves an exchange for recovery with part of its request unsent.
    AbandonUnflushed,
    /// `can_begin` lets a new exchange begin on an abandoned one.
    BeginOnAbandoned,
    /// `run_limited` with a row limit begins on a paused portal or an open COPY without
    /// settling it first (the driver before this model found it).
    StreamWithoutSettle,
}

/// One state of client, ledger and server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct S {
    /// `Ledger::state`.
    state: Ls,
    /// `Ledger::owed`.
    owed: u8,
    /// `Ledger::discard`.
    discard: u8,
    /// The exchange a paused portal, a COPY left between calls or an abandoned exchange
    /// belongs to.
    left: Id,
    /// The armed guard, if any.
    op: Option<Op>,
    /// Written, not yet flushed.
    buf: Vec<Msg>,
    /// Flushed, not yet taken by the server.
    input: VecDeque<Msg>,
    /// Sent by the server, not yet read.
    output: VecDeque<Ans>,
    /// The server's mode.
    server: Server,
    /// Exchanges whose answers nobody waits for any more (a bit per id).
    disowned: u32,
    /// Syncs and Queries written.
    sent_owing: u8,
    /// ReadyForQuery messages read.
    read_ready: u8,
    /// A Sync the server swallowed in COPY IN mode.
    swallowed: bool,
    /// The next new exchange's id.
    next_id: Id,
    /// Calls the client may still make (the bound of the search).
    calls_left: u8,
}

/// The bound and the flaw of one exploration.
struct Model {
    /// How many calls the client makes at most.
    calls: u8,
    /// A rule broken on purpose, or none.
    flaw: Flaw,
}

impl Model {
    /// A fresh, idle connection.
    fn initial(&self) -> S {
        S {
            state: Ls::Ready,
            owed: 0,
            discard: 0,
            left: 0,
            op: None,
            buf: Vec::new(),
            input: VecDeque::new(),
            output: VecDeque::new(),
            server: Server::Normal,
            disowned: 0,
            sent_owing: 0,
            read_ready: 0,
            swallowed: false,
            next_id: 1,
            calls_left: self.calls,
        }
    }

    /// `Ledger::can_begin`, or the flawed rule.
    fn can_begin(&self, state: Ls) -> bool {
        state.can_begin() || (self.flaw == Flaw::BeginOnAbandoned && state == Ls::Abandoned)
    }

    /// Every state one step leads to, or the rule a step broke.
    fn successors(&self, s: &S) -> Result<Vec<S>, String> {
        let mut out = Vec::new();
        if s.state != Ls::Broken && !s.input.is_empty() {
            self.server_steps(s, &mut out);
        }
        match s.op {
            None if s.calls_left > 0 => {
                for kind in calls_in(s.state) {
                    out.push(self.start(s, kind)?);
                }
            }
            None => {}
            Some(op) => self.op_steps(s, op, &mut out)?,
        }
        if s.state == Ls::Broken
            && let Some(n) = out.iter().find(|n| n.state != Ls::Broken)
        {
            return Err(format!("left Broken for {:?}", n.state));
        }
        Ok(out)
    }

    // ---- the server ----

    /// The server takes the next message; each possible answer is one successor.
    fn server_steps(&self, s: &S, out: &mut Vec<S>) {
        let mut base = s.clone();
        let msg = base.input.pop_front().expect("checked");
        let mut answer = |mode: Server, answers: &[Ans]| {
            let mut n = base.clone();
            n.server = mode;
            n.output.extend(answers.iter().copied());
            out.push(n);
        };
        match (s.server, msg) {
            (Server::CopyIn(_), Msg::Sync(_)) => {
                // PostgreSQL ignores Sync in copy-in mode (copyfromparse.c).
                let mut n = base.clone();
                n.swallowed = true;
                out.push(n);
            }
            (Server::CopyIn(c), Msg::CopyDone(_)) => {
                answer(Server::Normal, &[Ans::Complete(c), Ans::Ready(c)]);
                answer(Server::Normal, &[Ans::Error(c), Ans::Ready(c)]);
            }
            // CopyFail, or any other message, ends the COPY with an error.
            (Server::CopyIn(c), _) => answer(Server::Normal, &[Ans::Error(c), Ans::Ready(c)]),
            (_, Msg::Sync(i)) => answer(Server::Normal, &[Ans::Ready(i)]),
            (Server::Skip, _) => answer(Server::Skip, &[]),
            // Outside COPY, copy messages are dropped.
            (Server::Normal, Msg::CopyDone(_) | Msg::CopyFail(_)) => answer(Server::Normal, &[]),
            (Server::Normal, Msg::Query(i, sql)) => {
                answer(Server::Normal, &[Ans::Error(i), Ans::Ready(i)]);
                match sql {
                    Sql::Plain => answer(Server::Normal, &[Ans::Complete(i), Ans::Ready(i)]),
                    Sql::CopyIn => answer(Server::CopyIn(i), &[Ans::CopyInResponse(i)]),
                    Sql::CopyOut => {
                        let data = [Ans::CopyOutResponse(i), Ans::CopyData(i)];
                        answer(
                            Server::Normal,
                            &[data[0], data[1], Ans::Complete(i), Ans::Ready(i)],
                        );
                        answer(Server::Normal, &[data[0], Ans::Error(i), Ans::Ready(i)]);
                    }
                }
            }
            (Server::Normal, Msg::Execute(i, limited)) => {
                answer(Server::Skip, &[Ans::Error(i)]);
                answer(Server::Normal, &[Ans::Complete(i)]);
                if limited {
                    answer(Server::Normal, &[Ans::Suspended(i)]);
                }
            }
        }
    }

    // ---- the client ----

    /// `InFlight::sync`: a Sync in the write buffer, one more owed.
    fn sync(&self, n: &mut S, id: Id) {
        n.buf.push(Msg::Sync(id));
        n.sent_owing += 1;
        if self.flaw != Flaw::ForgetOweOnSync {
            n.owed += 1;
        }
    }

    /// `InFlight::query`: a Query in the write buffer, one more owed.
    fn query(n: &mut S, id: Id, sql: Sql) {
        n.buf.push(Msg::Query(id, sql));
        n.sent_owing += 1;
        n.owed += 1;
    }

    /// `Wire::begin`, up to arming the guard: settles a paused portal or a COPY left
    /// between calls; returns the new exchange's id, or `None` when refused.
    fn begin(&self, n: &mut S) -> Result<Option<Id>, String> {
        if !self.can_begin(n.state) {
            return Ok(None);
        }
        let left = n.left;
        if matches!(n.state, Ls::PortalPaused { .. }) && self.flaw != Flaw::BeginPausedWithoutSettle
        {
            // Close(portal) + Sync.
            self.sync(n, left);
            n.discard += 1;
            n.disowned |= 1 << left;
        }
        if matches!(n.state, Ls::CopyIn | Ls::CopyOut) {
            // `copy::end_left_copy`.
            if n.state == Ls::CopyIn && self.flaw != Flaw::LeftCopyWithoutCopyFail {
                n.buf.push(Msg::CopyFail(left));
            }
            n.discard += 1;
            n.disowned |= 1 << left;
        }
        if n.owed != n.discard {
            return Err(format!(
                "an exchange begins with {} owed but only {} settled",
                n.owed, n.discard
            ));
        }
        n.state = Ls::Exchange;
        let id = n.next_id;
        assert!(id < 32, "exchange ids are bits of `disowned`");
        n.next_id += 1;
        Ok(Some(id))
    }

    /// Starts a call (one step: everything up to its first await).
    fn start(&self, s: &S, kind: Kind) -> Result<S, String> {
        let mut n = s.clone();
        n.calls_left -= 1;
        let paused_or_copying =
            matches!(n.state, Ls::PortalPaused { .. } | Ls::CopyIn | Ls::CopyOut);
        if kind == Kind::StreamStart && paused_or_copying && self.flaw != Flaw::StreamWithoutSettle
        {
            // `run_limited` with a row limit: `settle` first, in an exchange of its own.
            self.call(&mut n, Kind::Settle, true)?;
        } else {
            self.call(&mut n, kind, false)?;
        }
        Ok(n)
    }

    /// A call's first step; with `then_stream`, a stream starts once it has settled.
    fn call(&self, n: &mut S, kind: Kind, then_stream: bool) -> Result<(), String> {
        let mut op = Op {
            kind,
            id: n.left,
            phase: Phase::Flush { then_pause: false },
            h: Handler::NoAnswer,
            recoverable: true,
            copy: false,
            then_stream,
        };
        let answer = |streaming| Handler::Answer {
            streaming,
            need_sync: streaming,
            failed: false,
        };
        match kind {
            Kind::Simple
            | Kind::Extended
            | Kind::StreamStart
            | Kind::CopyStart(_)
            | Kind::Settle => {
                let Some(id) = self.begin(n)? else {
                    return Ok(()); // Error::broken(), nothing changed
                };
                op.id = id;
                match kind {
                    Kind::Simple => Self::query(n, id, Sql::Plain),
                    Kind::Extended => {
                        n.buf.push(Msg::Execute(id, false));
                        self.sync(n, id);
                        op.h = answer(false);
                    }
                    Kind::StreamStart => {
                        // Execute(max_rows) + Flush: no Sync yet.
                        n.buf.push(Msg::Execute(id, true));
                        op.h = answer(true);
                    }
                    Kind::CopyStart(sql) => {
                        // `copy_exchange`: COPY messages to the handler, a drop breaks.
                        op.copy = true;
                        op.recoverable = false;
                        op.h = Handler::Starting;
                        Self::query(n, id, sql);
                    }
                    _ => {}
                }
            }
            Kind::StreamNext => {
                // `resume`, then `stream_next`.
                let Ls::PortalPaused { prefetched } = n.state else {
                    return Err("stream_next without a paused portal".into());
                };
                n.state = Ls::Exchange;
                op.h = answer(true);
                match prefetched {
                    true => op.phase = Phase::Read,
                    false => n.buf.push(Msg::Execute(op.id, true)),
                }
            }
            Kind::CopyFinish | Kind::CopyRead => {
                // `resume_copy`: a copy exchange.
                n.state = Ls::Exchange;
                op.copy = true;
                op.recoverable = false;
                match kind {
                    Kind::CopyFinish => {
                        n.buf.push(Msg::CopyDone(op.id));
                        op.h = Handler::Ending;
                    }
                    _ => {
                        op.h = Handler::Reading;
                        op.phase = Phase::Read;
                    }
                }
            }
            Kind::Recover => {
                // `drain_abandoned`, the cancel confirmed.
                n.state = Ls::Exchange;
                op.id = 0;
                op.recoverable = false;
                if n.owed == 0 {
                    // A streamed batch ended with Flush: end its exchange.
                    let left = n.left;
                    self.sync(n, left);
                } else {
                    op.phase = Phase::Read;
                }
                n.discard = match self.flaw {
                    Flaw::RecoverReadsFirstOnly => n.owed.min(1),
                    _ => n.owed,
                };
            }
        }
        n.op = Some(op);
        Ok(())
    }

    /// The steps of an armed exchange: its next await, a drop there, a socket failure.
    fn op_steps(&self, s: &S, op: Op, out: &mut Vec<S>) -> Result<(), String> {
        match op.phase {
            Phase::Flush { then_pause } => {
                let mut n = s.clone();
                n.input.extend(n.buf.drain(..));
                match then_pause {
                    // `stream_prefetch`: `pause(true)`.
                    true => {
                        n.state = Ls::PortalPaused { prefetched: true };
                        n.left = op.id;
                        n.op = None;
                    }
                    false => {
                        n.op = Some(Op {
                            phase: Phase::Read,
                            ..op
                        })
                    }
                }
                out.push(n);
                // The write fails: `InFlight::fail` breaks the connection.
                let mut n = s.clone();
                Self::break_off(&mut n);
                out.push(n);
            }
            Phase::Read => {
                if !s.output.is_empty() {
                    let mut n = s.clone();
                    self.read(&mut n, op)?;
                    out.push(n);
                }
            }
        }
        // The caller's future is dropped here: `Drop for InFlight` → `Wire::abandon`.
        let mut n = s.clone();
        n.op = None;
        let whole_request_sent = n.buf.is_empty() || self.flaw == Flaw::AbandonUnflushed;
        match op.recoverable && whole_request_sent {
            true => {
                n.state = Ls::Abandoned;
                n.left = op.id;
                n.disowned |= 1 << op.id;
            }
            false => Self::break_off(&mut n),
        }
        out.push(n);
        Ok(())
    }

    /// `Wire::break_off`: final.
    fn break_off(n: &mut S) {
        n.state = Ls::Broken;
        n.op = None;
    }

    /// `InFlight::read`, one message: `dispatch` (or `discarding`), the handler, and what
    /// the call does when the reader returns.
    fn read(&self, n: &mut S, mut op: Op) -> Result<(), String> {
        let a = n.output.pop_front().expect("checked");
        if matches!(a, Ans::Ready(_)) {
            n.read_ready += 1;
        }
        let ended = if n.discard > 0 {
            // `InFlight::discarding`.
            if n.disowned & (1 << a.id()) == 0 {
                return Err(format!(
                    "{a:?} dropped as settled work, but exchange {} still waits for it",
                    a.id()
                ));
            }
            match a {
                Ans::Ready(_) => {
                    n.discard -= 1;
                    match self.flaw {
                        Flaw::DiscardedReadyNotPaid => None,
                        _ => self.ready(n)?,
                    }
                }
                Ans::CopyInResponse(_) => {
                    Self::break_off(n);
                    return Ok(());
                }
                _ => None,
            }
        } else {
            if a.id() != op.id {
                return Err(format!("exchange {} read {a:?}", op.id));
            }
            let flow = match a {
                Ans::Ready(_) => {
                    let ended = self.ready(n)?;
                    return self.after_read(n, op, ended);
                }
                Ans::Error(_) => match &mut op.h {
                    // `AnswerReader::error`.
                    Handler::Answer {
                        failed, need_sync, ..
                    } => {
                        *failed = true;
                        sync_once(need_sync)
                    }
                    _ => Flow::Continue,
                },
                Ans::Complete(_) => match &mut op.h {
                    Handler::Answer { need_sync, .. } => sync_once(need_sync),
                    _ => Flow::Continue,
                },
                Ans::Suspended(_) => match &mut op.h {
                    Handler::Answer {
                        streaming: true,
                        failed: false,
                        ..
                    } => Flow::Stop,
                    Handler::Answer { need_sync, .. } => sync_once(need_sync),
                    _ => Flow::Unexpected,
                },
                Ans::CopyInResponse(_) if op.copy => match op.h {
                    Handler::Starting => Flow::Stop,
                    _ => Flow::Unexpected,
                },
                Ans::CopyInResponse(_) => {
                    return Err("COPY FROM STDIN through a plain exchange (not modelled)".into());
                }
                Ans::CopyOutResponse(_) | Ans::CopyData(_) if !op.copy => Flow::Continue,
                Ans::CopyOutResponse(_) => match op.h {
                    Handler::Starting => Flow::Stop,
                    _ => Flow::Continue,
                },
                Ans::CopyData(_) => match op.h {
                    // A batch is full.
                    Handler::Reading => Flow::Stop,
                    Handler::Ending => Flow::Continue,
                    _ => Flow::Unexpected,
                },
            };
            match flow {
                Flow::Continue => None,
                Flow::Stop => Some(Ended::Stopped),
                Flow::Sync => {
                    self.sync(n, op.id);
                    None
                }
                // `InFlight::unexpected`.
                Flow::Unexpected => {
                    Self::break_off(n);
                    return Ok(());
                }
            }
        };
        self.after_read(n, op, ended)
    }

    /// `InFlight::ready`: one less owed; the exchange ends when none is.
    fn ready(&self, n: &mut S) -> Result<Option<Ended>, String> {
        n.owed = n
            .owed
            .checked_sub(1)
            .ok_or("a ReadyForQuery read with nothing owed")?;
        if n.owed > 0 {
            return Ok(None);
        }
        n.state = Ls::Ready;
        Ok(Some(Ended::Ready))
    }

    /// After one message: read on (flushing a Sync the reader wrote first), or the call
    /// goes on from what the reader returned.
    fn after_read(&self, n: &mut S, op: Op, ended: Option<Ended>) -> Result<(), String> {
        let Some(ended) = ended else {
            let phase = match n.buf.is_empty() {
                true => Phase::Read,
                false => Phase::Flush { then_pause: false },
            };
            n.op = Some(Op { phase, ..op });
            return Ok(());
        };
        n.op = None;
        match (op.kind, ended) {
            (Kind::Settle, Ended::Ready) if op.then_stream => {
                self.call(n, Kind::StreamStart, false)?
            }
            (_, Ended::Ready) => {}
            (Kind::StreamStart | Kind::StreamNext, Ended::Stopped) => {
                // `pause(false)`, then `stream_prefetch`: `resume`, Execute + Flush.
                n.left = op.id;
                n.buf.push(Msg::Execute(op.id, true));
                n.op = Some(Op {
                    phase: Phase::Flush { then_pause: true },
                    ..op
                });
            }
            (Kind::CopyStart(sql), Ended::Stopped) => {
                n.state = match sql {
                    Sql::CopyIn => Ls::CopyIn,
                    _ => Ls::CopyOut,
                };
                n.left = op.id;
            }
            (Kind::CopyRead, Ended::Stopped) => {
                n.state = Ls::CopyOut;
                n.left = op.id;
            }
            (kind, ended) => return Err(format!("{kind:?} returned {ended:?}")),
        }
        Ok(())
    }

    // ---- the checks ----

    /// The invariants of every state.
    fn check(&self, s: &S) -> Result<(), String> {
        let balance = i32::from(s.sent_owing) - i32::from(s.read_ready);
        if i32::from(s.owed) != balance {
            return Err(format!(
                "owed {} but {} written and {} read",
                s.owed, s.sent_owing, s.read_ready
            ));
        }
        if s.discard > s.owed {
            return Err(format!("{} to discard of {} owed", s.discard, s.owed));
        }
        if s.swallowed {
            return Err("a Sync reached a server in COPY IN mode and was swallowed".into());
        }
        if s.op.is_none() && s.state == Ls::Exchange {
            return Err("an exchange with no guard armed".into());
        }
        let quiet = s.buf.is_empty()
            && s.input.is_empty()
            && s.output.is_empty()
            && s.server == Server::Normal;
        if s.state == Ls::Ready && !quiet {
            return Err("Ready, but the wire still carries earlier work".into());
        }
        if let Some(op) = s.op
            && op.phase == Phase::Read
            && s.input.is_empty()
            && s.output.is_empty()
        {
            return Err(format!(
                "{:?} waits for an answer that never comes",
                op.kind
            ));
        }
        Ok(())
    }

    /// Explores every reachable state; returns how many, or the first violation with
    /// the path that led to it.
    fn explore(&self) -> Result<usize, String> {
        let start = self.initial();
        let mut seen = HashSet::from([start.clone()]);
        let mut queue = VecDeque::from([start]);
        while let Some(s) = queue.pop_front() {
            self.check(&s).map_err(|e| format!("{e} in {s:?}"))?;
            for n in self.successors(&s).map_err(|e| format!("{e} from {s:?}"))? {
                if seen.insert(n.clone()) {
                    queue.push_back(n);
                }
            }
        }
        Ok(seen.len())
    }
}

/// `AnswerReader::sync_once`.
fn sync_once(need_sync: &mut bool) -> Flow {
    match std::mem::take(need_sync) {
        true => Flow::Sync,
        false => Flow::Continue,
    }
}

/// The calls a caller can make with the wire in `state` (and no exchange armed): what
/// exists then (a paused stream, an open COPY, a pool's recovery) and any new exchange
/// (`begin` decides whether it may run).
fn calls_in(state: Ls) -> Vec<Kind> {
    let new = [
        Kind::Simple,
        Kind::Extended,
        Kind::StreamStart,
        Kind::CopyStart(Sql::CopyIn),
        Kind::CopyStart(Sql::CopyOut),
    ];
    match state {
        Ls::Ready => new.to_vec(),
        Ls::PortalPaused { .. } => [Kind::StreamNext, Kind::Settle]
            .into_iter()
            .chain(new)
            .collect(),
        Ls::CopyIn => [Kind::CopyFinish, Kind::Settle]
            .into_iter()
            .chain(new)
            .collect(),
        Ls::CopyOut => [Kind::CopyRead, Kind::Settle]
            .into_iter()
            .chain(new)
            .collect(),
        Ls::Abandoned => vec![Kind::Recover, Kind::Simple],
        Ls::Broken => vec![Kind::Simple],
        Ls::Exchange => Vec::new(),
    }
}

/// Eight calls deep (`LEDGER_CALLS` sets another bound): every mix of calls, each
/// dropped at any await, against every answer the server may give.
#[test]
fn every_interleaving_of_calls_drops_and_answers_keeps_the_ledger_exact() {
    let calls = std::env::var("LEDGER_CALLS").map_or(8, |v| v.parse().expect("a number"));
    let model = Model {
        calls,
        flaw: Flaw::None,
    };
    let states = model.explore().unwrap_or_else(|e| panic!("{e}"));
    println!("{states} states, every invariant held");
    assert!(states > 10_000, "{states}");
}

/// Each flaw is found within three calls.
#[test]
fn the_ledger_check_finds_each_rule_broken_on_purpose() {
    let flaws = [
        Flaw::ForgetOweOnSync,
        Flaw::DiscardedReadyNotPaid,
        Flaw::BeginPausedWithoutSettle,
        Flaw::LeftCopyWithoutCopyFail,
        Flaw::RecoverReadsFirstOnly,
        Flaw::AbandonUnflushed,
        Flaw::BeginOnAbandoned,
        Flaw::StreamWithoutSettle,
    ];
    for flaw in flaws {
        let model = Model { calls: 3, flaw };
        let found = model.explore();
        println!("{flaw:?}: {found:?}");
        assert!(found.is_err(), "{flaw:?} went unnoticed");
    }
}
