//! The no-lost-commits check that fault tests share: every write carries an id made by
//! the client, the driver's answer to it is recorded, and afterwards the server's table
//! must agree with every answer the driver gave.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use pgkeel::{Error, ErrorKind};

use crate::{Cluster, TestDb, TestkitError};

/// What the driver said about one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The driver said it committed: the id must be in the table.
    Committed,
    /// The driver said it failed: the id must not be in the table.
    Failed,
    /// The driver said it cannot know ([`ErrorKind::CommitOutcomeUnknown`]): either is
    /// allowed, and the ids are counted.
    Unknown,
}

impl WriteOutcome {
    /// Classifies a driver result: `Ok` is committed, a commit-outcome-unknown error is
    /// unknown, any other error is failed.
    pub fn of<T>(result: &Result<T, Error>) -> WriteOutcome {
        match result {
            Ok(_) => WriteOutcome::Committed,
            Err(e) if e.kind() == ErrorKind::CommitOutcomeUnknown => WriteOutcome::Unknown,
            Err(_) => WriteOutcome::Failed,
        }
    }
}

/// A table of ids and the driver's answer for each id written to it.
///
/// Make each write in an explicit transaction (`BEGIN`, [`WriteLedger::insert_sql`],
/// `COMMIT`): then an error before `COMMIT` was sent means the write cannot have
/// happened, and pgkeel reports a connection lost during `COMMIT` as
/// [`ErrorKind::CommitOutcomeUnknown`].
#[derive(Debug)]
pub struct WriteLedger {
    table: String,
    next: AtomicI64,
    outcomes: Mutex<Vec<(i64, WriteOutcome)>>,
}

/// The ledger against the server's table.
#[derive(Debug, Clone, Default)]
pub struct LedgerReport {
    /// Writes the driver said were committed.
    pub committed: usize,
    /// Writes the driver said failed.
    pub failed: usize,
    /// Writes whose outcome the driver said it could not know.
    pub unknown: usize,
    /// Of the unknown ones, how many had committed.
    pub unknown_committed: usize,
    /// Each disagreement: a committed id missing, a failed id present, an id the
    /// driver never wrote, or an id present twice.
    pub violations: Vec<String>,
}

impl LedgerReport {
    /// Panics with every violation when there is any.
    pub fn assert_clean(&self) {
        assert!(
            self.violations.is_empty(),
            "{} ledger violations (committed {}, failed {}, unknown {}): {:?}",
            self.violations.len(),
            self.committed,
            self.failed,
            self.unknown,
            self.violations
        );
    }
}

impl WriteLedger {
    /// Creates the ledger's table `table` (a fresh one) in `db`.
    ///
    /// # Errors
    /// When the table cannot be created.
    pub fn create(db: &TestDb, table: &str) -> Result<WriteLedger, TestkitError> {
        Self::create_on(db.cluster(), db.name(), table)
    }

    /// Creates the ledger's table `table` (a fresh one) in database `dbname` of `cluster`.
    ///
    /// # Errors
    /// When the table cannot be created.
    pub fn create_on(
        cluster: &Cluster,
        dbname: &str,
        table: &str,
    ) -> Result<WriteLedger, TestkitError> {
        cluster.psql(dbname, &format!(
            "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int8 NOT NULL, at timestamptz DEFAULT now())"
        ))?;
        Ok(WriteLedger {
            table: table.to_owned(),
            next: AtomicI64::new(1),
            outcomes: Mutex::new(Vec::new()),
        })
    }

    /// The SQL that writes one id: `INSERT INTO <table> (id) VALUES ($1)`, with the id
    /// as an `int8` parameter.
    pub fn insert_sql(&self) -> String {
        format!("INSERT INTO {} (id) VALUES ($1)", self.table)
    }

    /// A fresh id for the next write.
    pub fn next_id(&self) -> i64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Records the driver's answer for `id` and returns how it was classified.
    pub fn record<T>(&self, id: i64, result: &Result<T, Error>) -> WriteOutcome {
        let outcome = WriteOutcome::of(result);
        self.outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, outcome));
        outcome
    }

    /// Records an outcome known without a driver result: a transaction dropped before
    /// its COMMIT was sent is [`WriteOutcome::Failed`] (rolled back; the id must be absent).
    pub fn record_outcome(&self, id: i64, outcome: WriteOutcome) {
        self.outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, outcome));
    }

    /// Records a write whose future was dropped before the driver answered (a timeout
    /// around it): its fate is unknown, and it is counted with the unknown ones.
    pub fn record_dropped(&self, id: i64) {
        self.outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, WriteOutcome::Unknown));
    }

    /// Compares every recorded answer with the table (read with `psql`, not the driver).
    ///
    /// # Errors
    /// When the table cannot be read.
    pub fn check(&self, db: &TestDb) -> Result<LedgerReport, TestkitError> {
        self.check_on(db.cluster(), db.name())
    }

    /// As [`WriteLedger::check`], for a table in database `dbname` of `cluster`.
    ///
    /// # Errors
    /// When the table cannot be read.
    pub fn check_on(&self, cluster: &Cluster, dbname: &str) -> Result<LedgerReport, TestkitError> {
        let out = cluster.psql(dbname, &format!("SELECT id FROM {}", self.table))?;
        let mut present = HashSet::new();
        let mut report = LedgerReport::default();
        for line in out.lines().filter(|l| !l.is_empty()) {
            let id: i64 = line.trim().parse().unwrap_or(i64::MIN);
            if !present.insert(id) {
                report.violations.push(format!("id {id} written twice"));
            }
        }
        let outcomes = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        let mut known = HashSet::new();
        for &(id, outcome) in outcomes.iter() {
            known.insert(id);
            let there = present.contains(&id);
            match outcome {
                WriteOutcome::Committed => report.committed += 1,
                WriteOutcome::Failed => report.failed += 1,
                WriteOutcome::Unknown => {
                    report.unknown += 1;
                    report.unknown_committed += usize::from(there);
                }
            }
            match (outcome, there) {
                (WriteOutcome::Committed, false) => report.violations.push(format!(
                    "id {id}: acknowledged as committed, not in the table"
                )),
                (WriteOutcome::Failed, true) => report
                    .violations
                    .push(format!("id {id}: reported as failed, yet in the table")),
                _ => {}
            }
        }
        for id in present.difference(&known) {
            report
                .violations
                .push(format!("id {id}: in the table, never answered"));
        }
        Ok(report)
    }
}
