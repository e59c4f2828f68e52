//! The simple-protocol exchange: one Query message, possibly many statements, text rows.
//! Reference: PostgreSQL manual, "Simple Query".

use std::sync::Arc;

use super::wire::{Closes, Flow, Handler, Wire};
use crate::error::Error;
use crate::protocol::BackendMessage;
use crate::protocol::backend::rows_affected;
use crate::row::{SimpleColumn, SimpleQueryMessage, SimpleQueryRow};

impl Wire {
    /// Runs one or more statements; returns their rows and completions in order.
    ///
    /// Statements waiting to be closed go first, ended by their own Sync, in the same
    /// write: one more ReadyForQuery owed, no extra round trip.
    pub(crate) async fn simple_query(
        &mut self,
        sql: &str,
    ) -> Result<Vec<SimpleQueryMessage>, Error> {
        let mut f = self.begin("running a simple query", Closes::Synced)?;
        if let Err(e) = f.query(sql) {
            f.abandon_unsent();
            return Err(e);
        }
        f.flush().await?;
        let mut reader = SimpleReader::default();
        f.read(&mut reader).await?;
        match f.take_error() {
            Some(e) => Err(e),
            None => Ok(reader.out),
        }
    }
}

/// Collects a simple query's rows and completions.
#[derive(Default)]
struct SimpleReader {
    out: Vec<SimpleQueryMessage>,
    columns: Option<Arc<[SimpleColumn]>>,
}

impl Handler for SimpleReader {
    fn message(&mut self, msg: BackendMessage) -> Result<Flow, BackendMessage> {
        match msg {
            BackendMessage::RowDescription(fields) => {
                let columns = fields.into_iter().map(|f| SimpleColumn::new(f.name));
                self.columns = Some(columns.collect());
            }
            BackendMessage::DataRow(row) => match &self.columns {
                Some(cols) if cols.len() == row.len() => {
                    let row = SimpleQueryRow::new(cols.clone(), row);
                    self.out.push(SimpleQueryMessage::Row(row))
                }
                _ => return Err(BackendMessage::DataRow(row)),
            },
            BackendMessage::CommandComplete(tag) => {
                self.columns = None;
                let n = rows_affected(&tag);
                self.out.push(SimpleQueryMessage::CommandComplete(n));
            }
            BackendMessage::EmptyQueryResponse => self.columns = None,
            msg => return Err(msg),
        }
        Ok(Flow::Continue)
    }
}
