//! Golden bytes for every backend message, written out from the PostgreSQL manual,
//! "Message Formats" (<https://www.postgresql.org/docs/current/protocol-message-formats.html>),
//! and malformed bodies for each family: none may panic, all must be errors.

use bytes::Bytes;

use super::*;

fn parse(tag: u8, body: &[u8]) -> Result<BackendMessage, ProtocolError> {
    BackendMessage::parse(tag, Bytes::copy_from_slice(body))
}

fn ok(tag: u8, body: &[u8]) -> BackendMessage {
    parse(tag, body).unwrap_or_else(|e| panic!("{:?} {body:?}: {e}", tag as char))
}

fn err(tag: u8, body: &[u8]) -> ProtocolError {
    match parse(tag, body) {
        Ok(msg) => panic!("{:?} {body:?} parsed as {msg:?}", tag as char),
        Err(e) => e,
    }
}

fn auth(body: &[u8]) -> Authentication {
    match ok(b'R', body) {
        BackendMessage::Authentication(a) => a,
        other => panic!("not Authentication: {other:?}"),
    }
}

fn data_row(body: &[u8]) -> DataRow {
    match ok(b'D', body) {
        BackendMessage::DataRow(row) => row,
        other => panic!("not DataRow: {other:?}"),
    }
}

fn fields(pairs: &[(u8, &str)]) -> Vec<(u8, String)> {
    pairs.iter().map(|&(c, v)| (c, v.to_owned())).collect()
}

const ROW_DESCRIPTION: &[u8] = b"\0\x02\
    id\0\0\0\x40\0\0\x01\0\0\0\x17\0\x04\xff\xff\xff\xff\0\x01\
    name\0\0\0\0\0\0\0\0\0\0\x19\xff\xff\xff\xff\xff\xff\0\0";

const DATA_ROW: &[u8] = b"\0\x04\xff\xff\xff\xff\0\0\0\0\0\0\0\x03abc\0\0\0\x04\0\0\0\x01";

const ERROR_RESPONSE: &[u8] = b"SERROR\0VERROR\0C42P01\0Mrelation \"t\" does not exist\0P15\0\0";

/// Valid bodies whose every strict prefix is malformed, and to which any extra byte is
/// trailing garbage (messages that end in raw bytes are tested on their own).
const STRICT: &[(u8, &[u8])] = &[
    (b'R', b"\0\0\0\0"),
    (b'R', b"\0\0\0\x02"),
    (b'R', b"\0\0\0\x03"),
    (b'R', b"\0\0\0\x05\x01\x02\x03\x04"),
    (b'R', b"\0\0\0\x07"),
    (b'R', b"\0\0\0\x09"),
    (b'R', b"\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"),
    (b'K', b"\0\0\x30\x39\xde\xad\xbe\xef"),
    (b'C', b"INSERT 0 3\0"),
    (b'G', b"\0\0\x02\0\0\0\0"),
    (b'H', b"\x01\0\x01\0\x01"),
    (b'W', b"\0\0\0"),
    (b'D', DATA_ROW),
    (b'D', b"\0\0"),
    (b'E', ERROR_RESPONSE),
    (b'N', b"SNOTICE\0C00000\0Mhi\0\0"),
    (b'V', b"\0\0\0\x02hi"),
    (b'V', b"\xff\xff\xff\xff"),
    (b'v', b"\0\0\0\x01\0\0\0\x02_pq_.a\0_pq_.b\0"),
    (b'A', b"\0\0\x04\xd2chan\0payload\0"),
    (b't', b"\0\x02\0\0\0\x17\0\0\0\x19"),
    (b'S', b"TimeZone\0UTC\0"),
    (b'Z', b"I"),
    (b'T', ROW_DESCRIPTION),
];

#[test]
fn authentication_requests_decode_for_every_sub_code() {
    assert_eq!(auth(b"\0\0\0\0"), Authentication::Ok);
    assert_eq!(auth(b"\0\0\0\x02"), Authentication::KerberosV5);
    assert_eq!(auth(b"\0\0\0\x03"), Authentication::CleartextPassword);
    assert_eq!(
        auth(b"\0\0\0\x05\x01\x02\x03\x04"),
        Authentication::Md5Password([1, 2, 3, 4])
    );
    assert_eq!(auth(b"\0\0\0\x07"), Authentication::Gss);
    assert_eq!(
        auth(b"\0\0\0\x08gss-token"),
        Authentication::GssContinue(Bytes::from_static(b"gss-token"))
    );
    assert_eq!(auth(b"\0\0\0\x09"), Authentication::Sspi);
    assert_eq!(
        auth(b"\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"),
        Authentication::Sasl(vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()])
    );
    assert_eq!(
        auth(b"\0\0\0\x0br=abc,s=c2FsdA==,i=4096"),
        Authentication::SaslContinue(Bytes::from_static(b"r=abc,s=c2FsdA==,i=4096"))
    );
    assert_eq!(
        auth(b"\0\0\0\x0cv=c2ln"),
        Authentication::SaslFinal(Bytes::from_static(b"v=c2ln"))
    );
}

#[test]
fn sasl_continuation_data_may_be_empty() {
    assert_eq!(
        auth(b"\0\0\0\x08"),
        Authentication::GssContinue(Bytes::new())
    );
    assert_eq!(
        auth(b"\0\0\0\x0b"),
        Authentication::SaslContinue(Bytes::new())
    );
    assert_eq!(auth(b"\0\0\0\x0c"), Authentication::SaslFinal(Bytes::new()));
}

#[test]
fn unknown_authentication_codes_are_invalid_fields() {
    for body in [
        &b"\0\0\0\x04"[..],
        b"\0\0\0\x06",
        b"\0\0\0\x0d",
        b"\xff\xff\xff\xff",
    ] {
        assert!(
            matches!(
                err(b'R', body),
                ProtocolError::InvalidField {
                    field: "request code",
                    ..
                }
            ),
            "{body:?}"
        );
    }
}

#[test]
fn backend_key_data_decodes_process_id_and_secret_key() {
    assert_eq!(
        ok(b'K', b"\0\0\x30\x39\xde\xad\xbe\xef"),
        BackendMessage::BackendKeyData {
            process_id: 12345,
            secret_key: Bytes::from_static(b"\xde\xad\xbe\xef"),
        }
    );
}

#[test]
fn backend_key_data_of_protocol_3_2_has_a_longer_key_of_at_most_256_bytes() {
    let mut body = b"\0\0\x30\x39".to_vec();
    body.extend_from_slice(&[7u8; 32]);
    assert_eq!(
        ok(b'K', &body),
        BackendMessage::BackendKeyData {
            process_id: 12345,
            secret_key: Bytes::from(vec![7u8; 32]),
        }
    );
    let mut too_long = b"\0\0\x30\x39".to_vec();
    too_long.extend_from_slice(&[7u8; 257]);
    assert!(BackendMessage::parse(b'K', Bytes::from(too_long)).is_err());
    assert!(BackendMessage::parse(b'K', Bytes::from_static(b"\0\0\x30\x39\x01")).is_err());
}

#[test]
fn bodiless_messages_decode_from_an_empty_body() {
    let cases = [
        (b'2', BackendMessage::BindComplete),
        (b'3', BackendMessage::CloseComplete),
        (b'1', BackendMessage::ParseComplete),
        (b'n', BackendMessage::NoData),
        (b's', BackendMessage::PortalSuspended),
        (b'I', BackendMessage::EmptyQueryResponse),
        (b'c', BackendMessage::CopyDone),
    ];
    for (tag, expected) in cases {
        assert_eq!(ok(tag, b""), expected);
        assert!(
            matches!(
                err(tag, b"x"),
                ProtocolError::TrailingBytes { extra: 1, .. }
            ),
            "{:?}",
            tag as char
        );
    }
}

#[test]
fn command_complete_decodes_its_tag() {
    assert_eq!(
        ok(b'C', b"INSERT 0 3\0"),
        BackendMessage::CommandComplete("INSERT 0 3".into())
    );
    assert_eq!(
        ok(b'C', b"\0"),
        BackendMessage::CommandComplete(String::new())
    );
}

#[test]
fn copy_data_is_the_whole_body_including_nul_bytes() {
    assert_eq!(
        ok(b'd', b"1\t\0\n"),
        BackendMessage::CopyData(Bytes::from_static(b"1\t\0\n"))
    );
    assert_eq!(ok(b'd', b""), BackendMessage::CopyData(Bytes::new()));
}

#[test]
fn copy_responses_decode_overall_and_column_formats() {
    let text_two_columns = CopyResponse {
        format: 0,
        column_formats: vec![0, 0],
    };
    assert_eq!(
        ok(b'G', b"\0\0\x02\0\0\0\0"),
        BackendMessage::CopyInResponse(text_two_columns)
    );
    let binary_one_column = CopyResponse {
        format: 1,
        column_formats: vec![1],
    };
    assert_eq!(
        ok(b'H', b"\x01\0\x01\0\x01"),
        BackendMessage::CopyOutResponse(binary_one_column)
    );
    let no_columns = CopyResponse {
        format: 0,
        column_formats: vec![],
    };
    assert_eq!(
        ok(b'W', b"\0\0\0"),
        BackendMessage::CopyBothResponse(no_columns)
    );
}

#[test]
fn data_row_tells_null_from_empty_and_from_a_value() {
    let row = data_row(DATA_ROW);
    assert_eq!(row.len(), 4);
    assert!(!row.is_empty());
    assert_eq!(row.value(0), None);
    assert_eq!(row.value(1), Some(&b""[..]));
    assert_eq!(row.value(2), Some(&b"abc"[..]));
    assert_eq!(row.value(3), Some(&b"\0\0\0\x01"[..]));
    assert_eq!(row.value(4), None);
    assert_eq!(row.value_bytes(0), None);
    assert_eq!(row.value_bytes(1), Some(Bytes::new()));
    assert_eq!(row.value_bytes(2), Some(Bytes::from_static(b"abc")));
    assert_eq!(row.value_bytes(4), None);
}

#[test]
fn data_row_values_are_slices_of_the_frame_not_copies() {
    let frame = Bytes::from_static(DATA_ROW);
    let BackendMessage::DataRow(row) = BackendMessage::parse(b'D', frame.clone()).unwrap() else {
        panic!("not a DataRow");
    };
    let abc = row.value_bytes(2).unwrap();
    assert_eq!(abc.as_ptr(), frame[14..].as_ptr());
}

#[test]
fn data_row_with_no_columns_is_empty() {
    let row = data_row(b"\0\0");
    assert!(row.is_empty());
    assert_eq!(row.value(0), None);
}

#[test]
fn error_and_notice_responses_decode_their_fields_in_order() {
    assert_eq!(
        ok(b'E', ERROR_RESPONSE),
        BackendMessage::ErrorResponse(fields(&[
            (b'S', "ERROR"),
            (b'V', "ERROR"),
            (b'C', "42P01"),
            (b'M', "relation \"t\" does not exist"),
            (b'P', "15"),
        ]))
    );
    assert_eq!(
        ok(b'N', b"SNOTICE\0C00000\0Mhi\0\0"),
        BackendMessage::NoticeResponse(fields(&[(b'S', "NOTICE"), (b'C', "00000"), (b'M', "hi")]))
    );
    assert_eq!(ok(b'N', b"\0"), BackendMessage::NoticeResponse(vec![]));
}

#[test]
fn function_call_response_decodes_a_value_an_empty_value_and_null() {
    assert_eq!(
        ok(b'V', b"\0\0\0\x02hi"),
        BackendMessage::FunctionCallResponse(Some(Bytes::from_static(b"hi")))
    );
    assert_eq!(
        ok(b'V', b"\0\0\0\0"),
        BackendMessage::FunctionCallResponse(Some(Bytes::new()))
    );
    assert_eq!(
        ok(b'V', b"\xff\xff\xff\xff"),
        BackendMessage::FunctionCallResponse(None)
    );
}

#[test]
fn negotiate_protocol_version_decodes_minor_version_and_options() {
    assert_eq!(
        ok(b'v', b"\0\0\0\x01\0\0\0\x02_pq_.a\0_pq_.b\0"),
        BackendMessage::NegotiateProtocolVersion {
            newest_minor: 1,
            unrecognized: vec!["_pq_.a".into(), "_pq_.b".into()],
        }
    );
    assert_eq!(
        ok(b'v', b"\0\0\0\0\0\0\0\0"),
        BackendMessage::NegotiateProtocolVersion {
            newest_minor: 0,
            unrecognized: vec![],
        }
    );
}

#[test]
fn notification_response_decodes_pid_channel_and_payload() {
    assert_eq!(
        ok(b'A', b"\0\0\x04\xd2chan\0payload\0"),
        BackendMessage::NotificationResponse {
            process_id: 1234,
            channel: "chan".into(),
            payload: "payload".into(),
        }
    );
}

#[test]
fn parameter_description_decodes_type_oids() {
    assert_eq!(
        ok(b't', b"\0\x02\0\0\0\x17\0\0\0\x19"),
        BackendMessage::ParameterDescription(vec![23, 25])
    );
    assert_eq!(
        ok(b't', b"\0\0"),
        BackendMessage::ParameterDescription(vec![])
    );
}

#[test]
fn parameter_description_counts_up_to_65535_parameters() {
    let mut body = vec![0xFF, 0xFF];
    body.extend(std::iter::repeat_n([0, 0, 0, 25], 65_535).flatten());
    assert_eq!(
        ok(b't', &body),
        BackendMessage::ParameterDescription(vec![25; 65_535])
    );
    let short = err(b't', b"\xff\xff\0\0\0\x17");
    assert!(
        matches!(short, ProtocolError::Truncated { .. }),
        "{short:?}"
    );
}

#[test]
fn parameter_status_decodes_name_and_value() {
    assert_eq!(
        ok(b'S', b"TimeZone\0UTC\0"),
        BackendMessage::ParameterStatus {
            name: "TimeZone".into(),
            value: "UTC".into(),
        }
    );
}

#[test]
fn ready_for_query_decodes_idle_in_transaction_and_failed() {
    let cases = [
        (b"I", TransactionStatus::Idle),
        (b"T", TransactionStatus::InTransaction),
        (b"E", TransactionStatus::Failed),
    ];
    for (body, status) in cases {
        assert_eq!(ok(b'Z', body), BackendMessage::ReadyForQuery(status));
        assert_eq!(status.as_byte(), body[0]);
    }
}

#[test]
fn row_description_decodes_every_field_attribute() {
    let id = FieldDescription {
        name: "id".into(),
        table_oid: 16384,
        column_id: 1,
        type_oid: 23,
        type_size: 4,
        type_modifier: -1,
        format: 1,
    };
    let name = FieldDescription {
        name: "name".into(),
        table_oid: 0,
        column_id: 0,
        type_oid: 25,
        type_size: -1,
        type_modifier: -1,
        format: 0,
    };
    assert_eq!(
        ok(b'T', ROW_DESCRIPTION),
        BackendMessage::RowDescription(vec![id, name])
    );
    assert_eq!(ok(b'T', b"\0\0"), BackendMessage::RowDescription(vec![]));
}

#[test]
fn every_parsed_message_reports_the_name_of_its_type() {
    let names: Vec<_> = STRICT.iter().map(|&(t, b)| ok(t, b).name()).collect();
    assert_eq!(
        names,
        [
            "Authentication",
            "Authentication",
            "Authentication",
            "Authentication",
            "Authentication",
            "Authentication",
            "Authentication",
            "BackendKeyData",
            "CommandComplete",
            "CopyInResponse",
            "CopyOutResponse",
            "CopyBothResponse",
            "DataRow",
            "DataRow",
            "ErrorResponse",
            "NoticeResponse",
            "FunctionCallResponse",
            "FunctionCallResponse",
            "NegotiateProtocolVersion",
            "NotificationResponse",
            "ParameterDescription",
            "ParameterStatus",
            "ReadyForQuery",
            "RowDescription",
        ]
    );
}

#[test]
fn rows_affected_reads_the_count_of_each_command_tag() {
    let cases = [
        ("INSERT 0 5", 5),
        ("UPDATE 3", 3),
        ("DELETE 0", 0),
        ("DELETE 12", 12),
        ("SELECT 42", 42),
        ("COPY 7", 7),
        ("MERGE 2", 2),
        ("MOVE 4", 4),
        ("FETCH 1", 1),
        ("SELECT 4294967296", 4_294_967_296),
        ("CREATE TABLE", 0),
        ("CREATE TABLE 5", 0),
        ("BEGIN", 0),
        ("INSERT 0 x", 0),
        ("", 0),
    ];
    for (tag, n) in cases {
        assert_eq!(rows_affected(tag), n, "{tag:?}");
    }
}

#[test]
fn every_truncated_prefix_of_a_valid_body_is_an_error_not_a_panic() {
    for &(tag, body) in STRICT {
        ok(tag, body);
        for n in 0..body.len() {
            let e = err(tag, &body[..n]);
            assert!(
                matches!(
                    e,
                    ProtocolError::Truncated { .. } | ProtocolError::InvalidField { .. }
                ),
                "{:?} cut to {n} bytes gave {e:?}",
                tag as char
            );
        }
    }
}

#[test]
fn authentication_data_is_only_truncated_inside_its_request_code() {
    for body in [&b"\0\0\0\x08ab"[..], b"\0\0\0\x0bab", b"\0\0\0\x0cab"] {
        for n in 0..4 {
            assert!(matches!(
                err(b'R', &body[..n]),
                ProtocolError::Truncated {
                    field: "request code",
                    ..
                }
            ));
        }
        for n in 4..=body.len() {
            ok(b'R', &body[..n]);
        }
    }
}

#[test]
fn a_byte_after_the_last_field_is_trailing_garbage() {
    // BackendKeyData is left out: a protocol 3.2 key may be 4 to 256 bytes long.
    for &(tag, body) in STRICT.iter().filter(|(tag, _)| *tag != b'K') {
        let mut long = body.to_vec();
        long.push(b'x');
        let e = err(tag, &long);
        assert!(
            matches!(e, ProtocolError::TrailingBytes { extra: 1, .. }),
            "{:?} with one byte more gave {e:?}",
            tag as char
        );
    }
}

#[test]
fn negative_counts_are_invalid_fields() {
    // ParameterDescription's count is unsigned (up to 65,535 parameters): not here.
    let cases: [(u8, &[u8]); 6] = [
        (b'D', b"\xff\xff"),
        (b'T', b"\x80\0"),
        (b'G', b"\0\xff\xff"),
        (b'H', b"\x01\xff\xfe"),
        (b'W', b"\0\x80\0"),
        (b'v', b"\0\0\0\0\xff\xff\xff\xff"),
    ];
    for (tag, body) in cases {
        let e = err(tag, body);
        assert!(
            matches!(e, ProtocolError::InvalidField { .. }),
            "{:?}: {e:?}",
            tag as char
        );
    }
}

#[test]
fn invalid_utf8_in_any_text_field_is_an_error() {
    let cases: [(u8, &[u8]); 11] = [
        (b'C', b"INSERT \xff\0"),
        (b'E', b"SERROR\0M\xc3\x28\0\0"),
        (b'N', b"S\xe2\x82\0\0"),
        (b'S', b"Time\xffZone\0UTC\0"),
        (b'S', b"TimeZone\0\xc0\xaf\0"),
        (b'A', b"\0\0\0\x01\xfe\0payload\0"),
        (b'A', b"\0\0\0\x01chan\0\xed\xa0\x80\0"),
        (
            b'T',
            b"\0\x01\xff\0\0\0\0\0\0\0\0\0\0\x19\xff\xff\xff\xff\xff\xff\0\0",
        ),
        (b'R', b"\0\0\0\x0aSCRAM\xff\0\0"),
        (b'v', b"\0\0\0\0\0\0\0\x01_pq_\x80\0"),
        (b'C', b"\x80\0"),
    ];
    for (tag, body) in cases {
        let e = err(tag, body);
        assert!(
            matches!(e, ProtocolError::InvalidUtf8 { .. }),
            "{:?} {body:?}: {e:?}",
            tag as char
        );
    }
}

#[test]
fn ready_for_query_with_an_unknown_status_byte_is_an_invalid_field() {
    for b in (0..=u8::MAX).filter(|b| !b"ITE".contains(b)) {
        let e = err(b'Z', &[b]);
        assert!(
            matches!(
                e,
                ProtocolError::InvalidField {
                    message: "ReadyForQuery",
                    field: "transaction status",
                    ..
                }
            ),
            "{b:#04x}: {e:?}"
        );
    }
    assert!(matches!(err(b'Z', b""), ProtocolError::Truncated { .. }));
    assert!(matches!(
        err(b'Z', b"II"),
        ProtocolError::TrailingBytes { .. }
    ));
}

#[test]
fn data_row_value_length_below_minus_one_is_an_invalid_field() {
    for len in [-2_i32, -100, i32::MIN] {
        let mut body = b"\0\x01".to_vec();
        body.extend_from_slice(&len.to_be_bytes());
        body.extend_from_slice(b"abcd");
        let e = err(b'D', &body);
        assert!(
            matches!(
                e,
                ProtocolError::InvalidField {
                    field: "value length",
                    ..
                }
            ),
            "{len}: {e:?}"
        );
    }
}

#[test]
fn data_row_value_running_past_the_end_is_truncated() {
    let cases: [&[u8]; 4] = [
        b"\0\x01\0\0\0\x05abc",
        b"\0\x01\x7f\xff\xff\xffabc",
        b"\0\x02\0\0\0\x01a",
        b"\x7f\xff\xff\xff\xff\xff",
    ];
    for body in cases {
        let e = err(b'D', body);
        assert!(
            matches!(e, ProtocolError::Truncated { .. }),
            "{body:?}: {e:?}"
        );
    }
}

#[test]
fn function_call_response_length_below_minus_one_is_an_invalid_field() {
    let e = err(b'V', b"\xff\xff\xff\xfe");
    assert!(matches!(e, ProtocolError::InvalidField { .. }), "{e:?}");
    let e = err(b'V', b"\0\0\0\x05hi");
    assert!(matches!(e, ProtocolError::Truncated { .. }), "{e:?}");
}

#[test]
fn a_field_list_without_its_terminator_is_truncated() {
    for tag in [b'E', b'N'] {
        let e = err(tag, b"SERROR\0");
        assert!(matches!(e, ProtocolError::Truncated { .. }), "{e:?}");
        let e = err(tag, b"SERROR");
        assert!(matches!(e, ProtocolError::Truncated { .. }), "{e:?}");
    }
}

#[test]
fn an_unknown_tag_is_an_unknown_tag_error() {
    const KNOWN: &[u8] = b"RK23CdcGHWDIEVvnNAtS1sZT";
    for tag in (0..=u8::MAX).filter(|t| !KNOWN.contains(t)) {
        assert_eq!(
            parse(tag, b"\0\0\0\0"),
            Err(ProtocolError::UnknownTag(tag as char)),
            "{tag:#04x}"
        );
    }
    for &tag in KNOWN {
        let result = parse(tag, b"");
        assert!(
            !matches!(result, Err(ProtocolError::UnknownTag(_))),
            "{:?} is known",
            tag as char
        );
    }
}

#[test]
fn arbitrary_bodies_never_panic_for_any_tag() {
    // A small deterministic generator: enough variety to reach every branch, no deps.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let tag = b"RK23CdcGHWDIEVvnNAtS1sZT"[(next() % 24) as usize];
        let len = (next() % 24) as usize;
        let body: Vec<u8> = (0..len).map(|_| (next() % 7) as u8).collect();
        let _ = parse(tag, &body);
    }
}

#[test]
fn function_call_response_with_trailing_bytes_or_no_length_is_an_error() {
    let e = err(b'V', b"\0\0\0\x01ab");
    assert!(matches!(e, ProtocolError::TrailingBytes { .. }), "{e:?}");
    let e = err(b'V', b"\xff\xff\xff\xff\0");
    assert!(matches!(e, ProtocolError::TrailingBytes { .. }), "{e:?}");
    let e = err(b'V', b"");
    assert!(matches!(e, ProtocolError::Truncated { .. }), "{e:?}");
    let e = err(b'V', b"\0\0");
    assert!(matches!(e, ProtocolError::Truncated { .. }), "{e:?}");
}

#[test]
fn function_call_response_result_shares_the_frame() {
    let frame = Bytes::from_static(b"\0\0\0\x03abc");
    let BackendMessage::FunctionCallResponse(Some(v)) =
        BackendMessage::parse(b'V', frame.clone()).expect("parses")
    else {
        panic!("not a value")
    };
    assert_eq!(&v[..], b"abc");
    assert_eq!(v.as_ptr(), frame[4..].as_ptr(), "the result was copied");
}
