#!/usr/bin/env bash
# Fuzzes every Wire parser through WireFuzz (libFuzzer + AddressSanitizer) for a time budget.
# Usage: Tools/fuzz-wire.sh [seconds]   (default 60). Exit status non-zero when a crash was found;
# the crashing input is left in fuzz-artifacts/ and replays with a plain build:
#   swift build --product WireFuzz && .build/debug/WireFuzz fuzz-artifacts/crash-…
set -euo pipefail

seconds="${1:-60}"
cd "$(dirname "$0")/.."

# -parse-as-library: main.swift must not define main (libFuzzer's driver does, via WireFuzz_main);
# -DFUZZING selects that path; Extern allows declaring LLVMFuzzerRunDriver with C linkage.
swift build -c debug --product WireFuzz --scratch-path .build-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING \
    -Xswiftc -enable-experimental-feature -Xswiftc Extern 2>&1 \
    | grep -v "Cannot export local symbol" || true
binary=.build-fuzz/debug/WireFuzz
[[ -x "$binary" ]] || { echo "fuzz build failed" >&2; exit 1; }

# New inputs go to the first directory (kept out of git); the committed seeds are only read.
corpus=.build-fuzz/corpus
mkdir -p "$corpus" fuzz-artifacts
log=.build-fuzz/fuzz.log

set +e
"$binary" "$corpus" Tools/fuzz-corpus \
    -max_total_time="$seconds" -max_len=2048 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix=fuzz-artifacts/ >"$log" 2>&1
status=$?
set -e

grep -E "^(stat::|Done |==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)" "$log" || true
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
echo "inputs run: ${runs:-unknown} in ${seconds} s (log: $log)"
if [[ $status -ne 0 ]]; then
    echo "fuzzing found a crash (exit $status): see fuzz-artifacts/ and $log" >&2
    tail -40 "$log" >&2
    exit "$status"
fi
