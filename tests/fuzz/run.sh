#!/usr/bin/env bash
# Long fuzz runs of pgkeel's parsers with cargo-fuzz (libFuzzer).
#
#   tests/fuzz/run.sh            every target for 60 s
#   tests/fuzz/run.sh 600 scram  one target for 10 minutes
#
# The same target bodies run for a few seconds in `cargo test` (tests/it/fuzz_smoke.rs).
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 enables them on the stable
# toolchain. Crashes land in tests/fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode message scram config values)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "== $t for ${secs}s"
  cargo fuzz run --fuzz-dir . "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=1024 -max_len=4096
done
