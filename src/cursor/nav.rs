//! Where a cursor stands, with no I/O: the caller's position, the server cursor's
//! position, the row count once known, and a window of rows already fetched.
//!
//! Positions follow PostgreSQL's: 0 is before the first row, `n + 1` after the last of
//! `n`. The caller's position lives here only; the server's cursor is moved just to fetch
//! the rows around it, and every command's count (`FETCH n`, `MOVE n`) says exactly where
//! the server cursor went, so both positions stay exact without extra round trips.

use crate::error::{Error, ErrorKind};

/// One FETCH or MOVE the cursor sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `MOVE FORWARD k`.
    MoveForward(u64),
    /// `MOVE ABSOLUTE x` (only ever backward to a row that exists, or to 0).
    MoveAbsolute(u64),
    /// `MOVE FORWARD ALL`: learns the row count.
    MoveAll,
    /// `FETCH FORWARD k`.
    FetchForward(u64),
    /// `FETCH ABSOLUTE -k`, sent right after `MoveAll`.
    FetchFromEnd(u64),
}

impl Op {
    /// The command's SQL for the cursor `name`.
    pub(crate) fn sql(self, name: &str) -> String {
        match self {
            Op::MoveForward(k) => format!("MOVE FORWARD {k} FROM {name}"),
            Op::MoveAbsolute(x) => format!("MOVE ABSOLUTE {x} FROM {name}"),
            Op::MoveAll => format!("MOVE FORWARD ALL FROM {name}"),
            Op::FetchForward(k) => format!("FETCH FORWARD {k} FROM {name}"),
            Op::FetchFromEnd(k) => format!("FETCH ABSOLUTE -{k} FROM {name}"),
        }
    }

    /// Whether the command returns rows.
    pub(crate) fn fetches(self) -> bool {
        matches!(self, Op::FetchForward(_) | Op::FetchFromEnd(_))
    }
}

/// Which rows around a target position a fetch brings into the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Span {
    /// The target row only (a jump).
    One,
    /// The target and up to `batch - 1` rows after it (moving forward).
    Ahead,
    /// The target and up to `batch - 1` rows before it (moving backward).
    Behind,
}

/// The cursor's state; `R` is a row.
#[derive(Debug)]
pub(crate) struct Nav<R> {
    /// The caller's position.
    pos: u64,
    /// The server cursor's position.
    server: u64,
    /// The number of rows, once known. Invariant: `server == n + 1` only if known.
    total: Option<u64>,
    /// Rows fetched last, the first at position `start`.
    window: Vec<R>,
    start: u64,
    batch: u64,
    scroll: bool,
}

/// FETCH and MOVE take a 32-bit count.
const MAX_COUNT: u64 = i32::MAX as u64;

impl<R: Clone> Nav<R> {
    pub(crate) fn new(batch: u64, scroll: bool) -> Nav<R> {
        Nav {
            pos: 0,
            server: 0,
            total: None,
            window: Vec::new(),
            start: 1,
            batch: batch.clamp(1, MAX_COUNT),
            scroll,
        }
    }

    /// The caller's position (0: before the first row; `n + 1`: after the last).
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// The number of rows, once a move has reached the end.
    pub(crate) fn total(&self) -> Option<u64> {
        self.total
    }

    /// The target of a relative move of `by` rows.
    pub(crate) fn relative(&self, by: i64) -> i64 {
        i64::try_from(self.pos)
            .unwrap_or(i64::MAX)
            .saturating_add(by)
    }

    /// The position `absolute(n)` names when `n` counts from the end (`n < 0`), if the
    /// row count is known.
    pub(crate) fn counted_from_end(&self, n: i64) -> Option<i64> {
        let total = i64::try_from(self.total?).unwrap_or(i64::MAX);
        Some(total.saturating_add(1).saturating_add(n))
    }

    /// Moves to `t` without the server if it can: before the first row, past a known
    /// last row, or onto a row in the window. `Some(row)` when done (`None` inside: no
    /// row there); `None` when the server must fetch.
    pub(crate) fn settle(&mut self, t: i64) -> Option<Option<R>> {
        let Ok(t) = u64::try_from(t) else {
            self.pos = 0;
            return Some(None);
        };
        if t == 0 {
            self.pos = 0;
            return Some(None);
        }
        if let Some(n) = self.total
            && t > n
        {
            self.pos = n + 1;
            return Some(None);
        }
        let at = t.checked_sub(self.start)?;
        let row = self.window.get(usize::try_from(at).ok()?)?.clone();
        self.pos = t;
        Some(Some(row))
    }

    /// The commands that bring row `t` (a position of a row, maybe past the end) into
    /// the window with `span` around it.
    ///
    /// # Errors
    /// [`ErrorKind::Misuse`] for a backward move of a cursor declared without scroll, or
    /// a position past what FETCH can address (2³¹ − 1).
    pub(crate) fn plan(&self, t: u64, span: Span) -> Result<Vec<Op>, Error> {
        let (first, count) = match span {
            Span::One => (t, 1),
            Span::Ahead => (t, self.batch),
            Span::Behind => {
                let first = t.saturating_sub(self.batch - 1).max(1);
                (first, t - first + 1)
            }
        };
        let to = first - 1;
        if to > MAX_COUNT {
            let msg = format!("cursor position {t} is past what FETCH can address (2^31 - 1)");
            return Err(Error::new(ErrorKind::Misuse, msg));
        }
        let mut ops = Vec::with_capacity(2);
        if to > self.server {
            ops.push(Op::MoveForward(to - self.server));
        } else if to < self.server {
            self.check_scroll()?;
            ops.push(Op::MoveAbsolute(to));
        }
        ops.push(Op::FetchForward(count));
        Ok(ops)
    }

    /// The commands for `absolute(n)` with `n < 0` while the row count is unknown.
    ///
    /// # Errors
    /// [`ErrorKind::Misuse`] for a cursor declared without scroll.
    pub(crate) fn plan_from_end(&self, n: i64) -> Result<Vec<Op>, Error> {
        self.check_scroll()?;
        Ok(vec![Op::MoveAll, Op::FetchFromEnd(n.unsigned_abs())])
    }

    fn check_scroll(&self) -> Result<(), Error> {
        match self.scroll {
            true => Ok(()),
            false => Err(Error::new(
                ErrorKind::Misuse,
                "this move goes backward, and the cursor was declared without scroll \
                 (CursorOptions::scroll(true) allows it)",
            )),
        }
    }

    /// Takes what the server answered to `ops`: each command's count and rows.
    pub(crate) fn apply(&mut self, ops: &[Op], answers: Vec<(u64, Vec<R>)>) {
        for (op, (count, rows)) in ops.iter().zip(answers) {
            match *op {
                Op::MoveForward(k) => self.forward(k, count),
                Op::MoveAbsolute(x) => self.server = x,
                Op::MoveAll => {
                    let n = self.total.unwrap_or(self.server + count);
                    self.total = Some(n);
                    self.server = n + 1;
                }
                Op::FetchForward(k) => {
                    let start = self.server + 1;
                    self.forward(k, rows.len() as u64);
                    // Nothing fetched (past the end): the rows before stay at hand.
                    if !rows.is_empty() {
                        (self.start, self.window) = (start, rows);
                    }
                }
                Op::FetchFromEnd(_) if rows.is_empty() => self.server = 0,
                Op::FetchFromEnd(k) => {
                    let n = self.total.unwrap_or(0);
                    self.server = n + 1 - k;
                    (self.start, self.window) = (self.server, rows);
                }
            }
        }
    }

    /// The server moved forward over `moved` of the `asked` rows; fewer means it ran
    /// off the end, which tells the row count.
    fn forward(&mut self, asked: u64, moved: u64) {
        if moved < asked {
            let n = self.total.unwrap_or(self.server + moved);
            self.total = Some(n);
            self.server = n + 1;
        } else {
            self.server += asked;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server cursor over rows 1..=n, answering ops as PostgreSQL does.
    struct Server {
        n: u64,
        at: u64,
    }

    impl Server {
        fn run(&mut self, op: Op) -> (u64, Vec<u64>) {
            match op {
                Op::MoveForward(k) | Op::FetchForward(k) => {
                    let rows: Vec<u64> = (self.at + 1..=self.n).take(k as usize).collect();
                    self.at = match (rows.len() as u64) < k {
                        true => self.n + 1,
                        false => self.at + k,
                    };
                    let count = rows.len() as u64;
                    (count, if op.fetches() { rows } else { vec![] })
                }
                Op::MoveAbsolute(x) => {
                    self.at = x.min(self.n + 1);
                    (u64::from(x >= 1 && x <= self.n), vec![])
                }
                Op::MoveAll => {
                    let c = (self.n + 1).saturating_sub(self.at + 1);
                    self.at = self.n + 1;
                    (c, vec![])
                }
                Op::FetchFromEnd(k) if k <= self.n => {
                    self.at = self.n + 1 - k;
                    (1, vec![self.at])
                }
                Op::FetchFromEnd(_) => {
                    self.at = 0;
                    (0, vec![])
                }
            }
        }
    }

    /// Moves to `t` as the cursor does; returns the row and how many round trips it took.
    fn go(nav: &mut Nav<u64>, s: &mut Server, t: i64, span: Span) -> (Option<u64>, u32) {
        if let Some(row) = nav.settle(t) {
            return (row, 0);
        }
        let ops = nav.plan(t as u64, span).unwrap();
        let answers = ops.iter().map(|&op| s.run(op)).collect();
        nav.apply(&ops, answers);
        assert_eq!(nav.server, s.at, "server position tracked after {ops:?}");
        (nav.settle(t).expect("settled after a fetch"), 1)
    }

    fn last(nav: &mut Nav<u64>, s: &mut Server) -> Option<u64> {
        let ops = nav.plan_from_end(-1).unwrap();
        let answers = ops.iter().map(|&op| s.run(op)).collect();
        nav.apply(&ops, answers);
        let t = nav.counted_from_end(-1).unwrap();
        nav.settle(t).unwrap()
    }

    #[test]
    fn forward_reads_in_batches_and_ends_after_the_last_row() {
        let (mut nav, mut s) = (Nav::new(100, true), Server { n: 250, at: 0 });
        let mut trips = 0;
        for want in 1..=250 {
            let t = nav.relative(1);
            let (row, n) = go(&mut nav, &mut s, t, Span::Ahead);
            assert_eq!(row, Some(want));
            trips += n;
        }
        assert_eq!(trips, 3);
        let t = nav.relative(1);
        assert_eq!(go(&mut nav, &mut s, t, Span::Ahead).0, None);
        assert_eq!((nav.position(), nav.total()), (251, Some(250)));
    }

    #[test]
    fn jumps_track_positions_at_both_ends() {
        let (mut nav, mut s) = (Nav::new(10, true), Server { n: 10_000, at: 0 });
        assert_eq!(go(&mut nav, &mut s, 1, Span::One).0, Some(1));
        assert_eq!(go(&mut nav, &mut s, 10_000, Span::One).0, Some(10_000));
        assert_eq!(go(&mut nav, &mut s, 5_000, Span::One).0, Some(5_000));
        assert_eq!(nav.total(), None);
        assert_eq!(last(&mut nav, &mut s), Some(10_000));
        assert_eq!((nav.position(), nav.total()), (10_000, Some(10_000)));
        assert_eq!(go(&mut nav, &mut s, 10_001, Span::One).0, None);
        assert_eq!(nav.position(), 10_001);
        let t = nav.relative(-1);
        assert_eq!(go(&mut nav, &mut s, t, Span::Behind).0, Some(10_000));
        assert_eq!(go(&mut nav, &mut s, -3, Span::One).0, None);
        assert_eq!(nav.position(), 0);
    }

    #[test]
    fn a_jump_past_the_end_learns_the_count() {
        let (mut nav, mut s) = (Nav::new(10, true), Server { n: 30, at: 0 });
        assert_eq!(go(&mut nav, &mut s, 50, Span::One).0, None);
        assert_eq!((nav.position(), nav.total()), (31, Some(30)));
        let t = nav.relative(-1);
        assert_eq!(go(&mut nav, &mut s, t, Span::Behind), (Some(30), 1));
        let t = nav.relative(-1);
        assert_eq!(go(&mut nav, &mut s, t, Span::Behind), (Some(29), 0));
    }

    #[test]
    fn last_of_an_empty_result_is_before_the_first_row() {
        let (mut nav, mut s) = (Nav::new(10, true), Server { n: 0, at: 0 });
        assert_eq!(last(&mut nav, &mut s), None);
        assert_eq!((nav.position(), nav.total()), (0, Some(0)));
    }

    #[test]
    fn a_cursor_without_scroll_refuses_to_go_back_to_the_server() {
        let (mut nav, mut s) = (Nav::new(2, false), Server { n: 10, at: 0 });
        assert_eq!(go(&mut nav, &mut s, 5, Span::Ahead).0, Some(5));
        assert_eq!(go(&mut nav, &mut s, 6, Span::Ahead), (Some(6), 0));
        let err = nav.plan(1, Span::One).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Misuse);
        assert!(nav.plan_from_end(-1).is_err());
    }
}
