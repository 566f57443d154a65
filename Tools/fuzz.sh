#!/usr/bin/env bash
# Runs the libFuzzer targets (AddressSanitizer on) for a fixed time each and prints the inputs each ran:
#   wire  - WireFuzz, every Wire parser one frame at a time      (seeds: Tools/fuzz-corpus)
#   stack - StackFuzz, one Stack driven by sequences of steps     (seeds: Tools/fuzz-corpus-stack)
#   relay - RelayFuzz, the relays' state machines                 (seeds: Tools/fuzz-corpus-relay)
# Usage: Tools/fuzz.sh [TARGET SECONDS]...   (default: wire 25 stack 25 relay 10; see Tools/README-fuzz.md)
# Exit status non-zero when a target crashed; the crashing input is left in fuzz-artifacts/ and
# replays with a plain build: swift build --product StackFuzz && .build/debug/StackFuzz fuzz-artifacts/crash-…
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -eq 0 ]]; then set -- wire 25 stack 25 relay 10; fi

product_of() {
    case "$1" in
        wire) echo WireFuzz ;;
        stack) echo StackFuzz ;;
        relay) echo RelayFuzz ;;
        *) echo "unknown fuzz target: $1 (wire, stack, relay)" >&2; exit 2 ;;
    esac
}
corpus_of() {
    case "$1" in
        wire) echo Tools/fuzz-corpus ;;
        *) echo "Tools/fuzz-corpus-$1" ;;
    esac
}

# Inputs up to these lengths: one frame; a few hundred steps; a few hundred machine inputs.
max_len_of() {
    case "$1" in
        wire) echo 2048 ;;
        stack) echo 4096 ;;
        relay) echo 256 ;;
    esac
}

# -parse-as-library: main.swift must not define main (libFuzzer's driver does, via <Product>_main);
# -DFUZZING selects that path; Extern allows declaring LLVMFuzzerRunDriver with C linkage.
build() {
    swift build -c debug --product "$1" --scratch-path .build-fuzz \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING \
        -Xswiftc -enable-experimental-feature -Xswiftc Extern 2>&1 \
        | grep -v "Cannot export local symbol" || true
    [[ -x ".build-fuzz/debug/$1" ]] || { echo "fuzz build of $1 failed" >&2; exit 1; }
}

args=("$@")
for ((i = 0; i < ${#args[@]}; i += 2)); do build "$(product_of "${args[i]}")"; done

mkdir -p fuzz-artifacts
total=0
summary=()
status=0
for ((i = 0; i < ${#args[@]}; i += 2)); do
    target=${args[i]}
    seconds=${args[i + 1]:-10}
    product=$(product_of "$target")
    # New inputs go to the first directory (kept out of git); the committed seeds are only read.
    corpus=.build-fuzz/corpus-$target
    log=.build-fuzz/fuzz-$target.log
    mkdir -p "$corpus"
    set +e
    # Swift's own crash backtracer is slow and trips AddressSanitizer: libFuzzer reports instead.
    SWIFT_BACKTRACE=enable=no ".build-fuzz/debug/$product" "$corpus" "$(corpus_of "$target")" \
        -max_total_time="$seconds" -max_len="$(max_len_of "$target")" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="fuzz-artifacts/$target-" >"$log" 2>&1
    code=$?
    set -e
    grep -E "^(Done |==[0-9]+==ERROR|SUMMARY|Test unit written)" "$log" || true
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    echo "fuzz $target: ${runs:-unknown} inputs in ${seconds} s (log: $log)"
    summary+=("$target ${runs:-0}")
    total=$((total + ${runs:-0}))
    if [[ $code -ne 0 ]]; then
        echo "fuzzing $target found a crash (exit $code): see fuzz-artifacts/ and $log" >&2
        grep -E "Fatal error|precondition" "$log" | head -5 >&2 || true
        tail -40 "$log" >&2
        status=$code
    fi
done
echo "fuzz inputs run: ${summary[*]}; $total in all"
exit "$status"
