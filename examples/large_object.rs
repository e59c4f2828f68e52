//! Large objects: a file streamed into the database and back out with `tokio::io::copy`,
//! in bounded memory whatever its size.
//!
//! With `DATABASE_URL` set, it uses that server; without it, it starts a throwaway
//! PostgreSQL cluster (initdb into a temp dir) and removes it afterwards. The file size
//! in MiB is the first argument (default 64):
//!
//! ```text
//! cargo run --example large_object -- 256
//! ```

use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::Instant;

use pgkeel::{Connection, LoMode};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

const MIB: u64 = 1 << 20;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: u64 = std::env::args().nth(1).map_or(Ok(64), |a| a.parse())?;
    let (url, _cluster) = pgkeel_testkit::database_url_or_throwaway()?;
    let conn = Connection::connect(url.as_str()).await?;

    // 1. A file to store: `mib` MiB of pseudo-random bytes.
    let dir = std::env::temp_dir().join(format!("pgkeel-lo-{}", std::process::id()));
    tokio::fs::create_dir_all(&dir).await?;
    let source = dir.join("source.bin");
    write_file(&source, mib).await?;
    println!("source file: {} MiB", mib);

    // 2. File -> large object. Large objects live in a transaction: the object borrows
    //    it, so it cannot outlive it. `copy` reads the file in small buffers and the
    //    object sends one chunk (256 KiB by default) per call.
    let started = Instant::now();
    let mut tx = conn.transaction().await?;
    let oid = tx.create_large_object().await?;
    let mut lo = tx.large_object(oid, LoMode::Write).await?;
    let mut file = tokio::fs::File::open(&source).await?;
    let stored = tokio::io::copy(&mut file, &mut lo).await?; // flushes at the end
    lo.close().await?;
    tx.commit().await?;
    report("stored", stored, started);

    // 3. Large object -> file, with a bigger chunk (fewer round trips, more memory).
    let started = Instant::now();
    let copy = dir.join("copy.bin");
    let mut tx = conn.transaction().await?;
    let mut lo = tx.large_object(oid, LoMode::Read).await?;
    lo.set_chunk_size(1 << 20)?;
    let size = lo.size().await?;
    let mut out = tokio::fs::File::create(&copy).await?;
    let fetched = tokio::io::copy(&mut lo, &mut out).await?;
    out.flush().await?;
    report("fetched", fetched, started);
    assert_eq!(size, fetched);

    // 4. Random access: seek anywhere (64-bit offsets), read a few bytes.
    lo.seek(SeekFrom::Start(size / 2)).await?;
    let middle = lo.read_chunk(8).await?;
    println!("8 bytes at offset {}: {:02x?}", size / 2, &middle[..]);
    drop(lo);

    // 5. Same bytes both ways? Then remove the object (when the transaction commits).
    let same = tokio::fs::read(&source).await? == tokio::fs::read(&copy).await?;
    println!("round trip identical: {same}");
    tx.unlink_large_object(oid).await?;
    tx.commit().await?;
    tokio::fs::remove_dir_all(&dir).await?;
    conn.close().await?;
    if !same {
        return Err("the copy differs from the source".into());
    }
    Ok(())
}

/// Writes `mib` MiB of xorshift noise to `path`, 1 MiB at a time.
async fn write_file(path: &PathBuf, mib: u64) -> std::io::Result<()> {
    let mut file = tokio::fs::File::create(path).await?;
    let (mut state, mut buf) = (0x2545_f491_4f6c_dd1du64, vec![0u8; MIB as usize]);
    for _ in 0..mib {
        for word in buf.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        file.write_all(&buf).await?;
    }
    file.flush().await
}

fn report(what: &str, bytes: u64, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    let rate = bytes as f64 / MIB as f64 / secs;
    println!(
        "{what}: {} MiB in {:.2} s ({rate:.0} MiB/s)",
        bytes / MIB,
        secs
    );
}
