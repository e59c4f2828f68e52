//! The codec against random chunking: a stream of backend messages cut at arbitrary
//! points decodes to exactly what each frame decodes to whole, and arbitrary bytes never
//! panic the decoder.

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use pgkeel::ErrorKind;
use pgkeel::codec::PgCodec;
use pgkeel::protocol::BackendMessage;
use proptest::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{Decoder, FramedRead};

/// One backend message as its type byte and body.
type Frame = (u8, Vec<u8>);

fn wire(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, body) in frames {
        out.push(*tag);
        out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        out.extend_from_slice(body);
    }
    out
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// Text without NUL bytes, including multi-byte UTF-8.
fn text() -> impl Strategy<Value = String> {
    "[^\\x00]{0,12}"
}

fn ready_for_query() -> impl Strategy<Value = Frame> {
    prop::sample::select(&b"ITE"[..]).prop_map(|s| (b'Z', vec![s]))
}

fn data_row() -> impl Strategy<Value = Frame> {
    let value = prop::option::of(prop::collection::vec(any::<u8>(), 0..24));
    prop::collection::vec(value, 0..6).prop_map(|values| {
        let mut body = (values.len() as i16).to_be_bytes().to_vec();
        for v in values {
            match v {
                None => body.put_i32(-1),
                Some(v) => {
                    body.put_i32(v.len() as i32);
                    body.extend_from_slice(&v);
                }
            }
        }
        (b'D', body)
    })
}

fn command_complete() -> impl Strategy<Value = Frame> {
    "(INSERT 0|UPDATE|DELETE|SELECT|COPY|CREATE TABLE|BEGIN) [0-9]{0,6}".prop_map(|tag| {
        let mut body = Vec::new();
        cstr(&mut body, &tag);
        (b'C', body)
    })
}

fn row_description() -> impl Strategy<Value = Frame> {
    let field = (text(), any::<(u32, i16, u32, i16, i32)>(), 0..=1i16);
    prop::collection::vec(field, 0..5).prop_map(|fields| {
        let mut body = (fields.len() as i16).to_be_bytes().to_vec();
        for (name, (table, column, ty, size, modifier), format) in fields {
            cstr(&mut body, &name);
            body.put_u32(table);
            body.put_i16(column);
            body.put_u32(ty);
            body.put_i16(size);
            body.put_i32(modifier);
            body.put_i16(format);
        }
        (b'T', body)
    })
}

/// ErrorResponse or NoticeResponse: (field code, value) pairs and a terminating 0.
fn error_or_notice() -> impl Strategy<Value = Frame> {
    let code = prop::sample::select(&b"SVCMDHPpqWstcdnFLR"[..]);
    let fields = prop::collection::vec((code, text()), 0..6);
    (prop::sample::select(&b"EN"[..]), fields).prop_map(|(tag, fields)| {
        let mut body = Vec::new();
        for (code, value) in fields {
            body.push(code);
            cstr(&mut body, &value);
        }
        body.push(0);
        (tag, body)
    })
}

fn parameter_status() -> impl Strategy<Value = Frame> {
    (text(), text()).prop_map(|(name, value)| {
        let mut body = Vec::new();
        cstr(&mut body, &name);
        cstr(&mut body, &value);
        (b'S', body)
    })
}

fn copy_data() -> impl Strategy<Value = Frame> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..64),
        1 => prop::collection::vec(any::<u8>(), 1000..20_000),
    ]
    .prop_map(|data| (b'd', data))
}

fn small_messages() -> impl Strategy<Value = Frame> {
    prop_oneof![
        prop::sample::select(&b"123nsIc"[..]).prop_map(|tag| (tag, vec![])),
        any::<(i32, i32)>().prop_map(|(pid, key)| {
            let mut body = Vec::new();
            body.put_i32(pid);
            body.put_i32(key);
            (b'K', body)
        }),
        prop::collection::vec(any::<u32>(), 0..8).prop_map(|oids| {
            let mut body = (oids.len() as i16).to_be_bytes().to_vec();
            oids.iter().for_each(|&o| body.put_u32(o));
            (b't', body)
        }),
        (any::<i32>(), text(), text()).prop_map(|(pid, channel, payload)| {
            let mut body = pid.to_be_bytes().to_vec();
            cstr(&mut body, &channel);
            cstr(&mut body, &payload);
            (b'A', body)
        }),
        Just((b'R', vec![0, 0, 0, 0])),
    ]
}

fn backend_message() -> impl Strategy<Value = Frame> {
    prop_oneof![
        1 => ready_for_query(),
        3 => data_row(),
        1 => command_complete(),
        1 => row_description(),
        1 => error_or_notice(),
        1 => parameter_status(),
        1 => copy_data(),
        1 => small_messages(),
    ]
}

/// Chunk sizes, mostly small, sometimes large; used in a cycle.
fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    let size = prop_oneof![8 => 1..=64usize, 1 => 1000..=30_000usize];
    prop::collection::vec(size, 1..32)
}

fn chunks<'a>(bytes: &'a [u8], sizes: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = bytes;
    sizes.iter().cycle().map_while(move |&n| {
        if rest.is_empty() {
            return None;
        }
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        Some(chunk)
    })
}

/// What decoding each frame on its own gives: the reference the chunked decode must match.
fn parse_whole(frames: &[Frame]) -> Vec<Result<BackendMessage, ()>> {
    frames
        .iter()
        .map(|(tag, body)| BackendMessage::parse(*tag, Bytes::from(body.clone())).map_err(drop))
        .collect()
}

/// Feeds `bytes` to `codec` chunk by chunk, decoding after each chunk until it needs more.
/// Stops at the first error; returns what decoded, the error if any, and the leftover.
fn decode_chunked(
    codec: &mut PgCodec,
    bytes: &[u8],
    sizes: &[usize],
) -> (Vec<BackendMessage>, Option<pgkeel::Error>, BytesMut) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks(bytes, sizes) {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(msg)) => out.push(msg),
                Ok(None) => break,
                Err(e) => return (out, Some(e), buf),
            }
        }
    }
    (out, None, buf)
}

proptest! {
    #[test]
    fn valid_messages_in_random_chunks_decode_as_each_frame_does_whole(
        frames in prop::collection::vec(backend_message(), 0..40),
        sizes in chunk_sizes(),
    ) {
        let expected: Vec<_> = parse_whole(&frames).into_iter().map(Result::unwrap).collect();
        let bytes = wire(&frames);
        let (decoded, error, rest) = decode_chunked(&mut PgCodec::default(), &bytes, &sizes);
        prop_assert!(error.is_none(), "{:?}", error);
        prop_assert_eq!(decoded, expected);
        prop_assert!(rest.is_empty(), "{} bytes left over", rest.len());
    }

    #[test]
    fn well_framed_random_bodies_decode_as_whole_frames_up_to_the_first_error(
        frames in prop::collection::vec(
            (
                prop_oneof![3 => prop::sample::select(&b"RK23CdcGHWDIEVvnNAtS1sZT"[..]), 1 => any::<u8>()],
                prop::collection::vec(prop_oneof![3 => 0..4u8, 1 => any::<u8>()], 0..40),
            ),
            0..20,
        ),
        sizes in chunk_sizes(),
    ) {
        let whole = parse_whole(&frames);
        let ok_prefix: Vec<_> = whole.iter().map_while(|r| r.clone().ok()).collect();
        let has_error = ok_prefix.len() < whole.len();
        let bytes = wire(&frames);
        let (decoded, error, _) = decode_chunked(&mut PgCodec::default(), &bytes, &sizes);
        prop_assert_eq!(decoded, ok_prefix);
        prop_assert_eq!(error.map(|e| e.kind()), has_error.then_some(ErrorKind::Protocol));
    }

    #[test]
    fn arbitrary_bytes_in_random_chunks_never_panic_the_decoder(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        sizes in chunk_sizes(),
        // Bounded so a random length field cannot make the decoder reserve a gigabyte.
        max in prop::sample::select(vec![5usize, 64, 1024, 1 << 16]),
    ) {
        let (_, error, _) = decode_chunked(&mut PgCodec::new(max), &bytes, &sizes);
        if let Some(e) = error {
            prop_assert_eq!(e.kind(), ErrorKind::Protocol);
        }
    }
}

/// Writes `bytes` into one end of a small duplex pipe in writes of the given sizes, and
/// collects what a `FramedRead` over the other end yields.
async fn through_a_pipe(bytes: Vec<u8>, sizes: Vec<usize>) -> Vec<BackendMessage> {
    let (mut tx, rx) = tokio::io::duplex(64);
    let writer = tokio::spawn(async move {
        for chunk in chunks(&bytes, &sizes) {
            tx.write_all(chunk).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let mut framed = FramedRead::new(rx, PgCodec::default());
    let mut out = Vec::new();
    while let Some(msg) = framed.next().await {
        out.push(msg.expect("valid messages decode"));
    }
    writer.await.unwrap();
    assert!(framed.read_buffer().is_empty());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn framed_read_over_a_duplex_pipe_yields_every_message_in_order(
        frames in prop::collection::vec(backend_message(), 0..30),
        sizes in chunk_sizes(),
    ) {
        let expected: Vec<_> = parse_whole(&frames).into_iter().map(Result::unwrap).collect();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let decoded = rt.block_on(through_a_pipe(wire(&frames), sizes));
        prop_assert_eq!(decoded, expected);
    }
}

#[test]
fn a_frame_cut_at_every_byte_decodes_only_once_it_is_whole() {
    let frames = [
        (b'D', b"\0\x02\xff\xff\xff\xff\0\0\0\x01x".to_vec()),
        (b'Z', b"I".to_vec()),
    ];
    let bytes = wire(&frames);
    let expected: Vec<_> = parse_whole(&frames)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for cut in 0..=bytes.len() {
        let sizes = [cut.max(1), bytes.len()];
        let (decoded, error, rest) = decode_chunked(&mut PgCodec::default(), &bytes, &sizes);
        assert!(error.is_none(), "cut at {cut}: {error:?}");
        assert_eq!(decoded, expected, "cut at {cut}");
        assert!(rest.is_empty());
    }
}

#[tokio::test]
async fn end_of_stream_inside_a_frame_is_a_closed_error_after_the_whole_frames() {
    let frames = [(b'Z', b"I".to_vec())];
    let mut bytes = wire(&frames);
    bytes.extend_from_slice(b"D\0\0\0\x0e\0\x01");
    let (mut tx, rx) = tokio::io::duplex(64);
    tx.write_all(&bytes).await.unwrap();
    drop(tx);
    let mut framed = FramedRead::new(rx, PgCodec::default());
    let first = framed.next().await.unwrap().unwrap();
    assert_eq!(first, parse_whole(&frames)[0].clone().unwrap());
    let err = framed.next().await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
}

#[tokio::test]
async fn end_of_stream_between_frames_ends_the_stream_cleanly() {
    let (mut tx, rx) = tokio::io::duplex(64);
    tx.write_all(&wire(&[(b'Z', b"I".to_vec())])).await.unwrap();
    drop(tx);
    let mut framed = FramedRead::new(rx, PgCodec::default());
    assert!(framed.next().await.unwrap().is_ok());
    assert!(framed.next().await.is_none());
}
