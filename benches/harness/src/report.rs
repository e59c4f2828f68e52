//! The one table: every figure as median (range), pgkeel's ratios, and the targets of
//! issue 5 marked met or missed.

use std::fmt::Write;

use crate::measure::summary;

/// The drivers compared, in the order every workload alternates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Pgkeel,
    TokioPostgres,
    Sqlx,
}

impl Driver {
    pub const ALL: [Driver; 3] = [Driver::Pgkeel, Driver::TokioPostgres, Driver::Sqlx];

    pub fn name(self) -> &'static str {
        match self {
            Driver::Pgkeel => "pgkeel",
            Driver::TokioPostgres => "tokio-postgres",
            Driver::Sqlx => "sqlx",
        }
    }

    pub fn parse(s: &str) -> Option<Driver> {
        Driver::ALL.into_iter().find(|d| d.name() == s)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Which way is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// One driver's figure: the values of its repetitions, a text such as "n/a", or nothing.
#[derive(Debug, Clone, Default)]
pub enum Cell {
    Values(Vec<f64>),
    Text(String),
    #[default]
    Empty,
}

impl Cell {
    fn median(&self) -> Option<f64> {
        match self {
            Cell::Values(v) if !v.is_empty() => Some(summary(v).0),
            _ => None,
        }
    }

    fn render(&self) -> String {
        match self {
            Cell::Values(v) if v.is_empty() => "—".into(),
            Cell::Values(v) if v.len() == 1 => num(v[0]),
            Cell::Values(v) => {
                let (median, min, max) = summary(v);
                format!("{} ({}–{})", num(median), num(min), num(max))
            }
            Cell::Text(t) => t.clone(),
            Cell::Empty => "".into(),
        }
    }
}

/// A target of the issue, checked on pgkeel's median.
#[derive(Debug, Clone)]
pub enum Check {
    /// pgkeel ÷ peer at least this.
    AtLeast(Driver, f64),
    /// pgkeel ÷ peer at most this.
    AtMost(Driver, f64),
    /// pgkeel better than the peer in the figure's direction.
    Beats(Driver),
    /// pgkeel's median below this.
    Below(f64, &'static str),
    /// pgkeel's figure zero in every repetition.
    Zero,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Line {
    pub workload: &'static str,
    pub metric: String,
    pub better: Option<Better>,
    pub cells: [Cell; 3],
    pub reference: Cell,
    pub checks: Vec<Check>,
}

impl Line {
    pub fn new(workload: &'static str, metric: &str, better: Option<Better>) -> Line {
        Line {
            workload,
            metric: metric.to_string(),
            better,
            cells: Default::default(),
            reference: Cell::Empty,
            checks: Vec::new(),
        }
    }

    pub fn set(mut self, driver: Driver, cell: Cell) -> Line {
        self.cells[driver.index()] = cell;
        self
    }

    /// Sets pgkeel's, tokio-postgres's and sqlx's measurements, in that order.
    pub fn drivers(self, [pgkeel, tokio_postgres, sqlx]: [Vec<f64>; 3]) -> Line {
        self.set(Driver::Pgkeel, Cell::Values(pgkeel))
            .set(Driver::TokioPostgres, Cell::Values(tokio_postgres))
            .set(Driver::Sqlx, Cell::Values(sqlx))
    }

    pub fn check(mut self, check: Check) -> Line {
        self.checks.push(check);
        self
    }

    pub fn reference(mut self, cell: Cell) -> Line {
        self.reference = cell;
        self
    }

    fn ratio(&self, peer: Driver) -> Option<f64> {
        let ours = self.cells[0].median()?;
        let theirs = self.cells[peer.index()].median()?;
        (theirs != 0.0).then(|| ours / theirs)
    }

    fn verdict(&self, check: &Check) -> String {
        let met = |ok: bool| if ok { "**met**" } else { "**missed**" };
        let pgkeel = &self.cells[0];
        match check {
            Check::AtLeast(peer, want) => match self.ratio(*peer) {
                Some(r) => format!("≥ {want}× {}: {}", peer.name(), met(r >= *want)),
                None => format!("≥ {want}× {}: **missed** (no figure)", peer.name()),
            },
            Check::AtMost(peer, want) => match self.ratio(*peer) {
                Some(r) => format!("≤ {want}× {}: {}", peer.name(), met(r <= *want)),
                None => format!("≤ {want}× {}: **missed** (no figure)", peer.name()),
            },
            Check::Beats(peer) => {
                let ok = match (self.ratio(*peer), self.better) {
                    (Some(r), Some(Better::Higher)) => r > 1.0,
                    (Some(r), Some(Better::Lower)) => r < 1.0,
                    _ => false,
                };
                let word = match self.better {
                    Some(Better::Lower) => "below",
                    _ => "above",
                };
                format!("{word} {}: {}", peer.name(), met(ok))
            }
            Check::Below(limit, unit) => match pgkeel.median() {
                Some(m) => format!("< {} {unit}: {}", num(*limit), met(m < *limit)),
                None => format!("< {} {unit}: **missed** (no figure)", num(*limit)),
            },
            Check::Zero => match pgkeel {
                Cell::Values(v) if !v.is_empty() => {
                    format!("0: {}", met(v.iter().all(|x| *x == 0.0)))
                }
                _ => "0: **missed** (no figure)".into(),
            },
        }
    }

    fn ratio_cell(&self, peer: Driver) -> String {
        match self.ratio(peer) {
            Some(r) => format!("{r:.2}×"),
            None => String::new(),
        }
    }
}

/// Every row, plus notes printed under the table.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<Line>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn push(&mut self, line: Line) {
        self.lines.push(line);
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The markdown table and its notes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "| workload | metric | pgkeel | tokio-postgres ¹ | sqlx | reference ² | pgkeel ÷ tokio-postgres | pgkeel ÷ sqlx | target (issue 5) |\n",
        );
        out.push_str("|---|---|--:|--:|--:|--:|--:|--:|---|\n");
        for line in &self.lines {
            let arrow = match line.better {
                Some(Better::Higher) => " ↑",
                Some(Better::Lower) => " ↓",
                None => "",
            };
            let targets: Vec<String> = line.checks.iter().map(|c| line.verdict(c)).collect();
            let _ = writeln!(
                out,
                "| {} | {}{} | {} | {} | {} | {} | {} | {} | {} |",
                line.workload,
                line.metric,
                arrow,
                line.cells[0].render(),
                line.cells[1].render(),
                line.cells[2].render(),
                line.reference.render(),
                line.ratio_cell(Driver::TokioPostgres),
                line.ratio_cell(Driver::Sqlx),
                targets.join("; "),
            );
        }
        out.push_str("\nFigures are median (min–max) over the repetitions; ↑ higher is better, ↓ lower is better.\n");
        out.push_str("¹ with deadpool-postgres as the pool in the pooled workloads (point select, storm, acquire).\n");
        out.push_str("² pgbench (workload 6), or the server's floor: a raw-protocol client that discards the answers.\n");
        for note in &self.notes {
            let _ = writeln!(out, "- {note}");
        }
        out
    }
}

/// A figure with about three significant digits and thousands separators.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        let n = v.round() as i64;
        let digits = n.unsigned_abs().to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if n < 0 {
            grouped.insert(0, '-');
        }
        grouped
    } else if a >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_three_digits_and_separators() {
        assert_eq!(num(1_234_567.4), "1,234,567");
        assert_eq!(num(123.4), "123");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(-4321.0), "-4,321");
    }

    #[test]
    fn checks_use_the_median_ratio() {
        let line = Line::new("w", "q/s", Some(Better::Higher))
            .set(Driver::Pgkeel, Cell::Values(vec![120.0, 110.0, 130.0]))
            .set(Driver::TokioPostgres, Cell::Values(vec![100.0, 90.0, 95.0]))
            .check(Check::AtLeast(Driver::TokioPostgres, 1.15))
            .check(Check::Beats(Driver::TokioPostgres));
        assert_eq!(line.ratio_cell(Driver::TokioPostgres), "1.26×");
        assert!(line.verdict(&line.checks[0]).contains("**met**"));
        assert!(line.verdict(&line.checks[1]).contains("**met**"));
        assert!(line.render_row_for_test().contains("120 (110–130)"));
    }

    impl Line {
        fn render_row_for_test(&self) -> String {
            let mut r = Report::default();
            r.push(self.clone());
            r.render()
        }
    }
}
