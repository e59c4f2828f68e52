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

use super::query::{statement_name, write_parse, Answer, AnswerReader, Discard};
use super::wire::{Closes, Wire};
use crate::error::Error;
use crate::statement::{Column, Statement};
use crate::types::{catalog, Oid, Type};

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
        let name = match self.cache.enabled() {
            true => statement_name("s", sql, &oids),
            false => String::new(),
        };
        let (params, columns) = self.parse_describe(&name, sql, &oids).await?;
        if name.is_empty() {
            return Ok(Statement::reparsed(sql, params, columns, self.shared.id));
        }
        let stmt = Statement::new(name, params, columns, self.shared.id, None);
        let evicted = self.cache.insert(sql, oids, stmt.clone());
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
}
