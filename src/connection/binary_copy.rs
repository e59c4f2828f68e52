//! Typed rows over binary COPY: [`BinaryCopyInWriter`] encodes rows with [`ToSql`] into
//! a [`CopyIn`], and [`BinaryCopyOutStream`] decodes a [`CopyOut`] into rows read with
//! [`FromSql`]. Reference: PostgreSQL manual, COPY, "Binary Format".

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::Stream;

use super::copy_in::CopyIn;
use super::copy_out::CopyOut;
use crate::error::{Error, ErrorKind};
use crate::protocol::backend::{DataRow, Ranges};
use crate::types::{FromSql, IsNull, ToSql, Type};

/// The signature, flags (no OIDs) and header extension length every binary COPY opens with.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// How many encoded bytes the writer gathers before handing them to the COPY.
const CHUNK: usize = 64 * 1024;

/// Writes rows to a binary `COPY … FROM STDIN (FORMAT binary)`, each value encoded with
/// [`ToSql`] as the column type given for it.
#[derive(Debug)]
pub struct BinaryCopyInWriter<'a> {
    sink: CopyIn<'a>,
    types: Vec<Type>,
    buf: BytesMut,
}

impl<'a> BinaryCopyInWriter<'a> {
    /// A writer for rows whose columns have `types`, in order.
    pub fn new(sink: CopyIn<'a>, types: &[Type]) -> BinaryCopyInWriter<'a> {
        let mut buf = BytesMut::with_capacity(CHUNK + 1024);
        buf.put_slice(HEADER);
        BinaryCopyInWriter {
            sink,
            types: types.to_vec(),
            buf,
        }
    }

    /// Writes one row.
    ///
    /// # Errors
    /// [`ErrorKind::Encode`] naming the column when a value does not fit its type, or
    /// for the wrong number of values (the row is not written; the COPY goes on); the
    /// server's error if it ended the COPY.
    ///
    /// # Cancel safety
    /// As [`CopyIn::send`].
    pub async fn write(&mut self, values: &[&(dyn ToSql + Sync)]) -> Result<(), Error> {
        // Rows are buffered here, not in the COPY: tell it which task writes.
        self.sink.follow_task();
        self.encode(values)?;
        if self.buf.len() >= CHUNK {
            self.sink.send(self.buf.split()).await?;
        }
        Ok(())
    }

    /// Ends the COPY; returns the number of rows copied.
    ///
    /// # Errors
    /// As [`CopyIn::finish`].
    ///
    /// # Cancel safety
    /// As [`CopyIn::finish`].
    pub async fn finish(mut self) -> Result<u64, Error> {
        self.buf.put_i16(-1);
        self.sink.send(self.buf.split()).await?;
        self.sink.finish().await
    }

    fn encode(&mut self, values: &[&(dyn ToSql + Sync)]) -> Result<(), Error> {
        if values.len() != self.types.len() {
            let msg = format!(
                "{} values for a COPY of {} columns",
                values.len(),
                self.types.len()
            );
            return Err(Error::new(ErrorKind::Encode, msg));
        }
        // The writer's types come from the caller: more than a tuple's count field holds
        // is an error here, not a wrapped count on the wire.
        let Ok(count) = i16::try_from(values.len()) else {
            let msg = format!(
                "{} columns are more than a COPY row can carry",
                values.len()
            );
            return Err(Error::new(ErrorKind::Encode, msg));
        };
        let start = self.buf.len();
        self.buf.put_i16(count);
        for (i, (value, ty)) in values.iter().zip(&self.types).enumerate() {
            if let Err(e) = encode_value(&mut self.buf, *value, ty) {
                self.buf.truncate(start);
                let msg = format!(
                    "column {i} of type {ty} from Rust type {}",
                    value.rust_type_name()
                );
                return Err(Error::with_source(ErrorKind::Encode, msg, e));
            }
        }
        Ok(())
    }
}

fn encode_value(
    buf: &mut BytesMut,
    value: &(dyn ToSql + Sync),
    ty: &Type,
) -> Result<(), crate::types::BoxError> {
    let at = buf.len();
    buf.put_i32(0);
    let len = match value.to_sql_checked(ty, buf)? {
        IsNull::Yes => -1,
        IsNull::No => i32::try_from(buf.len() - at - 4).map_err(|_| "value larger than 2 GiB")?,
    };
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Reads rows from a binary `COPY … TO STDOUT (FORMAT binary)`, decoded as the column
/// types given.
#[derive(Debug)]
pub struct BinaryCopyOutStream<'a> {
    stream: CopyOut<'a>,
    types: Arc<[Type]>,
    /// The rest of the last chunk: whole rows are split off it without copying.
    pending: Bytes,
    /// A row (or the header) cut across chunks, gathered until it is whole.
    carry: BytesMut,
    header_read: bool,
    trailer_read: bool,
}

impl<'a> BinaryCopyOutStream<'a> {
    /// Decodes `stream` as rows whose columns have `types`, in order.
    pub fn new(stream: CopyOut<'a>, types: &[Type]) -> BinaryCopyOutStream<'a> {
        BinaryCopyOutStream {
            stream,
            types: types.into(),
            pending: Bytes::new(),
            carry: BytesMut::new(),
            header_read: false,
            trailer_read: false,
        }
    }

    /// The next row from the bytes received so far; `Ok(None)` when more are needed or
    /// the trailer was read.
    fn next_row(&mut self) -> Result<Option<BinaryCopyOutRow>, Error> {
        if self.carry.is_empty() {
            if let Some(row) = self.row_in_pending()? {
                return Ok(Some(row));
            }
            // An incomplete row: keep it until the rest arrives.
            self.carry
                .extend_from_slice(&std::mem::take(&mut self.pending));
            return Ok(None);
        }
        // A row cut across chunks: the pending bytes join it, and what is whole is split
        // off the gathered bytes (each byte is copied once, however many chunks it takes).
        self.carry
            .extend_from_slice(&std::mem::take(&mut self.pending));
        match front(&mut self.header_read, &mut self.carry, self.types.len())? {
            Some(RowLen::Trailer) => Ok(self.trailer()),
            Some(RowLen::Row(len, ranges)) => {
                let body = self.carry.split_to(len).freeze();
                // Whole rows after it are taken from `pending`, without copying.
                self.pending = self.carry.split().freeze();
                Ok(Some(self.row(body, ranges)))
            }
            None => Ok(None),
        }
    }

    /// The row at the front of `pending`, if it is whole there.
    fn row_in_pending(&mut self) -> Result<Option<BinaryCopyOutRow>, Error> {
        match front(&mut self.header_read, &mut self.pending, self.types.len())? {
            Some(RowLen::Trailer) => Ok(self.trailer()),
            Some(RowLen::Row(len, ranges)) => {
                let body = self.pending.split_to(len);
                Ok(Some(self.row(body, ranges)))
            }
            None => Ok(None),
        }
    }

    fn trailer(&mut self) -> Option<BinaryCopyOutRow> {
        self.trailer_read = true;
        self.pending.clear();
        self.carry.clear();
        None
    }

    fn row(&self, body: Bytes, ranges: Ranges) -> BinaryCopyOutRow {
        BinaryCopyOutRow {
            row: DataRow::from_parts(body, ranges),
            types: self.types.clone(),
        }
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Decode, msg)
}

/// The longest binary COPY header extension read. PostgreSQL sends none; the field is
/// reserved for future use, so anything near this is not a COPY stream.
const MAX_HEADER_EXTENSION: usize = 1 << 20;

/// The length of the binary COPY header at the front of `data`, once it is all there.
fn header_len(data: &[u8]) -> Result<Option<usize>, Error> {
    if data.len() < HEADER.len() {
        return Ok(None);
    }
    if &data[..SIGNATURE.len()] != SIGNATURE {
        return Err(bad(
            "the COPY data is not in the binary format (no PGCOPY signature)",
        ));
    }
    let ext = i32::from_be_bytes([data[15], data[16], data[17], data[18]]);
    let ext = usize::try_from(ext).map_err(|_| bad("negative binary COPY header extension"))?;
    if ext > MAX_HEADER_EXTENSION {
        return Err(bad(format!(
            "a binary COPY header extension of {ext} bytes (at most {MAX_HEADER_EXTENSION} are read)"
        )));
    }
    let len = HEADER.len() + ext;
    Ok((data.len() >= len).then_some(len))
}

/// What is at the front of `data`, its header skipped first (once, setting
/// `header_read`): a row's extent, the trailer, or `None` when more bytes are needed.
fn front<B>(header_read: &mut bool, data: &mut B, columns: usize) -> Result<Option<RowLen>, Error>
where
    B: Buf + std::ops::Deref<Target = [u8]>,
{
    if !*header_read {
        let Some(len) = header_len(data)? else {
            return Ok(None);
        };
        data.advance(len);
        *header_read = true;
    }
    row_len(data, columns)
}

enum RowLen {
    Row(usize, Ranges),
    Trailer,
}

/// Finds the extent of the row at the front of `data` and its values' ranges.
fn row_len(data: &[u8], columns: usize) -> Result<Option<RowLen>, Error> {
    let Some(count) = data.get(..2) else {
        return Ok(None);
    };
    let count = i16::from_be_bytes([count[0], count[1]]);
    if count == -1 {
        return Ok(Some(RowLen::Trailer));
    }
    if usize::try_from(count).ok() != Some(columns) {
        let msg = format!("a binary COPY row has {count} columns; {columns} types were given");
        return Err(bad(msg));
    }
    let mut ranges = Ranges::with_capacity(columns);
    let mut at = 2usize;
    for _ in 0..columns {
        let Some(len) = data.get(at..at + 4) else {
            return Ok(None);
        };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        at += 4;
        if len < -1 {
            return Err(bad(format!("a binary COPY value has length {len}")));
        }
        let end = at + len.max(0) as usize;
        if end > data.len() {
            return Ok(None);
        }
        ranges.push((at as u32, len));
        at = end;
    }
    Ok(Some(RowLen::Row(at, ranges)))
}

impl Stream for BinaryCopyOutStream<'_> {
    type Item = Result<BinaryCopyOutRow, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if !this.trailer_read
                && let Some(row) = this.next_row().transpose()
            {
                return Poll::Ready(Some(row));
            }
            match ready!(Pin::new(&mut this.stream).poll_next(cx)) {
                Some(Ok(_)) if this.trailer_read => {}
                Some(Ok(chunk)) => this.pending = chunk,
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None if this.trailer_read => return Poll::Ready(None),
                None => {
                    this.trailer_read = true;
                    return Poll::Ready(Some(Err(bad(
                        "the binary COPY data ended without its trailer",
                    ))));
                }
            }
        }
    }
}

/// One row of a binary COPY, its values read with [`FromSql`].
#[derive(Debug, Clone)]
pub struct BinaryCopyOutRow {
    row: DataRow,
    types: Arc<[Type]>,
}

impl BinaryCopyOutRow {
    /// The number of values in the row.
    pub fn len(&self) -> usize {
        self.row.len()
    }

    /// Whether the row has no values.
    pub fn is_empty(&self) -> bool {
        self.row.is_empty()
    }

    /// Whether the value at `idx` is NULL (false past the last value).
    pub fn is_null(&self, idx: usize) -> bool {
        idx < self.row.len() && self.row.value(idx).is_none()
    }

    /// The value at `idx`, decoded into `T`.
    ///
    /// # Panics
    /// When [`BinaryCopyOutRow::try_get`] fails.
    pub fn get<'a, T: FromSql<'a>>(&'a self, idx: usize) -> T {
        match self.try_get(idx) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// The value at `idx`, decoded into `T`.
    ///
    /// # Errors
    /// [`ErrorKind::ColumnNotFound`] past the last value; [`ErrorKind::Decode`] naming
    /// the column, its type and the Rust type when the value does not fit.
    pub fn try_get<'a, T: FromSql<'a>>(&'a self, idx: usize) -> Result<T, Error> {
        let Some(ty) = self.types.get(idx).filter(|_| idx < self.row.len()) else {
            let msg = format!("no column {idx} in this row");
            return Err(Error::new(ErrorKind::ColumnNotFound, msg));
        };
        let ty = ty.base();
        let decode_error = |e: crate::types::BoxError| {
            let rust = std::any::type_name::<T>();
            let msg = format!("column {idx} of type {ty} into Rust type {rust}");
            Error::with_source(ErrorKind::Decode, msg, e)
        };
        if !T::accepts(ty) {
            let e = crate::types::WrongType {
                ty: ty.clone(),
                rust_type: std::any::type_name::<T>(),
            };
            return Err(decode_error(Box::new(e)));
        }
        T::from_sql_nullable(ty, self.row.value(idx)).map_err(decode_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(ext: i32) -> Vec<u8> {
        let mut h = SIGNATURE.to_vec();
        h.extend_from_slice(&0i32.to_be_bytes());
        h.extend_from_slice(&ext.to_be_bytes());
        h
    }

    #[test]
    fn header_len_waits_for_the_whole_header_and_its_extension() {
        let h = header(0);
        assert_eq!(h.len(), HEADER.len());
        assert_eq!(header_len(&h[..h.len() - 1]).unwrap(), None);
        assert_eq!(header_len(&h).unwrap(), Some(HEADER.len()));
        let mut h = header(3);
        assert_eq!(header_len(&h).unwrap(), None);
        h.extend_from_slice(b"abc");
        assert_eq!(header_len(&h).unwrap(), Some(HEADER.len() + 3));
    }

    #[test]
    fn header_len_refuses_a_bad_signature_and_bad_extension_lengths() {
        let mut h = header(0);
        h[0] = b'X';
        assert!(
            header_len(&h)
                .unwrap_err()
                .to_string()
                .contains("signature")
        );
        assert!(
            header_len(&header(-1))
                .unwrap_err()
                .to_string()
                .contains("negative")
        );
        let e = header_len(&header(i32::MAX)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert!(
            e.to_string()
                .contains("header extension of 2147483647 bytes"),
            "{e}"
        );
        assert_eq!(
            header_len(&header(1 << 20)).unwrap(),
            None,
            "at the limit: waits"
        );
    }
}
