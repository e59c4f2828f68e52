//! A bounds-checked cursor over a message body: every read either succeeds or returns a
//! [`ProtocolError`], so no server byte can cause a panic.

use bytes::Bytes;

use super::ProtocolError;

/// Reads the fields of one message body in order.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], message: &'static str) -> Self {
        Reader {
            buf,
            pos: 0,
            message,
        }
    }

    fn truncated(&self, field: &'static str) -> ProtocolError {
        ProtocolError::Truncated {
            message: self.message,
            field,
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn bytes(
        &mut self,
        n: usize,
        field: &'static str,
    ) -> Result<&'a [u8], ProtocolError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| self.truncated(field))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ProtocolError> {
        Ok(self.bytes(1, field)?[0])
    }

    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, ProtocolError> {
        let b = self.bytes(2, field)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, ProtocolError> {
        let b = self.bytes(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ProtocolError> {
        Ok(self.i32(field)? as u32)
    }

    /// A non-negative count, as PostgreSQL sends it in an Int16.
    pub(crate) fn count16(&mut self, field: &'static str) -> Result<usize, ProtocolError> {
        let n = self.i16(field)?;
        usize::try_from(n).map_err(|_| self.invalid(field, format!("negative count {n}")))
    }

    /// A NUL-terminated string, checked to be UTF-8.
    pub(crate) fn cstr(&mut self, field: &'static str) -> Result<&'a str, ProtocolError> {
        let rest = &self.buf[self.pos..];
        let nul = rest.iter().position(|&b| b == 0);
        let nul = nul.ok_or_else(|| self.truncated(field))?;
        let s = std::str::from_utf8(&rest[..nul]).map_err(|_| ProtocolError::InvalidUtf8 {
            message: self.message,
            field,
        })?;
        self.pos += nul + 1;
        Ok(s)
    }

    /// The rest of the body as a slice of the shared frame.
    pub(crate) fn rest_bytes(&mut self, frame: &Bytes) -> Bytes {
        let out = frame.slice(self.pos..);
        self.pos = self.buf.len();
        out
    }

    pub(crate) fn invalid(&self, field: &'static str, detail: String) -> ProtocolError {
        ProtocolError::InvalidField {
            message: self.message,
            field,
            detail,
        }
    }

    /// Fails if any byte is left after the last field.
    pub(crate) fn finish(&self) -> Result<(), ProtocolError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(ProtocolError::TrailingBytes {
                message: self.message,
                extra,
            }),
        }
    }
}
