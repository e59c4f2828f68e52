//! Large objects over fast-path calls, and `fast_path_call` itself: a 64 MiB object
//! streamed in and out in 1 MiB chunks in flat memory, 64-bit positions past 4 GiB,
//! truncate, unlink, typed errors that leave the connection usable, reads dropped by a
//! timeout, and the same through PgBouncer in transaction mode.

use crate::common;

use std::io::SeekFrom;
use std::time::{Duration, Instant};

use pgkeel::pool::AbandonPolicy;
use pgkeel::{Connection, ErrorKind, LoMode, Pool, Transaction, TransactionStatus};
use pgkeel_testkit::{Pgbouncer, PoolMode, TestDb};
use ring::digest::{Context, SHA256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

const MIB: usize = 1 << 20;
const GIB: u64 = 1 << 30;

/// Deterministic pseudo-random bytes (xorshift64), made chunk by chunk so the test never
/// holds the whole object.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for word in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            word.copy_from_slice(&self.0.to_le_bytes()[..word.len()]);
        }
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A value in kB from /proc/self/status (`VmRSS`, `VmHWM`).
fn proc_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .expect("the field");
    let kb = line.split_whitespace().nth(1).expect("a number");
    kb.parse().expect("kB")
}

/// Writes `total` bytes of noise into a new large object in `chunk`-sized writes through
/// `AsyncWrite`; returns its OID and the SHA-256 of what was written.
async fn write_noise(tx: &mut Transaction, total: usize, chunk: usize) -> (u32, String) {
    let oid = tx.create_large_object().await.unwrap();
    let mut lo = tx.large_object(oid, LoMode::Write).await.unwrap();
    lo.set_chunk_size(chunk).unwrap();
    let (mut noise, mut hash) = (Noise(0x9e37_79b9_7f4a_7c15), Context::new(&SHA256));
    let mut buf = vec![0u8; chunk];
    for _ in 0..total / chunk {
        noise.fill(&mut buf);
        hash.update(&buf);
        lo.write_all(&buf).await.unwrap();
    }
    lo.flush().await.unwrap();
    assert_eq!(lo.position(), total as u64);
    lo.close().await.unwrap();
    (oid, hex(hash.finish().as_ref()))
}

/// Reads large object `oid` through `AsyncRead` in `chunk`-sized reads; returns its
/// length and SHA-256.
async fn read_hash(tx: &mut Transaction, oid: u32, chunk: usize) -> (usize, String) {
    let mut lo = tx.large_object(oid, LoMode::Read).await.unwrap();
    lo.set_chunk_size(chunk).unwrap();
    let (mut hash, mut buf, mut total) = (Context::new(&SHA256), vec![0u8; chunk], 0);
    loop {
        let n = lo.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        total += n;
    }
    (total, hex(hash.finish().as_ref()))
}

/// Runs the 64 MiB round trip and prints what the process's peak memory did.
async fn round_trip_64_mib() {
    let (_db, conn) = common::db().await;
    // Peak RSS from here on (Linux: writing 5 to clear_refs resets VmHWM to VmRSS).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = proc_kb("VmRSS:");
    let started = Instant::now();
    let mut tx = conn.transaction().await.unwrap();
    let (oid, written) = write_noise(&mut tx, 64 * MIB, MIB).await;
    tx.commit().await.unwrap();
    let wrote_in = started.elapsed();
    let mut tx = conn.transaction().await.unwrap();
    let (len, read) = read_hash(&mut tx, oid, MIB).await;
    tx.commit().await.unwrap();
    let growth_kb = proc_kb("VmHWM:").saturating_sub(rss_before);
    println!(
        "figure: 64 MiB large object written in {wrote_in:?}, read in {:?}; peak RSS grew {} KiB",
        started.elapsed() - wrote_in,
        growth_kb
    );
    assert_eq!(len, 64 * MIB);
    assert_eq!(
        read, written,
        "the object read back differs from what was written"
    );
    assert!(
        growth_kb < 24 * 1024,
        "moving 64 MiB raised the peak RSS by {growth_kb} KiB: not flat"
    );
}

#[test]
fn a_64_mib_object_round_trips_in_1_mib_chunks_in_flat_memory() {
    const CHILD: &str = "PGKEEL_LO_MEMORY_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        return rt.block_on(round_trip_64_mib());
    }
    // Alone in a child process, so the peak RSS is this test's own.
    let exe = std::env::current_exe().expect("the test binary");
    let name = "large_objects::a_64_mib_object_round_trips_in_1_mib_chunks_in_flat_memory";
    let out = std::process::Command::new(exe)
        .env(CHILD, "1")
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines().filter_map(|l| l.split_once("figure: ")) {
        println!("{}", line.1);
    }
    assert!(
        stdout.contains("1 passed"),
        "the child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn positions_past_4_gib_work_and_a_hole_reads_as_zeros() {
    let (_db, conn) = common::db().await;
    let mut tx = conn.transaction().await.unwrap();
    let oid = tx.create_large_object().await.unwrap();
    let mut lo = tx.large_object(oid, LoMode::ReadWrite).await.unwrap();
    let at = 5 * GIB;
    assert_eq!(lo.seek_to(SeekFrom::Start(at)).await.unwrap(), at);
    lo.write_chunk(b"tail").await.unwrap();
    assert_eq!(lo.tell().await.unwrap(), at + 4);
    assert_eq!(lo.size().await.unwrap(), at + 4);
    assert_eq!(lo.position(), at + 4, "size() puts the position back");
    // The hole before the write, and across its edge, reads as zeros.
    assert_eq!(lo.seek_to(SeekFrom::Current(-12)).await.unwrap(), at - 8);
    let edge = lo.read_chunk(100).await.unwrap();
    assert_eq!(&edge[..], b"\0\0\0\0\0\0\0\0tail");
    assert_eq!(lo.read_chunk(100).await.unwrap().len(), 0, "the end");
    // The same through AsyncSeek + AsyncRead, deep in the hole.
    assert_eq!(lo.seek(SeekFrom::Start(3 * GIB)).await.unwrap(), 3 * GIB);
    let mut hole = vec![1u8; 4096];
    lo.read_exact(&mut hole).await.unwrap();
    assert!(hole.iter().all(|&b| b == 0));
    assert_eq!(lo.seek(SeekFrom::End(-4)).await.unwrap(), at);
    let mut tail = String::new();
    lo.read_to_string(&mut tail).await.unwrap();
    assert_eq!(tail, "tail");
    assert_eq!(lo.stream_position().await.unwrap(), at + 4);
    lo.close().await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn truncate_cuts_and_extends_with_zeros_without_moving_the_position() {
    let (_db, conn) = common::db().await;
    let mut tx = conn.transaction().await.unwrap();
    let oid = tx.import_large_object(&[7u8; 100]).await.unwrap();
    let mut lo = tx.large_object(oid, LoMode::ReadWrite).await.unwrap();
    lo.seek_to(SeekFrom::Start(50)).await.unwrap();
    lo.truncate(10).await.unwrap();
    assert_eq!(lo.position(), 50);
    assert_eq!(lo.size().await.unwrap(), 10);
    lo.truncate(6 * GIB).await.unwrap();
    assert_eq!(lo.size().await.unwrap(), 6 * GIB);
    lo.truncate(20).await.unwrap();
    drop(lo);
    let all = tx.export_large_object(oid).await.unwrap();
    let mut want = vec![7u8; 10];
    want.extend([0u8; 10]);
    assert_eq!(&all[..], &want[..]);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_read_interleaved_with_writes_through_the_traits_keeps_its_place() {
    // AsyncRead reads a chunk ahead; a write after a short read goes at the caller's
    // position, not the server's.
    let (_db, conn) = common::db().await;
    let mut tx = conn.transaction().await.unwrap();
    let oid = tx.import_large_object(b"0123456789").await.unwrap();
    let mut lo = tx.large_object(oid, LoMode::ReadWrite).await.unwrap();
    let mut two = [0u8; 2];
    lo.read_exact(&mut two).await.unwrap();
    assert_eq!(&two, b"01");
    assert_eq!(lo.position(), 2);
    lo.write_all(b"ab").await.unwrap();
    lo.flush().await.unwrap();
    assert_eq!(lo.tell().await.unwrap(), 4);
    lo.read_exact(&mut two).await.unwrap();
    assert_eq!(&two, b"45");
    lo.seek(SeekFrom::Current(-1)).await.unwrap();
    lo.read_exact(&mut two).await.unwrap();
    assert_eq!(&two, b"56");
    drop(lo);
    assert_eq!(
        &tx.export_large_object(oid).await.unwrap()[..],
        b"01ab456789"
    );
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn opening_an_unlinked_object_fails_with_sqlstate_42704() {
    let (_db, conn) = common::db().await;
    let mut tx = conn.transaction().await.unwrap();
    let oid = tx.import_large_object(b"gone soon").await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = conn.transaction().await.unwrap();
    tx.unlink_large_object(oid).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = conn.transaction().await.unwrap();
    let err = tx.large_object(oid, LoMode::Read).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Db, "{err}");
    assert_eq!(err.code(), Some("42704"), "{err}");
    assert!(err.to_string().contains(&oid.to_string()), "{err}");
    tx.rollback().await.unwrap();
    let mut tx = conn.transaction().await.unwrap();
    let err = tx.unlink_large_object(oid).await.unwrap_err();
    assert_eq!(err.code(), Some("42704"), "{err}");
    drop(tx);
    assert_eq!(
        conn.query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
}

#[tokio::test]
async fn writing_to_a_read_only_descriptor_is_a_server_error_and_fails_only_the_transaction() {
    let (_db, conn) = common::db().await;
    let mut tx = conn.transaction().await.unwrap();
    let oid = tx.import_large_object(b"ro").await.unwrap();
    let mut lo = tx.large_object(oid, LoMode::Read).await.unwrap();
    let err = lo.write_chunk(b"no").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Db, "{err}");
    assert!(err.code().is_some(), "{err}");
    drop(lo);
    assert_eq!(tx.transaction_status(), TransactionStatus::Failed);
    let err = tx.commit().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RolledBack, "{err}");
    assert_eq!(
        conn.query_one("SELECT 2", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
}

#[tokio::test]
async fn fast_path_calls_return_typed_results_and_null() {
    let (_db, conn) = common::db().await;
    let pid: i32 = conn
        .fast_path_call_typed("pg_catalog.pg_backend_pid", &[])
        .await
        .unwrap();
    // Behind a pooler, `backend_pid()` is the pooler's own.
    if std::env::var("PGKEEL_TEST_VIA_PGBOUNCER").is_err() {
        assert_eq!(pid, conn.backend_pid());
    }
    let sum: i32 = conn
        .fast_path_call_typed("int4pl(int4, int4)", &[&2i32, &40i32])
        .await
        .unwrap();
    assert_eq!(sum, 42);
    let raw = conn
        .fast_path_call("pg_catalog.int4pl(integer, integer)", &[&2i32, &3i32])
        .await
        .unwrap();
    assert_eq!(raw.as_deref(), Some(&5i32.to_be_bytes()[..]));
    // A strict function with a NULL argument returns NULL without running.
    let none: Option<i32> = conn
        .fast_path_call_typed("int4pl(int4, int4)", &[&None::<i32>, &1i32])
        .await
        .unwrap();
    assert_eq!(none, None);
    // By OID, and text in and out.
    let oid: u32 = conn
        .query_one("SELECT 'md5(text)'::regprocedure::oid", &[])
        .await
        .unwrap()
        .get(0);
    let md5: String = conn.fast_path_call_typed(oid, &[&"abc"]).await.unwrap();
    assert_eq!(md5, "900150983cd24fb0d6963f7d28e17f72");
}

#[tokio::test]
async fn fast_path_errors_are_typed_and_leave_the_connection_usable() {
    let (_db, conn) = common::db().await;
    let usable = |conn: Connection| async move {
        let v: i32 = conn.query_one("SELECT 7", &[]).await.unwrap().get(0);
        assert_eq!(v, 7);
        assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
    };
    let err = conn
        .fast_path_call("no_such_fn(int4)", &[&1i32])
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::Db, Some("42883")),
        "{err}"
    );
    assert!(err.to_string().contains("no_such_fn"), "{err}");
    usable(conn.clone()).await;
    let err = conn
        .fast_path_call(4_000_000_000u32, &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("42883"), "{err}");
    // Overloaded bare names cannot be resolved.
    let err = conn.fast_path_call("abs", &[&1i32]).await.unwrap_err();
    assert_eq!(err.code(), Some("42883"), "{err}");
    let err = conn
        .fast_path_call("int4pl(int4, int4)", &[&"2", &3i32])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Encode, "{err}");
    assert!(err.to_string().contains("argument 1"), "{err}");
    let err = conn
        .fast_path_call("int4pl(int4, int4)", &[&2i64, &3i32])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Encode, "{err}");
    let err = conn
        .fast_path_call("int4pl(int4, int4)", &[&2i32])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Encode, "{err}");
    assert!(err.to_string().contains("takes 2 arguments"), "{err}");
    let err = conn
        .fast_path_call_typed::<String>("int4pl(int4, int4)", &[&2i32, &3i32])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    let err = conn
        .fast_path_call_typed::<i32>("int4pl(int4, int4)", &[&None::<i32>, &3i32])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode, "NULL into i32: {err}");
    // A server error inside the function: 22003 numeric value out of range.
    let err = conn
        .fast_path_call("int4pl(int4, int4)", &[&i32::MAX, &1i32])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("22003"), "{err}");
    // A set-returning function cannot be called this way; the server says so.
    let err = conn
        .fast_path_call("generate_series(int4, int4)", &[&1i32, &2i32])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Db, "{err}");
    usable(conn.clone()).await;
    assert!(!conn.is_broken());
}

#[tokio::test]
async fn an_unknown_function_inside_a_transaction_does_not_fail_it() {
    let (_db, conn) = common::db().await;
    let mut tx = conn.transaction().await.unwrap();
    let err = tx.fast_path_call("no_such_fn()", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some("42883"), "{err}");
    assert_eq!(tx.transaction_status(), TransactionStatus::InTransaction);
    let n: i32 = tx
        .fast_path_call_typed("int4pl(int4,int4)", &[&1i32, &1i32])
        .await
        .unwrap();
    assert_eq!(n, 2);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_dropped_function_is_resolved_again() {
    let (_db, conn) = common::db().await;
    conn.batch_execute("CREATE FUNCTION f(int4) RETURNS int4 LANGUAGE sql AS 'SELECT $1 + 1'")
        .await
        .unwrap();
    let v: i32 = conn
        .fast_path_call_typed("f(int4)", &[&1i32])
        .await
        .unwrap();
    assert_eq!(v, 2);
    conn.batch_execute(
        "DROP FUNCTION f(int4); CREATE FUNCTION f(int4) RETURNS int4 LANGUAGE sql AS 'SELECT $1 + 2'",
    )
    .await
    .unwrap();
    // The cached OID is gone: the server says so once, and the next call resolves anew.
    let err = conn.fast_path_call("f(int4)", &[&1i32]).await.unwrap_err();
    assert_eq!(err.code(), Some("42883"), "{err}");
    let v: i32 = conn
        .fast_path_call_typed("f(int4)", &[&1i32])
        .await
        .unwrap();
    assert_eq!(v, 3);
}

/// A committed large object of `len` bytes of noise.
async fn committed_object(conn: &Connection, len: usize) -> u32 {
    let mut tx = conn.transaction().await.unwrap();
    let (oid, _) = write_noise(&mut tx, len, 4 * MIB).await;
    tx.commit().await.unwrap();
    oid
}

#[tokio::test]
async fn a_read_chunk_dropped_by_a_timeout_gives_the_pooled_connection_up_cleanly() {
    // Recovery is never used behind a pooler (a cancel may reach another session).
    let via_pooler = std::env::var("PGKEEL_TEST_VIA_PGBOUNCER").is_ok_and(|v| v == "1");
    let policies = match via_pooler {
        true => &[AbandonPolicy::Evict][..],
        false => &[AbandonPolicy::Evict, AbandonPolicy::Recover][..],
    };
    for &policy in policies {
        let db = TestDb::new();
        let pool = Pool::builder(db.url())
            .max_size(1)
            .abandon_policy(policy)
            .build()
            .unwrap();
        let oid = committed_object(&pool.get().await.unwrap(), 32 * MIB).await;
        let before = pool.status();
        let mut tx = pool.begin().await.unwrap();
        let mut lo = tx.large_object(oid, LoMode::Read).await.unwrap();
        let read = lo.read_chunk(32 * MIB);
        let timed_out = tokio::time::timeout(Duration::from_millis(1), read).await;
        assert!(timed_out.is_err(), "a 32 MiB read took under 1 ms");
        let err = lo.read_chunk(10).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Broken, "{policy:?}: {err}");
        drop(lo);
        let err = tx.query("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Broken, "{policy:?}: {err}");
        drop(tx);
        // The next checkout is clean: idle, and answers its own question.
        let conn = pool.get().await.unwrap();
        assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
        let v: i32 = conn.query_one("SELECT 11", &[]).await.unwrap().get(0);
        assert_eq!(v, 11, "{policy:?}");
        let s = pool.status();
        let gave_up = (s.evicted_broken - before.evicted_broken) + (s.recovered - before.recovered);
        assert_eq!(gave_up, 1, "{policy:?}: {s:?}");
        assert!(s.adds_up(), "{s:?}");
    }
}

#[tokio::test]
async fn an_async_read_dropped_by_a_timeout_goes_on_at_the_next_read() {
    let (_db, conn) = common::db().await;
    let mut tx = conn.transaction().await.unwrap();
    let (oid, written) = write_noise(&mut tx, 16 * MIB, 4 * MIB).await;
    let mut lo = tx.large_object(oid, LoMode::Read).await.unwrap();
    lo.set_chunk_size(16 * MIB).unwrap();
    let mut buf = vec![0u8; 16 * MIB];
    let first = tokio::time::timeout(Duration::from_millis(1), lo.read(&mut buf)).await;
    assert!(first.is_err(), "a 16 MiB read took under 1 ms");
    // The read in flight belongs to the object: the next read gets its bytes, in order.
    let mut hash = Context::new(&SHA256);
    let mut total = 0;
    loop {
        let n = lo.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        total += n;
    }
    assert_eq!(total, 16 * MIB);
    assert_eq!(hex(hash.finish().as_ref()), written);
    drop(lo);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_large_object_dropped_with_a_read_in_flight_breaks_the_transaction_not_the_pool() {
    let db = TestDb::new();
    let pool = Pool::builder(db.url()).max_size(1).build().unwrap();
    let oid = committed_object(&pool.get().await.unwrap(), 16 * MIB).await;
    let mut tx = pool.begin().await.unwrap();
    let mut lo = tx.large_object(oid, LoMode::Read).await.unwrap();
    lo.set_chunk_size(16 * MIB).unwrap();
    let mut buf = vec![0u8; MIB];
    let read = tokio::time::timeout(Duration::from_millis(1), lo.read(&mut buf)).await;
    assert!(read.is_err(), "a 16 MiB read took under 1 ms");
    drop(lo);
    let err = tx.commit().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken, "{err}");
    let conn = pool.get().await.unwrap();
    let v: i32 = conn.query_one("SELECT 12", &[]).await.unwrap().get(0);
    assert_eq!(v, 12);
}

#[tokio::test]
async fn a_large_object_dropped_with_writes_unsent_or_unanswered_cannot_be_committed() {
    // 5 MiB in 4 MiB chunks: one chunk in flight, the rest accepted and not sent yet;
    // then 1 MiB only accepted.
    for (len, in_flight) in [(5 * MIB, true), (MIB, false)] {
        let (_db, conn) = common::db().await;
        let mut tx = conn.transaction().await.unwrap();
        let oid = tx.create_large_object().await.unwrap();
        let mut lo = tx.large_object(oid, LoMode::Write).await.unwrap();
        lo.set_chunk_size(4 * MIB).unwrap();
        lo.write_all(&vec![1u8; len]).await.unwrap();
        assert_eq!(lo.position(), len as u64);
        assert_eq!(
            format!("{lo:?}").contains("in_flight: true"),
            in_flight,
            "{lo:?}"
        );
        drop(lo); // no flush
        let err = tx.commit().await.unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Broken,
            "written bytes nobody saw arrive must not commit: {err}"
        );
        assert!(conn.is_broken());
    }
}

#[tokio::test]
async fn savepoints_and_pooled_transactions_open_large_objects_too() {
    let db = TestDb::new();
    let pool = Pool::builder(db.url()).max_size(1).build().unwrap();
    let mut tx = pool.begin().await.unwrap();
    let oid = tx.import_large_object(b"kept").await.unwrap();
    let mut sp = tx.savepoint().await.unwrap();
    let mut lo = sp.large_object(oid, LoMode::Write).await.unwrap();
    lo.write_chunk(b"lost").await.unwrap();
    drop(lo);
    drop(sp); // rolled back to the savepoint
    assert_eq!(&tx.export_large_object(oid).await.unwrap()[..], b"kept");
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn large_objects_and_fast_path_calls_work_through_pgbouncer_in_transaction_mode() {
    let builder = Pgbouncer::builder()
        .pool_mode(PoolMode::Transaction)
        .default_pool_size(1);
    let db = TestDb::new();
    let Some(bouncer) = builder.start_or_skip(db.cluster()) else {
        return;
    };
    let url = bouncer.url(db.cluster().superuser(), db.name()) + "?pgbouncer=true";
    let (a, b) = (
        Connection::connect(&url).await.unwrap(),
        Connection::connect(&url).await.unwrap(),
    );
    // Outside a transaction, each call is its own pooler transaction.
    let sum: i32 = a
        .fast_path_call_typed("int4pl(int4, int4)", &[&1i32, &2i32])
        .await
        .unwrap();
    assert_eq!(sum, 3);
    let err = b.fast_path_call("no_such_fn()", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some("42883"));
    // Two clients take turns on the one server connection, each in its transaction.
    let mut ta = a.transaction().await.unwrap();
    let (oid, written) = write_noise(&mut ta, 2 * MIB, 256 * 1024).await;
    ta.commit().await.unwrap();
    let mut tb = b.transaction().await.unwrap();
    let (len, read) = read_hash(&mut tb, oid, 256 * 1024).await;
    tb.commit().await.unwrap();
    assert_eq!((len, read), (2 * MIB, written));
    let pid = "SELECT pg_backend_pid()";
    let pa: i32 = a.query_one(pid, &[]).await.unwrap().get(0);
    let pb: i32 = b.query_one(pid, &[]).await.unwrap().get(0);
    assert_eq!(pa, pb, "both clients ran on one server backend");
}
