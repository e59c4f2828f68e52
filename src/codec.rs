//! The `tokio_util` codec that turns a socket into a stream of [`BackendMessage`]s.
//!
//! Decoding is cancel safe by construction: bytes stay in the `Framed` read buffer until
//! a whole frame is there, so dropping a read loses nothing. "Need more bytes" is
//! `Ok(None)`, never an error. Encoding takes already-built messages ([`Frontend`]); the
//! connection's hot path writes straight into the write buffer with
//! [`crate::protocol::frontend`] instead.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::{Error, ErrorKind};
use crate::protocol::backend::check_header;
use crate::protocol::{BackendMessage, DEFAULT_MAX_MESSAGE_LEN, ProtocolError};

/// The most the decoder reserves ahead of the bytes that have arrived.
const RESERVE_AHEAD: usize = 1 << 20;

/// Frames backend messages and checks their lengths against a maximum.
#[derive(Debug, Clone)]
pub struct PgCodec {
    max_message_len: usize,
}

impl Default for PgCodec {
    fn default() -> Self {
        PgCodec::new(DEFAULT_MAX_MESSAGE_LEN)
    }
}

impl PgCodec {
    /// A codec that refuses any backend message longer than `max_message_len` bytes.
    pub fn new(max_message_len: usize) -> PgCodec {
        PgCodec { max_message_len }
    }

    /// The largest backend message this codec accepts.
    pub fn max_message_len(&self) -> usize {
        self.max_message_len
    }

    /// Splits off the body of the CopyData message at the front of `src` when it is whole
    /// there and its length is one [`Decoder::decode`] accepts; `None`, with `src`
    /// untouched, for anything else (another kind of message, part of one, or a length
    /// `decode` refuses with its error). The bulk path of COPY TO STDOUT, which needs no
    /// [`BackendMessage`] per row.
    pub fn split_copy_data(&self, src: &mut BytesMut) -> Option<Bytes> {
        let &[b'd', a, b, c, d] = src.get(..5)? else {
            return None;
        };
        let len = usize::try_from(i32::from_be_bytes([a, b, c, d])).ok()?;
        check_header(b'd', Some(len)).ok()?;
        if len > self.max_message_len || src.len() < len + 1 {
            return None;
        }
        src.advance(5);
        Some(src.split_to(len - 4).freeze())
    }
}

impl Decoder for PgCodec {
    type Item = BackendMessage;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BackendMessage>, Error> {
        // The type byte alone can already be refused: random bytes fail here at once.
        let Some(&tag) = src.first() else {
            return Ok(None);
        };
        check_header(tag, None)?;
        let Some(header) = src.get(..5) else {
            return Ok(None);
        };
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let len =
            usize::try_from(len)
                .ok()
                .filter(|&l| l >= 4)
                .ok_or(ProtocolError::InvalidLength {
                    tag: tag as char,
                    len: len.into(),
                })?;
        check_header(tag, Some(len))?;
        if len > self.max_message_len {
            let max = self.max_message_len;
            return Err(ProtocolError::TooLarge {
                tag: tag as char,
                len,
                max,
            }
            .into());
        }
        if src.len() < len + 1 {
            // Reserve for the rest of this frame so a large row is read in few syscalls,
            // but never more than a step ahead of the bytes that arrived: a length header
            // alone must not make us allocate up to the maximum.
            src.reserve((len + 1 - src.len()).min(RESERVE_AHEAD));
            return Ok(None);
        }
        src.advance(5);
        let body = src.split_to(len - 4).freeze();
        Ok(Some(BackendMessage::parse(tag, body)?))
    }

    /// End of stream inside a frame means the server went away, like EOF between frames.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BackendMessage>, Error> {
        match self.decode(src)? {
            Some(msg) => Ok(Some(msg)),
            None if src.is_empty() => Ok(None),
            None => Err(Error::new(
                ErrorKind::Closed,
                format!(
                    "the server closed the connection in the middle of a message ({} bytes of it arrived)",
                    src.len()
                ),
            )),
        }
    }
}

/// A complete frontend message, for callers that want to go through the `Sink`.
#[derive(Debug, Clone, Copy)]
pub enum Frontend<'a> {
    /// Already-encoded messages, written as they are.
    Raw(&'a [u8]),
    /// A simple-protocol Query.
    Query(&'a str),
    /// Sync.
    Sync,
    /// Flush.
    Flush,
    /// Terminate.
    Terminate,
}

impl Encoder<Frontend<'_>> for PgCodec {
    type Error = Error;

    fn encode(&mut self, item: Frontend<'_>, dst: &mut BytesMut) -> Result<(), Error> {
        use crate::protocol::frontend;
        match item {
            Frontend::Raw(bytes) => dst.put_slice(bytes),
            Frontend::Query(sql) => frontend::query(sql, dst)?,
            Frontend::Sync => frontend::sync(dst),
            Frontend::Flush => frontend::flush(dst),
            Frontend::Terminate => frontend::terminate(dst),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::protocol::TransactionStatus;

    #[test]
    fn partial_frames_need_more_bytes_and_whole_ones_decode() {
        let mut codec = PgCodec::default();
        let mut buf = BytesMut::from(&b"Z\0\0\0"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.put_slice(b"\x05I");
        let msg = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(msg, BackendMessage::ReadyForQuery(TransactionStatus::Idle));
        assert!(buf.is_empty());
    }

    #[test]
    fn copy_data_is_split_off_only_when_whole_and_decodable() {
        let codec = PgCodec::new(16);
        let mut buf = BytesMut::from(&b"d\0\0\0\x07abcd\0\0"[..]);
        assert_eq!(
            codec.split_copy_data(&mut buf).as_deref(),
            Some(&b"abc"[..])
        );
        assert_eq!(&buf[..], b"d\0\0");
        // Part of a frame, another kind of frame, a length decode refuses: untouched.
        for bytes in [
            &b"d\0\0"[..],
            b"d\0\0\0\x08abc",
            b"Z\0\0\0\x05I",
            b"d\0\0\0\x03",
            b"d\xff\xff\xff\xffabc",
            b"d\0\0\0\x15aaaaaaaaaaaaaaaaa",
        ] {
            let mut buf = BytesMut::from(bytes);
            assert_eq!(codec.split_copy_data(&mut buf), None, "{bytes:?}");
            assert_eq!(&buf[..], bytes);
        }
    }

    #[test]
    fn a_length_below_four_is_a_protocol_error() {
        let mut buf = BytesMut::from(&b"Z\0\0\0\x03I"[..]);
        let err = PgCodec::default().decode(&mut buf).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        let mut buf = BytesMut::from(&b"Z\xff\xff\xff\xffI"[..]);
        assert!(PgCodec::default().decode(&mut buf).is_err());
    }

    #[test]
    fn a_length_over_the_maximum_is_refused_before_buffering() {
        let mut buf = BytesMut::from(&b"D\0\x10\0\0"[..]);
        let err = PgCodec::new(1024).decode(&mut buf).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(
            err.to_string().contains("exceeds the maximum of 1024"),
            "{err}"
        );
    }

    #[test]
    fn a_length_header_alone_does_not_reserve_the_whole_frame() {
        let mut buf = BytesMut::from(&b"D\x3f\xff\xff\xff"[..]);
        assert!(PgCodec::default().decode(&mut buf).unwrap().is_none());
        assert!(
            buf.capacity() <= 2 * RESERVE_AHEAD,
            "reserved {}",
            buf.capacity()
        );
    }

    #[test]
    fn an_unknown_tag_is_a_protocol_error() {
        let mut buf = BytesMut::from(&b"@\0\0\0\x04"[..]);
        let err = PgCodec::default().decode(&mut buf).unwrap_err();
        assert!(
            err.to_string().contains("unknown backend message type '@'"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_tag_is_refused_from_its_first_byte_alone() {
        let mut buf = BytesMut::from(&b"\x07"[..]);
        let err = PgCodec::default().decode(&mut buf).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    }

    #[test]
    fn a_length_its_message_type_cannot_have_is_refused_at_the_header() {
        for header in [
            &b"Z\0\0\x10\0"[..],
            b"1\0\0\0\x05",
            b"K\0\0\0\x08",
            b"R\0\0\0\x04",
        ] {
            let mut buf = BytesMut::from(header);
            let err = PgCodec::default().decode(&mut buf).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol, "{header:?}: {err}");
        }
        let mut ok = BytesMut::from(&b"K\0\0\0\x0c"[..]);
        assert!(PgCodec::default().decode(&mut ok).unwrap().is_none());
    }
}
