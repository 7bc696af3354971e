#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer's coverage instrumentation on STABLE Rust and runs each
# from its corpus for a while; prints executions and crashes per target; exits non-zero if any
# target crashed (the crashing input is then in fuzz/artifacts/TARGET/).
#
#   fuzz/run.sh                 every target, 60 s each (what CI runs)
#   fuzz/run.sh 3600 tlog_files one target for an hour
#
# The flags are those of `cargo fuzz run --sanitizer none` (coverage, no sanitizer: safe Rust
# needs none), so neither nightly nor cargo-fuzz is needed; libfuzzer-sys builds libFuzzer from
# its C++ source (needs a C++ compiler, as every Rust toolchain machine has). New inputs found
# go to fuzz/corpus-new/TARGET (not committed); fuzz/corpus/TARGET is the committed seed corpus.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(client_request client_reply peer_message tlog_entry tlog_files config_ini drill_yaml history)
fi
host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target keeps the instrumentation off build scripts and proc macros.
cargo build --release --target "$host" --bins
failed=0
printf '%-16s %12s %8s %s\n' target executions crashes corpus
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "corpus-new/$t" "artifacts/$t"
    log="artifacts/$t/last-run.log"
    set +e
    "target/$host/release/$t" "corpus-new/$t" "corpus/$t" -max_total_time="$seconds" \
        -print_final_stats=1 -artifact_prefix="artifacts/$t/" -rss_limit_mb=2048 \
        -max_len=65536 >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    crashes=$(find "artifacts/$t" -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' | wc -l)
    printf '%-16s %12s %8s %s\n' "$t" "${execs:-?}" "$crashes" "$(ls "corpus/$t" | wc -l)+$(ls "corpus-new/$t" | wc -l)"
    if [ $rc -ne 0 ] || [ "$crashes" -ne 0 ]; then
        failed=1
        tail -40 "$log"
    fi
done
if [ $failed -ne 0 ]; then
    echo "fuzz: a target crashed; the input is in fuzz/artifacts/TARGET/; reproduce with target/$host/release/TARGET FILE"
    exit 1
fi
echo "fuzz: no crash"
