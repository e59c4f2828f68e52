//! A short, seeded run of every fuzz target (`tests/fuzz/targets.rs`) inside the normal
//! test suite: random inputs and mutations of valid ones, which must never panic. The
//! long runs use cargo-fuzz (`tests/fuzz/run.sh`).

#[path = "../fuzz/targets.rs"]
mod targets;

/// Inputs per target; each is a few hundred bytes at most.
const RUNS: usize = 20_000;

/// splitmix64: deterministic, so a failure names a reproducible run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Random bytes, or a seed with a few bytes flipped, cut or repeated.
fn input(rng: &mut Rng, seeds: &[&[u8]]) -> Vec<u8> {
    if seeds.is_empty() || rng.below(3) == 0 {
        let len = rng.below(300);
        return (0..len).map(|_| rng.next() as u8).collect();
    }
    let mut v = seeds[rng.below(seeds.len())].to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(4) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = [0, 0xFF, 0x7F, 0x80][rng.below(4)];
            }
            2 => v.truncate(rng.below(v.len() + 1)),
            _ => {
                let at = rng.below(v.len() + 1);
                let extra: Vec<u8> = (0..rng.below(8)).map(|_| rng.next() as u8).collect();
                v.splice(at..at, extra);
            }
        }
    }
    v
}

fn run(name: &str, seed: u64, seeds: &[&[u8]], target: fn(&[u8])) {
    let mut rng = Rng(seed);
    for i in 0..RUNS {
        let data = input(&mut rng, seeds);
        let caught = std::panic::catch_unwind(|| target(&data));
        assert!(caught.is_ok(), "{name}: run {i} panicked on {data:?}");
    }
}

#[test]
fn decoder_survives_random_and_mutated_frames() {
    let seeds: &[&[u8]] = &[
        b"\x00\x01Z\x00\x00\x00\x05I",
        b"\x00\x10T\x00\x00\x00\x1b\x00\x01a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x01D\x00\x00\x00\x0e\x00\x01\x00\x00\x00\x04\x00\x00\x00\x01",
        b"\x00\x00E\x00\x00\x00\x19SERROR\x00C42P01\x00Mnope\x00\x00",
    ];
    run("decode", 1, seeds, targets::decode);
}

#[test]
fn message_parsers_survive_random_and_mutated_bodies() {
    let seeds: &[&[u8]] = &[
        b"T\x00\x01a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x01",
        b"D\x00\x02\x00\x00\x00\x01x\xff\xff\xff\xff",
        b"R\x00\x00\x00\x0aSCRAM-SHA-256\x00\x00",
        b"A\x00\x00\x00\x07chan\x00payload\x00",
        b"v\x00\x00\x00\x02\x00\x00\x00\x01_pq_.x\x00",
        b"t\x00\x02\x00\x00\x00\x17\x00\x00\x00\x19",
        b"G\x01\x00\x02\x00\x01\x00\x01",
    ];
    run("message", 2, seeds, targets::message);
}

#[test]
fn scram_client_survives_random_and_mutated_server_messages() {
    let seeds: &[&[u8]] = &[
        b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=16\xffv=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        b"r=fyko+d2lbbFgONRv9qkxdawLx,s=AAAA,i=1\xffe=invalid-proof",
    ];
    run("scram", 3, seeds, targets::scram);
}

#[test]
fn config_parser_survives_random_and_mutated_strings() {
    let seeds: &[&[u8]] = &[
        b"postgres://u:p%40ss@h1:5432,h2:5433/db?sslmode=require&target_session_attrs=read-write",
        b"host=a,b port=1,2 user='o''brien' password=x dbname=d options='-c x=1'",
        b"postgresql://[::1]:5/d?application_name=%E2%82%AC&keepalives_idle=5",
    ];
    run("config", 4, seeds, targets::config);
}

#[test]
fn value_decoders_survive_random_and_mutated_values() {
    let seeds: &[&[u8]] = &[
        b"\x03\x00\x02\x00\x01\x00\x00\x00\x04\x00\x01\x13\x88",
        b"\x07\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x17\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00\x04\x00\x00\x00\x07\xff\xff\xff\xff",
        b"\x09\x02\x00\x00\x00\x04\x00\x00\x00\x01\x00\x00\x00\x04\x00\x00\x00\x05",
        b"\x0d\x00\x00\x00\x01\x00\x00\x00\x17\x00\x00\x00\x04\x00\x00\x00\x2a",
    ];
    run("values", 5, seeds, targets::values);
}
