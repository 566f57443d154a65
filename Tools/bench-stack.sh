#!/usr/bin/env bash
# The stack benchmark: our stack alone (gateway-bench) beside a kernel veth, pasta and slirp4netns
# (iperf3 to a host socket), one TCP stream each way at MTU 1500 and 65520, all in one run.
# Usage: sudo Tools/bench-stack.sh [--seconds N] [--repeat N] [--cpu N] [--guest-cpu N] [--json FILE] [--skip-build]
# --repeat N runs every transfer N times and keeps the fastest (for a machine shared with other work).
# Every server listens on loopback or on an address of a device made here; everything made here
# (processes, namespaces, devices) is removed at the end, on failure and on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=4
REPEAT=1
LOOP_CPU=0
GUEST_CPU=1
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

if [[ $(id -u) -ne 0 ]]; then
    echo "bench-stack.sh makes namespaces and devices: run it as root (sudo Tools/bench-stack.sh)" >&2
    exit 1
fi

# --- what it needs -------------------------------------------------------------------------
packages=(passt slirp4netns iperf3 socat netcat-openbsd python3 iproute2 util-linux libnl-3-dev libnl-route-3-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "swift not found on PATH: install Swift 6.3 first" >&2; exit 1; }

if ((BUILD)); then
    echo "building gateway-bench (release)…" >&2
    swift build -c release --product gateway-bench >&2
    swift build -c release --product gatewayd >&2
    swift build -c release --product gatewayctl >&2
fi
BIN="$(swift build -c release --show-bin-path)/gateway-bench"
[[ -x $BIN ]] || { echo "$BIN is missing: run without --skip-build" >&2; exit 1; }

# --- bookkeeping and cleanup -----------------------------------------------------------------
TAG=$(tr -dc 'a-z0-9' </dev/urandom | head -c 5 || true)
WORK=$(mktemp -d "/tmp/gw-bench-$TAG.XXXXXX")
PIDS=()
NAMESPACES=()
LINKS=()

cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    for l in "${LINKS[@]}"; do ip link del "$l" 2>/dev/null; done
    for n in "${NAMESPACES[@]}"; do ip netns del "$n" 2>/dev/null; done
    # Anything gateway-bench made under this run's tag, should it have died before its own cleanup.
    for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^gwbench-$TAG-"); do ip netns del "$n" 2>/dev/null; done
    for l in $(ip -o link 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^gw[te]-$TAG-"); do
        ip link del "$l" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "interrupted: cleaning up" >&2; exit 130' INT TERM HUP

# Starts a background process and records its PID for cleanup.
spawn() {
    "$@" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# Ends one recorded process (by its PID) and forgets it.
stop() {
    local pid=$1 keep=() p
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# Runs a command in the background and waits for it, so a signal reaches the trap at once.
run() {
    spawn "$@"
    local pid=$LAST_PID rc=0
    wait "$pid" || rc=$?
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
    return $rc
}

# Waits until something listens on TCP ADDR:PORT in the host namespace.
wait_listen() {
    local addr=$1 port=$2
    for _ in $(seq 100); do
        ss -Hltn "src $addr:$port" 2>/dev/null | grep -q . && return 0
        sleep 0.05
    done
    echo "nothing listens on $addr:$port" >&2
    return 1
}

# Waits until NS has IPv4 ADDR on DEV.
wait_address() {
    local ns=$1 dev=$2 addr=$3
    for _ in $(seq 100); do
        ip -n "$ns" -4 -o addr show dev "$dev" 2>/dev/null | grep -q " $addr/" && return 0
        sleep 0.05
    done
    echo "$dev in $ns never got $addr" >&2
    return 1
}

# utime+stime of PID in clock ticks (/proc/PID/stat fields 14 and 15; the name in field 2 has no spaces here).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# iperf3 from inside NS to ADDR:PORT, each direction, REPEAT times keeping the fastest; PEER_PID
# (optional) is the userspace network process whose CPU time is sampled around each run.
iperf_pair() {
    local label=$1 mtu=$2 ns=$3 addr=$4 port=$5 peer_pid=${6:-}
    local dir flag before after r base
    for dir in up down; do
        flag=; [[ $dir == down ]] && flag=-R
        base="$WORK/iperf-$label-$mtu-$dir"
        for r in $(seq "$REPEAT"); do
            before=; [[ -n $peer_pid ]] && before=$(cpu_ticks "$peer_pid")
            run ip netns exec "$ns" taskset -c "$GUEST_CPU" iperf3 -c "$addr" -p "$port" -t "$SECS" -J $flag \
                >"$base.run$r.json"
            if [[ -n $peer_pid ]]; then
                after=$(cpu_ticks "$peer_pid")
                echo $((after - before)) >"$base.run$r.ticks"
            fi
        done
        python3 - "$base" "$REPEAT" "$label" "$mtu" "$dir" <<'EOF' >&2
import json, shutil, sys, os
base, repeat, label, mtu, d = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
runs = [json.load(open(f"{base}.run{r}.json"))["end"]["sum_received"] for r in range(1, repeat + 1)]
best = max(range(repeat), key=lambda i: runs[i]["bits_per_second"])
shutil.copy(f"{base}.run{best + 1}.json", f"{base}.json")
if os.path.exists(f"{base}.run{best + 1}.ticks"):
    shutil.copy(f"{base}.run{best + 1}.ticks", f"{base}.ticks")
rates = ", ".join(f"{r['bits_per_second'] / 1e9:.2f}" for r in runs)
r = runs[best]
print(f"{label} MTU {mtu} {'guest→host' if d == 'up' else 'host→guest'}: {r['bytes'] / 2**30:.2f} GiB in "
      f"{r['seconds']:.2f} s = {r['bits_per_second'] / 1e9:.2f} Gbps" + (f" (runs: {rates})" if repeat > 1 else ""))
EOF
    done
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- ours: the stack alone -------------------------------------------------------------------
echo "== our stack (gateway-bench) ==" >&2
run "$BIN" --json --tag "$TAG" --cpu "$LOOP_CPU" --guest-cpu "$GUEST_CPU" --seconds "$SECS" --repeat "$REPEAT" \
    $(printf -- '--mtu %s ' "${MTUS[@]}") >"$WORK/stack.json"

# --- gatewayd: the whole product path, guest → TAP → stack → host socket on 127.0.0.1 ----------
echo "== gatewayd (iperf3 to host loopback through the gateway address) ==" >&2
GWBIN="$(dirname "$BIN")"
GWSOCK="$WORK/gatewayd.sock"
cat >"$WORK/gatewayd.toml" <<TOML
[dns]
upstreams = ["127.0.0.1:9"]
TOML
spawn taskset -c "$LOOP_CPU" "$GWBIN/gatewayd" --config "$WORK/gatewayd.toml" --control "$GWSOCK" \
    --state-dir "$WORK/gatewayd-state" --shards 1 --egress-policy host-only >"$WORK/gatewayd.log" 2>&1
gwd=$LAST_PID
for _ in $(seq 100); do [[ -S $GWSOCK ]] && break; sleep 0.1; done
spawn iperf3 -s -B 127.0.0.1 -p 5404 --logfile "$WORK/iperf3-server-gatewayd.log"
server=$LAST_PID
wait_listen 127.0.0.1 5404
for mtu in "${MTUS[@]}"; do
    ns=gwbench-$TAG-gwd$mtu
    NAMESPACES+=("$ns")
    ip netns add "$ns"
    GATEWAYD_CONTROL="$GWSOCK" "$GWBIN/gatewayctl" attach "bench-$mtu" --netns "$ns" --mtu "$mtu" >/dev/null
    gwaddr=$(GATEWAYD_CONTROL="$GWSOCK" "$GWBIN/gatewayctl" list --json | python3 -c \
        "import json,sys; print([s for s in json.load(sys.stdin) if s['id']=='bench-$mtu'][0]['gatewayIPv4'])")
    iperf_pair gatewayd "$mtu" "$ns" "$gwaddr" 5404 "$gwd"
    GATEWAYD_CONTROL="$GWSOCK" "$GWBIN/gatewayctl" detach "bench-$mtu" >/dev/null
done
stop "$server"
stop "$gwd"

# --- kernel veth: the ceiling, no userspace in the path ------------------------------------------
echo "== kernel veth (iperf3) ==" >&2
ns=gwbench-$TAG-kveth
host_if=gwe-$TAG-kh
guest_if=gwe-$TAG-kg
NAMESPACES+=("$ns")
ip netns add "$ns"
LINKS+=("$host_if")
ip link add "$host_if" type veth peer name "$guest_if" netns "$ns"
ip addr add 10.0.4.1/24 dev "$host_if"
ip link set "$host_if" up
ip -n "$ns" link set lo up
ip -n "$ns" addr add 10.0.4.2/24 dev "$guest_if"
ip -n "$ns" link set "$guest_if" up
spawn iperf3 -s -B 10.0.4.1 -p 5401 --logfile "$WORK/iperf3-server-veth.log"
server=$LAST_PID
wait_listen 10.0.4.1 5401
for mtu in "${MTUS[@]}"; do
    ip link set "$host_if" mtu "$mtu"
    ip -n "$ns" link set "$guest_if" mtu "$mtu"
    iperf_pair veth "$mtu" "$ns" 10.0.4.1 5401
done
stop "$server"

# --- pasta: gateway address mapped to the host's loopback --------------------------------------
# pasta joins a namespace made here (--netns) rather than making its own: run as root it drops to
# nobody, and could then not set up the user namespace its command mode needs. --runas 0 keeps
# the rights to enter ours. By default (no --no-map-gw) TCP to the gateway address (-g) is
# connected to 127.0.0.1 on the host, where the server listens.
echo "== pasta (iperf3 to host loopback) ==" >&2
ns=gwbench-$TAG-pasta
NAMESPACES+=("$ns")
ip netns add "$ns"
ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
spawn iperf3 -s -B 127.0.0.1 -p 5402 --logfile "$WORK/iperf3-server-pasta.log"
server=$LAST_PID
wait_listen 127.0.0.1 5402
for mtu in "${MTUS[@]}"; do
    spawn taskset -c "$LOOP_CPU" pasta -q -f --runas 0 --log-file "$WORK/pasta-$mtu.log" --config-net -4 \
        -I gwpasta0 -a 10.0.2.15 -n 24 -g 10.0.2.2 -m "$mtu" -t none -u none -T none -U none --netns "$ns"
    peer=$LAST_PID
    wait_address "$ns" gwpasta0 10.0.2.15
    ip -n "$ns" link set gwpasta0 mtu "$mtu"
    iperf_pair pasta "$mtu" "$ns" 10.0.2.2 5402 "$peer"
    stop "$peer"
    for _ in $(seq 50); do ip -n "$ns" link show gwpasta0 >/dev/null 2>&1 || break; sleep 0.05; done
done
stop "$server"

# --- slirp4netns: 10.0.2.2 is the host's loopback unless --disable-host-loopback ---------------
echo "== slirp4netns (iperf3 to host loopback) ==" >&2
ns=gwbench-$TAG-slirp
NAMESPACES+=("$ns")
ip netns add "$ns"
ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
spawn iperf3 -s -B 127.0.0.1 -p 5403 --logfile "$WORK/iperf3-server-slirp.log"
server=$LAST_PID
wait_listen 127.0.0.1 5403
for mtu in "${MTUS[@]}"; do
    spawn taskset -c "$LOOP_CPU" slirp4netns --configure --mtu="$mtu" --netns-type=path "/run/netns/$ns" gwslirp0 \
        >"$WORK/slirp4netns-$mtu.log" 2>&1
    peer=$LAST_PID
    wait_address "$ns" gwslirp0 10.0.2.100
    iperf_pair slirp4netns "$mtu" "$ns" 10.0.2.2 5403 "$peer"
    stop "$peer"
    for _ in $(seq 50); do ip -n "$ns" link show gwslirp0 >/dev/null 2>&1 || break; sleep 0.05; done
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

def f(v, fmt="{:.2f}"):
    return "-" if v is None else fmt.format(v)

header = ["path", "MTU", "guest→host Gbps", "host→guest Gbps", "CPU s/GB ↑", "CPU s/GB ↓", "busy ↑", "busy ↓",
          "B/frame ↑", "B/frame ↓"]
table = [header] + [[r["path"], str(r["mtu"]), f(r.get("up")), f(r.get("down")), f(r.get("up_cpu")),
                     f(r.get("down_cpu")), f(r.get("up_busy"), "{:.0f}%"), f(r.get("down_busy"), "{:.0f}%"),
                     f(r.get("up_bpf"), "{:.0f}"), f(r.get("down_bpf"), "{:.0f}")] for r in rows]
w = [max(len(row[c]) for row in table) for c in range(len(header))]
print(f"stack benchmark {stack['date']}, kernel {stack['kernel']}, {stack['cpus']} CPUs, single TCP stream, "
      f"~{secs} s per transfer" + (f", fastest of {repeat} runs each" if int(repeat) > 1 else ""))
print(f"network process (our loop, pasta, slirp4netns) on CPU {loop_cpu}, guest-side tools on CPU {guest_cpu}; "
      f"load average before {load0}, after {load1}")
print()
for i, row in enumerate(table):
    if i > 1 and rows[i - 1]["mtu"] != rows[i - 2]["mtu"]:
        print()
    print("  ".join(c.ljust(w[j]) if j == 0 else c.rjust(w[j]) for j, c in enumerate(row)))
    if i == 0:
        print("  ".join("-" * x for x in w))
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
