//! The bodies of pgkeel's fuzz targets, shared by the cargo-fuzz crate in this
//! directory (`fuzz_targets/*.rs`) and the smoke test that `cargo test` runs
//! (`tests/it/fuzz_smoke.rs`). Each takes arbitrary bytes and must never panic, hang or
//! allocate without bound; what they return does not matter.

use bytes::{Bytes, BytesMut};
use pgkeel::codec::PgCodec;
use pgkeel::protocol::BackendMessage;
use pgkeel::protocol::auth::{ChannelBinding, ScramSha256};
use pgkeel::types::{
    Array, BitString, Date, FromSql, Interval, IpNet, Multirange, Numeric, PgDate, PgLsn,
    PgTimestampTz, Range, Record, Timestamp, Type,
};
use tokio_util::codec::Decoder;

/// The frame decoder, fed in two chunks split where the first byte says.
pub fn decode(data: &[u8]) {
    let mut codec = PgCodec::new(1 << 20);
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut buf = BytesMut::from(&data[..split]);
    if drain(&mut codec, &mut buf) {
        buf.extend_from_slice(&data[split..]);
        if drain(&mut codec, &mut buf) {
            let _ = codec.decode_eof(&mut buf);
        }
    }
}

/// Decodes every whole frame; false once the codec has refused the stream.
fn drain(codec: &mut PgCodec, buf: &mut BytesMut) -> bool {
    loop {
        match codec.decode(buf) {
            Ok(Some(_)) => continue,
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

/// One message body behind one type byte, parsed without the framing checks.
pub fn message(data: &[u8]) {
    if let Some((&tag, body)) = data.split_first() {
        let _ = BackendMessage::parse(tag, Bytes::copy_from_slice(body));
    }
}

/// The client side of SCRAM against an arbitrary server-first and server-final
/// (separated by the first 0xFF byte). Iteration counts above 16 are skipped (the key
/// derivation costs the same for any count; the client follows the count the server asks for, as libpq does).
pub fn scram(data: &[u8]) {
    let mut parts = data.splitn(2, |&b| b == 0xFF);
    let first = parts.next().unwrap_or_default();
    let last = parts.next().unwrap_or_default();
    if iterations_over(first, 16) {
        return;
    }
    let mut scram = ScramSha256::with_nonce(
        b"pencil",
        ChannelBinding::Unsupported,
        "fyko+d2lbbFgONRv9qkxdawL",
    );
    if scram.handle_server_first(first).is_ok() {
        let _ = scram.verify_server_final(last);
    }
}

fn iterations_over(server_first: &[u8], max: u64) -> bool {
    let text = String::from_utf8_lossy(server_first);
    text.split(',')
        .filter_map(|a| a.strip_prefix("i="))
        .any(|i| i.len() > 9 || i.parse::<u64>().is_ok_and(|n| n > max))
}

/// A connection URL or `key=value` string (environment and password files are not read).
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<pgkeel::Config>();
    }
}

/// Binary column values: the first byte picks a type, the rest is the value.
pub fn values(data: &[u8]) {
    let Some((&pick, raw)) = data.split_first() else {
        return;
    };
    match pick % 16 {
        0 => try_decode::<i64>(&Type::INT8, raw),
        1 => try_decode::<String>(&Type::TEXT, raw),
        2 => try_decode::<f64>(&Type::FLOAT8, raw),
        3 => try_decode::<Numeric>(&Type::NUMERIC, raw),
        4 => try_decode::<Timestamp<PgTimestampTz>>(&Type::TIMESTAMPTZ, raw),
        5 => try_decode::<Date<PgDate>>(&Type::DATE, raw),
        6 => try_decode::<Interval>(&Type::INTERVAL, raw),
        7 => try_decode::<Vec<Option<i32>>>(&Type::INT4_ARRAY, raw),
        8 => try_decode::<Array<Option<String>>>(&Type::TEXT_ARRAY, raw),
        9 => try_decode::<Range<i32>>(&Type::INT4_RANGE, raw),
        10 => try_decode::<Multirange<i64>>(&Type::INT8MULTI_RANGE, raw),
        11 => try_decode::<IpNet>(&Type::INET, raw),
        12 => try_decode::<BitString>(&Type::VARBIT, raw),
        13 => try_decode::<Record>(&Type::RECORD, raw),
        14 => try_decode::<PgLsn>(&Type::PG_LSN, raw),
        _ => try_decode::<Vec<Option<Numeric>>>(&Type::NUMERIC_ARRAY, raw),
    }
}

fn try_decode<'a, T: FromSql<'a>>(ty: &Type, raw: &'a [u8]) {
    if let Ok(v) = T::from_sql(ty, raw) {
        // Rendering walks what decoding built (a numeric's digits, an array's shape).
        let _ = std::hint::black_box(std::mem::size_of_val(&v));
    }
}
