//! Messages the client sends, encoded straight into the connection's write buffer.
//!
//! Each function appends one whole message. A message that cannot be built (a NUL byte
//! inside a string, more than 65535 parameters, a body over the 1 GiB frame limit) is an
//! error and leaves `buf` as it was, so a half-written message never reaches the socket.

use bytes::{BufMut, BytesMut};

use super::{PROTOCOL_VERSION, ProtocolError};
use crate::types::Oid;

/// The largest message body PostgreSQL accepts from a client (`PQ_LARGE_MESSAGE_LIMIT`).
const MAX_FRONTEND_BODY: usize = (1 << 30) - 1;

/// Format code of a value: 0 text, 1 binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The textual representation.
    Text = 0,
    /// The binary (send/recv) representation.
    Binary = 1,
}

/// Which kind of object a Describe or Close names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A prepared statement (`S`).
    Statement,
    /// A portal (`P`).
    Portal,
}

impl Target {
    fn byte(self) -> u8 {
        match self {
            Target::Statement => b'S',
            Target::Portal => b'P',
        }
    }
}

fn encode_error(message: &'static str, detail: impl Into<String>) -> ProtocolError {
    ProtocolError::Encode {
        message,
        detail: detail.into(),
    }
}

/// Writes a message with its length prefix, running `body` to fill it; on error `buf` is
/// truncated back to where it was.
fn message<E>(
    tag: Option<u8>,
    name: &'static str,
    buf: &mut BytesMut,
    body: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<ProtocolError>,
{
    let start = buf.len();
    if let Some(tag) = tag {
        buf.put_u8(tag);
    }
    let len_at = buf.len();
    buf.put_i32(0);
    if let Err(e) = body(buf) {
        buf.truncate(start);
        return Err(e);
    }
    let len = buf.len() - len_at;
    if len - 4 > MAX_FRONTEND_BODY {
        buf.truncate(start);
        return Err(
            encode_error(name, format!("message body of {len} bytes is over 1 GiB")).into(),
        );
    }
    buf[len_at..len_at + 4].copy_from_slice(&(len as i32).to_be_bytes());
    Ok(())
}

/// Appends a NUL-terminated string, refusing one that contains a NUL.
fn cstr(s: &str, name: &'static str, buf: &mut BytesMut) -> Result<(), ProtocolError> {
    if s.as_bytes().contains(&0) {
        return Err(encode_error(name, "string contains a NUL byte"));
    }
    buf.put_slice(s.as_bytes());
    buf.put_u8(0);
    Ok(())
}

fn count16(n: usize, name: &'static str, what: &str) -> Result<i16, ProtocolError> {
    i16::try_from(n)
        .or_else(|_| u16::try_from(n).map(|v| v as i16))
        .map_err(|_| encode_error(name, format!("{n} {what} is over the limit of 65535")))
}

/// StartupMessage: protocol 3.0 and `(name, value)` parameters (`user` is required).
pub fn startup(params: &[(&str, &str)], buf: &mut BytesMut) -> Result<(), ProtocolError> {
    message(None, "StartupMessage", buf, |buf| {
        buf.put_i32(PROTOCOL_VERSION);
        for (k, v) in params {
            cstr(k, "StartupMessage", buf)?;
            cstr(v, "StartupMessage", buf)?;
        }
        buf.put_u8(0);
        Ok(())
    })
}

/// StartupMessage for protocol 3.`minor` (3.0, or 3.2 with PostgreSQL 18's longer cancel
/// keys); a server that speaks an older minor version answers NegotiateProtocolVersion.
pub fn startup_with_minor(
    minor: u16,
    params: &[(&str, &str)],
    buf: &mut BytesMut,
) -> Result<(), ProtocolError> {
    let start = buf.len();
    startup(params, buf)?;
    // The version follows the 4-byte length: major in the high half, minor in the low.
    buf[start + 6..start + 8].copy_from_slice(&minor.to_be_bytes());
    Ok(())
}

/// CancelRequest with a secret key of any length (4 bytes in protocol 3.0, up to 256 in 3.2).
pub fn cancel_request_with_key(process_id: i32, secret_key: &[u8], buf: &mut BytesMut) {
    buf.put_i32(12 + secret_key.len() as i32);
    buf.put_i32(80_877_102);
    buf.put_i32(process_id);
    buf.put_slice(secret_key);
}

/// SSLRequest: asks the server to switch to TLS.
pub fn ssl_request(buf: &mut BytesMut) {
    buf.put_i32(8);
    buf.put_i32(80_877_103);
}

/// CancelRequest: sent on a fresh connection to cancel the query of another session.
pub fn cancel_request(process_id: i32, secret_key: i32, buf: &mut BytesMut) {
    buf.put_i32(16);
    buf.put_i32(80_877_102);
    buf.put_i32(process_id);
    buf.put_i32(secret_key);
}

/// PasswordMessage with a cleartext or MD5 password.
pub fn password(password: &[u8], buf: &mut BytesMut) -> Result<(), ProtocolError> {
    if password.contains(&0) {
        return Err(encode_error(
            "PasswordMessage",
            "password contains a NUL byte",
        ));
    }
    message(Some(b'p'), "PasswordMessage", buf, |buf| {
        buf.put_slice(password);
        buf.put_u8(0);
        Ok(())
    })
}

/// SASLInitialResponse: the chosen mechanism and the client-first message.
pub fn sasl_initial_response(
    mechanism: &str,
    data: &[u8],
    buf: &mut BytesMut,
) -> Result<(), ProtocolError> {
    message(Some(b'p'), "SASLInitialResponse", buf, |buf| {
        cstr(mechanism, "SASLInitialResponse", buf)?;
        buf.put_i32(data.len() as i32);
        buf.put_slice(data);
        Ok(())
    })
}

/// SASLResponse: a further SASL message.
pub fn sasl_response(data: &[u8], buf: &mut BytesMut) -> Result<(), ProtocolError> {
    message(Some(b'p'), "SASLResponse", buf, |buf| {
        buf.put_slice(data);
        Ok(())
    })
}

/// Query: one or more SQL statements in the simple protocol.
pub fn query(sql: &str, buf: &mut BytesMut) -> Result<(), ProtocolError> {
    message(Some(b'Q'), "Query", buf, |buf| cstr(sql, "Query", buf))
}

/// Parse: prepares `sql` as statement `name` ("" is the unnamed statement); a type of 0
/// leaves that parameter's type to the server.
pub fn parse(
    name: &str,
    sql: &str,
    param_types: &[Oid],
    buf: &mut BytesMut,
) -> Result<(), ProtocolError> {
    message(Some(b'P'), "Parse", buf, |buf| {
        cstr(name, "Parse", buf)?;
        cstr(sql, "Parse", buf)?;
        buf.put_i16(count16(param_types.len(), "Parse", "parameter types")?);
        for &oid in param_types {
            buf.put_u32(oid);
        }
        Ok(())
    })
}

/// Bind: binds parameters to `statement` as `portal`, all parameters and results in the
/// given formats.
///
/// `value` is called once per parameter with the buffer to append the encoded value to
/// (without its length) and returns `Ok(true)` for SQL NULL. Its error aborts the whole
/// message and leaves `buf` as it was.
pub fn bind<E>(
    portal: &str,
    statement: &str,
    param_count: usize,
    param_format: Format,
    value: impl FnMut(usize, &mut BytesMut) -> Result<bool, E>,
    result_format: Format,
    buf: &mut BytesMut,
) -> Result<(), E>
where
    E: From<ProtocolError>,
{
    let formats = |buf: &mut BytesMut| {
        buf.put_i16(1);
        buf.put_i16(param_format as i16);
    };
    let head = BindHead {
        portal,
        statement,
        param_count,
        result_format,
    };
    bind_message(head, formats, value, buf)
}

/// Bind with one format code per parameter (`param_format(i)` for parameter `i`), for a
/// mix of binary values and text that the server parses (its input function).
///
/// # Errors
/// As [`bind`].
pub fn bind_formats<E>(
    portal: &str,
    statement: &str,
    param_count: usize,
    param_format: impl Fn(usize) -> Format,
    value: impl FnMut(usize, &mut BytesMut) -> Result<bool, E>,
    result_format: Format,
    buf: &mut BytesMut,
) -> Result<(), E>
where
    E: From<ProtocolError>,
{
    // The count is checked by `bind_message` before anything is kept.
    let formats = |buf: &mut BytesMut| {
        buf.put_i16(param_count as i16);
        for i in 0..param_count {
            buf.put_i16(param_format(i) as i16);
        }
    };
    let head = BindHead {
        portal,
        statement,
        param_count,
        result_format,
    };
    bind_message(head, formats, value, buf)
}

/// What every Bind carries besides its format codes and values.
struct BindHead<'a> {
    portal: &'a str,
    statement: &'a str,
    param_count: usize,
    result_format: Format,
}

/// One Bind: names, the parameter format codes `formats` writes, the values, and one
/// result format for all columns.
fn bind_message<E>(
    head: BindHead<'_>,
    formats: impl FnOnce(&mut BytesMut),
    mut value: impl FnMut(usize, &mut BytesMut) -> Result<bool, E>,
    buf: &mut BytesMut,
) -> Result<(), E>
where
    E: From<ProtocolError>,
{
    message(Some(b'B'), "Bind", buf, |buf| {
        cstr(head.portal, "Bind", buf)?;
        cstr(head.statement, "Bind", buf)?;
        let count = count16(head.param_count, "Bind", "parameters")?;
        formats(buf);
        buf.put_i16(count);
        for i in 0..head.param_count {
            put_value("Bind", "parameter", i, &mut value, buf)?;
        }
        buf.put_i16(1);
        buf.put_i16(head.result_format as i16);
        Ok(())
    })
}

/// One length-prefixed value of a Bind or FunctionCall, written in place by `value`.
fn put_value<E>(
    message: &'static str,
    what: &str,
    i: usize,
    value: &mut impl FnMut(usize, &mut BytesMut) -> Result<bool, E>,
    buf: &mut BytesMut,
) -> Result<(), E>
where
    E: From<ProtocolError>,
{
    let len_at = buf.len();
    buf.put_i32(0);
    let is_null = value(i, buf)?;
    let len = buf.len() - len_at - 4;
    let len = match (is_null, i32::try_from(len)) {
        // A NULL has no value bytes; any the callback wrote would corrupt the frame.
        (true, _) => {
            buf.truncate(len_at + 4);
            -1
        }
        (false, Ok(len)) => len,
        (false, Err(_)) => {
            let detail = format!("{what} {} is over 2 GiB", i + 1);
            return Err(encode_error(message, detail).into());
        }
    };
    buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Describe: asks for the parameter and row description of a statement or portal.
pub fn describe(target: Target, name: &str, buf: &mut BytesMut) -> Result<(), ProtocolError> {
    message(Some(b'D'), "Describe", buf, |buf| {
        buf.put_u8(target.byte());
        cstr(name, "Describe", buf)
    })
}

/// Execute: runs `portal`, returning at most `max_rows` rows (0 means all).
pub fn execute(portal: &str, max_rows: i32, buf: &mut BytesMut) -> Result<(), ProtocolError> {
    message(Some(b'E'), "Execute", buf, |buf| {
        cstr(portal, "Execute", buf)?;
        buf.put_i32(max_rows);
        Ok(())
    })
}

/// Close: releases a prepared statement or portal.
pub fn close(target: Target, name: &str, buf: &mut BytesMut) -> Result<(), ProtocolError> {
    message(Some(b'C'), "Close", buf, |buf| {
        buf.put_u8(target.byte());
        cstr(name, "Close", buf)
    })
}

fn no_body(tag: u8, buf: &mut BytesMut) {
    buf.put_u8(tag);
    buf.put_i32(4);
}

/// Sync: ends an extended-protocol exchange; the server answers with ReadyForQuery.
pub fn sync(buf: &mut BytesMut) {
    no_body(b'S', buf);
}

/// Flush: asks the server to send what it has buffered, without ending the exchange.
pub fn flush(buf: &mut BytesMut) {
    no_body(b'H', buf);
}

/// Terminate: ends the session.
pub fn terminate(buf: &mut BytesMut) {
    no_body(b'X', buf);
}

/// CopyData: a chunk of COPY FROM STDIN data.
pub fn copy_data(data: &[u8], buf: &mut BytesMut) -> Result<(), ProtocolError> {
    message(Some(b'd'), "CopyData", buf, |buf| {
        buf.put_slice(data);
        Ok(())
    })
}

/// CopyDone: COPY FROM STDIN data is complete.
pub fn copy_done(buf: &mut BytesMut) {
    no_body(b'c', buf);
}

/// CopyFail: aborts COPY FROM STDIN with a message the server puts in its error.
pub fn copy_fail(reason: &str, buf: &mut BytesMut) -> Result<(), ProtocolError> {
    message(Some(b'f'), "CopyFail", buf, |buf| {
        cstr(reason, "CopyFail", buf)
    })
}

/// FunctionCall: the fast-path call of function `oid` with binary arguments (`None` is
/// NULL) and a result in `result_format`.
///
/// # Errors
/// [`ProtocolError::Encode`] for more than 65535 arguments, an argument over 2 GiB or a
/// message over 1 GiB; `buf` is left as it was.
pub fn function_call(
    oid: Oid,
    args: &[Option<&[u8]>],
    result_format: Format,
    buf: &mut BytesMut,
) -> Result<(), ProtocolError> {
    let value = |i: usize, buf: &mut BytesMut| match args[i] {
        None => Ok(true),
        Some(a) => {
            buf.put_slice(a);
            Ok(false)
        }
    };
    function_call_with(oid, args.len(), value, result_format, buf)
}

/// FunctionCall with each argument encoded in place by `value` (as [`bind`] does):
/// called once per argument with the buffer to append its binary encoding to, it
/// returns `Ok(true)` for SQL NULL. Its error aborts the message and leaves `buf` as it
/// was.
///
/// # Errors
/// As [`function_call`], and whatever `value` returns.
pub fn function_call_with<E>(
    oid: Oid,
    arg_count: usize,
    mut value: impl FnMut(usize, &mut BytesMut) -> Result<bool, E>,
    result_format: Format,
    buf: &mut BytesMut,
) -> Result<(), E>
where
    E: From<ProtocolError>,
{
    message(Some(b'F'), "FunctionCall", buf, |buf| {
        buf.put_u32(oid);
        buf.put_i16(1);
        buf.put_i16(Format::Binary as i16);
        buf.put_i16(count16(arg_count, "FunctionCall", "arguments")?);
        for i in 0..arg_count {
            put_value("FunctionCall", "argument", i, &mut value, buf)?;
        }
        buf.put_i16(result_format as i16);
        Ok(())
    })
}

#[cfg(test)]
#[path = "frontend_tests.rs"]
mod tests;
