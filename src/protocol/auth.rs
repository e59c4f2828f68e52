//! Client side of PostgreSQL password authentication: MD5 and SCRAM-SHA-256.
//!
//! Pure message construction and verification; no I/O. SCRAM follows RFC 5802
//! and RFC 7677 with the PostgreSQL specifics: the user name in client-first is
//! empty (the startup message carries it) and the password is SASLprep-normalised,
//! falling back to its raw bytes when SASLprep fails (as libpq does).

use std::fmt;
use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::{Digest as _, Md5};
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::{digest, hmac, pbkdf2};

/// The SASL mechanism name for SCRAM-SHA-256.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// The SASL mechanism name for SCRAM-SHA-256 with channel binding.
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";

/// Number of random bytes in a client nonce (before base64).
const NONCE_LEN: usize = 24;
/// Largest iteration count accepted from a server.
const MAX_ITERATIONS: u32 = 10_000_000;
/// Output length of SHA-256, HMAC-SHA-256 and the salted password.
const KEY_LEN: usize = 32;

/// The MD5 password response: "md5" followed by 32 hex digits.
pub fn md5_password(user: &[u8], password: &[u8], salt: [u8; 4]) -> String {
    let inner = hex(&Md5::new()
        .chain_update(password)
        .chain_update(user)
        .finalize());
    let outer = Md5::new()
        .chain_update(inner.as_bytes())
        .chain_update(salt)
        .finalize();
    format!("md5{}", hex(&outer))
}

/// Lower-case hexadecimal encoding.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Channel binding choice for SCRAM (the gs2 header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelBinding {
    /// The client does not support channel binding ("n,,").
    Unsupported,
    /// The client supports it but the server did not offer -PLUS ("y,,").
    Unrequested,
    /// tls-server-end-point with the hash of the server certificate ("p=tls-server-end-point,,").
    TlsServerEndPoint(Vec<u8>),
}

impl ChannelBinding {
    /// The gs2 header that starts client-first.
    fn gs2_header(&self) -> &'static str {
        match self {
            ChannelBinding::Unsupported => "n,,",
            ChannelBinding::Unrequested => "y,,",
            ChannelBinding::TlsServerEndPoint(_) => "p=tls-server-end-point,,",
        }
    }

    /// The base64 value of the `c=` attribute of client-final.
    fn c_attribute(&self) -> String {
        let mut input = self.gs2_header().as_bytes().to_vec();
        if let ChannelBinding::TlsServerEndPoint(hash) = self {
            input.extend_from_slice(hash);
        }
        BASE64.encode(input)
    }

    /// The variant name, for `Debug` output that omits the certificate hash.
    fn kind(&self) -> &'static str {
        match self {
            ChannelBinding::Unsupported => "Unsupported",
            ChannelBinding::Unrequested => "Unrequested",
            ChannelBinding::TlsServerEndPoint(_) => "TlsServerEndPoint",
        }
    }
}

/// The `tls-server-end-point` channel binding data of a DER certificate (RFC 5929 §4.1):
/// its hash with the hash function of its signature algorithm, SHA-256 when that is MD5
/// or SHA-1. `None` for an algorithm with no single hash (Ed25519, RSA-PSS), as
/// PostgreSQL's server refuses those too, or for a certificate that does not parse.
pub fn tls_server_end_point(cert_der: &[u8]) -> Option<Vec<u8>> {
    let algorithm = match signature_algorithm_oid(cert_der)? {
        // md5WithRSA, sha1WithRSA, sha256WithRSA, ecdsa-with-SHA1, ecdsa-with-SHA256, dsa-with-sha1/sha256
        [
            0x2a,
            0x86,
            0x48,
            0x86,
            0xf7,
            0x0d,
            0x01,
            0x01,
            0x04 | 0x05 | 0x0b,
        ]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]
        | [0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03]
        | [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x02] => &digest::SHA256,
        // sha384WithRSA, ecdsa-with-SHA384
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03] => &digest::SHA384,
        // sha512WithRSA, ecdsa-with-SHA512
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04] => &digest::SHA512,
        _ => return None,
    };
    Some(digest::digest(algorithm, cert_der).as_ref().to_vec())
}

/// The OID bytes of `Certificate.signatureAlgorithm.algorithm` (RFC 5280 §4.1).
fn signature_algorithm_oid(der: &[u8]) -> Option<&[u8]> {
    let (cert, _) = der_element(der, 0x30)?;
    let (_tbs, rest) = der_element(cert, 0x30)?;
    let (algorithm, _) = der_element(rest, 0x30)?;
    let (oid, _) = der_element(algorithm, 0x06)?;
    Some(oid)
}

/// One DER element with tag `tag` at the start of `input`: (its contents, what follows).
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len0, mut rest) = rest.split_first()?;
    let len = match len0 {
        0..=0x7f => usize::from(len0),
        0x81..=0x84 => {
            let n = usize::from(len0 & 0x7f);
            let (bytes, after) = (rest.get(..n)?, rest.get(n..)?);
            rest = after;
            bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        }
        _ => return None,
    };
    Some((rest.get(..len)?, rest.get(len..)?))
}

/// Errors of the SCRAM exchange; each says what the server sent wrong.
#[derive(Debug, thiserror::Error)]
pub enum ScramError {
    /// The server-first message is malformed.
    #[error("invalid SCRAM server-first message: {0}")]
    InvalidServerFirst(String),
    /// The server nonce does not extend the client nonce.
    #[error("SCRAM server nonce does not extend the client nonce")]
    NonceMismatch,
    /// The iteration count is not a number in 1..=10_000_000.
    #[error("invalid SCRAM iteration count (must be 1..={MAX_ITERATIONS})")]
    InvalidIterationCount,
    /// The server-final message is malformed.
    #[error("invalid SCRAM server-final message: {0}")]
    InvalidServerFinal(String),
    /// The server-final message reported an error ("e=...").
    #[error("SCRAM authentication failed on the server: {0}")]
    ServerError(String),
    /// The server signature does not match: the server does not know the password.
    #[error("SCRAM server signature mismatch")]
    SignatureMismatch,
    /// A message was handled out of order.
    #[error("SCRAM messages handled out of order")]
    OutOfOrder,
    /// The system random number generator failed.
    #[error("failed to generate a random SCRAM nonce")]
    Random,
}

/// Where an exchange stands.
enum State {
    /// client-first built; waiting for server-first.
    Initial,
    /// client-final sent; holds what is needed to check server-final.
    AwaitingFinal {
        server_key: hmac::Key,
        auth_message: Vec<u8>,
    },
}

/// The client side of one SCRAM-SHA-256 exchange.
pub struct ScramSha256 {
    password: Vec<u8>,
    channel_binding: ChannelBinding,
    nonce: String,
    client_first: Vec<u8>,
    gs2_len: usize,
    state: State,
}

impl ScramSha256 {
    /// Starts an exchange with a random 24-byte nonce (base64).
    pub fn new(
        password: &[u8],
        channel_binding: ChannelBinding,
    ) -> Result<ScramSha256, ScramError> {
        let nonce = random_nonce()?;
        Ok(Self::with_nonce(password, channel_binding, &nonce))
    }

    /// Starts an exchange with a given nonce (deterministic tests); it must be printable ASCII without ','.
    pub fn with_nonce(
        password: &[u8],
        channel_binding: ChannelBinding,
        nonce: &str,
    ) -> ScramSha256 {
        Self::with_user(password, channel_binding, nonce, "")
    }

    /// Starts an exchange naming `user` in client-first (PostgreSQL always sends "").
    fn with_user(
        password: &[u8],
        channel_binding: ChannelBinding,
        nonce: &str,
        user: &str,
    ) -> Self {
        let gs2 = channel_binding.gs2_header();
        let client_first = format!("{gs2}n={},r={nonce}", escape_user(user));
        ScramSha256 {
            password: normalize_password(password),
            gs2_len: gs2.len(),
            channel_binding,
            nonce: nonce.to_owned(),
            client_first: client_first.into_bytes(),
            state: State::Initial,
        }
    }

    /// The mechanism name to put in SASLInitialResponse (SCRAM-SHA-256 or -PLUS for TlsServerEndPoint).
    pub fn mechanism(&self) -> &'static str {
        match self.channel_binding {
            ChannelBinding::TlsServerEndPoint(_) => SCRAM_SHA_256_PLUS,
            _ => SCRAM_SHA_256,
        }
    }

    /// The client-first message to send in SASLInitialResponse.
    pub fn client_first(&self) -> &[u8] {
        &self.client_first
    }

    /// The client-first message without its gs2 header.
    fn client_first_bare(&self) -> &[u8] {
        self.client_first.get(self.gs2_len..).unwrap_or_default()
    }

    /// Consumes server-first (AuthenticationSASLContinue data) and returns client-final to send in SASLResponse.
    pub fn handle_server_first(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, State::Initial) {
            return Err(ScramError::OutOfOrder);
        }
        let first = ServerFirst::parse(server_first, &self.nonce)?;
        let salted = salted_password(&self.password, &first.salt, first.iterations);
        let without_proof = format!("c={},r={}", self.channel_binding.c_attribute(), first.nonce);
        let auth_message = [
            self.client_first_bare(),
            server_first,
            without_proof.as_bytes(),
        ]
        .join(&b","[..]);
        let proof = client_proof(&salted, &auth_message);
        self.state = State::AwaitingFinal {
            server_key: hmac::Key::new(
                hmac::HMAC_SHA256,
                hmac_sha256(&salted, b"Server Key").as_ref(),
            ),
            auth_message,
        };
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Checks server-final (AuthenticationSASLFinal data): the server signature must match.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let State::AwaitingFinal {
            server_key,
            auth_message,
        } = &self.state
        else {
            return Err(ScramError::OutOfOrder);
        };
        let signature = parse_server_final(server_final)?;
        hmac::verify(server_key, auth_message, &signature)
            .map_err(|_| ScramError::SignatureMismatch)
    }
}

impl fmt::Debug for ScramSha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Initial => "Initial",
            State::AwaitingFinal { .. } => "AwaitingFinal",
        };
        f.debug_struct("ScramSha256")
            .field("mechanism", &self.mechanism())
            .field("channel_binding", &self.channel_binding.kind())
            .field("nonce", &self.nonce)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// The fields of a parsed server-first message.
#[derive(Debug)]
struct ServerFirst<'a> {
    nonce: &'a str,
    salt: Vec<u8>,
    iterations: NonZeroU32,
}

impl<'a> ServerFirst<'a> {
    /// Parses "r=...,s=...,i=...[,ext...]" and checks the nonce against `client_nonce`.
    fn parse(message: &'a [u8], client_nonce: &str) -> Result<Self, ScramError> {
        let text = std::str::from_utf8(message).map_err(|_| invalid_first("not valid UTF-8"))?;
        let mut attrs = text.split(',');
        let nonce = first_attribute(&mut attrs, 'r')?;
        let salt = first_attribute(&mut attrs, 's')?;
        let iterations = first_attribute(&mut attrs, 'i')?;
        Ok(ServerFirst {
            nonce: check_nonce(nonce, client_nonce)?,
            salt: decode_salt(salt)?,
            iterations: parse_iterations(iterations)?,
        })
    }
}

/// Takes the next attribute of server-first, which must be `name=value`, and returns the value.
fn first_attribute<'a>(
    attrs: &mut std::str::Split<'a, char>,
    name: char,
) -> Result<&'a str, ScramError> {
    let attr = attrs
        .next()
        .ok_or_else(|| invalid_first(&format!("missing attribute '{name}'")))?;
    if attr.starts_with("m=") {
        return Err(invalid_first("unsupported mandatory extension"));
    }
    let mut chars = attr.chars();
    match (chars.next(), chars.next()) {
        (Some(n), Some('=')) if n == name => Ok(chars.as_str()),
        _ => Err(invalid_first(&format!("expected attribute '{name}'"))),
    }
}

/// Checks that the server nonce is printable and strictly extends the client nonce.
fn check_nonce<'a>(nonce: &'a str, client_nonce: &str) -> Result<&'a str, ScramError> {
    if !nonce
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        return Err(invalid_first("nonce has non-printable characters"));
    }
    if nonce.len() <= client_nonce.len() || !nonce.starts_with(client_nonce) {
        return Err(ScramError::NonceMismatch);
    }
    Ok(nonce)
}

/// Decodes the base64 salt, which must not be empty.
fn decode_salt(salt: &str) -> Result<Vec<u8>, ScramError> {
    let salt = BASE64
        .decode(salt)
        .map_err(|_| invalid_first("salt is not valid base64"))?;
    if salt.is_empty() {
        return Err(invalid_first("salt is empty"));
    }
    Ok(salt)
}

/// Parses a decimal iteration count in 1..=MAX_ITERATIONS.
fn parse_iterations(value: &str) -> Result<NonZeroU32, ScramError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScramError::InvalidIterationCount);
    }
    value
        .parse::<u32>()
        .ok()
        .filter(|&n| n <= MAX_ITERATIONS)
        .and_then(NonZeroU32::new)
        .ok_or(ScramError::InvalidIterationCount)
}

/// Parses server-final: `v=<base64 signature>` or `e=<error>`, optionally followed by extensions.
fn parse_server_final(message: &[u8]) -> Result<Vec<u8>, ScramError> {
    let text = std::str::from_utf8(message).map_err(|_| invalid_final("not valid UTF-8"))?;
    let attr = text.split(',').next().unwrap_or_default();
    if let Some(error) = attr.strip_prefix("e=") {
        return Err(ScramError::ServerError(error.to_owned()));
    }
    let verifier = attr
        .strip_prefix("v=")
        .ok_or_else(|| invalid_final("expected attribute 'v'"))?;
    BASE64
        .decode(verifier)
        .map_err(|_| invalid_final("server signature is not valid base64"))
}

/// Builds an [`ScramError::InvalidServerFirst`].
fn invalid_first(reason: &str) -> ScramError {
    ScramError::InvalidServerFirst(reason.to_owned())
}

/// Builds an [`ScramError::InvalidServerFinal`].
fn invalid_final(reason: &str) -> ScramError {
    ScramError::InvalidServerFinal(reason.to_owned())
}

/// Escapes a SCRAM user name: '=' as "=3D" and ',' as "=2C".
fn escape_user(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

/// SASLprep-normalises the password, falling back to the raw bytes as libpq does.
fn normalize_password(password: &[u8]) -> Vec<u8> {
    std::str::from_utf8(password)
        .ok()
        .and_then(|p| stringprep::saslprep(p).ok())
        .map_or_else(|| password.to_vec(), |p| p.as_bytes().to_vec())
}

/// A random nonce: NONCE_LEN bytes from the system RNG, base64-encoded.
fn random_nonce() -> Result<String, ScramError> {
    let mut bytes = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ScramError::Random)?;
    Ok(BASE64.encode(bytes))
}

/// SaltedPassword := Hi(password, salt, i), i.e. PBKDF2-HMAC-SHA-256.
fn salted_password(password: &[u8], salt: &[u8], iterations: NonZeroU32) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        password,
        &mut out,
    );
    out
}

/// HMAC-SHA-256 of `data` under `key`.
fn hmac_sha256(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// ClientProof := ClientKey XOR HMAC(H(ClientKey), AuthMessage).
fn client_proof(salted: &[u8], auth_message: &[u8]) -> [u8; KEY_LEN] {
    let client_key = hmac_sha256(salted, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
    let signature = hmac_sha256(stored_key.as_ref(), auth_message);
    let mut proof = [0u8; KEY_LEN];
    for ((p, k), s) in proof
        .iter_mut()
        .zip(client_key.as_ref())
        .zip(signature.as_ref())
    {
        *p = k ^ s;
    }
    proof
}

/// ServerSignature := HMAC(HMAC(SaltedPassword, "Server Key"), AuthMessage).
#[cfg(test)]
fn server_signature(salted: &[u8], auth_message: &[u8]) -> hmac::Tag {
    hmac_sha256(hmac_sha256(salted, b"Server Key").as_ref(), auth_message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    /// The RFC 7677 exchange (client-first-bare "n=user,r=...").
    fn rfc_exchange() -> ScramSha256 {
        ScramSha256::with_user(b"pencil", ChannelBinding::Unsupported, CLIENT_NONCE, "user")
    }

    /// A PostgreSQL-style exchange (empty user) with the RFC nonce.
    fn pg_exchange(cb: ChannelBinding) -> ScramSha256 {
        ScramSha256::with_nonce(b"pencil", cb, CLIENT_NONCE)
    }

    fn first_error(server_first: &str) -> ScramError {
        pg_exchange(ChannelBinding::Unsupported)
            .handle_server_first(server_first.as_bytes())
            .expect_err("server-first must be rejected")
    }

    #[test]
    fn rfc7677_vector_full_exchange() {
        let mut scram = rfc_exchange();
        assert_eq!(scram.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let client_final = scram.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(client_final).unwrap(), RFC_CLIENT_FINAL);
        scram
            .verify_server_final(RFC_SERVER_FINAL.as_bytes())
            .unwrap();
    }

    #[test]
    fn rfc7677_vector_derivation_functions() {
        let salt = BASE64.decode(SALT).unwrap();
        let salted = salted_password(b"pencil", &salt, NonZeroU32::new(4096).unwrap());
        let auth = format!("n=user,r={CLIENT_NONCE},{SERVER_FIRST},c=biws,r={SERVER_NONCE}");
        let proof = BASE64.encode(client_proof(&salted, auth.as_bytes()));
        assert_eq!(proof, "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        let signature = BASE64.encode(server_signature(&salted, auth.as_bytes()));
        assert_eq!(signature, "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    #[test]
    fn postgres_style_exchange_with_empty_user() {
        // Expected values computed independently with Python's hashlib/hmac.
        let mut scram = pg_exchange(ChannelBinding::Unsupported);
        assert_eq!(scram.mechanism(), SCRAM_SHA_256);
        assert_eq!(scram.client_first(), b"n,,n=,r=rOprNGfwEbeRWgbNEkqO");
        let client_final = scram.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
        let expected =
            format!("c=biws,r={SERVER_NONCE},p=qvT2SWdEH5Q06albL+hjSYuUhCG7VndFyzIb7CK4n9k=");
        assert_eq!(String::from_utf8(client_final).unwrap(), expected);
        scram
            .verify_server_final(b"v=3HO6Qt1M4MKJrmlKaoOqLAI0/0TV0HZe7J9H3MBtSOg=")
            .unwrap();
    }

    #[test]
    fn tls_server_end_point_exchange() {
        // Expected values computed independently with Python's hashlib/hmac.
        let mut scram = pg_exchange(ChannelBinding::TlsServerEndPoint(vec![1, 2, 3, 0xff]));
        assert_eq!(scram.mechanism(), SCRAM_SHA_256_PLUS);
        assert_eq!(
            scram.client_first(),
            b"p=tls-server-end-point,,n=,r=rOprNGfwEbeRWgbNEkqO"
        );
        let client_final =
            String::from_utf8(scram.handle_server_first(SERVER_FIRST.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            client_final,
            format!(
                "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCwsAQID/w==,r={SERVER_NONCE},p=CfPZVkbHPjYsZNtvJEnnbQKaTEw4Bu+HI07hNV9X7js="
            )
        );
        scram
            .verify_server_final(b"v=p1ol/krKLDpN5+lR9uneWnbADqjbWnsXwlrcMc2U+gI=")
            .unwrap();
    }

    #[test]
    fn gs2_header_and_c_attribute_per_variant() {
        let cases = [
            (ChannelBinding::Unsupported, "n,,", "biws", SCRAM_SHA_256),
            (ChannelBinding::Unrequested, "y,,", "eSws", SCRAM_SHA_256),
            (
                ChannelBinding::TlsServerEndPoint(vec![1, 2, 3, 0xff]),
                "p=tls-server-end-point,,",
                "cD10bHMtc2VydmVyLWVuZC1wb2ludCwsAQID/w==",
                SCRAM_SHA_256_PLUS,
            ),
        ];
        for (cb, gs2, c, mechanism) in cases {
            assert_eq!(cb.gs2_header(), gs2);
            assert_eq!(cb.c_attribute(), c);
            let mut scram = pg_exchange(cb);
            assert_eq!(scram.mechanism(), mechanism);
            assert!(scram.client_first().starts_with(gs2.as_bytes()));
            let client_final = scram.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
            assert!(client_final.starts_with(format!("c={c},r=").as_bytes()));
        }
    }

    #[test]
    fn wrong_server_signature_fails() {
        let mut scram = rfc_exchange();
        scram.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
        let wrong = "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
        assert!(matches!(
            scram.verify_server_final(wrong.as_bytes()),
            Err(ScramError::SignatureMismatch)
        ));
        let short = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl9";
        assert!(matches!(
            scram.verify_server_final(short.as_bytes()),
            Err(ScramError::SignatureMismatch)
        ));
    }

    #[test]
    fn malformed_server_final_fails() {
        let mut scram = rfc_exchange();
        scram.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
        for bad in [
            &b""[..],
            b"x=abc",
            b"v=!!!notbase64",
            b"\xff\xfe",
            b"6rriTRBi23WpRR",
        ] {
            assert!(
                matches!(
                    scram.verify_server_final(bad),
                    Err(ScramError::InvalidServerFinal(_))
                ),
                "{bad:?}"
            );
        }
        match scram.verify_server_final(b"e=invalid-proof") {
            Err(ScramError::ServerError(e)) => assert_eq!(e, "invalid-proof"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn server_final_with_extension_is_accepted() {
        let mut scram = rfc_exchange();
        scram.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
        let with_ext = format!("{RFC_SERVER_FINAL},x=ext");
        scram.verify_server_final(with_ext.as_bytes()).unwrap();
    }

    #[test]
    fn malformed_server_first_is_invalid_server_first() {
        let cases = [
            String::new(),
            format!("s={SALT},i=4096"),
            format!("r={SERVER_NONCE}"),
            format!("r={SERVER_NONCE},i=4096"),
            format!("r={SERVER_NONCE},s={SALT}"),
            format!("r={SERVER_NONCE},i=4096,s={SALT}"),
            format!("m=ext,r={SERVER_NONCE},s={SALT},i=4096"),
            format!("r={SERVER_NONCE},s=not*base64,i=4096"),
            format!("r={SERVER_NONCE},s=,i=4096"),
            format!("r={CLIENT_NONCE}\u{7f}x,s={SALT},i=4096"),
            format!("r{SERVER_NONCE},s={SALT},i=4096"),
            format!("rr={SERVER_NONCE},s={SALT},i=4096"),
            "garbage".to_owned(),
        ];
        for case in cases {
            let err = first_error(&case);
            assert!(
                matches!(err, ScramError::InvalidServerFirst(_)),
                "{case:?}: {err:?}"
            );
        }
    }

    #[test]
    fn invalid_utf8_server_first_fails() {
        let mut scram = pg_exchange(ChannelBinding::Unsupported);
        let err = scram
            .handle_server_first(b"r=rOprNGfwEbeRWgbNEkqO\xff,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
        assert!(matches!(err, Err(ScramError::InvalidServerFirst(_))));
    }

    #[test]
    fn nonce_mismatch_fails() {
        for nonce in [
            "abc",
            CLIENT_NONCE,
            "rOprNGfwEbeRWgbNEkq",
            "XOprNGfwEbeRWgbNEkqO%hvYD",
            "",
        ] {
            let err = first_error(&format!("r={nonce},s={SALT},i=4096"));
            assert!(
                matches!(err, ScramError::NonceMismatch),
                "{nonce:?}: {err:?}"
            );
        }
    }

    #[test]
    fn bad_iteration_counts_fail() {
        for count in [
            "0",
            "10000001",
            "4294967296",
            "99999999999999999999",
            "",
            "-1",
            "+4096",
            "4k",
            " 4096",
        ] {
            let err = first_error(&format!("r={SERVER_NONCE},s={SALT},i={count}"));
            assert!(
                matches!(err, ScramError::InvalidIterationCount),
                "{count:?}: {err:?}"
            );
        }
    }

    #[test]
    fn iteration_count_bounds() {
        assert_eq!(parse_iterations("1").unwrap().get(), 1);
        assert_eq!(parse_iterations("10000000").unwrap().get(), MAX_ITERATIONS);
    }

    #[test]
    fn server_first_with_trailing_extension_is_accepted() {
        let mut scram = rfc_exchange();
        let first = format!("{SERVER_FIRST},x=ext");
        assert!(scram.handle_server_first(first.as_bytes()).is_ok());
    }

    #[test]
    fn truncated_server_messages_never_panic() {
        for end in 0..SERVER_FIRST.len() {
            let prefix = SERVER_FIRST.get(..end).unwrap();
            let _ = rfc_exchange().handle_server_first(prefix.as_bytes());
        }
        let mut scram = rfc_exchange();
        scram.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
        for end in 0..RFC_SERVER_FINAL.len() {
            let prefix = RFC_SERVER_FINAL.get(..end).unwrap();
            assert!(
                scram.verify_server_final(prefix.as_bytes()).is_err(),
                "{prefix:?}"
            );
        }
    }

    #[test]
    fn calls_out_of_order_fail() {
        let mut scram = rfc_exchange();
        let err = scram.verify_server_final(RFC_SERVER_FINAL.as_bytes());
        assert!(matches!(err, Err(ScramError::OutOfOrder)));
        scram.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
        let err = scram.handle_server_first(SERVER_FIRST.as_bytes());
        assert!(matches!(err, Err(ScramError::OutOfOrder)));
        scram
            .verify_server_final(RFC_SERVER_FINAL.as_bytes())
            .unwrap();
    }

    #[test]
    fn failed_server_first_leaves_exchange_usable() {
        let mut scram = rfc_exchange();
        assert!(scram.handle_server_first(b"garbage").is_err());
        let client_final = scram.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(client_final, RFC_CLIENT_FINAL.as_bytes());
    }

    #[test]
    fn new_uses_random_printable_nonce() {
        let a = ScramSha256::new(b"pw", ChannelBinding::Unsupported).unwrap();
        let b = ScramSha256::new(b"pw", ChannelBinding::Unsupported).unwrap();
        assert_ne!(a.client_first(), b.client_first());
        let nonce = a.client_first().strip_prefix(b"n,,n=,r=").unwrap();
        assert_eq!(BASE64.decode(nonce).unwrap().len(), NONCE_LEN);
        assert!(
            nonce
                .iter()
                .all(|&c| (0x21..=0x7e).contains(&c) && c != b',')
        );
    }

    #[test]
    fn password_is_saslprep_normalised_with_raw_fallback() {
        // U+00A0 (non-ASCII space) maps to U+0020; U+00AD (soft hyphen) maps to nothing.
        assert_eq!(
            normalize_password("pen\u{a0}ci\u{ad}l".as_bytes()),
            b"pen cil"
        );
        // U+0007 is prohibited by SASLprep: the raw bytes are used.
        assert_eq!(normalize_password(b"pen\x07cil"), b"pen\x07cil");
        // Invalid UTF-8 is used as is.
        assert_eq!(normalize_password(b"pen\xffcil"), b"pen\xffcil");
        assert_eq!(normalize_password(b"pencil"), b"pencil");
    }

    #[test]
    fn normalised_password_drives_the_exchange() {
        let mut scram = ScramSha256::with_user(
            "pen\u{ad}cil".as_bytes(),
            ChannelBinding::Unsupported,
            CLIENT_NONCE,
            "user",
        );
        let client_final = scram.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(client_final, RFC_CLIENT_FINAL.as_bytes());
    }

    #[test]
    fn user_name_is_escaped() {
        assert_eq!(escape_user("a=b,c"), "a=3Db=2Cc");
        assert_eq!(escape_user(""), "");
    }

    #[test]
    fn debug_hides_password_and_keys() {
        let mut scram = ScramSha256::with_nonce(
            b"hunter2-secret",
            ChannelBinding::TlsServerEndPoint(vec![0xab; 4]),
            "abc",
        );
        let before = format!("{scram:?}");
        assert!(
            !before.contains("hunter2") && !before.contains("password"),
            "{before}"
        );
        assert!(
            before.contains("TlsServerEndPoint") && before.contains("Initial"),
            "{before}"
        );
        scram
            .handle_server_first(format!("r=abcdef,s={SALT},i=1").as_bytes())
            .unwrap();
        let after = format!("{scram:?}");
        assert!(
            !after.contains("hunter2") && !after.contains("key") && !after.contains("auth"),
            "{after}"
        );
        assert!(after.contains("AwaitingFinal"), "{after}");
    }

    #[test]
    fn md5_password_known_value() {
        // python3: "md5" + md5(md5(b"secret" + b"postgres").hexdigest().encode() + bytes([1, 2, 3, 4])).hexdigest()
        assert_eq!(
            md5_password(b"postgres", b"secret", [1, 2, 3, 4]),
            "md5bb41a296aab6baccb36ff243a562abff"
        );
        assert_eq!(md5_password(b"postgres", b"secret", [1, 2, 3, 4]).len(), 35);
    }

    #[test]
    fn hex_encodes_lower_case() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    /// A DER skeleton: Certificate { tbsCertificate {}, AlgorithmIdentifier { oid } }.
    fn cert_with_algorithm(oid: &[u8]) -> Vec<u8> {
        let mut alg = vec![0x06, oid.len() as u8];
        alg.extend_from_slice(oid);
        let mut body = vec![0x30, 0x00, 0x30, alg.len() as u8];
        body.extend_from_slice(&alg);
        let mut cert = vec![0x30, body.len() as u8];
        cert.extend_from_slice(&body);
        cert
    }

    #[test]
    fn tls_server_end_point_hashes_with_the_signature_hash_and_sha256_for_sha1() {
        let sha384_rsa =
            cert_with_algorithm(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c]);
        let got = tls_server_end_point(&sha384_rsa).unwrap();
        assert_eq!(got, digest::digest(&digest::SHA384, &sha384_rsa).as_ref());
        let sha1_rsa = cert_with_algorithm(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05]);
        let got = tls_server_end_point(&sha1_rsa).unwrap();
        assert_eq!(got, digest::digest(&digest::SHA256, &sha1_rsa).as_ref());
        let ed25519 = cert_with_algorithm(&[0x2b, 0x65, 0x70]);
        assert_eq!(tls_server_end_point(&ed25519), None);
        assert_eq!(tls_server_end_point(&[0x30, 0x85, 1]), None);
        assert_eq!(tls_server_end_point(&[]), None);
    }
}
