//! Describe first, and resolve the types an answer names.
//!
//! A statement is described before its Bind when a parameter needs the type the server
//! infers ([`crate::types::Infer`]) or a row stream starts from SQL text not in the cache
//! (no lookup can run while its portal is paused). Types that are not built in are then
//! looked up once per connection ([`crate::types::catalog`]) on the same locked wire,
//! right after the exchange reached ReadyForQuery, so every statement that is cached or
//! handed out carries resolved types and is resolved once. The lookup is an ordinary
//! exchange: dropped mid-way, it leaves the connection broken like any other.

use std::sync::Arc;

use super::query::{Answer, AnswerReader, Discard, RowSink, statement_name, write_parse};
use super::wire::{Closes, Wire};
use crate::error::Error;
use crate::statement::{Column, Statement};
use crate::types::{Field, Kind, Oid, Type, catalog};

impl Wire {
    /// Parse + Describe + Sync of `sql` as `name`; returns the statement's parameter and
    /// column types, resolved.
    pub(super) async fn parse_describe(
        &mut self,
        name: &str,
        sql: &str,
        oids: &[Oid],
    ) -> Result<(Vec<Type>, Arc<[Column]>), Error> {
        let mut f = self.begin("describing a statement", Closes::Inline)?;
        if let Err(e) = write_parse(name, sql, oids, f.buf()) {
            f.abandon_unsent();
            return Err(e);
        }
        f.sync();
        f.flush().await?;
        let mut discard = Discard;
        let mut reader = AnswerReader::new(&mut discard, None, false);
        f.read(&mut reader).await?;
        if let Some(e) = f.take_error() {
            return Err(e);
        }
        drop(f);
        let mut answer = reader.a;
        if let Err(e) = self.resolve_answer(&mut answer).await {
            // The statement exists on the server but will never be used.
            if !name.is_empty() {
                self.to_close.push(name.to_owned());
            }
            return Err(e);
        }
        let columns = answer.columns.unwrap_or_else(|| Arc::from(Vec::new()));
        Ok((answer.params.unwrap_or_default(), columns))
    }

    /// Describes SQL text whose parameters named `oids`, and caches it (or, with the
    /// cache off, returns a statement parsed afresh at each use with the types the
    /// server inferred named explicitly).
    pub(super) async fn describe_first(
        &mut self,
        sql: &str,
        oids: Vec<Oid>,
    ) -> Result<Statement, Error> {
        let cache_on = self.shared.pipe.lock().cache.enabled();
        let name = match cache_on {
            true => statement_name("s", sql, &oids),
            false => String::new(),
        };
        let (params, columns) = self.parse_describe(&name, sql, &oids).await?;
        if name.is_empty() {
            return Ok(Statement::reparsed(sql, params, columns, self.shared.id));
        }
        let stmt = Statement::new(name, params, columns, self.shared.id, None);
        let evicted = self
            .shared
            .pipe
            .lock()
            .cache
            .insert(sql, oids, stmt.clone());
        self.to_close.extend(evicted);
        Ok(stmt)
    }

    /// The types of `oids` as far as this connection knows them without I/O.
    pub(super) fn known_types(&self, oids: &[Oid]) -> Vec<Type> {
        oids.iter()
            .map(|&o| catalog::known(&self.shared, o))
            .collect()
    }

    /// Resolves the parameter and column types of an answer, looking up (one exchange)
    /// the types this connection has not met. Returns the columns when they changed.
    pub(super) async fn resolve_answer(
        &mut self,
        answer: &mut Answer,
    ) -> Result<Option<Arc<[Column]>>, Error> {
        let params = answer.param_types.as_deref().map(|o| self.known_types(o));
        let columns = answer.columns.as_deref().unwrap_or_default();
        let mut missing = catalog::unresolved(params.iter().flatten());
        missing.extend(catalog::unresolved(columns.iter().map(Column::type_)));
        if !missing.is_empty() {
            catalog::look_up(self, &missing).await?;
        }
        answer.params = params.map(|p| catalog::retyped_params(&self.shared, p));
        let resolved = answer
            .columns
            .as_deref()
            .and_then(|c| catalog::retyped(&self.shared, c));
        if let Some(c) = &resolved {
            answer.columns = Some(c.clone());
        }
        Ok(resolved)
    }

    /// Columns of anonymous records (`SELECT ROW(...)`) whose values hold types that are
    /// not built in, typed as a composite of those fields (resolved, looked up if need
    /// be) so that `Record` reads them; the shape is read from the first non-NULL value.
    /// Returns the columns when they changed.
    pub(super) async fn resolve_records(
        &mut self,
        columns: &Arc<[Column]>,
        sink: &impl RowSink,
    ) -> Result<Option<Arc<[Column]>>, Error> {
        if !columns.iter().any(|c| c.type_() == Type::RECORD) {
            return Ok(None);
        }
        let shapes: Vec<(usize, Vec<Oid>)> = (0..columns.len())
            .filter(|&i| columns[i].type_() == Type::RECORD)
            .filter_map(|i| Some((i, record_field_oids(sink.sample(i)?)?)))
            .filter(|(_, oids)| oids.iter().any(|&o| Type::from_oid(o).is_none()))
            .collect();
        if shapes.is_empty() {
            return Ok(None);
        }
        let all: Vec<Oid> = shapes.iter().flat_map(|(_, o)| o.iter().copied()).collect();
        catalog::look_up(self, &all).await?;
        let mut resolved = columns.to_vec();
        for (i, oids) in shapes {
            let field = |(n, &oid): (usize, &Oid)| {
                Field::new(format!("f{}", n + 1), catalog::known(&self.shared, oid))
            };
            let kind = Kind::Composite(oids.iter().enumerate().map(field).collect());
            let ty = Type::new(
                "record".into(),
                Type::RECORD.oid(),
                kind,
                "pg_catalog".into(),
            );
            resolved[i] = resolved[i].with_type(ty);
        }
        Ok(Some(resolved.into()))
    }
}

/// The field type OIDs of a binary record value (record_send: the field count, then per
/// field its OID, its length and its bytes); `None` if the value is malformed.
fn record_field_oids(raw: &[u8]) -> Option<Vec<Oid>> {
    let word = |at: usize| -> Option<[u8; 4]> { raw.get(at..at + 4)?.try_into().ok() };
    let count = usize::try_from(i32::from_be_bytes(word(0)?)).ok()?;
    let mut oids = Vec::with_capacity(count.min(raw.len() / 8));
    let mut at = 4;
    for _ in 0..count {
        oids.push(u32::from_be_bytes(word(at)?));
        let len = i32::from_be_bytes(word(at + 4)?);
        at += 8 + usize::try_from(len).unwrap_or(0);
    }
    Some(oids)
}

#[cfg(test)]
mod tests {
    use super::record_field_oids;

    #[test]
    fn the_field_oids_of_a_record_value() {
        let mut raw = vec![0, 0, 0, 2];
        raw.extend([0, 0, 0, 23, 0, 0, 0, 4, 0, 0, 0, 1]);
        raw.extend([0, 1, 0, 0, 255, 255, 255, 255]);
        assert_eq!(record_field_oids(&raw), Some(vec![23, 65536]));
        assert_eq!(record_field_oids(&raw[..10]), None);
        assert_eq!(record_field_oids(&[255, 255, 255, 255]), None);
    }
}
