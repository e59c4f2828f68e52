//! COPY: a bulk load with typed binary rows, text and CSV data through a byte sink, the
//! table read back as a byte stream and as typed rows, a bad row's error, and a COPY
//! dropped before it finished (nothing committed, the connection still usable).
//!
//! With `DATABASE_URL` set, it uses that server; without it, it starts a throwaway
//! PostgreSQL cluster (initdb into a temp dir) and removes it afterwards. The number of
//! rows is the first argument (default 200000):
//!
//! ```text
//! cargo run --release --example copy -- 1000000
//! ```

use std::time::Instant;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use pgkeel::{BinaryCopyInWriter, BinaryCopyOutStream, Connection, Type};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: i64 = std::env::args().nth(1).map_or(Ok(200_000), |a| a.parse())?;
    let (url, _cluster) = pgkeel_testkit::database_url_or_throwaway()?;
    let conn = Connection::connect(url.as_str()).await?;
    conn.batch_execute(
        "DROP TABLE IF EXISTS copy_example;
         CREATE TABLE copy_example (id int8 PRIMARY KEY, name text NOT NULL, score float8, ok bool)",
    )
    .await?;

    // 1. Binary COPY with typed rows: each value is encoded with the same `ToSql` as a
    //    query parameter, as the column type given here (COPY itself does not say them).
    //    The writer hands 64 KiB chunks to the COPY, which sends them once 256 KiB are
    //    buffered, so memory stays flat whatever the row count.
    let types = [Type::INT8, Type::TEXT, Type::FLOAT8, Type::BOOL];
    let started = Instant::now();
    let sink = conn
        .copy_in("COPY copy_example (id, name, score, ok) FROM STDIN (FORMAT binary)")
        .await?;
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    for id in 0..rows {
        let name = format!("row {id}");
        let score = (id % 7 != 0).then_some(id as f64 / 4.0); // every 7th NULL
        writer.write(&[&id, &name, &score, &(id % 2 == 0)]).await?;
    }
    let copied = writer.finish().await?;
    report("binary COPY in (typed rows)", copied, started);

    // 2. Text and CSV COPY: `CopyIn` is a sink of raw COPY data, split anywhere (even
    //    mid-line). `send` takes anything that is bytes; `CopyIn` is also a
    //    `futures::Sink<Bytes>`, so `send_all` forwards a whole stream of chunks.
    conn.batch_execute("CREATE TEMP TABLE copy_text (id int8, name text)")
        .await?;
    let mut copy = conn
        .copy_in("COPY copy_text (id, name) FROM STDIN (FORMAT text)")
        .await?;
    copy.send("1\tAda\n2\tGr").await?;
    copy.send(b"ace\n3\t\\N\n").await?; // \N is NULL in the text format
    println!("text COPY in: {} rows", copy.finish().await?);

    let started = Instant::now();
    let mut copy = conn
        .copy_in("COPY copy_text (id, name) FROM STDIN (FORMAT csv)")
        .await?;
    let chunks = (0..rows / 1000).map(|block| {
        let mut csv = String::with_capacity(1000 * 24);
        for id in block * 1000..(block + 1) * 1000 {
            csv.push_str(&format!("{},\"name, with a comma {id}\"\n", id + 10));
        }
        Ok::<_, pgkeel::Error>(Bytes::from(csv))
    });
    copy.send_all(&mut futures::stream::iter(chunks)).await?;
    let copied = copy.finish().await?;
    report("CSV COPY in (byte sink)", copied, started);

    // 3. COPY out as a stream of byte chunks in any format: one chunk per CopyData
    //    message (PostgreSQL sends one per row), read from the socket in batches of
    //    about 64 KiB.
    let started = Instant::now();
    let mut out = conn
        .copy_out("COPY copy_example TO STDOUT (FORMAT csv)")
        .await?;
    let (mut bytes, mut lines, mut chunks) = (0usize, 0u64, 0u64);
    while let Some(chunk) = out.next().await {
        let chunk = chunk?;
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        chunks += 1;
    }
    report("CSV COPY out (byte stream)", lines, started);
    println!(
        "  {bytes} bytes in {chunks} chunks; the server reported {:?} rows",
        out.rows()
    );

    // 4. Binary COPY out, decoded into typed rows with `FromSql` (NULL as `Option`).
    let started = Instant::now();
    let out = conn
        .copy_out("COPY copy_example (id, name, score, ok) TO STDOUT (FORMAT binary)")
        .await?;
    let mut typed = BinaryCopyOutStream::new(out, &types);
    let (mut n, mut nulls, mut sum, mut name_bytes) = (0u64, 0u64, 0f64, 0usize);
    while let Some(row) = typed.next().await {
        let row = row?;
        let _id: i64 = row.get(0);
        let name: &str = row.get(1);
        let score: Option<f64> = row.get(2);
        let _ok: bool = row.get(3);
        n += 1;
        name_bytes += name.len();
        match score {
            Some(s) => sum += s,
            None => nulls += 1,
        }
    }
    report("binary COPY out (typed rows)", n, started);
    println!("  {nulls} NULL scores, sum of the others {sum}, {name_bytes} bytes of names");

    // 5. A bad row ends the COPY on the server; the error names the line, nothing of
    //    the COPY is committed, and the connection stays usable.
    let mut copy = conn
        .copy_in("COPY copy_text (id, name) FROM STDIN (FORMAT csv)")
        .await?;
    copy.send("900001,fine\nnot-a-number,bad\n").await?;
    let err = copy.finish().await.unwrap_err();
    let db = err.as_db_error().expect("a server error");
    println!(
        "bad row: {} ({}); where: {}",
        db.message(),
        db.code(),
        db.where_().unwrap_or("?")
    );

    // 6. A COPY dropped before `finish()` commits nothing: CopyFail goes out before the
    //    connection's next exchange, and the connection carries on.
    let before = count(&conn, "copy_example").await?;
    {
        let sink = conn
            .copy_in("COPY copy_example (id, name, score, ok) FROM STDIN (FORMAT binary)")
            .await?;
        let mut writer = BinaryCopyInWriter::new(sink, &types);
        for id in rows..rows + 50_000 {
            writer
                .write(&[&id, &"never committed", &None::<f64>, &true])
                .await?;
        }
        // Dropped here, unfinished (part of it already sent to the server).
    }
    let after = count(&conn, "copy_example").await?;
    println!(
        "dropped COPY of 50000 rows: {before} rows before, {after} after; connection broken: {}",
        conn.is_broken()
    );
    if before != after {
        return Err("a dropped COPY committed rows".into());
    }

    conn.batch_execute("DROP TABLE copy_example").await?;
    conn.close().await?;
    Ok(())
}

async fn count(conn: &Connection, table: &str) -> Result<i64, pgkeel::Error> {
    let sql = format!("SELECT count(*) FROM {table}");
    Ok(conn.query_one(sql.as_str(), &[]).await?.get(0))
}

fn report(what: &str, rows: u64, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{what}: {rows} rows in {secs:.2} s ({:.0} rows/s)",
        rows as f64 / secs
    );
}
