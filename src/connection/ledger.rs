//! The ledger: what the wire owes, in one place.
//!
//! Every connection's protocol state is one [`State`] plus a count of owed
//! ReadyForQuery messages. The count goes up whenever a Sync or a simple Query enters
//! the write buffer and down at each ReadyForQuery read, so "nothing is owed" is a fact
//! the code can check rather than a guess from flags: recovery, portal settling and
//! cleanup all read until the count is back to zero.
//!
//! Reference: PostgreSQL manual, "Message Flow" (Extended Query: the server answers each
//! Sync with exactly one ReadyForQuery, and after an error skips to the next Sync).

use std::sync::Arc;

use crate::statement::Column;

/// The protocol state of one session.
#[derive(Debug, Clone, Default)]
pub(crate) enum State {
    /// Nothing is owed; the last message read was a ReadyForQuery.
    #[default]
    Ready,
    /// An exchange is under way; an armed [`super::inflight::InFlight`] owns it.
    Exchange,
    /// A row stream stopped between batches: its portal is open and no Sync was sent.
    /// With `prefetched`, an Execute for the next batch is outstanding.
    PortalPaused {
        prefetched: bool,
        columns: Arc<[Column]>,
    },
    /// The caller dropped an exchange whose whole request had gone out; its answer is
    /// still owed and is read (and dropped) by recovery. Calls fail as broken until then.
    Abandoned,
    /// Requests of several tasks were written through the pipeline (see
    /// [`super::pipeline`]) and their answers are owed; an exclusive exchange reads them
    /// all first.
    Pipelined,
    /// The session cannot carry another exchange. Final.
    Broken,
    /// A COPY FROM STDIN (sent as a simple Query) is in copy-in mode between the
    /// caller's writes; its ReadyForQuery is owed. The next exchange ends it with
    /// CopyFail first, so nothing of it is committed.
    CopyIn,
    /// A COPY TO STDOUT is sending data the caller reads between calls; its
    /// ReadyForQuery is owed. The next exchange reads and drops the rest first.
    CopyOut,
}

/// What the wire owes: the state and the ReadyForQuery count.
#[derive(Debug, Default, Clone)]
pub(crate) struct Ledger {
    pub(crate) state: State,
    /// ReadyForQuery messages still to be read.
    pub(crate) owed: u32,
    /// Of those, how many end work nobody waits for any more (a paused portal being
    /// settled): every message before them is read and dropped.
    pub(crate) discard: u32,
}

impl Ledger {
    /// Whether the wire is in a state where a new exchange can begin (possibly after
    /// settling a paused portal).
    pub(crate) fn can_begin(&self) -> bool {
        matches!(
            self.state,
            State::Ready | State::PortalPaused { .. } | State::CopyIn | State::CopyOut
        )
    }

    /// Whether a COPY was left between the caller's calls and must be ended before the
    /// wire is idle.
    pub(crate) fn is_copying(&self) -> bool {
        matches!(self.state, State::CopyIn | State::CopyOut)
    }

    /// Whether an open portal must be settled before the wire is idle.
    pub(crate) fn is_paused(&self) -> bool {
        matches!(self.state, State::PortalPaused { .. })
    }

    /// A Sync or Query went into the write buffer.
    pub(crate) fn owe(&mut self) {
        self.owed += 1;
    }

    /// A ReadyForQuery was read; returns false if none was owed (a protocol violation).
    pub(crate) fn paid(&mut self) -> bool {
        match self.owed.checked_sub(1) {
            Some(n) => {
                self.owed = n;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owed_counts_up_and_down() {
        let mut l = Ledger::default();
        assert!(l.can_begin());
        l.owe();
        l.owe();
        assert!(l.paid());
        assert!(l.paid());
        assert!(!l.paid(), "a ReadyForQuery nobody asked for is a violation");
        assert_eq!(l.owed, 0);
    }

    #[test]
    fn only_ready_or_paused_can_begin() {
        let mut l = Ledger::default();
        for (state, ok) in [
            (State::Exchange, false),
            (State::Abandoned, false),
            (State::Broken, false),
            (
                State::PortalPaused {
                    prefetched: true,
                    columns: Arc::from(Vec::new()),
                },
                true,
            ),
            (State::CopyIn, true),
            (State::CopyOut, true),
        ] {
            l.state = state;
            assert_eq!(l.can_begin(), ok, "{:?}", l.state);
        }
    }
}
