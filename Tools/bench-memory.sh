#!/usr/bin/env bash
# Memory under load: one gatewayd serving N busy sandboxes beside one pasta process per sandbox,
# on the same workloads, in one run: peak RSS (all of gatewayd; the sum of the pasta processes),
# RSS per busy sandbox, RSS 10 s after the traffic stopped. Optionally, single-stream throughput
# and connections/s of this build beside another build's gatewayd (before/after a change).
# Usage: sudo Tools/bench-memory.sh [--sandboxes LIST] [--seconds N] [--rounds N] [--paths LIST]
#            [--baseline-bindir DIR] [--no-budget-pair] [--skip-build]
# --sandboxes: comma-separated sandbox counts (default 1,4,200). Workloads, for each count:
#   seq    every sandbox makes sequential 1 MiB HTTP GETs for --seconds (default 15) from a
#          loopback server that closes first (HTTP/1.0, as any "Connection: close" server);
#   rounds every sandbox fetches 1 MiB, --rounds times (default 5), all sandboxes at once.
# --paths: gatewayd,pasta (default both). --baseline-bindir DIR: a release bin directory of another
# build (gatewayd and gatewayctl); Tools/bench-gateway.sh then runs for this build and that one,
# taking turns, with --paths gatewayd. Unless --no-budget-pair: a neighbour's 256 MiB download
# timed beside a sandbox at the default budget and beside one held to 1 MiB, each downloading too.
# Traffic goes to 127.0.0.1 only; everything made here is removed at the end, on failure and on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
source Tools/bench-lib.sh

BUILD=1
COUNTS=1,4,200
LOAD_SECS=15
ROUNDS=5
PATHS=gatewayd,pasta
BASELINE=
PAIR=1
while (($#)); do
    case "$1" in
        --sandboxes) COUNTS=$2; shift 2 ;;
        --seconds) LOAD_SECS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --paths) PATHS=$2; shift 2 ;;
        --baseline-bindir) BASELINE=$(realpath "$2"); shift 2 ;;
        --skip-build) BUILD=0; shift ;;
        --no-budget-pair) PAIR=0; shift ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done
want() { [[ ",$PATHS," == *",$1,"* ]]; }

bench_require_root bench-memory.sh
bench_install_packages passt iperf3 python3 iproute2 curl util-linux libnl-3-dev libnl-route-3-dev pkg-config
bench_gatewayd_binaries "$BUILD"
bench_init gw-benchmem

# The loopback file server: HTTP/1.0, so it closes every connection after its answer.
mkdir -p "$WORK/www"
head -c $((1 << 20)) /dev/urandom >"$WORK/www/blob"
free_port HTTP_PORT
spawn python3 -m http.server "$HTTP_PORT" --bind 127.0.0.1 --directory "$WORK/www" >"$WORK/http.log" 2>&1
wait_listen 127.0.0.1 "$HTTP_PORT"

rss_kb() { awk '/^VmRSS:/ {s += $2} END {print s + 0}' "$@" 2>/dev/null; }

# Sum of VmRSS (kB) of the PIDs given and their children (gatewayd's worker).
rss_of() {
    local files=() p q
    for p in "$@"; do for q in $(with_children "$p"); do files+=("/proc/$q/status"); done; done
    rss_kb "${files[@]}"
}

RESULTS="$WORK/results"
: >"$RESULTS"

# One row: PATH N WORKLOAD IDLE_KB PEAK_KB AFTER_KB FETCHED LATE_KB (10 and 35 s after)
record() { echo "$*" >>"$RESULTS"; }

make_namespaces() {
    local n=$1 label=$2 i
    NS_LIST=()
    for i in $(seq "$n"); do
        netns_add "gwbench-$TAG-$label$i" no-ipv6
        NS_LIST+=("gwbench-$TAG-$label$i")
    done
}

drop_namespaces() {
    local ns keep=() n
    for ns in "${NS_LIST[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    for n in "${NAMESPACES[@]}"; do [[ " ${NS_LIST[*]} " == *" $n "* ]] || keep+=("$n"); done
    NAMESPACES=("${keep[@]}")
}

# Starts gatewayd as it runs by default here (one shard per CPU), with its own config, socket
# and state under WORK and the IPv4 pool POOL (a /16); sets GWD_PID and GWD_SOCK.
gatewayd_start_default() {
    local pool=$1 label=$2
    cat >"$WORK/gatewayd-$label.toml" <<TOML
sweep-stale-devices = false
[dns]
upstreams = ["127.0.0.1:9"]
[addresses]
ipv4-pool = "$pool"
TOML
    GWD_SOCK="$WORK/gatewayd-$label.sock"
    spawn "$BINDIR/gatewayd" --config "$WORK/gatewayd-$label.toml" --control "$GWD_SOCK" \
        --state-dir "$WORK/state-$label" --egress-policy host-only >"$WORK/gatewayd-$label.log" 2>&1
    GWD_PID=$LAST_PID
    gatewayd_wait "$BINDIR" "$GWD_SOCK" || true
}

# Fills GW (declared by the caller) with each attached sandbox's gateway IPv4, keyed by FIELD
# (id or namespace).
sandbox_gateways() {
    local field=$1 line
    while read -r line; do GW[${line%% *}]=${line#* }; done < <("$BINDIR/gatewayctl" --control "$GWD_SOCK" list --json |
        python3 -c "import json,sys; [print(s['$field'], s['gatewayIPv4']) for s in json.load(sys.stdin)]")
}

# The workload KIND for a guest whose host address is ADDR; prints the GETs it completed.
load_script() {
    local kind=$1 addr=$2
    if [[ $kind == seq ]]; then
        echo "end=\$(( \$(date +%s) + $LOAD_SECS )); n=0
            while [ \$(date +%s) -lt \$end ]; do curl -sf -o /dev/null http://$addr:$HTTP_PORT/blob && n=\$((n+1)); done; echo \$n"
    else
        echo "n=0; for r in \$(seq $ROUNDS); do curl -sf -o /dev/null http://$addr:$HTTP_PORT/blob && n=\$((n+1)); done; echo \$n"
    fi
}

bench_gatewayd() {
    local n=$1 i
    make_namespaces "$n" g
    gatewayd_start_default 10.92.0.0/16 load
    i=0
    for ns in "${NS_LIST[@]}"; do
        "$BINDIR/gatewayctl" --control "$GWD_SOCK" attach "m$i" --netns "$ns" >/dev/null
        i=$((i + 1))
    done
    # Every sandbox's gateway address differs (it means the host): each namespace dials its own.
    declare -A GW
    sandbox_gateways namespace
    measure_workloads gatewayd "$n" "$GWD_PID"
    stop "$GWD_PID"
    drop_namespaces
}

# Both workloads in turn, every namespace of NS_LIST at once dialing GW[namespace] (declared by
# the caller); samples the RSS of the PIDs in PIDS (comma-separated) and records a row for each.
measure_workloads() {
    local label=$1 n=$2 pids_csv=$3 kind idle after late ns i clients pids
    IFS=, read -r -a pids <<<"$pids_csv"
    for kind in seq rounds; do
        idle=$(rss_of "${pids[@]}")
        clients=()
        i=0
        for ns in "${NS_LIST[@]}"; do
            spawn ip netns exec "$ns" sh -c "$(load_script "$kind" "${GW[$ns]}")" >"$WORK/fetched-$i"
            clients+=("$LAST_PID")
            i=$((i + 1))
        done
        sample_until_done "$pids_csv" "${clients[@]}"
        sleep 10
        after=$(rss_of "${pids[@]}")
        # TIME-WAIT (30 s) has ended for every connection by then.
        sleep 25
        late=$(rss_of "${pids[@]}")
        record "$label" "$n" "$kind" "$idle" "$PEAK_KB" "$after" "$FETCHED" "$late"
        echo "$label N=$n $kind: idle $((idle / 1024)) MiB, peak $((PEAK_KB / 1024)) MiB, 10 s after $((after / 1024)) MiB, 35 s after $((late / 1024)) MiB, $FETCHED GETs" >&2
    done
}

# Samples RSS of PID(s) (comma-separated in $1) every 0.2 s until every client PID has exited.
sample_until_done() {
    local pids p running=1 now
    IFS=, read -r -a pids <<<"$1"
    shift
    local clients=("$@")
    PEAK_KB=$(rss_of "${pids[@]}")
    while ((running)); do
        running=0
        for p in "${clients[@]}"; do kill -0 "$p" 2>/dev/null && { running=1; break; }; done
        now=$(rss_of "${pids[@]}")
        ((now > PEAK_KB)) && PEAK_KB=$now
        sleep 0.2
    done
    for p in "${clients[@]}"; do wait "$p" 2>/dev/null || true; forget "$p"; done
    FETCHED=$(cat "$WORK"/fetched-* | awk '{s += $1} END {print s + 0}')
    rm -f "$WORK"/fetched-*
}

bench_pasta() {
    local n=$1 ns pids=() p
    make_namespaces "$n" p
    for ns in "${NS_LIST[@]}"; do
        spawn pasta -q -f --runas 0 --log-file "$WORK/pasta-$ns.log" --config-net -4 -I gwpasta0 -a 10.0.2.15 -n 24 \
            -g 10.0.2.2 -t none -u none -T none -U none --netns "$ns"
        pids+=("$LAST_PID")
    done
    for ns in "${NS_LIST[@]}"; do wait_address "$ns" gwpasta0 10.0.2.15; done
    declare -A GW
    for ns in "${NS_LIST[@]}"; do GW[$ns]=10.0.2.2; done
    measure_workloads pasta "$n" "$(IFS=,; echo "${pids[*]}")"
    for p in "${pids[@]}"; do stop "$p"; done
    drop_namespaces
}

# A neighbour's 256 MiB download beside another sandbox downloading the same at once: once with
# that sandbox at the default budget, once held to 1 MiB. The neighbour's time should not change
# beyond noise (both share the CPUs alike; only the budget differs). Sets PAIR_LINE.
bench_budget_pair() {
    head -c $((256 << 20)) /dev/urandom >"$WORK/www/big"
    make_namespaces 3 b
    gatewayd_start_default 10.93.0.0/16 pair
    local ctl=("$BINDIR/gatewayctl" --control "$GWD_SOCK")
    "${ctl[@]}" attach neighbour --netns "${NS_LIST[0]}" >/dev/null
    "${ctl[@]}" attach roomy --netns "${NS_LIST[1]}" >/dev/null
    "${ctl[@]}" attach tight --netns "${NS_LIST[2]}" --memory-budget-mib 1 >/dev/null
    declare -A GW
    sandbox_gateways id
    local roomy=() tight=() r other t0 kind ns
    for r in 1 2 3 4 5; do
        for kind in roomy tight; do
            ns=${NS_LIST[1]}
            [[ $kind == tight ]] && ns=${NS_LIST[2]}
            spawn ip netns exec "$ns" curl -sf -o /dev/null "http://${GW[$kind]}:$HTTP_PORT/big"
            other=$LAST_PID
            t0=$EPOCHREALTIME
            ip netns exec "${NS_LIST[0]}" curl -sf -o /dev/null "http://${GW[neighbour]}:$HTTP_PORT/big"
            local took
            took=$(awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN {printf "%.2f", a - b}')
            if [[ $kind == roomy ]]; then roomy+=("$took"); else tight+=("$took"); fi
            wait "$other" || true
            forget "$other"
        done
    done
    local stats
    stats=$("${ctl[@]}" stats tight --json | python3 -c "import json,sys; m=json.load(sys.stdin)['memory']; print(f\"the 1 MiB sandbox: peak held {m['peakHeldBytes'] >> 10} KiB, {m['budgetShortfalls']} shortfalls, {m['secondsAtBudget']:.1f} s at budget\")")
    PAIR_LINE="a neighbour's 256 MiB download took (s) ${roomy[*]} beside a sandbox at the default budget downloading the same, ${tight[*]} beside one held to 1 MiB ($stats)"
    stop "$GWD_PID"
    drop_namespaces
}

DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
IFS=, read -r -a COUNT_LIST <<<"$COUNTS"
for n in "${COUNT_LIST[@]}"; do
    want gatewayd && bench_gatewayd "$n"
    want pasta && bench_pasta "$n"
done

echo
echo "Memory under load, $DATE, $(nproc) CPUs; workloads: seq = sequential 1 MiB GETs for $LOAD_SECS s per sandbox, rounds = $ROUNDS × 1 MiB per sandbox, all at once"
python3 - "$RESULTS" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
print(f"{'path':<9} {'N':>4} {'load':<7} {'idle MiB':>9} {'peak MiB':>9} {'per busy sandbox':>17} {'10 s after':>11} {'35 s after':>11} {'GETs':>6}")
for path, n, kind, idle, peak, after, got, late in rows:
    n, idle, peak, after, got, late = int(n), int(idle), int(peak), int(after), int(got), int(late)
    # gatewayd: the growth over its idle size, shared by N; pasta: each process whole.
    per = (peak - idle) / n if path == "gatewayd" else peak / n
    print(f"{path:<9} {n:>4} {kind:<7} {idle / 1024:>9.1f} {peak / 1024:>9.1f} {per / 1024:>13.2f} MiB {after / 1024:>8.1f} MiB {late / 1024:>8.1f} MiB {got:>6}")
print("per busy sandbox: gatewayd = (peak - idle) / N of its one process; pasta = peak of all N processes / N;")
print("35 s after: every connection's TIME-WAIT (30 s) has ended")
EOF

PAIR_LINE=
if want gatewayd && ((PAIR)); then bench_budget_pair; fi
[[ -z $PAIR_LINE ]] || { echo; echo "Budget: $PAIR_LINE"; }

if [[ -n $BASELINE ]]; then
    echo
    echo "Throughput and connection rate, this build beside $BASELINE (bench-gateway.sh --paths gatewayd, taking turns):"
    for turn in 1 2; do
        for build in this baseline; do
            echo "-- $build (turn $turn)"
            if [[ $build == this ]]; then
                Tools/bench-gateway.sh --paths gatewayd --skip-build --seconds 4 2>&1 |
                    grep -E "Gbps|connections:|ping-pong" || true
            else
                GWD_BINDIR=$BASELINE Tools/bench-gateway.sh --paths gatewayd --skip-build --seconds 4 2>&1 |
                    grep -E "Gbps|connections:|ping-pong" || true
            fi
        done
    done
fi
