//! [`Portal`]: a statement bound to its parameters in a named portal.

use std::sync::{Arc, Weak};

use crate::connection::portal::PORTAL_PREFIX;
use crate::connection::wire::{Shared, Wire};
use crate::connection::{Binding, Params, ToStatement};
use crate::error::{Error, ErrorKind};
use crate::row::Row;
use crate::statement::Column;

/// A statement bound to its parameters in a named portal, read with
/// [`Transaction::query_portal`](crate::Transaction::query_portal) a number of rows at a time.
///
/// A portal lives only as long as the transaction that bound it: PostgreSQL closes every
/// portal at COMMIT or ROLLBACK, and using one afterwards fails with SQLSTATE 34000
/// (`invalid_cursor_name`). Dropping the last clone closes it on the server with the
/// connection's next exchange.
///
/// ```no_run
/// # async fn demo(conn: pgkeel::Connection) -> Result<(), pgkeel::Error> {
/// let mut tx = conn.transaction().await?;
/// let portal = tx.bind("SELECT g FROM generate_series(1, 1000) g", &[]).await?;
/// loop {
///     let page = tx.query_portal(&portal, 100).await?;
///     if page.is_empty() {
///         break;
///     }
///     // ... up to 100 rows
/// }
/// tx.commit().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Portal(Arc<PortalInner>);

struct PortalInner {
    name: String,
    columns: Arc<[Column]>,
    conn_id: u64,
    shared: Weak<Shared>,
}

impl Drop for PortalInner {
    fn drop(&mut self) {
        // Queued: the connection's next exchange closes it (harmless once the
        // transaction has ended and taken the portal with it).
        if let Some(shared) = self.shared.upgrade() {
            shared.statement_dropped(std::mem::take(&mut self.name));
        }
    }
}

impl Portal {
    /// The columns of the rows the portal returns.
    pub fn columns(&self) -> &[Column] {
        &self.0.columns
    }

    /// The portal's name on the server.
    pub fn name(&self) -> &str {
        &self.0.name
    }
}

impl std::fmt::Debug for Portal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portal")
            .field("name", &self.0.name)
            .finish()
    }
}

/// Binds a new portal on a locked transaction wire.
pub(super) async fn bind_on<T: ToStatement + ?Sized>(
    wire: &mut Wire,
    statement: &T,
    params: Params<'_>,
) -> Result<Portal, Error> {
    let name = wire.portal_name(PORTAL_PREFIX);
    let columns = wire
        .bind_portal(&name, statement, Binding::new(params))
        .await?;
    Ok(Portal(Arc::new(PortalInner {
        name,
        columns,
        conn_id: wire.shared.id,
        shared: Arc::downgrade(&wire.shared),
    })))
}

/// Reads a page of `portal` on a locked transaction wire.
pub(super) async fn query_portal_on(
    wire: &mut Wire,
    portal: &Portal,
    max_rows: i32,
) -> Result<Vec<Row>, Error> {
    if portal.0.conn_id != wire.shared.id {
        return Err(Error::new(
            ErrorKind::Misuse,
            "this portal was bound on another connection",
        ));
    }
    let mut rows = Vec::new();
    wire.execute_portal(&portal.0.name, max_rows, &portal.0.columns, &mut rows)
        .await?;
    Ok(rows)
}
