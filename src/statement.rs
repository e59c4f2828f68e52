//! [`Statement`] and [`Column`]: a prepared statement and the shape of its rows.

use std::fmt;
use std::sync::{Arc, Weak};

use crate::connection::wire::Shared;
use crate::protocol::backend::FieldDescription;
use crate::types::Type;

/// One column of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    name: String,
    type_: Type,
    table_oid: Option<u32>,
    column_id: Option<i16>,
}

impl Column {
    pub(crate) fn from_field(f: FieldDescription) -> Column {
        Column {
            name: f.name,
            type_: Type::for_oid(f.type_oid),
            table_oid: (f.table_oid != 0).then_some(f.table_oid),
            column_id: (f.column_id != 0).then_some(f.column_id),
        }
    }

    /// The same column with its type replaced (by the catalogue's resolved type).
    pub(crate) fn with_type(&self, type_: Type) -> Column {
        Column {
            type_,
            ..self.clone()
        }
    }

    /// The column's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The column's PostgreSQL type.
    pub fn type_(&self) -> &Type {
        &self.type_
    }

    /// The OID of the table the column comes from, if it comes from one.
    pub fn table_oid(&self) -> Option<u32> {
        self.table_oid
    }

    /// The column's attribute number in its table, if it comes from one.
    pub fn column_id(&self) -> Option<i16> {
        self.column_id
    }
}

struct Inner {
    name: String,
    params: Vec<Type>,
    columns: Arc<[Column]>,
    conn_id: u64,
    /// The SQL, for statements that are parsed afresh at every use (pooler mode keeps no
    /// named statement on the server); their name is empty.
    sql: Option<String>,
    /// Whether it may run pipelined with other tasks' calls (not a COPY).
    pipelinable: bool,
    /// Set for statements the user prepared: dropping the last clone closes it on the
    /// server. Cached statements are closed by the cache instead.
    owner: Option<Weak<Shared>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(shared) = self.owner.as_ref().and_then(Weak::upgrade) {
            shared.statement_dropped(std::mem::take(&mut self.name));
        }
    }
}

/// A prepared statement of one connection: cheap to clone, usable by every task that
/// shares that connection. Dropping the last clone closes it on the server (on the next
/// exchange, with no extra round trip).
#[derive(Clone)]
pub struct Statement(Arc<Inner>);

impl Statement {
    pub(crate) fn new(
        name: String,
        params: Vec<Type>,
        columns: Arc<[Column]>,
        conn_id: u64,
        owner: Option<Weak<Shared>>,
    ) -> Statement {
        Statement(Arc::new(Inner {
            name,
            params,
            columns,
            conn_id,
            sql: None,
            pipelinable: true,
            owner,
        }))
    }

    /// A statement that keeps no name on the server: each use parses `sql` again as the
    /// unnamed statement, in the same write as its Bind (pooler mode).
    pub(crate) fn reparsed(
        sql: &str,
        params: Vec<Type>,
        columns: Arc<[Column]>,
        conn_id: u64,
    ) -> Statement {
        Statement(Arc::new(Inner {
            name: String::new(),
            params,
            columns,
            conn_id,
            sql: Some(sql.to_owned()),
            pipelinable: false,
            owner: None,
        }))
    }

    /// Marks a statement that must not run pipelined with other tasks' calls (a COPY).
    pub(crate) fn not_pipelinable(mut self) -> Statement {
        if let Some(inner) = Arc::get_mut(&mut self.0) {
            inner.pipelinable = false;
        }
        self
    }

    /// Whether it may run pipelined with other tasks' calls.
    pub(crate) fn pipelinable(&self) -> bool {
        self.0.pipelinable
    }

    /// Whether the user prepared it (it is not the statement cache's).
    pub(crate) fn is_user_prepared(&self) -> bool {
        self.0.owner.is_some()
    }

    /// The SQL of a statement that is parsed afresh at every use.
    pub(crate) fn reparse_sql(&self) -> Option<&str> {
        self.0.sql.as_deref()
    }

    #[cfg(test)]
    pub(crate) fn for_tests(name: &str) -> Statement {
        Statement::new(name.to_owned(), Vec::new(), Arc::from(Vec::new()), 0, None)
    }

    /// The statement's name on the server.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The types of the statement's parameters, as the server resolved them.
    pub fn params(&self) -> &[Type] {
        &self.0.params
    }

    /// The columns of the rows the statement returns (empty if it returns none).
    pub fn columns(&self) -> &[Column] {
        &self.0.columns
    }

    pub(crate) fn columns_arc(&self) -> &Arc<[Column]> {
        &self.0.columns
    }

    pub(crate) fn conn_id(&self) -> u64 {
        self.0.conn_id
    }
}

impl fmt::Debug for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Statement")
            .field("name", &self.0.name)
            .field("params", &self.0.params)
            .field("columns", &self.0.columns)
            .finish()
    }
}
