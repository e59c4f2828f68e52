//! Messages the server sends, decoded from one complete frame.
//!
//! [`BackendMessage::parse`] takes the type byte and the body (the frame without its
//! 5-byte header). Row data stays in the frame's shared `Bytes`: a [`DataRow`] records
//! where each value lies and copies nothing.

use bytes::Bytes;

use super::ProtocolError;
use super::reader::Reader;
use crate::types::Oid;

/// The transaction status byte of ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionStatus {
    /// `I`: not in a transaction block.
    Idle,
    /// `T`: in a transaction block.
    InTransaction,
    /// `E`: in a failed transaction block; queries are rejected until it ends.
    Failed,
}

impl TransactionStatus {
    /// The status for a ReadyForQuery status byte, if it is one of `I`, `T`, `E`.
    pub fn from_byte(b: u8) -> Option<TransactionStatus> {
        match b {
            b'I' => Some(TransactionStatus::Idle),
            b'T' => Some(TransactionStatus::InTransaction),
            b'E' => Some(TransactionStatus::Failed),
            _ => None,
        }
    }

    /// The status byte as sent on the wire.
    pub fn as_byte(self) -> u8 {
        match self {
            TransactionStatus::Idle => b'I',
            TransactionStatus::InTransaction => b'T',
            TransactionStatus::Failed => b'E',
        }
    }
}

/// The request inside an Authentication message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// Authentication succeeded.
    Ok,
    /// Kerberos V5 (unsupported by servers since 9.x).
    KerberosV5,
    /// Send the password in clear text.
    CleartextPassword,
    /// Send the MD5-hashed password with this salt.
    Md5Password([u8; 4]),
    /// Start GSSAPI.
    Gss,
    /// GSSAPI or SSPI continuation data.
    GssContinue(Bytes),
    /// Start SSPI.
    Sspi,
    /// Start SASL with one of these mechanisms.
    Sasl(Vec<String>),
    /// SASL challenge data.
    SaslContinue(Bytes),
    /// SASL outcome data.
    SaslFinal(Bytes),
}

/// One column of a RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDescription {
    /// The column name.
    pub name: String,
    /// The OID of the source table, or 0.
    pub table_oid: Oid,
    /// The attribute number in the source table, or 0.
    pub column_id: i16,
    /// The OID of the column's data type.
    pub type_oid: Oid,
    /// The type's size (`pg_type.typlen`); negative for variable width.
    pub type_size: i16,
    /// The type modifier (`pg_attribute.atttypmod`).
    pub type_modifier: i32,
    /// 0 for text, 1 for binary (always 0 in a statement Describe).
    pub format: i16,
}

/// One DataRow: the frame it came in, and where each value lies within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRow {
    body: Bytes,
    // (start, len) per column; len -1 means NULL. Checked against `body` when parsed.
    ranges: Ranges,
}

/// Where each value of a row lies: inline for narrow rows (no allocation per row, which
/// showed in profiles of large fetches), on the heap for wide ones.
#[derive(Debug, Clone)]
pub(crate) enum Ranges {
    Inline(u8, [(u32, i32); INLINE_COLUMNS]),
    Heap(Vec<(u32, i32)>),
}

const INLINE_COLUMNS: usize = 8;

impl Ranges {
    pub(crate) fn with_capacity(n: usize) -> Ranges {
        match n <= INLINE_COLUMNS {
            true => Ranges::Inline(0, [(0, 0); INLINE_COLUMNS]),
            false => Ranges::Heap(Vec::with_capacity(n)),
        }
    }

    pub(crate) fn push(&mut self, r: (u32, i32)) {
        match self {
            Ranges::Inline(len, items) if (*len as usize) < INLINE_COLUMNS => {
                items[*len as usize] = r;
                *len += 1;
            }
            Ranges::Inline(len, items) => {
                let mut v = items[..*len as usize].to_vec();
                v.push(r);
                *self = Ranges::Heap(v);
            }
            Ranges::Heap(v) => v.push(r),
        }
    }

    pub(crate) fn as_slice(&self) -> &[(u32, i32)] {
        match self {
            Ranges::Inline(len, items) => &items[..*len as usize],
            Ranges::Heap(v) => v,
        }
    }
}

impl PartialEq for Ranges {
    fn eq(&self, other: &Ranges) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Ranges {}

impl DataRow {
    /// The number of values in the row.
    pub fn len(&self) -> usize {
        self.ranges.as_slice().len()
    }

    /// Whether the row has no values.
    pub fn is_empty(&self) -> bool {
        self.ranges.as_slice().is_empty()
    }

    /// The raw value of column `idx`: `None` for NULL or an index out of range.
    pub fn value(&self, idx: usize) -> Option<&[u8]> {
        let &(start, len) = self.ranges.as_slice().get(idx)?;
        let len = usize::try_from(len).ok()?;
        let start = start as usize;
        self.body.get(start..start + len)
    }

    /// The raw value of column `idx` as a slice of the shared frame.
    pub fn value_bytes(&self, idx: usize) -> Option<Bytes> {
        let &(start, len) = self.ranges.as_slice().get(idx)?;
        let len = usize::try_from(len).ok()?;
        let start = start as usize;
        Some(self.body.slice(start..start + len))
    }

    /// A row whose values lie in `body` at `ranges` ((start, length), length -1 for
    /// NULL), which the caller has checked against `body`.
    pub(crate) fn from_parts(body: Bytes, ranges: Ranges) -> DataRow {
        DataRow { body, ranges }
    }

    fn parse(body: Bytes) -> Result<DataRow, ProtocolError> {
        let mut r = Reader::new(&body, "DataRow");
        let n = r.count16("column count")?;
        let mut ranges = Ranges::with_capacity(n);
        for _ in 0..n {
            let len = r.i32("value length")?;
            if len < -1 {
                return Err(r.invalid("value length", len.to_string()));
            }
            let start = r.pos() as u32;
            if len > 0 {
                r.bytes(len as usize, "value")?;
            }
            ranges.push((start, len));
        }
        r.finish()?;
        Ok(DataRow { body, ranges })
    }
}

/// The shape of a COPY the server has started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyResponse {
    /// 0 for text, 1 for binary: the format of the whole COPY.
    pub format: i8,
    /// The format of each column.
    pub column_formats: Vec<i16>,
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendMessage {
    /// `R`: an authentication request or outcome.
    Authentication(Authentication),
    /// `K`: the process id and secret key a CancelRequest must quote.
    BackendKeyData {
        /// The backend's process id.
        process_id: i32,
        /// The secret key for cancel requests: 4 bytes in protocol 3.0, up to 256 in 3.2.
        secret_key: Bytes,
    },
    /// `2`: Bind succeeded.
    BindComplete,
    /// `3`: Close succeeded.
    CloseComplete,
    /// `C`: a command finished; the tag is e.g. `INSERT 0 3`.
    CommandComplete(String),
    /// `d`: COPY data.
    CopyData(Bytes),
    /// `c`: COPY finished.
    CopyDone,
    /// `G`: the server waits for COPY data.
    CopyInResponse(CopyResponse),
    /// `H`: the server is about to send COPY data.
    CopyOutResponse(CopyResponse),
    /// `W`: streaming replication COPY in both directions.
    CopyBothResponse(CopyResponse),
    /// `D`: one row.
    DataRow(DataRow),
    /// `I`: the query string was empty.
    EmptyQueryResponse,
    /// `E`: an error, as (field code, value) pairs.
    ErrorResponse(Vec<(u8, String)>),
    /// `V`: the result of a fast-path function call (`None` is NULL).
    FunctionCallResponse(Option<Bytes>),
    /// `v`: the server supports an older minor version or lacks some options.
    NegotiateProtocolVersion {
        /// The newest minor protocol version the server supports.
        newest_minor: i32,
        /// Protocol options the server did not recognise.
        unrecognized: Vec<String>,
    },
    /// `n`: the statement or portal returns no rows.
    NoData,
    /// `N`: a notice, as (field code, value) pairs.
    NoticeResponse(Vec<(u8, String)>),
    /// `A`: a LISTEN/NOTIFY notification.
    NotificationResponse {
        /// The notifying backend's process id.
        process_id: i32,
        /// The channel name.
        channel: String,
        /// The payload.
        payload: String,
    },
    /// `t`: the parameter types of a prepared statement.
    ParameterDescription(Vec<Oid>),
    /// `S`: a run-time parameter's current value.
    ParameterStatus {
        /// The parameter name.
        name: String,
        /// Its value.
        value: String,
    },
    /// `1`: Parse succeeded.
    ParseComplete,
    /// `s`: Execute stopped at its row limit; the portal has more rows.
    PortalSuspended,
    /// `Z`: the server is ready for a new query.
    ReadyForQuery(TransactionStatus),
    /// `T`: the columns of the rows that follow.
    RowDescription(Vec<FieldDescription>),
}

/// Checks a message header as soon as its bytes arrive, before the body does: a type
/// byte no server sends, or a length that message type cannot have, is an error at
/// once instead of after a bogus frame of up to the maximum length has been read.
/// `len` is the length field (itself included), once its four bytes are there.
///
/// # Errors
/// [`ProtocolError::UnknownTag`] or [`ProtocolError::InvalidLength`].
pub fn check_header(tag: u8, len: Option<usize>) -> Result<(), ProtocolError> {
    let (min, max) = match tag {
        // ParseComplete, BindComplete, CloseComplete, NoData, PortalSuspended,
        // EmptyQueryResponse, CopyDone: no body.
        b'1' | b'2' | b'3' | b'n' | b's' | b'I' | b'c' => (4, 4),
        // ReadyForQuery: one status byte.
        b'Z' => (5, 5),
        // BackendKeyData: process id and a key of 4 bytes (protocol 3.2: up to 256).
        b'K' => (12, 4 + 4 + 256),
        // Authentication: at least the request code.
        b'R' => (8, usize::MAX),
        b'D' | b'd' | b'C' | b'T' | b't' | b'E' | b'N' | b'S' | b'A' | b'G' | b'H' | b'W'
        | b'V' | b'v' => (4, usize::MAX),
        other => return Err(ProtocolError::UnknownTag(other as char)),
    };
    match len {
        Some(len) if len < min || len > max => Err(ProtocolError::InvalidLength {
            tag: tag as char,
            len: len as i64,
        }),
        _ => Ok(()),
    }
}

impl BackendMessage {
    /// Decodes the body of a message whose type byte is `tag`.
    ///
    /// # Errors
    /// A [`ProtocolError`] for an unknown type byte or a body that does not match it.
    pub fn parse(tag: u8, body: Bytes) -> Result<BackendMessage, ProtocolError> {
        let msg = match tag {
            b'D' => BackendMessage::DataRow(DataRow::parse(body)?),
            b'd' => BackendMessage::CopyData(body),
            b'2' => empty(&body, "BindComplete", BackendMessage::BindComplete)?,
            b'3' => empty(&body, "CloseComplete", BackendMessage::CloseComplete)?,
            b'1' => empty(&body, "ParseComplete", BackendMessage::ParseComplete)?,
            b'n' => empty(&body, "NoData", BackendMessage::NoData)?,
            b's' => empty(&body, "PortalSuspended", BackendMessage::PortalSuspended)?,
            b'I' => empty(
                &body,
                "EmptyQueryResponse",
                BackendMessage::EmptyQueryResponse,
            )?,
            b'c' => empty(&body, "CopyDone", BackendMessage::CopyDone)?,
            b'C' => parse_command_complete(&body)?,
            b'Z' => parse_ready_for_query(&body)?,
            b'T' => parse_row_description(&body)?,
            b't' => parse_parameter_description(&body)?,
            b'E' => BackendMessage::ErrorResponse(parse_fields(&body, "ErrorResponse")?),
            b'N' => BackendMessage::NoticeResponse(parse_fields(&body, "NoticeResponse")?),
            b'S' => parse_parameter_status(&body)?,
            b'K' => parse_backend_key_data(&body)?,
            b'R' => BackendMessage::Authentication(parse_authentication(&body)?),
            b'A' => parse_notification(&body)?,
            b'G' => BackendMessage::CopyInResponse(parse_copy_response(&body, "CopyInResponse")?),
            b'H' => BackendMessage::CopyOutResponse(parse_copy_response(&body, "CopyOutResponse")?),
            b'W' => {
                BackendMessage::CopyBothResponse(parse_copy_response(&body, "CopyBothResponse")?)
            }
            b'V' => parse_function_call_response(body)?,
            b'v' => parse_negotiate_protocol_version(&body)?,
            other => return Err(ProtocolError::UnknownTag(other as char)),
        };
        Ok(msg)
    }

    /// The message's name, for errors and traces.
    pub fn name(&self) -> &'static str {
        match self {
            BackendMessage::Authentication(_) => "Authentication",
            BackendMessage::BackendKeyData { .. } => "BackendKeyData",
            BackendMessage::BindComplete => "BindComplete",
            BackendMessage::CloseComplete => "CloseComplete",
            BackendMessage::CommandComplete(_) => "CommandComplete",
            BackendMessage::CopyData(_) => "CopyData",
            BackendMessage::CopyDone => "CopyDone",
            BackendMessage::CopyInResponse(_) => "CopyInResponse",
            BackendMessage::CopyOutResponse(_) => "CopyOutResponse",
            BackendMessage::CopyBothResponse(_) => "CopyBothResponse",
            BackendMessage::DataRow(_) => "DataRow",
            BackendMessage::EmptyQueryResponse => "EmptyQueryResponse",
            BackendMessage::ErrorResponse(_) => "ErrorResponse",
            BackendMessage::FunctionCallResponse(_) => "FunctionCallResponse",
            BackendMessage::NegotiateProtocolVersion { .. } => "NegotiateProtocolVersion",
            BackendMessage::NoData => "NoData",
            BackendMessage::NoticeResponse(_) => "NoticeResponse",
            BackendMessage::NotificationResponse { .. } => "NotificationResponse",
            BackendMessage::ParameterDescription(_) => "ParameterDescription",
            BackendMessage::ParameterStatus { .. } => "ParameterStatus",
            BackendMessage::ParseComplete => "ParseComplete",
            BackendMessage::PortalSuspended => "PortalSuspended",
            BackendMessage::ReadyForQuery(_) => "ReadyForQuery",
            BackendMessage::RowDescription(_) => "RowDescription",
        }
    }
}

fn empty(
    body: &[u8],
    name: &'static str,
    msg: BackendMessage,
) -> Result<BackendMessage, ProtocolError> {
    Reader::new(body, name).finish()?;
    Ok(msg)
}

fn parse_command_complete(body: &[u8]) -> Result<BackendMessage, ProtocolError> {
    let mut r = Reader::new(body, "CommandComplete");
    let tag = r.cstr("command tag")?.to_owned();
    r.finish()?;
    Ok(BackendMessage::CommandComplete(tag))
}

fn parse_ready_for_query(body: &[u8]) -> Result<BackendMessage, ProtocolError> {
    let mut r = Reader::new(body, "ReadyForQuery");
    let b = r.u8("transaction status")?;
    r.finish()?;
    let status = TransactionStatus::from_byte(b)
        .ok_or_else(|| r.invalid("transaction status", format!("byte {b:#04x}")))?;
    Ok(BackendMessage::ReadyForQuery(status))
}

fn parse_row_description(body: &[u8]) -> Result<BackendMessage, ProtocolError> {
    let mut r = Reader::new(body, "RowDescription");
    let n = r.count16("field count")?;
    let mut fields = Vec::with_capacity(n);
    for _ in 0..n {
        fields.push(FieldDescription {
            name: r.cstr("field name")?.to_owned(),
            table_oid: r.u32("table oid")?,
            column_id: r.i16("column id")?,
            type_oid: r.u32("type oid")?,
            type_size: r.i16("type size")?,
            type_modifier: r.i32("type modifier")?,
            format: r.i16("format code")?,
        });
    }
    r.finish()?;
    Ok(BackendMessage::RowDescription(fields))
}

fn parse_parameter_description(body: &[u8]) -> Result<BackendMessage, ProtocolError> {
    let mut r = Reader::new(body, "ParameterDescription");
    // Unsigned: a statement may have up to 65,535 parameters (the server's
    // pq_sendint16 of a count that does not fit an Int16 reads as negative).
    let n = r.i16("parameter count")? as u16;
    let oids = (0..n)
        .map(|_| r.u32("parameter type"))
        .collect::<Result<Vec<_>, _>>()?;
    r.finish()?;
    Ok(BackendMessage::ParameterDescription(oids))
}

fn parse_fields(body: &[u8], name: &'static str) -> Result<Vec<(u8, String)>, ProtocolError> {
    let mut r = Reader::new(body, name);
    let mut fields = Vec::new();
    loop {
        match r.u8("field type")? {
            0 => break,
            code => fields.push((code, r.cstr("field value")?.to_owned())),
        }
    }
    r.finish()?;
    Ok(fields)
}

fn parse_parameter_status(body: &[u8]) -> Result<BackendMessage, ProtocolError> {
    let mut r = Reader::new(body, "ParameterStatus");
    let name = r.cstr("name")?.to_owned();
    let value = r.cstr("value")?.to_owned();
    r.finish()?;
    Ok(BackendMessage::ParameterStatus { name, value })
}

fn parse_backend_key_data(body: &[u8]) -> Result<BackendMessage, ProtocolError> {
    let mut r = Reader::new(body, "BackendKeyData");
    let process_id = r.i32("process id")?;
    let key_len = body.len() - 4;
    if !(4..=256).contains(&key_len) {
        return Err(r.invalid("secret key length", key_len.to_string()));
    }
    let secret_key = Bytes::copy_from_slice(r.bytes(key_len, "secret key")?);
    r.finish()?;
    Ok(BackendMessage::BackendKeyData {
        process_id,
        secret_key,
    })
}

fn parse_authentication(body: &[u8]) -> Result<Authentication, ProtocolError> {
    let frame = Bytes::copy_from_slice(body);
    let mut r = Reader::new(body, "Authentication");
    let auth = match r.i32("request code")? {
        0 => Authentication::Ok,
        2 => Authentication::KerberosV5,
        3 => Authentication::CleartextPassword,
        5 => {
            let s = r.bytes(4, "salt")?;
            Authentication::Md5Password([s[0], s[1], s[2], s[3]])
        }
        7 => Authentication::Gss,
        8 => Authentication::GssContinue(r.rest_bytes(&frame)),
        9 => Authentication::Sspi,
        10 => Authentication::Sasl(parse_mechanisms(&mut r)?),
        11 => Authentication::SaslContinue(r.rest_bytes(&frame)),
        12 => Authentication::SaslFinal(r.rest_bytes(&frame)),
        other => return Err(r.invalid("request code", other.to_string())),
    };
    r.finish()?;
    Ok(auth)
}

fn parse_mechanisms(r: &mut Reader<'_>) -> Result<Vec<String>, ProtocolError> {
    let mut mechanisms = Vec::new();
    loop {
        match r.cstr("mechanism")? {
            "" => return Ok(mechanisms),
            m => mechanisms.push(m.to_owned()),
        }
    }
}

fn parse_notification(body: &[u8]) -> Result<BackendMessage, ProtocolError> {
    let mut r = Reader::new(body, "NotificationResponse");
    let process_id = r.i32("process id")?;
    let channel = r.cstr("channel")?.to_owned();
    let payload = r.cstr("payload")?.to_owned();
    r.finish()?;
    Ok(BackendMessage::NotificationResponse {
        process_id,
        channel,
        payload,
    })
}

fn parse_copy_response(body: &[u8], name: &'static str) -> Result<CopyResponse, ProtocolError> {
    let mut r = Reader::new(body, name);
    let format = r.u8("format")? as i8;
    let n = r.count16("column count")?;
    let column_formats = (0..n)
        .map(|_| r.i16("column format"))
        .collect::<Result<Vec<_>, _>>()?;
    r.finish()?;
    Ok(CopyResponse {
        format,
        column_formats,
    })
}

/// The result stays in the frame's shared `Bytes` (a large-object read of 256 KiB is
/// not copied again).
fn parse_function_call_response(body: Bytes) -> Result<BackendMessage, ProtocolError> {
    let mut r = Reader::new(&body, "FunctionCallResponse");
    let len = r.i32("result length")?;
    let range = match len {
        -1 => None,
        n if n >= 0 => {
            let start = r.pos();
            r.bytes(n as usize, "result")?;
            Some(start..start + n as usize)
        }
        n => return Err(r.invalid("result length", n.to_string())),
    };
    r.finish()?;
    Ok(BackendMessage::FunctionCallResponse(
        range.map(|range| body.slice(range)),
    ))
}

fn parse_negotiate_protocol_version(body: &[u8]) -> Result<BackendMessage, ProtocolError> {
    let mut r = Reader::new(body, "NegotiateProtocolVersion");
    let newest_minor = r.i32("newest minor version")?;
    let n = r.i32("option count")?;
    let n = usize::try_from(n).map_err(|_| r.invalid("option count", n.to_string()))?;
    let mut unrecognized = Vec::new();
    for _ in 0..n {
        unrecognized.push(r.cstr("option name")?.to_owned());
    }
    r.finish()?;
    Ok(BackendMessage::NegotiateProtocolVersion {
        newest_minor,
        unrecognized,
    })
}

/// Parses the number of rows a command tag reports (`INSERT 0 5` → 5, `UPDATE 3` → 3);
/// 0 for tags that carry none (`CREATE TABLE`).
pub fn rows_affected(tag: &str) -> u64 {
    let mut words = tag.split(' ');
    let first = words.next().unwrap_or("");
    let counts = matches!(
        first,
        "INSERT" | "DELETE" | "UPDATE" | "SELECT" | "MOVE" | "FETCH" | "COPY" | "MERGE"
    );
    match (counts, tag.rsplit(' ').next()) {
        (true, Some(n)) => n.parse().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
#[path = "backend_tests.rs"]
mod tests;
