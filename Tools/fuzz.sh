#!/usr/bin/env bash
# Runs the libFuzzer targets (AddressSanitizer on) for a fixed time each and prints the inputs each ran:
#   wire  - WireFuzz, every Wire parser one frame at a time      (seeds: Tools/fuzz-corpus)
#   stack - StackFuzz, one Stack driven by sequences of steps     (seeds: Tools/fuzz-corpus-stack)
#   relay - RelayFuzz, the relays' state machines                 (seeds: Tools/fuzz-corpus-relay)
# Usage: Tools/fuzz.sh [TARGET SECONDS]... [, TARGET SECONDS...]...
#   Targets in one lane run one after the other; lanes (separated by ",") run side by side, one
#   core each. Default: wire 60 , stack 45 relay 15 (a minute on two cores; Tools/README-fuzz.md).
# Exit status non-zero when a target crashed; the crashing input is left in fuzz-artifacts/ and
# replays with a plain build: swift build --product StackFuzz && .build/debug/StackFuzz fuzz-artifacts/crash-…
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -eq 0 ]]; then set -- wire 60 , stack 45 relay 15; fi

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

# Inputs up to these lengths: one frame; a few hundred steps; a hundred or so machine inputs.
max_len_of() {
    case "$1" in
        wire) echo 2048 ;;
        stack) echo 1024 ;;
        relay) echo 128 ;;
    esac
}
# How slowly libFuzzer lets inputs grow towards that (its default, 100, suits single frames):
# sequences reach deep states only when long, so they may be long from the start.
len_control_of() {
    case "$1" in
        wire) echo 100 ;;
        *) echo 0 ;;
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

# Every product first, one build at a time (they share the scratch directory).
for arg in "$@"; do
    [[ "$arg" == "," || "$arg" =~ ^[0-9]+$ ]] && continue
    product=$(product_of "$arg")
    build "$product"
done

mkdir -p fuzz-artifacts
results=.build-fuzz/results
rm -rf "$results"
mkdir -p "$results"

# Runs one target; its input count (or "crash") goes to $results/TARGET.
run_target() {
    local target=$1 seconds=$2
    local product corpus log code runs
    product=$(product_of "$target")
    # New inputs go to the first directory (kept out of git); the committed seeds are only read.
    corpus=.build-fuzz/corpus-$target
    log=.build-fuzz/fuzz-$target.log
    mkdir -p "$corpus"
    set +e
    # Swift's own crash backtracer is slow and trips AddressSanitizer: libFuzzer reports instead.
    SWIFT_BACKTRACE=enable=no ".build-fuzz/debug/$product" "$corpus" "$(corpus_of "$target")" \
        -max_total_time="$seconds" -max_len="$(max_len_of "$target")" -len_control="$(len_control_of "$target")" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="fuzz-artifacts/$target-" >"$log" 2>&1
    code=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    echo "${runs:-0} $seconds $code" >"$results/$target"
}

# Runs a lane's targets in order.
run_lane() {
    while [[ $# -ge 2 ]]; do
        run_target "$1" "$2"
        shift 2
    done
}

lane=()
for arg in "$@" ,; do
    if [[ "$arg" == "," ]]; then
        [[ ${#lane[@]} -gt 0 ]] && run_lane "${lane[@]}" &
        lane=()
    else
        lane+=("$arg")
    fi
done
wait

total=0
status=0
summary=()
for file in "$results"/*; do
    target=$(basename "$file")
    read -r runs seconds code <"$file"
    log=.build-fuzz/fuzz-$target.log
    echo "fuzz $target: $runs inputs in $seconds s (log: $log)"
    summary+=("$target $runs")
    total=$((total + runs))
    if [[ $code -ne 0 ]]; then
        echo "fuzzing $target found a crash (exit $code): see fuzz-artifacts/ and $log" >&2
        grep -aE "Precondition failed|Fatal error|==[0-9]+==ERROR|Test unit written" "$log" | head -5 >&2 || true
        status=$code
    fi
done
echo "fuzz inputs run: ${summary[*]}; $total in all"
exit "$status"
