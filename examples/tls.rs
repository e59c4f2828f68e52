//! TLS with certificate verification and SCRAM channel binding.
//!
//! With `DATABASE_URL` set, it connects with that URL (put `sslmode=verify-full` and
//! `sslrootcert=…` in it) and shows what the session negotiated. Without it, it starts a
//! throwaway cluster with `ssl=on`, makes a CA and a server certificate for `localhost`
//! at run time, and connects with `sslmode=verify-full channel_binding=require`; then it
//! shows the errors a wrong CA and a plain-text-only setting give:
//!
//! ```text
//! cargo run --example tls
//! ```

use pgkeel::Connection;
use pgkeel_testkit::{AuthMethod, Cluster};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

const USER: &str = "tls_demo";
const PASSWORD: &str = "tls-demo-s3cret";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        let conn = Connection::connect(url.as_str()).await?;
        show(&conn).await?;
        return Ok(());
    }

    // A CA, and a certificate for "localhost" signed by it.
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pgkeel demo CA");
    let ca = ca_params.self_signed(&ca_key)?;
    let server_key = KeyPair::generate()?;
    let server_cert = CertificateParams::new(vec!["localhost".to_owned()])?.signed_by(
        &server_key,
        &ca,
        &ca_key,
    )?;

    // A throwaway cluster serving that certificate, with a role that must use TLS.
    let cluster = Cluster::start()?;
    let crt = cluster.install_file("server.crt", server_cert.pem().as_bytes())?;
    let key = cluster.install_file("server.key", server_key.serialize_pem().as_bytes())?;
    cluster.psql(
        "postgres",
        &format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}'; ALTER SYSTEM SET ssl_key_file = '{}'; \
             ALTER SYSTEM SET ssl = on;",
            crt.display(),
            key.display()
        ),
    )?;
    cluster.create_role(USER, PASSWORD, AuthMethod::ScramSha256)?;
    cluster.prepend_hba(&format!(
        "hostssl all {USER} 127.0.0.1/32 scram-sha-256\nhost all {USER} 127.0.0.1/32 reject\n"
    ))?;

    // The client trusts only the demo CA.
    let dir = tempdir()?;
    let ca_file = dir.join("root.crt");
    std::fs::write(&ca_file, ca.pem())?;
    let base = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user={USER} password={PASSWORD} dbname=postgres connect_timeout=5",
        cluster.port()
    );

    let good = format!(
        "{base} sslmode=verify-full sslrootcert={} channel_binding=require",
        ca_file.display()
    );
    let conn = Connection::connect(good.as_str()).await?;
    println!("verify-full with channel binding: connected");
    show(&conn).await?;
    conn.close().await?;

    // A CA the server's certificate was not signed by: refused, and the error says why.
    let other_key = KeyPair::generate()?;
    let other = CertificateParams::new(Vec::<String>::new())?.self_signed(&other_key)?;
    let other_file = dir.join("other.crt");
    std::fs::write(&other_file, other.pem())?;
    let wrong_ca = format!(
        "{base} sslmode=verify-full sslrootcert={}",
        other_file.display()
    );
    match Connection::connect(wrong_ca.as_str()).await {
        Ok(_) => println!("unexpected: an untrusted CA was accepted"),
        Err(e) => println!("untrusted CA refused: {e}"),
    }

    // The role may not connect without TLS: the server's refusal comes back as is.
    match Connection::connect(format!("{base} sslmode=disable").as_str()).await {
        Ok(_) => println!("unexpected: plain text was accepted"),
        Err(e) => println!("sslmode=disable refused by the server: {e}"),
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Prints what `pg_stat_ssl` says about this session.
async fn show(conn: &Connection) -> Result<(), pgkeel::Error> {
    let row = conn
        .query_one(
            "SELECT ssl, version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    let ssl: bool = row.get(0);
    let version: Option<String> = row.get(1);
    let cipher: Option<String> = row.get(2);
    println!("  ssl = {ssl}, version = {version:?}, cipher = {cipher:?}");
    Ok(())
}

/// A private temp directory for the client's files.
fn tempdir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("pgkeel-tls-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
