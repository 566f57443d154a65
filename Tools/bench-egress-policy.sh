#!/usr/bin/env bash
# What domain rules cost: a guest's TCP through a domain rule (a DNS pin and a name check on the first
# bytes) beside the same traffic through a plain address rule, in one run, with the flow log on:
# iperf3 each way, connections per second, and the flow log's events per second and drops.
# Usage: sudo Tools/bench-egress-policy.sh [--seconds N] [--repeat N] [--connections N] [--skip-build]
# Addresses: an "internet" namespace made here on a veth with an address from 198.18.0.0/15, and a
# DNS responder on 127.0.0.1 that answers one name with it; everything made is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
source Tools/bench-lib.sh

SECS=4
REPEAT=1
BUILD=1
CONNECTIONS=3000
LOOP_CPU=0
GUEST_CPU=1
while (($#)); do
    case "$1" in
        --seconds) SECS=$2; shift 2 ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --connections) CONNECTIONS=$2; shift 2 ;;
        --skip-build) BUILD=0; shift ;;
        -h|--help) sed -n 2,7p "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

bench_require_root bench-egress-policy.sh
bench_install_packages iperf3 python3 iproute2
bench_init gwpolicy
RESOLV_DIRS=()
trap 'for d in "${RESOLV_DIRS[@]}"; do rm -rf "$d"; done; bench_cleanup' EXIT
bench_gatewayd_binaries "$BUILD"

# The "internet": 198.18.N.0/24 on a veth, the server at .10.
for _ in $(seq 50); do
    N=$((RANDOM % 256))
    ip -4 -o addr show to "198.18.$N.0/24" | grep -q . || break
done
NET=198.18.$N
SERVER=$NET.10
INET=gwbench-$TAG-inet
netns_add "$INET"
veth_add "$INET" "gwk-$TAG-i" "gwk-$TAG-n" "$NET"
ip -n "$INET" addr add "$SERVER/24" dev "gwk-$TAG-n"
free_port IPERF_PORT
free_port RR_PORT
free_port CRR_PORT
free_port DNS_PORT
spawn ip netns exec "$INET" iperf3 -s -B "$SERVER" -p "$IPERF_PORT"
spawn ip netns exec "$INET" python3 Tools/bench-rr.py server --bind "$SERVER" --rr-port "$RR_PORT" --crr-port "$CRR_PORT"
wait_listen "$SERVER" "$IPERF_PORT" "$INET"
wait_listen "$SERVER" "$CRR_PORT" "$INET"

# A resolver on loopback for the one name (A bench.test → the server, TTL 300; else NXDOMAIN).
cat >"$WORK/resolver.py" <<'PY'
import socket, struct, sys
port, address = int(sys.argv[1]), bytes(int(x) for x in sys.argv[2].split("."))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", port))
while True:
    q, peer = s.recvfrom(512)
    if len(q) < 12:
        continue
    i = 12
    labels = []
    while i < len(q) and q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode(errors="replace").lower())
        i += 1 + q[i]
    qtype = struct.unpack("!H", q[i + 1:i + 3])[0] if i + 3 <= len(q) else 0
    question = q[12:i + 5]
    found = ".".join(labels) == "bench.test"
    answer = b""
    if found and qtype == 1:
        answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + address
    flags = 0x8180 if found else 0x8183
    header = q[:2] + struct.pack("!HHHHH", flags, 1, 1 if answer else 0, 0, 0)
    s.sendto(header + question + answer, peer)
PY
spawn python3 "$WORK/resolver.py" "$DNS_PORT" "$SERVER"

cat >"$WORK/gatewayd.toml" <<TOML
pin-shards = false
sweep-stale-devices = false
flow-log = "$WORK/flows.jsonl"
[dns]
upstreams = ["127.0.0.1:$DNS_PORT"]
[policies.byname]
rules = ["allow egress tcp domain:bench.test"]
default = "deny"
unidentified-traffic = "allow"
[policies.byaddress]
rules = ["allow egress tcp $SERVER/32"]
default = "deny"
TOML
GWD_CPUS=$LOOP_CPU gatewayd_spawn "$BINDIR" gatewayd --shards 1 --egress-policy host-only
CTL=("$BINDIR/gatewayctl" --control "$GWD_SOCK")

# One guest per policy; the domain one resolves the name through the gateway first (its pin).
for p in byname byaddress; do
    ns=gwbench-$TAG-$p
    netns_add "$ns"
    "${CTL[@]}" attach "$p" --netns "$ns" --policy "$p" >/dev/null
    gw=$("${CTL[@]}" list --json | json_get "[s for s in d if s['id'] == '$p'][0]['gatewayIPv4']")
    mkdir -p "/etc/netns/$ns"
    RESOLV_DIRS+=("/etc/netns/$ns")
    echo "nameserver $gw" >"/etc/netns/$ns/resolv.conf"
done
resolved=$(ip netns exec "gwbench-$TAG-byname" getent ahostsv4 bench.test | awk 'NR == 1 {print $1}')
[[ $resolved == "$SERVER" ]] || { echo "bench.test resolved to '$resolved', not $SERVER" >&2; exit 1; }

metric() { curl -s --unix-socket "$GWD_SOCK" http://gatewayd/metrics | awk -v m="$1" '$1 == m {print $2}'; }

declare -A RATE EVENTS DROPS
for round in $(seq "$REPEAT"); do
    for p in byname byaddress; do
        ns=gwbench-$TAG-$p
        iperf_pair "$p-r$round" 1500 "$ns" "$SERVER" "$IPERF_PORT" "$GWD_PID"
        written=$(metric 'gatewayd_flow_log_events_total{state="written"}')
        dropped=$(metric 'gatewayd_flow_log_events_total{state="dropped"}')
        out=$(ip netns exec "$ns" taskset -c "$GUEST_CPU" python3 Tools/bench-rr.py crr --host "$SERVER" \
            --port "$CRR_PORT" --connections "$CONNECTIONS" --max-seconds 10)
        sleep 0.2  # the log's writer drains every 50 ms
        seconds=$(echo "$out" | json_get "d['seconds']")
        RATE[$p-$round]=$(echo "$out" | json_get "round(d['per_second'])")
        EVENTS[$p-$round]=$(python3 -c "print(round(($(metric 'gatewayd_flow_log_events_total{state="written"}') - $written) / $seconds))")
        DROPS[$p-$round]=$(($(metric 'gatewayd_flow_log_events_total{state="dropped"}') - dropped))
    done
done

echo
echo "egress policy benchmark $(date -u +%FT%TZ), kernel $(uname -r), $(nproc) CPUs; iperf3 ~${SECS} s per transfer, MTU 1500"
echo "gatewayd on CPU $LOOP_CPU, guest tools on CPU $GUEST_CPU; load average $(cut -d' ' -f1-3 /proc/loadavg); flow log to a file"
printf '%-28s %6s  %8s  %8s  %8s  %10s  %8s\n' path round "↑ Gbps" "↓ Gbps" conn/s "log ev/s" "log drop"
for round in $(seq "$REPEAT"); do
    for p in byname byaddress; do
        up=$(json_get "round(d['end']['sum_received']['bits_per_second'] / 1e9, 2)" <"$WORK/iperf-$p-r$round-1500-up.json")
        down=$(json_get "round(d['end']['sum_received']['bits_per_second'] / 1e9, 2)" <"$WORK/iperf-$p-r$round-1500-down.json")
        label=$([[ $p == byname ]] && echo "domain rule + name check" || echo "address rule")
        printf '%-28s %6s  %8s  %8s  %8s  %10s  %8s\n' "$label" "$round" "$up" "$down" "${RATE[$p-$round]}" \
            "${EVENTS[$p-$round]}" "${DROPS[$p-$round]}"
    done
done
lines=$(wc -l <"$WORK/flows.jsonl")
echo "flow log file: $lines lines; conn/s: sequential connect, 1 byte each way, close (2 log events each)"
