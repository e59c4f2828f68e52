//! The simple-protocol exchange: one Query message, possibly many statements, text rows.
//! Reference: PostgreSQL manual, "Simple Query".

use std::sync::Arc;

use super::query::{keep_first, refuse_copy_in, write_closes};
use super::wire::{InFlight, Wire};
use crate::error::{DbError, Error};
use crate::protocol::backend::rows_affected;
use crate::protocol::{frontend, BackendMessage};
use crate::row::{SimpleColumn, SimpleQueryMessage, SimpleQueryRow};

impl Wire {
    /// Runs one or more statements; returns their rows and completions in order.
    pub(crate) async fn simple_query(
        &mut self,
        sql: &str,
    ) -> Result<Vec<SimpleQueryMessage>, Error> {
        let mut f = self.start().await?;
        let start = f.buf().len();
        if let Err(e) = frontend::query(sql, f.buf()) {
            f.abandon_unsent(start);
            return Err(e.into());
        }
        // Statements waiting to be closed go first, ended by their own Sync, in the same
        // write: one more ReadyForQuery to read, no extra round trip.
        let query = f.buf().split_off(start);
        let closing = write_closes(&mut f);
        if !closing.is_empty() {
            f.sync();
        }
        f.buf().unsplit(query);
        f.expect_ready();
        f.flush().await?;
        let (result, closes_done) = read_simple(&mut f, !closing.is_empty()).await?;
        drop(f);
        self.to_close.extend(closing.into_iter().skip(closes_done));
        result
    }
}

/// Reads a simple query's answer; returns it (rows or the first error) and how many
/// queued Closes completed. `closes_sent` says whether an extra ReadyForQuery comes first.
async fn read_simple(
    f: &mut InFlight<'_>,
    mut closes_sent: bool,
) -> Result<(Result<Vec<SimpleQueryMessage>, Error>, usize), Error> {
    let mut closes_done = 0;
    let mut out = Vec::new();
    let mut columns: Option<Arc<[SimpleColumn]>> = None;
    let mut error = None;
    loop {
        match f.recv_after(&mut error).await? {
            BackendMessage::RowDescription(fields) => {
                columns = Some(
                    fields
                        .into_iter()
                        .map(|f| SimpleColumn::new(f.name))
                        .collect(),
                );
            }
            BackendMessage::DataRow(row) => match &columns {
                Some(cols) if cols.len() == row.len() => out.push(SimpleQueryMessage::Row(
                    SimpleQueryRow::new(cols.clone(), row),
                )),
                _ => {
                    return Err(f.unexpected(
                        &BackendMessage::DataRow(row),
                        "reading rows before their description",
                    ))
                }
            },
            BackendMessage::CommandComplete(tag) => {
                columns = None;
                out.push(SimpleQueryMessage::CommandComplete(rows_affected(&tag)));
            }
            BackendMessage::EmptyQueryResponse => columns = None,
            BackendMessage::ErrorResponse(fields) => {
                keep_first(&mut error, Error::db(DbError::from_fields(fields)))
            }
            BackendMessage::CopyInResponse(_) => refuse_copy_in(f, &mut error, false).await?,
            BackendMessage::CopyOutResponse(_)
            | BackendMessage::CopyData(_)
            | BackendMessage::CopyDone => {}
            BackendMessage::CloseComplete => closes_done += 1,
            BackendMessage::ReadyForQuery(_) if std::mem::take(&mut closes_sent) => {}
            BackendMessage::ReadyForQuery(status) => {
                f.finish(status);
                return Ok((error.map_or(Ok(out), Err), closes_done));
            }
            other => return Err(f.unexpected(&other, "running a simple query")),
        }
    }
}
