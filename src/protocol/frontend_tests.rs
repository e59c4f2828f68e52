//! Golden bytes for every frontend message, written out from the PostgreSQL manual,
//! "Message Formats" (<https://www.postgresql.org/docs/current/protocol-message-formats.html>),
//! never computed by the encoder under test.

use bytes::{BufMut, BytesMut};

use super::*;

/// Bytes already in the buffer before each message, so tests also check that encoders
/// append and that a failed encode leaves earlier messages alone.
const PREFIX: &[u8] = b"earlier";

fn prefixed() -> BytesMut {
    BytesMut::from(PREFIX)
}

/// Runs `encode` on a buffer holding [`PREFIX`] and returns what it appended.
fn appended(encode: impl FnOnce(&mut BytesMut) -> Result<(), ProtocolError>) -> Vec<u8> {
    let mut buf = prefixed();
    encode(&mut buf).expect("the message encodes");
    assert_eq!(&buf[..PREFIX.len()], PREFIX, "earlier bytes were changed");
    buf[PREFIX.len()..].to_vec()
}

/// Runs `encode` on a buffer holding [`PREFIX`], expects an Encode error, and checks that
/// the buffer is exactly as it was.
fn refused<E: std::fmt::Debug>(encode: impl FnOnce(&mut BytesMut) -> Result<(), E>) -> E {
    let mut buf = prefixed();
    let err = encode(&mut buf).expect_err("the message must be refused");
    assert_eq!(&buf[..], PREFIX, "a refused message left bytes behind");
    err
}

fn assert_encode_error(err: ProtocolError) {
    assert!(matches!(err, ProtocolError::Encode { .. }), "{err:?}");
}

#[test]
fn startup_writes_version_three_and_nul_terminated_pairs() {
    let got = appended(|b| startup(&[("user", "u"), ("database", "db")], b));
    assert_eq!(got, b"\0\0\0\x1c\0\x03\0\0user\0u\0database\0db\0\0");
}

#[test]
fn startup_without_parameters_is_version_and_terminator() {
    assert_eq!(appended(|b| startup(&[], b)), b"\0\0\0\x09\0\x03\0\0\0");
}

#[test]
fn ssl_request_is_length_eight_and_code_80877103() {
    let mut buf = prefixed();
    ssl_request(&mut buf);
    assert_eq!(&buf[PREFIX.len()..], b"\0\0\0\x08\x04\xd2\x16\x2f");
}

#[test]
fn cancel_request_is_length_sixteen_code_80877102_pid_and_key() {
    let mut buf = prefixed();
    cancel_request(0x0102_0304, -1, &mut buf);
    assert_eq!(
        &buf[PREFIX.len()..],
        b"\0\0\0\x10\x04\xd2\x16\x2e\x01\x02\x03\x04\xff\xff\xff\xff"
    );
}

#[test]
fn password_is_a_nul_terminated_string_under_tag_p() {
    assert_eq!(appended(|b| password(b"secret", b)), b"p\0\0\0\x0bsecret\0");
}

#[test]
fn sasl_initial_response_carries_mechanism_and_length_prefixed_data() {
    let got = appended(|b| sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=abc", b));
    assert_eq!(got, b"p\0\0\0\x21SCRAM-SHA-256\0\0\0\0\x0bn,,n=,r=abc");
}

#[test]
fn sasl_response_is_the_raw_data_under_tag_p() {
    assert_eq!(
        appended(|b| sasl_response(b"c=biws", b)),
        b"p\0\0\0\x0ac=biws"
    );
}

#[test]
fn query_is_the_nul_terminated_sql_under_tag_q() {
    assert_eq!(appended(|b| query("SELECT 1", b)), b"Q\0\0\0\x0dSELECT 1\0");
}

#[test]
fn parse_writes_name_sql_and_parameter_type_oids() {
    let got = appended(|b| parse("s1", "SELECT $1", &[23], b));
    assert_eq!(got, b"P\0\0\0\x17s1\0SELECT $1\0\0\x01\0\0\0\x17");
}

#[test]
fn parse_of_the_unnamed_statement_without_types_has_a_zero_count() {
    let got = appended(|b| parse("", "SELECT 1", &[], b));
    assert_eq!(got, b"P\0\0\0\x10\0SELECT 1\0\0\0");
}

#[test]
fn parse_accepts_65535_parameter_types_as_an_unsigned_count() {
    let types = vec![0; 65_535];
    let got = appended(|b| parse("", "", &types, b));
    assert_eq!(&got[..9], b"P\0\x04\0\x04\0\0\xff\xff");
    assert_eq!(got.len(), 1 + 4 + 1 + 1 + 2 + 4 * 65_535);
}

/// Binds parameter 0 as NULL and parameter 1 as the int4 7.
fn null_then_seven(i: usize, buf: &mut BytesMut) -> Result<bool, ProtocolError> {
    match i {
        0 => Ok(true),
        _ => {
            buf.put_i32(7);
            Ok(false)
        }
    }
}

#[test]
fn bind_writes_binary_formats_a_null_and_a_value() {
    let got = appended(|b| {
        bind(
            "p",
            "s1",
            2,
            Format::Binary,
            null_then_seven,
            Format::Binary,
            b,
        )
    });
    let expected =
        b"B\0\0\0\x1fp\0s1\0\0\x01\0\x01\0\x02\xff\xff\xff\xff\0\0\0\x04\0\0\0\x07\0\x01\0\x01";
    assert_eq!(got, expected);
}

#[test]
fn bind_of_an_empty_text_value_has_length_zero_not_minus_one() {
    let got = appended(|b| {
        bind(
            "",
            "",
            1,
            Format::Text,
            |_, _| Ok::<_, ProtocolError>(false),
            Format::Text,
            b,
        )
    });
    assert_eq!(got, b"B\0\0\0\x14\0\0\0\x01\0\0\0\x01\0\0\0\0\0\x01\0\0");
}

#[test]
fn bind_without_parameters_still_names_one_format_each() {
    let got = appended(|b| {
        bind(
            "",
            "s",
            0,
            Format::Binary,
            |_, _| -> Result<bool, ProtocolError> { unreachable!("no parameters") },
            Format::Binary,
            b,
        )
    });
    assert_eq!(got, b"B\0\0\0\x11\0s\0\0\x01\0\x01\0\0\0\x01\0\x01");
}

#[test]
fn a_null_value_drops_any_bytes_its_callback_wrote() {
    let got = appended(|b| {
        bind(
            "",
            "",
            1,
            Format::Binary,
            |_, buf| {
                buf.put_slice(b"junk");
                Ok::<_, ProtocolError>(true)
            },
            Format::Binary,
            b,
        )
    });
    assert_eq!(
        got,
        b"B\0\0\0\x14\0\0\0\x01\0\x01\0\x01\xff\xff\xff\xff\0\x01\0\x01"
    );
}

#[derive(Debug, PartialEq)]
enum ValueError {
    Protocol(ProtocolError),
    Value(usize),
}

impl From<ProtocolError> for ValueError {
    fn from(e: ProtocolError) -> ValueError {
        ValueError::Protocol(e)
    }
}

#[test]
fn a_failing_value_midway_truncates_the_whole_bind_and_returns_its_error() {
    let mut calls = Vec::new();
    let err = refused(|b| {
        bind(
            "",
            "s1",
            3,
            Format::Binary,
            |i, buf| {
                calls.push(i);
                buf.put_slice(b"half-written value");
                match i {
                    1 => Err(ValueError::Value(i)),
                    _ => Ok(false),
                }
            },
            Format::Binary,
            b,
        )
    });
    assert_eq!(err, ValueError::Value(1));
    assert_eq!(calls, [0, 1], "no value is encoded after the failing one");
}

#[test]
fn describe_names_a_statement_with_s_and_a_portal_with_p() {
    let statement = appended(|b| describe(Target::Statement, "s1", b));
    assert_eq!(statement, b"D\0\0\0\x08Ss1\0");
    let portal = appended(|b| describe(Target::Portal, "", b));
    assert_eq!(portal, b"D\0\0\0\x06P\0");
}

#[test]
fn execute_writes_the_portal_and_the_row_limit() {
    assert_eq!(appended(|b| execute("", 0, b)), b"E\0\0\0\x09\0\0\0\0\0");
    assert_eq!(
        appended(|b| execute("p", 10, b)),
        b"E\0\0\0\x0ap\0\0\0\0\x0a"
    );
}

#[test]
fn close_names_a_statement_with_s_and_a_portal_with_p() {
    let statement = appended(|b| close(Target::Statement, "s1", b));
    assert_eq!(statement, b"C\0\0\0\x08Ss1\0");
    let portal = appended(|b| close(Target::Portal, "p", b));
    assert_eq!(portal, b"C\0\0\0\x07Pp\0");
}

#[test]
fn sync_flush_terminate_and_copy_done_are_a_tag_and_length_four() {
    type Encode = fn(&mut BytesMut);
    let cases: [(Encode, &[u8]); 4] = [
        (sync, b"S\0\0\0\x04"),
        (flush, b"H\0\0\0\x04"),
        (terminate, b"X\0\0\0\x04"),
        (copy_done, b"c\0\0\0\x04"),
    ];
    for (encode, expected) in cases {
        let mut buf = prefixed();
        encode(&mut buf);
        assert_eq!(&buf[PREFIX.len()..], expected);
    }
}

#[test]
fn copy_data_is_the_raw_chunk_under_tag_d() {
    assert_eq!(appended(|b| copy_data(b"1\t2\n", b)), b"d\0\0\0\x081\t2\n");
    assert_eq!(appended(|b| copy_data(b"", b)), b"d\0\0\0\x04");
}

#[test]
fn copy_fail_is_the_nul_terminated_reason_under_tag_f() {
    assert_eq!(appended(|b| copy_fail("no", b)), b"f\0\0\0\x07no\0");
}

#[test]
fn function_call_writes_oid_binary_arguments_a_null_and_the_result_format() {
    let five: &[u8] = b"\0\0\0\x05";
    let got = appended(|b| function_call(1234, &[Some(five), None], Format::Text, b));
    let expected =
        b"F\0\0\0\x1c\0\0\x04\xd2\0\x01\0\x01\0\x02\0\0\0\x04\0\0\0\x05\xff\xff\xff\xff\0\0";
    assert_eq!(got, expected);
}

#[test]
fn a_nul_byte_in_any_string_is_an_encode_error_that_leaves_the_buffer_as_it_was() {
    type Encode = fn(&mut BytesMut) -> Result<(), ProtocolError>;
    let cases: [(&str, Encode); 15] = [
        ("startup name", |b| startup(&[("us\0er", "u")], b)),
        ("startup value", |b| {
            startup(&[("user", "u"), ("db", "d\0")], b)
        }),
        ("password", |b| password(b"pw\0", b)),
        ("sasl mechanism", |b| {
            sasl_initial_response("SCRAM\0", b"x", b)
        }),
        ("query", |b| query("SELECT 1;\0DROP", b)),
        ("parse name", |b| parse("s\0", "SELECT 1", &[], b)),
        ("parse sql", |b| parse("s", "SELECT\0 1", &[], b)),
        ("bind portal", |b| {
            bind(
                "\0",
                "s",
                1,
                Format::Binary,
                null_then_seven,
                Format::Binary,
                b,
            )
        }),
        ("bind statement", |b| {
            bind(
                "",
                "s\0",
                1,
                Format::Binary,
                null_then_seven,
                Format::Binary,
                b,
            )
        }),
        ("describe statement", |b| {
            describe(Target::Statement, "\0", b)
        }),
        ("describe portal", |b| describe(Target::Portal, "p\0q", b)),
        ("execute", |b| execute("p\0", 0, b)),
        ("close statement", |b| close(Target::Statement, "s\0", b)),
        ("close portal", |b| close(Target::Portal, "\0p", b)),
        ("copy fail", |b| copy_fail("reason\0", b)),
    ];
    for (what, encode) in cases {
        let mut buf = prefixed();
        let err = encode(&mut buf).expect_err(what);
        assert!(
            matches!(err, ProtocolError::Encode { .. }),
            "{what}: {err:?}"
        );
        assert_eq!(&buf[..], PREFIX, "{what} left bytes behind");
    }
}

#[test]
fn seventy_thousand_parameters_are_an_encode_error() {
    let types = vec![0; 70_000];
    assert_encode_error(refused(|b| parse("", "SELECT", &types, b)));
    let err = refused(|b| {
        bind(
            "",
            "",
            70_000,
            Format::Binary,
            |_, _| -> Result<bool, ProtocolError> { panic!("no value is encoded") },
            Format::Binary,
            b,
        )
    });
    assert_encode_error(err);
    let args = vec![None; 70_000];
    assert_encode_error(refused(|b| function_call(1, &args, Format::Binary, b)));
}

#[test]
fn consecutive_messages_are_appended_back_to_back() {
    let mut buf = BytesMut::new();
    query("", &mut buf).unwrap();
    sync(&mut buf);
    execute("", 1, &mut buf).unwrap();
    let expected = b"Q\0\0\0\x05\0S\0\0\0\x04E\0\0\0\x09\0\0\0\0\x01";
    assert_eq!(&buf[..], expected);
}

#[test]
fn bind_formats_names_one_format_per_parameter() {
    let got = appended(|b| {
        bind_formats(
            "",
            "s",
            2,
            |i| [Format::Text, Format::Binary][i],
            null_then_seven,
            Format::Binary,
            b,
        )
    });
    let expected =
        b"B\0\0\0\x1f\0s\0\0\x02\0\0\0\x01\0\x02\xff\xff\xff\xff\0\0\0\x04\0\0\0\x07\0\x01\0\x01";
    assert_eq!(got, expected);
}

#[test]
fn function_call_with_encodes_each_argument_in_place_and_nulls_as_minus_one() {
    // lo_lseek64(fd 3, offset 5 GiB, whence 0) as `lo_lseek64` (OID 3170) would be sent;
    // the second argument's bytes written before it said NULL are dropped.
    let got = appended(|b| {
        function_call_with(
            3170,
            3,
            |i, buf| -> Result<bool, ProtocolError> {
                match i {
                    0 => buf.put_i32(3),
                    1 => {
                        buf.put_slice(b"junk");
                        return Ok(true);
                    }
                    _ => buf.put_i64(5 << 30),
                }
                Ok(false)
            },
            Format::Binary,
            b,
        )
    });
    let expected: &[u8] = b"F\0\0\0\x28\0\0\x0c\x62\0\x01\0\x01\0\x03\
        \0\0\0\x04\0\0\0\x03\
        \xff\xff\xff\xff\
        \0\0\0\x08\0\0\0\x01\x40\0\0\0\
        \0\x01";
    assert_eq!(got, expected);
}

#[test]
fn function_call_with_an_argument_that_fails_to_encode_leaves_the_buffer_as_it_was() {
    let err = refused(|b| {
        function_call_with(
            1,
            2,
            |i, buf| match i {
                0 => {
                    buf.put_i32(7);
                    Ok(false)
                }
                _ => Err(encode_error("test", "argument 2 refused")),
            },
            Format::Binary,
            b,
        )
    });
    assert_encode_error(err);
}
