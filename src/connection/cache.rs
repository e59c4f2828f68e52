//! The per-connection prepared-statement cache: a bounded LRU keyed by SQL text and the
//! parameter types the client named.
//!
//! Lookups borrow the SQL text (no allocation on a hit). An evicted statement's name is
//! handed back so the next exchange can Close it on the server.

use std::collections::HashMap;

use crate::statement::Statement;
use crate::types::Oid;

/// FxHash (rustc's hasher): the cache is keyed by our own SQL strings, where a fast
/// non-keyed hash is fine, and SipHash over a long SQL text showed on every query.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxBuild;

/// The FxHash state.
#[derive(Debug, Default)]
pub(crate) struct FxHasher(u64);

impl std::hash::BuildHasher for FxBuild {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

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
    by_sql: HashMap<String, Vec<Entry>, FxBuild>,
}

impl StatementCache {
    pub(crate) fn new(capacity: usize) -> StatementCache {
        StatementCache {
            capacity,
            len: 0,
            clock: 0,
            by_sql: HashMap::default(),
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
    #[cfg(test)]
    pub(crate) fn get(&mut self, sql: &str, param_types: &[Oid]) -> Option<Statement> {
        self.get_with(sql, param_types.iter().copied())
    }

    /// As `get`, with the types as an iterator, so a hit allocates nothing.
    pub(crate) fn get_with(
        &mut self,
        sql: &str,
        param_types: impl Iterator<Item = Oid> + Clone,
    ) -> Option<Statement> {
        self.clock += 1;
        let entries = self.by_sql.get_mut(sql)?;
        let entry = entries
            .iter_mut()
            .find(|e| e.param_types.iter().copied().eq(param_types.clone()))?;
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

    /// Forgets every statement and returns their server names, to be closed.
    pub(crate) fn drain_names(&mut self) -> Vec<String> {
        let names = self.by_sql.values().flatten();
        let names = names.map(|e| e.statement.name().to_owned()).collect();
        self.clear();
        names
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
