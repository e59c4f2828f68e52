//! The per-connection prepared-statement cache: a bounded LRU keyed by SQL text and the
//! parameter types the client named.
//!
//! Lookups borrow the SQL text (no allocation on a hit). An evicted statement's name is
//! handed back so the next exchange can Close it on the server.

use std::collections::HashMap;

use crate::statement::Statement;
use crate::types::Oid;

#[derive(Debug)]
struct Entry {
    param_types: Vec<Oid>,
    statement: Statement,
    last_used: u64,
}

/// Statements prepared by `query`/`execute` with SQL text, reused across calls.
#[derive(Debug)]
pub(crate) struct StatementCache {
    capacity: usize,
    len: usize,
    clock: u64,
    by_sql: HashMap<String, Vec<Entry>>,
}

impl StatementCache {
    pub(crate) fn new(capacity: usize) -> StatementCache {
        StatementCache {
            capacity,
            len: 0,
            clock: 0,
            by_sql: HashMap::new(),
        }
    }

    /// Whether statements are cached at all (capacity 0 turns the cache off).
    pub(crate) fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The number of cached statements.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The cached statement for `sql` with these parameter types, marked as just used.
    pub(crate) fn get(&mut self, sql: &str, param_types: &[Oid]) -> Option<Statement> {
        self.clock += 1;
        let entries = self.by_sql.get_mut(sql)?;
        let entry = entries.iter_mut().find(|e| e.param_types == param_types)?;
        entry.last_used = self.clock;
        Some(entry.statement.clone())
    }

    /// Caches a statement; returns the server name of the one evicted to make room.
    pub(crate) fn insert(
        &mut self,
        sql: &str,
        param_types: Vec<Oid>,
        statement: Statement,
    ) -> Option<String> {
        if !self.enabled() {
            return None;
        }
        let evicted = match self.len >= self.capacity {
            true => self.evict_oldest(),
            false => None,
        };
        self.clock += 1;
        let entry = Entry {
            param_types,
            statement,
            last_used: self.clock,
        };
        self.by_sql.entry(sql.to_owned()).or_default().push(entry);
        self.len += 1;
        evicted
    }

    /// Forgets every statement, for after the server dropped them (`DISCARD ALL`).
    pub(crate) fn clear(&mut self) {
        self.by_sql.clear();
        self.len = 0;
    }

    /// Forgets the statement for `sql` and these types (after the server rejected it);
    /// returns its server name.
    pub(crate) fn remove(&mut self, sql: &str, param_types: &[Oid]) -> Option<String> {
        let entries = self.by_sql.get_mut(sql)?;
        let at = entries.iter().position(|e| e.param_types == param_types)?;
        let entry = entries.swap_remove(at);
        if entries.is_empty() {
            self.by_sql.remove(sql);
        }
        self.len -= 1;
        Some(entry.statement.name().to_owned())
    }

    /// Forgets the statement with this server name; returns the name if it was cached.
    pub(crate) fn remove_statement(&mut self, name: &str) -> Option<String> {
        let (sql, types) = self
            .by_sql
            .iter()
            .flat_map(|(sql, es)| es.iter().map(move |e| (sql, e)))
            .find(|(_, e)| e.statement.name() == name)
            .map(|(sql, e)| (sql.clone(), e.param_types.clone()))?;
        self.remove(&sql, &types)
    }

    fn evict_oldest(&mut self) -> Option<String> {
        let (sql, types) = self
            .by_sql
            .iter()
            .flat_map(|(sql, es)| es.iter().map(move |e| (sql, e)))
            .min_by_key(|(_, e)| e.last_used)
            .map(|(sql, e)| (sql.clone(), e.param_types.clone()))?;
        self.remove(&sql, &types)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmt(name: &str) -> Statement {
        Statement::for_tests(name)
    }

    #[test]
    fn least_recently_used_is_evicted_first() {
        let mut c = StatementCache::new(2);
        assert_eq!(c.insert("a", vec![], stmt("s1")), None);
        assert_eq!(c.insert("b", vec![23], stmt("s2")), None);
        assert!(c.get("a", &[]).is_some());
        assert_eq!(c.insert("c", vec![], stmt("s3")).as_deref(), Some("s2"));
        assert!(c.get("b", &[23]).is_none());
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn same_sql_with_other_parameter_types_is_another_entry() {
        let mut c = StatementCache::new(4);
        c.insert("q", vec![23], stmt("s1"));
        c.insert("q", vec![20], stmt("s2"));
        assert_eq!(c.get("q", &[20]).unwrap().name(), "s2");
        assert_eq!(c.remove("q", &[23]).as_deref(), Some("s1"));
        assert!(c.get("q", &[23]).is_none());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let mut c = StatementCache::new(0);
        assert_eq!(c.insert("a", vec![], stmt("s1")), None);
        assert!(c.get("a", &[]).is_none());
        assert!(!c.enabled());
    }
}
