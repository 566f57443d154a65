#!/usr/bin/env bash
# The hostile-neighbour benchmark: a sandbox's iperf3 throughput through gatewayd (to a loopback
# server via its gateway address) with no flood, while another sandbox floods (Tools/hostile-flood.py)
# on the same shard, on the other shard, and while the same flood goes over a plain veth between
# two namespaces of this run (the reference: what the flooder itself costs the machine), side by side.
# Usage: sudo Tools/bench-hostile.sh [--seconds N] [--repeat N] [--cpu N] [--guest-cpu N] [--flood-rate N]
#            [--skip-build]
# GWD_BINDIR=DIR uses another build's gatewayd and gatewayctl (another commit's, for before/after).
# --flood-rate N paces the flood at N frames/s (default 0: as fast as python can write).
# Layout on a 2-CPU machine: shard 0 (the neighbour's) alone on --cpu (0), shard 1, the iperf3
# client and server and the flooder on --guest-cpu (1). Frames of the flood go only onto the
# attacker's own link (its TAP, or the veth into a sink namespace made here); gatewayd runs with
# the host-only egress policy and a DNS upstream on loopback's discard port.
set -euo pipefail
cd "$(dirname "$0")/.."
source Tools/bench-lib.sh

BUILD=1
SECS=5
REPEAT=3
FLOOD_RATE=0
while (($#)); do
    case "$1" in
        --seconds) SECS=$2; shift 2 ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --cpu) LOOP_CPU=$2; shift 2 ;;
        --guest-cpu) GUEST_CPU=$2; shift 2 ;;
        --flood-rate) FLOOD_RATE=$2; shift 2 ;;
        --skip-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done

bench_require_root bench-hostile.sh
bench_install_packages iperf3 python3 iproute2 util-linux libnl-3-dev libnl-route-3-dev pkg-config
bench_gatewayd_binaries "$BUILD"
bench_init gw-benchhostile
FLOOD="$(pwd)/Tools/hostile-flood.py"
CTL() { "$BINDIR/gatewayctl" --control "$GWD_SOCK" "$@"; }

# Two shards, pinned by gatewayd itself: shard 0 on LOOP_CPU, shard 1 on GUEST_CPU (it pins
# shard i to CPU i), no sweep of other runs' devices.
cat >"$WORK/gatewayd.toml" <<TOML
sweep-stale-devices = false
egress-policy = "host-only"
[dns]
upstreams = ["127.0.0.1:9"]
TOML
gatewayd_spawn "$BINDIR" gatewayd --shards 2

free_port IPERF_PORT
spawn taskset -c "$GUEST_CPU" iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT" --logfile "$WORK/iperf3-server.log"
wait_listen 127.0.0.1 "$IPERF_PORT"

# The neighbour first (least-loaded shard: 0), then one attacker per shard.
NEIGHBOUR_NS=gwbench-$TAG-nb
netns_add "$NEIGHBOUR_NS"
gatewayd_attach "$BINDIR" neighbour "$NEIGHBOUR_NS" 1500
NEIGHBOUR_GW=$GWD_GATEWAY
declare -A ATTACKER_NS
for a in a1 a2; do
    ATTACKER_NS[$a]=gwbench-$TAG-$a
    netns_add "${ATTACKER_NS[$a]}"
    gatewayd_attach "$BINDIR" "attacker-$a" "${ATTACKER_NS[$a]}" 1500
done
shard_of() { CTL list --json | json_get "[s for s in d if s['id'] == '$1'][0]['shard']"; }
NB_SHARD=$(shard_of neighbour)
SAME= OTHER=
for a in a1 a2; do
    if [[ $(shard_of "attacker-$a") == "$NB_SHARD" ]]; then SAME=$a; else OTHER=$a; fi
done
[[ -n $SAME && -n $OTHER ]] || { echo "could not place one attacker on each shard" >&2; exit 1; }

# The flood's arguments for a gatewayd attacker: its link and addresses as gatewayctl shows them.
flood_args_gatewayd() {
    CTL list --json | json_get "' '.join('--iface {tap} --gateway-mac {gatewayMAC} --guest-mac {mac} --gateway-ip {gatewayIPv4} --guest-ip {guestIPv4} --gateway-ip6 {gatewayIPv6} --guest-ip6 {guestIPv6}'.format(**s) for s in d if s['id'] == 'attacker-$1')"
}

# The reference: the same flood over a veth into a sink namespace (addresses in a free /24).
VETH_NS=gwbench-$TAG-vflood
SINK_NS=gwbench-$TAG-vsink
netns_add "$VETH_NS"
netns_add "$SINK_NS"
VETH_SUBNET=$(free_subnet)
ip -n "$VETH_NS" link add gwk-v0 type veth peer name gwk-v1 netns "$SINK_NS"
ip -n "$VETH_NS" addr add "$VETH_SUBNET.2/24" dev gwk-v0
ip -n "$SINK_NS" addr add "$VETH_SUBNET.1/24" dev gwk-v1
ip -n "$SINK_NS" addr add fd00:198:18::1/64 dev gwk-v1 nodad
ip -n "$VETH_NS" addr add fd00:198:18::2/64 dev gwk-v0 nodad
ip -n "$VETH_NS" link set gwk-v0 up
ip -n "$SINK_NS" link set gwk-v1 up
mac_in() { ip -n "$1" -j link show dev "$2" | json_get "d[0]['address']"; }
VETH_ARGS="--iface gwk-v0 --gateway-mac $(mac_in "$SINK_NS" gwk-v1) --guest-mac $(mac_in "$VETH_NS" gwk-v0) --gateway-ip $VETH_SUBNET.1 --guest-ip $VETH_SUBNET.2 --gateway-ip6 fd00:198:18::1 --guest-ip6 fd00:198:18::2"

# Starts the flood for CASE (same, other, veth) on GUEST_CPU; sets FLOOD_PID.
flood_start() {
    local ns args
    case $1 in
    same) ns=${ATTACKER_NS[$SAME]} args=$(flood_args_gatewayd "$SAME") ;;
    other) ns=${ATTACKER_NS[$OTHER]} args=$(flood_args_gatewayd "$OTHER") ;;
    veth) ns=$VETH_NS args=$VETH_ARGS ;;
    esac
    # shellcheck disable=SC2086
    spawn ip netns exec "$ns" taskset -c "$GUEST_CPU" python3 "$FLOOD" $args --rate "$FLOOD_RATE" \
        >>"$WORK/flood-$1.out"
    FLOOD_PID=$LAST_PID
    sleep 1
}

flood_stop() {
    kill -TERM "$FLOOD_PID" 2>/dev/null || true
    wait "$FLOOD_PID" 2>/dev/null || true
    forget "$FLOOD_PID"
}

CASES=(none same other veth)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# Cases take turns run by run, so that load from elsewhere on the machine falls on each alike.
for r in $(seq "$REPEAT"); do
    for c in "${CASES[@]}"; do
        [[ $c == none ]] || flood_start "$c"
        for dir in up down; do
            iperf_once "$NEIGHBOUR_NS" "$NEIGHBOUR_GW" "$IPERF_PORT" "$dir" "$WORK/iperf-$c-1500-$dir" "$r" "$GWD_PID"
        done
        [[ $c == none ]] || flood_stop
    done
done
for c in "${CASES[@]}"; do
    for dir in up down; do iperf_best "$WORK/iperf-$c-1500-$dir" "$c" 1500 "$dir"; done
done
CTL stats "attacker-$SAME" --json >"$WORK/stats-same.json"
CTL stats "attacker-$OTHER" --json >"$WORK/stats-other.json"
CTL stats neighbour --json >"$WORK/stats-neighbour.json"

python3 - "$WORK" "$REPEAT" "$SECS" "$DATE" "$LOAD_BEFORE" "$(cut -d' ' -f1-3 /proc/loadavg)" "$BINDIR" <<'EOF'
import json, os, statistics, sys
work, repeat, secs, date, load0, load1, bindir = sys.argv[1:8]
def runs(case, d):
    return [float(x) for x in open(f"{work}/iperf-{case}-1500-{d}.all").read().split()]
def rate(case, d):
    # The median: on a machine shared with other work one lucky or unlucky run moves the best
    # or the worst a long way, and the cost is a ratio of two such figures.
    return statistics.median(runs(case, d))
def cpu(case):
    # gatewayd's CPU over each run (both directions), as a share of one CPU: what the neighbour's
    # transfer and the flood together cost it, far steadier than throughput on a shared machine.
    hz = os.sysconf("SC_CLK_TCK")
    return statistics.median(
        int(open(f"{work}/iperf-{case}-1500-{d}.run{r}.ticks").read()) / hz / float(secs) * 100
        for d in ("up", "down") for r in range(1, int(repeat) + 1))
def flood(case):
    lines = [json.loads(l) for l in open(f"{work}/flood-{case}.out") if l.strip().startswith("{")]
    return sum(l["per_second"] for l in lines) / max(len(lines), 1)
print(f"# bench-hostile {date}, {bindir}, iperf3 {secs} s x {repeat} (median), load {load0} -> {load1}")
print(f"{'flood':<24} {'up Gbps':>8} {'down Gbps':>10} {'cost up':>8} {'cost down':>10} {'flood frames/s':>15} {'gatewayd CPU':>13}   runs up | down")
names = {"none": "none", "same": "gatewayd, same shard", "other": "gatewayd, other shard", "veth": "plain veth (reference)"}
for c in ("none", "same", "other", "veth"):
    up, down = rate(c, "up"), rate(c, "down")
    cost = lambda d, v: f"{(1 - v / rate('veth', d)) * 100:+.0f} %" if c in ("same", "other") else ""
    f = f"{flood(c):,.0f}" if c != "none" else ""
    shown = lambda d: " ".join(f"{x:.2f}" for x in runs(c, d))
    print(f"{names[c]:<24} {up:>8.2f} {down:>10.2f} {cost('up', up):>8} {cost('down', down):>10} {f:>15} {cpu(c):>11.0f} %   {shown('up')} | {shown('down')}")
s = json.load(open(f"{work}/stats-same.json"))
n = json.load(open(f"{work}/stats-neighbour.json"))
keys = ("frames_suspect_total", "frames_policed_total", "device_pauses_total", "device_paused_ms_total")
print("same-shard attacker: frames in", s.get("framesIn"), "drops", {k: v for k, v in sorted(s.get("drops", {}).items()) if v},
      {k: s.get("counters", {}).get(k) for k in keys if k in s.get("counters", {})})
print("neighbour drops:", {k: v for k, v in sorted(n.get("drops", {}).items()) if v} or "none")
EOF
stop "$GWD_PID"
