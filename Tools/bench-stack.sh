#!/usr/bin/env bash
# The stack benchmark: our stack alone (gateway-bench) beside a kernel veth, pasta and slirp4netns
# (iperf3 to a host socket), one TCP stream each way at MTU 1500 and 65520, all in one run.
# Usage: sudo Tools/bench-stack.sh [--seconds N] [--repeat N] [--cpu N] [--guest-cpu N] [--json FILE] [--skip-build]
# --repeat N runs every transfer N times and keeps the fastest (for a machine shared with other work).
# Every server listens on loopback or on an address of a device made here; everything made here
# (processes, namespaces, devices) is removed at the end, on failure and on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
source Tools/bench-lib.sh

JSON_OUT=
BUILD=1
MTUS=(1500 65520)

while (($#)); do
    case "$1" in
        --seconds) SECS=$2; shift 2 ;;
        --cpu) LOOP_CPU=$2; shift 2 ;;
        --guest-cpu) GUEST_CPU=$2; shift 2 ;;
        --json) JSON_OUT=$2; shift 2 ;;
        --skip-build) BUILD=0; shift ;;
        --mtu) MTUS=("$2"); shift 2 ;;
        --repeat) REPEAT=$2; shift 2 ;;
        -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done

bench_require_root bench-stack.sh
bench_install_packages passt slirp4netns iperf3 socat netcat-openbsd python3 iproute2 util-linux libnl-3-dev \
    libnl-route-3-dev pkg-config

if ((BUILD)); then
    echo "building gateway-bench (release)…" >&2
    swift build -c release --product gateway-bench >&2
    swift build -c release --product gatewayd >&2
    swift build -c release --product gatewayctl >&2
fi
BIN="$(swift build -c release --show-bin-path)/gateway-bench"
[[ -x $BIN ]] || { echo "$BIN is missing: run without --skip-build" >&2; exit 1; }
GWBIN="$(dirname "$BIN")"

bench_init gw-bench
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- ours: the stack alone -------------------------------------------------------------------
echo "== our stack (gateway-bench) ==" >&2
run "$BIN" --json --tag "$TAG" --cpu "$LOOP_CPU" --guest-cpu "$GUEST_CPU" --seconds "$SECS" --repeat "$REPEAT" \
    $(printf -- '--mtu %s ' "${MTUS[@]}") >"$WORK/stack.json"

# The userspace peers map their gateway address to the host's loopback, where this server listens.
free_port PORT
spawn iperf3 -s -B 127.0.0.1 -p "$PORT" --logfile "$WORK/iperf3-server.log"
server=$LAST_PID
wait_listen 127.0.0.1 "$PORT"

# --- gatewayd: the whole product path, guest → TAP → stack → host socket on 127.0.0.1 ----------
# (Tools/bench-gateway.sh measures this path in more detail: latency and connection rate too.)
echo "== gatewayd (iperf3 to host loopback through the gateway address) ==" >&2
gatewayd_start "$GWBIN"
for mtu in "${MTUS[@]}"; do
    ns=gwbench-$TAG-gwd$mtu
    netns_add "$ns"
    gatewayd_attach "$GWBIN" "bench-$mtu" "$ns" "$mtu"
    iperf_pair gatewayd "$mtu" "$ns" "$GWD_GATEWAY" "$PORT" "$GWD_PID"
    gatewayd_detach "$GWBIN" "bench-$mtu"
done
stop "$GWD_PID"

# --- pasta -------------------------------------------------------------------------------------
echo "== pasta (iperf3 to host loopback) ==" >&2
ns=gwbench-$TAG-pasta
netns_add "$ns" no-ipv6
for mtu in "${MTUS[@]}"; do
    pasta_start "$ns" "$mtu"
    iperf_pair pasta "$mtu" "$ns" 10.0.2.2 "$PORT" "$PEER_PID"
    peer_stop "$ns" gwpasta0
done

# --- slirp4netns -------------------------------------------------------------------------------
echo "== slirp4netns (iperf3 to host loopback) ==" >&2
ns=gwbench-$TAG-slirp
netns_add "$ns" no-ipv6
for mtu in "${MTUS[@]}"; do
    slirp_start "$ns" "$mtu"
    iperf_pair slirp4netns "$mtu" "$ns" 10.0.2.2 "$PORT" "$PEER_PID"
    peer_stop "$ns" gwslirp0
done
stop "$server"

# --- kernel veth: the ceiling, no userspace in the path ------------------------------------------
echo "== kernel veth (iperf3) ==" >&2
ns=gwbench-$TAG-kveth
netns_add "$ns"
subnet=$(free_subnet)
veth_add "$ns" "gwk-$TAG-kh" "gwk-$TAG-kg" "$subnet"
spawn iperf3 -s -B "$subnet.1" -p "$PORT" --logfile "$WORK/iperf3-server-veth.log"
server=$LAST_PID
wait_listen "$subnet.1" "$PORT"
for mtu in "${MTUS[@]}"; do
    veth_set_mtu "$ns" "gwk-$TAG-kh" "gwk-$TAG-kg" "$mtu"
    iperf_pair veth "$mtu" "$ns" "$subnet.1" "$PORT"
done
stop "$server"

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- one table -------------------------------------------------------------------------------
python3 - "$WORK" "$SECS" "$LOOP_CPU" "$GUEST_CPU" "$LOAD_BEFORE" "$LOAD_AFTER" "$JSON_OUT" "$(getconf CLK_TCK)" "$REPEAT" "${MTUS[@]}" <<'EOF'
import json, os, sys
work, secs, loop_cpu, guest_cpu, load0, load1, json_out, clk, repeat = sys.argv[1:10]
mtus = [int(m) for m in sys.argv[10:]]
clk = int(clk)
stack = json.load(open(os.path.join(work, "stack.json")))

rows = []  # (path, mtu, up gbps, down gbps, up cpu s/GB, down cpu s/GB)
def stack_rows(path, label):
    for mtu in mtus:
        got = {r["direction"]: r for r in stack["results"] if r["path"] == path and r["mtu"] == mtu}
        up, down = got.get("guest-to-gateway"), got.get("gateway-to-guest")
        cpu = lambda r: r["stack"]["cpuSecondsPerGB"] if r and r.get("stack") else None
        busy = lambda r: r["stack"]["loopBusy"] * 100 if r and r.get("stack") else None
        rows.append(dict(path=label, mtu=mtu, up=up and up["gbps"], down=down and down["gbps"],
                         up_cpu=cpu(up), down_cpu=cpu(down), up_busy=busy(up), down_busy=busy(down),
                         up_bpf=up and up.get("stack") and up["stack"]["bytesPerFrameIn"],
                         down_bpf=down and down.get("stack") and down["stack"]["bytesPerFrameOut"]))

def iperf_rows(name, label):
    for mtu in mtus:
        row = dict(path=label, mtu=mtu)
        for d in ("up", "down"):
            f = os.path.join(work, f"iperf-{name}-{mtu}-{d}.json")
            if not os.path.exists(f):
                continue
            r = json.load(open(f))["end"]["sum_received"]
            row[d] = r["bits_per_second"] / 1e9
            t = os.path.join(work, f"iperf-{name}-{mtu}-{d}.ticks")
            if os.path.exists(t) and r["bytes"] > 0:
                ticks = int(open(t).read())
                row[d + "_cpu"] = ticks / clk / (r["bytes"] / 1e9)
                row[d + "_busy"] = ticks / clk / r["seconds"] * 100
        rows.append(row)

stack_rows("stack", "ours: stack alone (diagnostic services, no host sockets) *")
stack_rows("veth-tools", "guest tools (socat/nc) over kernel veth, our ceiling")
iperf_rows("gatewayd", "gatewayd egress, iperf3 to host loopback")
iperf_rows("veth", "kernel veth, iperf3 (no userspace)")
iperf_rows("pasta", "pasta, iperf3 to host loopback")
iperf_rows("slirp4netns", "slirp4netns, iperf3 to host loopback")
rows.sort(key=lambda r: r["mtu"])  # stable: groups by MTU, keeps the order above

sys.path.insert(0, "Tools")
from bench_table import f, print_table

header = ["path", "MTU", "guest→host Gbps", "host→guest Gbps", "CPU s/GB ↑", "CPU s/GB ↓", "busy ↑", "busy ↓",
          "B/frame ↑", "B/frame ↓"]
table = [header] + [[r["path"], str(r["mtu"]), f(r.get("up")), f(r.get("down")), f(r.get("up_cpu")),
                     f(r.get("down_cpu")), f(r.get("up_busy"), "{:.0f}%"), f(r.get("down_busy"), "{:.0f}%"),
                     f(r.get("up_bpf"), "{:.0f}"), f(r.get("down_bpf"), "{:.0f}")] for r in rows]
print(f"stack benchmark {stack['date']}, kernel {stack['kernel']}, {stack['cpus']} CPUs, single TCP stream, "
      f"~{secs} s per transfer" + (f", fastest of {repeat} runs each" if int(repeat) > 1 else ""))
print(f"network process (our loop, pasta, slirp4netns) on CPU {loop_cpu}, guest-side tools on CPU {guest_cpu}; "
      f"load average before {load0}, after {load1}")
print()
print_table(table, blank_before=lambda i: i > 1 and rows[i - 1]["mtu"] != rows[i - 2]["mtu"])
print()
print("* ours is the stack alone: the guest talks to the stack's own discard (port 9) and byte source")
print("  (port 19) on 10.0.2.2, no host socket behind it; the peers carry the bytes on to an iperf3")
print("  socket on the host. That is the honest comparison until the gateway's egress exists.")
print("↑ = guest→host (for ours guest→gateway), ↓ = host→guest. CPU s/GB: CPU seconds of the network")
print("  process (our loop thread; pasta's or slirp4netns's process) per 10^9 payload bytes; busy: that")
print("  CPU time ÷ wall time (well under 100% = that process was not the limit). B/frame: average")
print("  frame on our TAP (frames in ↑, frames out ↓); ~64 KB means TSO/GSO is in effect.")
waits = [(r["mtu"], r["direction"], r["stack"]["loopRunQueueWaitSeconds"], r["seconds"])
         for r in stack["results"] if r["path"] == "stack"]
print("our loop thread waited for its CPU (other load): " + ", ".join(
    f"{w:.2f} s of {s:.2f} s ({m} {'↑' if d == 'guest-to-gateway' else '↓'})" for m, d, w, s in waits))
if json_out:
    peers = {}
    for name in ("gatewayd", "veth", "pasta", "slirp4netns"):
        for mtu in mtus:
            for d in ("up", "down"):
                p = os.path.join(work, f"iperf-{name}-{mtu}-{d}.json")
                if os.path.exists(p):
                    r = json.load(open(p))["end"]["sum_received"]
                    peers.setdefault(name, []).append(dict(mtu=mtu, direction=d, bytes=r["bytes"],
                                                           seconds=r["seconds"], gbps=r["bits_per_second"] / 1e9))
    json.dump(dict(stack=stack, peers=peers, rows=rows, load_before=load0, load_after=load1), open(json_out, "w"), indent=2)
EOF
