#!/usr/bin/env bash
# What one guest connection costs gatewayd's worker: runs bench-rr.py crr through one sandbox (as
# bench-gateway.sh does) under perf, strace and the shard counters. See README-bench-conn.md.
#
#   sudo Tools/profile-conn.sh [--seconds N] [--connections N] [--skip-build] [--no-perf] [--no-strace]
#                              [--stream up|down] [--mtu N]
#
# --stream up|down profiles one iperf3 stream (guest→host or host→guest) instead of connections:
# the worker's CPU per GB, and perf over it. --mtu: the sandbox's (default 1500).
#
# GWD_BINDIR runs another build's binaries; GWD_ARGS adds gatewayd flags. Output: WORK/… is printed
# and removed; the figures go to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
source Tools/bench-lib.sh

BUILD=1
PERF_SECONDS=10
CONNECTIONS=5000
PERF=1
STRACE=1
STREAM=
MTU=1500
while (($#)); do
    case "$1" in
        --seconds) PERF_SECONDS=$2; shift 2 ;;
        --connections) CONNECTIONS=$2; shift 2 ;;
        --skip-build) BUILD=0; shift ;;
        --no-perf) PERF=0; shift ;;
        --no-strace) STRACE=0; shift ;;
        --stream) STREAM=$2; shift 2 ;;
        --mtu) MTU=$2; shift 2 ;;
        -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done

[[ -z $STREAM || $STREAM == up || $STREAM == down ]] || { echo "--stream takes up or down" >&2; exit 2; }
[[ $MTU =~ ^[0-9]+$ ]] && ((MTU >= 1280 && MTU <= 65520)) || { echo "--mtu takes 1280-65520" >&2; exit 2; }
bench_require_root profile-conn.sh
bench_gatewayd_binaries "$BUILD"
bench_init gw-profconn
RR="$(pwd)/Tools/bench-rr.py"

free_port RR_PORT
free_port CRR_PORT
spawn python3 "$RR" server --bind 127.0.0.1 --rr-port "$RR_PORT" --crr-port "$CRR_PORT"
wait_listen 127.0.0.1 "$CRR_PORT"
gatewayd_start "$BINDIR"
NS=gwbench-$TAG-gwd
netns_add "$NS"
gatewayd_attach "$BINDIR" bench "$NS" "$MTU"
# The confined worker does the data path; without privilege separation the daemon itself does.
WORKER=$(pgrep -P "$GWD_PID" | head -1 || true)
WORKER=${WORKER:-$GWD_PID}
echo "gatewayd $GWD_PID, worker $WORKER, load $(cut -d' ' -f1-3 /proc/loadavg)"

crr() { # connections, max seconds → prints the JSON
    ip netns exec "$NS" taskset -c "$GUEST_CPU" python3 "$RR" crr --host "$GWD_GATEWAY" --port "$CRR_PORT" \
        --connections "$1" --max-seconds "$2"
}
counter() { # metric name → its value for shard 0
    curl -s --unix-socket "$GWD_SOCK" http://gatewayd/metrics | awk -v m="$1" '$1 ~ "^"m"[{]" {print $2; exit}'
}
ticks() { awk '{print $14 + $15}' "/proc/$WORKER/stat"; }

if [[ -n $STREAM ]]; then
    free_port IPERF_PORT
    spawn iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT" --logfile "$WORK/iperf3-server.log"
    wait_listen 127.0.0.1 "$IPERF_PORT"
    reverse=(); [[ $STREAM == down ]] && reverse=(-R)
    stream() { # seconds → prints bytes received
        ip netns exec "$NS" taskset -c "$GUEST_CPU" iperf3 -c "$GWD_GATEWAY" -p "$IPERF_PORT" -t "$1" "${reverse[@]}" -J |
            python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bytes"]))'
    }
    stream 1 >/dev/null
    t0=$(ticks); bytes=$(stream "$PERF_SECONDS"); t1=$(ticks)
    echo "stream $STREAM MTU $MTU: $(python3 -c "print(f'{$bytes * 8 / $PERF_SECONDS / 1e9:.2f} Gbps, worker CPU {($t1 - $t0) / $(getconf CLK_TCK) / ($bytes / 1e9):.3f} s/GB')")"
    if ((PERF)); then
        perf record -q -g -o "$WORK/perf.data" -p "$WORKER" -- sleep "$PERF_SECONDS" 2>/dev/null &
        PERF_PID=$!
        sleep 0.5
        stream "$((PERF_SECONDS - 1))" >/dev/null
        wait "$PERF_PID" || true
        echo "perf report --no-children (worker, ${PERF_SECONDS} s):"
        perf report -i "$WORK/perf.data" --no-children --percent-limit 1 --stdio -g none 2>/dev/null |
            grep -v '^#' | grep -v '^$' | head -40
        if [[ -n ${PERF_KEEP:-} ]]; then cp "$WORK/perf.data" "$PERF_KEEP"; fi
    fi
    exit 0
fi

crr 500 5 >/dev/null # warm-up: the sandbox's first flows, ARP, the allocator's pools

# Plain run: rate, CPU per connection, wake-ups per connection.
w0=$(counter gatewayd_shard_wakeups_total) s0=$(counter gatewayd_shard_sleeps_total) t0=$(ticks)
out=$(crr "$CONNECTIONS" 10)
w1=$(counter gatewayd_shard_wakeups_total) s1=$(counter gatewayd_shard_sleeps_total) t1=$(ticks)
python3 - "$out" "$((w1 - w0))" "$((s1 - s0))" "$((t1 - t0))" "$(getconf CLK_TCK)" <<'EOF'
import json, sys
r = json.loads(sys.argv[1]); n = r["connections"]
wake, sleeps, ticks, hz = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
print(f"crr: {n} connections in {r['seconds']:.2f} s = {r['per_second']:.0f}/s, {r['errors']} errors")
print(f"worker CPU {ticks / hz * 1e6 / n:.1f} µs/conn; loop passes with I/O {wake / n:.2f}/conn, sleeps {sleeps / n:.2f}/conn")
EOF

if ((STRACE)); then
    strace -f -c -o "$WORK/strace.txt" -p "$WORKER" 2>/dev/null &
    SPID=$!
    sleep 1
    out=$(crr "$CONNECTIONS" 30)
    kill -INT "$SPID"; wait "$SPID" 2>/dev/null || true
    n=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["connections"])' "$out")
    echo "strace -f -c over $n connections (calls per connection, by name):"
    awk -v n="$n" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {printf "  %-16s %8.2f\n", $NF, $4 / n}' \
        "$WORK/strace.txt" | sort -k2 -nr
    awk -v n="$n" '$NF == "total" {printf "  %-16s %8.2f\n", "total", $4 / n}' "$WORK/strace.txt"
fi

if ((PERF)); then
    perf record -q -g -o "$WORK/perf.data" -p "$WORKER" -- sleep "$PERF_SECONDS" 2>/dev/null &
    PERF_PID=$!
    sleep 0.5
    crr 1000000 "$((PERF_SECONDS - 1))" >/dev/null
    wait "$PERF_PID" || true
    echo "perf report --no-children (worker, ${PERF_SECONDS} s):"
    perf report -i "$WORK/perf.data" --no-children --percent-limit 1 --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -40
    if [[ -n ${PERF_KEEP:-} ]]; then cp "$WORK/perf.data" "$PERF_KEEP"; fi
fi
