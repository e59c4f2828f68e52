//! A scripted mock server plays malformed bytes at a real `Connection`: every script must
//! end in a typed error (never a panic or a hang), and a protocol error mid-query must
//! leave the connection broken.

use std::time::Duration;

use futures::StreamExt;
use pgkeel::{BinaryCopyOutStream, Config, Connection, Error, ErrorKind, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// No script may take longer than this; a hang is a failure.
const LIMIT: Duration = Duration::from_secs(5);

/// One backend message: type byte, length, body.
fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn concat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn auth_ok() -> Vec<u8> {
    msg(b'R', b"\0\0\0\0")
}

/// AuthenticationOk, BackendKeyData, ParameterStatus, ReadyForQuery 'I'.
fn happy_startup() -> Vec<u8> {
    concat(&[
        auth_ok(),
        msg(b'K', b"\0\0\x30\x39\0\0\0\x2a"),
        // Before 14, so the client sends no session setting the script does not expect.
        msg(b'S', b"server_version\x0013.0\0"),
        msg(b'Z', b"I"),
    ])
}

fn parse_complete() -> Vec<u8> {
    msg(b'1', b"")
}

fn no_parameters() -> Vec<u8> {
    msg(b't', b"\0\0")
}

/// One binary int4 column named `?column?`.
fn int4_column() -> Vec<u8> {
    msg(
        b'T',
        b"\0\x01?column?\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\x01",
    )
}

fn bind_complete() -> Vec<u8> {
    msg(b'2', b"")
}

/// The answer to `SELECT 1` up to (not including) its ReadyForQuery.
fn select_one_rows() -> Vec<u8> {
    concat(&[
        parse_complete(),
        no_parameters(),
        int4_column(),
        bind_complete(),
        msg(b'D', b"\0\x01\0\0\0\x04\0\0\0\x01"),
        msg(b'C', b"SELECT 1\0"),
    ])
}

fn select_one() -> Vec<u8> {
    concat(&[select_one_rows(), msg(b'Z', b"I")])
}

/// What the mock does once its script is written.
#[derive(Clone, PartialEq)]
enum Then {
    /// Keep the socket open, reading until the client goes away.
    Hold,
    /// Close the socket at once.
    Close,
    /// Write these bytes 200 ms later (as a proxy forwarding slowly would), then hold.
    Later(Vec<u8>),
}

/// A mock server's script: bytes after the StartupMessage and, if the client gets that
/// far, bytes after its first Sync.
struct Script {
    startup: Vec<u8>,
    query: Vec<u8>,
    then: Then,
}

/// The mock server: its port, and the StartupMessage body it received.
struct Mock {
    port: u16,
    startup: oneshot::Receiver<Vec<u8>>,
}

async fn read_startup(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = s.read_i32().await?;
    let mut body = vec![0; usize::try_from(len - 4).expect("sane startup length")];
    s.read_exact(&mut body).await?;
    Ok(body)
}

/// Reads frontend messages up to and including a Sync or a simple Query.
async fn read_until_sync(s: &mut TcpStream) -> std::io::Result<()> {
    loop {
        let tag = s.read_u8().await?;
        let len = s.read_i32().await?;
        let mut body = vec![0; usize::try_from(len - 4).expect("sane frontend length")];
        s.read_exact(&mut body).await?;
        if tag == b'S' || tag == b'Q' {
            return Ok(());
        }
    }
}

async fn play(mut s: TcpStream, script: Script, startup_tx: oneshot::Sender<Vec<u8>>) {
    let Ok(startup) = read_startup(&mut s).await else {
        return;
    };
    let _ = startup_tx.send(startup);
    let mut played = s.write_all(&script.startup).await.is_ok();
    if played && !script.query.is_empty() {
        played = read_until_sync(&mut s).await.is_ok() && s.write_all(&script.query).await.is_ok();
    }
    if let (true, Then::Later(bytes)) = (played, &script.then) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        played = s.write_all(bytes).await.is_ok();
    }
    if played && script.then != Then::Close {
        let mut sink = [0; 256];
        while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
    }
}

/// Starts a mock server that plays `script` to its first connection. Later connections
/// (the CancelRequest a broken connection sends) are read and closed, as PostgreSQL does.
async fn mock(script: Script) -> Mock {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (first, _) = listener.accept().await.unwrap();
        tokio::spawn(play(first, script, tx));
        while let Ok((mut other, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut cancel = [0; 16];
                let _ = other.read_exact(&mut cancel).await;
            });
        }
    });
    Mock { port, startup: rx }
}

fn url(port: u16) -> String {
    format!("postgres://u@127.0.0.1:{port}/db?sslmode=disable")
}

async fn connect_to(script: Script) -> Result<Connection, Error> {
    let m = mock(script).await;
    within(Connection::connect(url(m.port))).await
}

/// Runs `fut` under [`LIMIT`]; a hang fails the test.
async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, fut)
        .await
        .expect("the client hung instead of failing")
}

/// Connects to a mock that answers the query with `answer`, then does `then`.
async fn connect_answering(answer: Vec<u8>, then: Then) -> Connection {
    let script = Script {
        startup: happy_startup(),
        query: answer,
        then,
    };
    connect_to(script).await.expect("startup succeeds")
}

/// Connects through a normal startup, then answers the first query with `answer`, and
/// returns the connection and the query's error.
async fn query_against(answer: Vec<u8>, then: Then) -> (Connection, Error) {
    let conn = connect_answering(answer, then).await;
    let err = within(conn.query("SELECT 1", &[]))
        .await
        .expect_err("the query must fail");
    (conn, err)
}

/// Asserts the query failed with `kind`, and that the connection is now broken: the next
/// call fails with `Broken` at once.
async fn assert_breaks(answer: Vec<u8>, then: Then, kind: ErrorKind) {
    let (conn, err) = query_against(answer, then).await;
    assert_eq!(err.kind(), kind, "{err}");
    assert!(
        conn.is_broken(),
        "a failed exchange must break the connection"
    );
    let next = tokio::time::timeout(Duration::from_millis(200), conn.query("SELECT 1", &[]))
        .await
        .expect("a broken connection fails at once");
    assert_eq!(next.unwrap_err().kind(), ErrorKind::Broken);
}

#[tokio::test]
async fn the_happy_script_returns_one_row_holding_one() {
    let m = mock(Script {
        startup: happy_startup(),
        query: select_one(),
        then: Then::Hold,
    })
    .await;
    let conn = within(Connection::connect(url(m.port))).await.unwrap();
    let startup = m.startup.await.unwrap();
    assert_eq!(&startup[..4], b"\0\x03\0\0", "protocol 3.0");
    assert!(startup.windows(7).any(|w| w == b"user\0u\0"), "{startup:?}");
    assert!(startup.windows(12).any(|w| w == b"database\0db\0"));
    assert_eq!(startup.last(), Some(&0));
    assert_eq!(conn.backend_pid(), 12345);
    assert_eq!(conn.parameter("server_version").as_deref(), Some("13.0"));

    let rows = within(conn.query("SELECT 1", &[])).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i32>(0), 1);
    assert!(!conn.is_broken());
}

#[tokio::test]
async fn negotiate_protocol_version_before_authentication_is_accepted() {
    let script = Script {
        startup: concat(&[
            msg(b'v', b"\0\0\0\0\0\0\0\x01_pq_.unknown\0"),
            happy_startup(),
        ]),
        query: select_one(),
        then: Then::Hold,
    };
    let conn = connect_to(script).await.unwrap();
    let rows = within(conn.query("SELECT 1", &[])).await.unwrap();
    assert_eq!(rows[0].get::<_, i32>(0), 1);
}

#[tokio::test]
async fn an_authentication_gss_request_is_an_authentication_error() {
    let script = Script {
        startup: msg(b'R', b"\0\0\0\x07"),
        query: vec![],
        then: Then::Hold,
    };
    let err = connect_to(script).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
}

#[tokio::test]
async fn a_malformed_frame_during_startup_fails_connect_with_a_protocol_error() {
    let scripts = [
        b"R\0\0\0\x03".to_vec(),
        concat(&[auth_ok(), msg(b'Z', b"X")]),
        concat(&[auth_ok(), msg(b'E', b"SFATAL\0M\xff\0\0")]),
    ];
    for startup in scripts {
        let script = Script {
            startup,
            query: vec![],
            then: Then::Hold,
        };
        let err = connect_to(script).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    }
}

#[tokio::test]
async fn the_server_closing_during_startup_is_a_closed_error() {
    for startup in [auth_ok(), concat(&[auth_ok(), b"K\0\0\0\x0c\0\0".to_vec()])] {
        let script = Script {
            startup,
            query: vec![],
            then: Then::Close,
        };
        let err = connect_to(script).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    }
}

#[tokio::test]
async fn a_length_field_of_three_is_a_protocol_error() {
    assert_breaks(b"Z\0\0\0\x03".to_vec(), Then::Hold, ErrorKind::Protocol).await;
}

#[tokio::test]
async fn a_negative_length_field_is_a_protocol_error() {
    assert_breaks(
        b"Z\xff\xff\xff\xfe".to_vec(),
        Then::Hold,
        ErrorKind::Protocol,
    )
    .await;
}

#[tokio::test]
async fn a_length_over_the_configured_maximum_is_refused_before_its_body_arrives() {
    let m = mock(Script {
        startup: happy_startup(),
        // Only the header: a client that waited for the 2 KiB body would hang.
        query: concat(&[parse_complete(), b"D\0\0\x08\0".to_vec()]),
        then: Then::Hold,
    })
    .await;
    let mut config = Config::new();
    config
        .host("127.0.0.1")
        .port(m.port)
        .user("u")
        .dbname("db")
        .max_message_len(1024)
        .ssl_mode(pgkeel::SslMode::Disable);
    let conn = within(Connection::connect(&config)).await.unwrap();
    let err = within(conn.query("SELECT 1", &[])).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(err.to_string().contains("maximum of 1024"), "{err}");
    assert!(conn.is_broken());
}

#[tokio::test]
async fn an_unknown_message_tag_is_a_protocol_error() {
    let answer = concat(&[parse_complete(), msg(b'@', b"")]);
    assert_breaks(answer, Then::Hold, ErrorKind::Protocol).await;
}

#[tokio::test]
async fn a_truncated_data_row_is_a_protocol_error() {
    let answer = concat(&[
        parse_complete(),
        no_parameters(),
        int4_column(),
        bind_complete(),
        // Two values announced, the frame ends inside the first.
        msg(b'D', b"\0\x02\0\0\0\x04\0\0"),
    ]);
    assert_breaks(answer, Then::Hold, ErrorKind::Protocol).await;
}

#[tokio::test]
async fn a_data_row_before_its_row_description_is_a_protocol_error() {
    let answer = concat(&[
        parse_complete(),
        no_parameters(),
        bind_complete(),
        msg(b'D', b"\0\x01\0\0\0\x04\0\0\0\x01"),
    ]);
    assert_breaks(answer, Then::Hold, ErrorKind::Protocol).await;
}

#[tokio::test]
async fn ready_for_query_with_status_x_is_a_protocol_error() {
    let answer = concat(&[select_one_rows(), msg(b'Z', b"X")]);
    assert_breaks(answer, Then::Hold, ErrorKind::Protocol).await;
}

#[tokio::test]
async fn invalid_utf8_in_an_error_response_is_a_protocol_error() {
    let answer = concat(&[msg(b'E', b"SERROR\0C42000\0M\xc3\x28\0\0"), msg(b'Z', b"I")]);
    assert_breaks(answer, Then::Hold, ErrorKind::Protocol).await;
}

#[tokio::test]
async fn the_server_closing_mid_frame_is_a_closed_error() {
    let answer = concat(&[parse_complete(), b"D\0\0\0\x0e\0\x01\0\0".to_vec()]);
    assert_breaks(answer, Then::Close, ErrorKind::Closed).await;
}

#[tokio::test]
async fn the_server_closing_between_frames_mid_query_is_a_closed_error() {
    let answer = concat(&[parse_complete(), no_parameters()]);
    assert_breaks(answer, Then::Close, ErrorKind::Closed).await;
}

/// The bytes of a binary COPY of (int4, text): header, three rows (one with a NULL, one
/// with a 300-byte value), trailer.
fn binary_copy_data() -> Vec<u8> {
    let mut d = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
    let mut row = |id: Option<i32>, text: &[u8]| {
        d.extend_from_slice(&2i16.to_be_bytes());
        match id {
            Some(id) => {
                d.extend_from_slice(&4i32.to_be_bytes());
                d.extend_from_slice(&id.to_be_bytes());
            }
            None => d.extend_from_slice(&(-1i32).to_be_bytes()),
        }
        d.extend_from_slice(&(text.len() as i32).to_be_bytes());
        d.extend_from_slice(text);
    };
    row(Some(7), "héllo".as_bytes());
    row(None, b"");
    row(Some(-1), &[b'x'; 300]);
    d.extend_from_slice(&(-1i16).to_be_bytes());
    d
}

/// A COPY TO STDOUT answer whose data is cut into CopyData messages at `cuts`, then
/// `tail` (the COPY's end, or something malformed).
fn copy_out_answer(data: &[u8], cuts: &[usize], tail: &[Vec<u8>]) -> Vec<u8> {
    let mut out = msg(b'H', b"\x01\0\x02\0\x01\0\x01");
    let mut at = 0;
    for &cut in cuts.iter().chain([&data.len()]) {
        out.extend(msg(b'd', &data[at..cut]));
        at = cut;
    }
    out.extend(tail.concat());
    out
}

fn copy_end() -> Vec<Vec<u8>> {
    vec![msg(b'c', b""), msg(b'C', b"COPY 3\0"), msg(b'Z', b"I")]
}

/// Where the first row of [`binary_copy_data`] ends: the 19-byte header, then a column
/// count and two length-prefixed values (7 and "héllo").
const FIRST_ROW_END: usize = 19 + 2 + 4 + 4 + 4 + "héllo".len();

/// Opens the binary COPY TO STDOUT of (int4, text) that the mock answers.
async fn binary_copy_out(conn: &Connection) -> Result<BinaryCopyOutStream<'static>, Error> {
    let out = conn.copy_out("COPY t TO STDOUT (FORMAT binary)").await?;
    Ok(BinaryCopyOutStream::new(out, &[Type::INT4, Type::TEXT]))
}

/// Runs a binary COPY TO STDOUT against a mock playing `answer`; every row as
/// (id, text) until the first error.
async fn copy_rows(answer: Vec<u8>) -> (Connection, Vec<(Option<i32>, String)>, Option<Error>) {
    let conn = connect_answering(answer, Then::Hold).await;
    let (rows, err) = within(async {
        let mut stream = binary_copy_out(&conn).await?;
        let mut rows = Vec::new();
        while let Some(row) = stream.next().await {
            match row {
                Ok(row) => rows.push((row.try_get(0)?, row.try_get(1)?)),
                Err(e) => return Ok::<_, Error>((rows, Some(e))),
            }
        }
        Ok((rows, None))
    })
    .await
    .expect("the COPY starts and its rows decode");
    (conn, rows, err)
}

#[tokio::test]
async fn binary_copy_rows_cut_anywhere_across_copy_data_messages_decode_whole() {
    let data = binary_copy_data();
    let every_byte: Vec<usize> = (1..data.len()).collect();
    let patterns: [&[usize]; 5] = [
        &[],
        // Inside the header, inside a length, inside the long value, before the trailer.
        &[10, 21, 40, 200, data.len() - 2],
        &[19],
        &[data.len() - 1],
        &every_byte,
    ];
    let long = "x".repeat(300);
    for cuts in patterns {
        let (conn, rows, err) = copy_rows(copy_out_answer(&data, cuts, &copy_end())).await;
        assert!(err.is_none(), "cuts {cuts:?}: {err:?}");
        let expected = vec![
            (Some(7), "héllo".to_string()),
            (None, String::new()),
            (Some(-1), long.clone()),
        ];
        assert_eq!(rows, expected, "cuts {cuts:?}");
        assert!(!conn.is_broken(), "cuts {cuts:?}");
    }
}

#[tokio::test]
async fn binary_copy_with_a_bad_value_length_or_no_trailer_is_a_decode_error() {
    let mut data = binary_copy_data();
    // The second row's first value: length -2.
    let second = FIRST_ROW_END + 2;
    data[second..second + 4].copy_from_slice(&(-2i32).to_be_bytes());
    let (_, rows, err) = copy_rows(copy_out_answer(&data, &[30], &copy_end())).await;
    let err = err.expect("a length of -2 is refused");
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    assert!(err.to_string().contains("length -2"), "{err}");
    assert_eq!(rows.len(), 1, "the row before it decodes");

    let data = binary_copy_data();
    let cut = &data[..data.len() - 2];
    let (_, rows, err) = copy_rows(copy_out_answer(cut, &[], &copy_end())).await;
    let err = err.expect("data without a trailer is refused");
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    assert!(err.to_string().contains("trailer"), "{err}");
    assert_eq!(rows.len(), 3);
}

#[tokio::test]
async fn a_malformed_frame_among_buffered_copy_data_breaks_the_connection() {
    let data = binary_copy_data();
    for bad in [
        // A length below four, then a frame of an unknown kind, right after good data.
        b"d\0\0\0\x02".to_vec(),
        msg(b'?', b"zz"),
    ] {
        let answer = copy_out_answer(&data, &[19, 40], &[bad]);
        let (conn, rows, err) = copy_rows(answer).await;
        let err = err.expect("the malformed frame fails the COPY");
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
        assert_eq!(rows.len(), 3, "the whole rows before it arrive");
        assert!(conn.is_broken());
    }
}

/// A COPY whose server has sent one row and then goes quiet (a slow source): the row is
/// handed out at once, not held back until a batch fills.
#[tokio::test]
async fn copy_out_hands_out_what_arrived_while_the_server_goes_quiet() {
    let data = binary_copy_data();
    // The header and the first row, and nothing after.
    let answer = copy_out_answer(&data[..FIRST_ROW_END], &[], &[]);
    let conn = connect_answering(answer, Then::Hold).await;
    let mut stream = within(binary_copy_out(&conn))
        .await
        .expect("the COPY starts");
    let row = within(stream.next())
        .await
        .expect("a row")
        .expect("it decodes");
    assert_eq!(row.get::<Option<i32>>(0), Some(7));
    assert_eq!(row.get::<String>(1), "héllo");
}

/// A server error mid-COPY OUT whose ReadyForQuery comes later (as through a proxy): the
/// error still ends the stream, after the rows before it, however the batches fell.
#[tokio::test]
async fn a_copy_out_error_whose_ready_for_query_comes_later_is_not_lost() {
    let data = binary_copy_data();
    let error = msg(b'E', b"SERROR\0C22012\0Mdivision by zero\0\0");
    let answer = copy_out_answer(&data[..FIRST_ROW_END], &[], &[error]);
    let conn = connect_answering(answer, Then::Later(msg(b'Z', b"I"))).await;
    let mut stream = within(binary_copy_out(&conn))
        .await
        .expect("the COPY starts");
    let first = within(stream.next())
        .await
        .expect("a row")
        .expect("it decodes");
    assert_eq!(first.get::<Option<i32>>(0), Some(7));
    let err = within(stream.next())
        .await
        .expect("the error, not the end")
        .expect_err("the server's error");
    assert_eq!(err.code(), Some("22012"), "{err}");
    assert!(!conn.is_broken(), "the COPY ended cleanly");
}
