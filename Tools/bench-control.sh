#!/usr/bin/env bash
# Published ports and the control plane, measured: iperf3 and connections per second through a
# published port (beside pasta -t), attach/detach latency, and gatewayd's memory and descriptors
# with 1,000 idle namespace sandboxes. Figures and how to read them: Tools/README-bench-control.md.
# Usage: sudo Tools/bench-control.sh [--seconds N] [--connections N] [--cycles N] [--sandboxes N] [--skip-build]
# Clients run on the host against 127.0.0.1; servers run inside namespaces made here. Every process,
# namespace and device made here is removed at the end, on failure and on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
source Tools/bench-lib.sh

SECS=4
CONNS=2000
CYCLES=100
SANDBOXES=1000
BUILD=1
while (($#)); do
    case "$1" in
        --seconds) SECS=$2; shift 2 ;;
        --connections) CONNS=$2; shift 2 ;;
        --cycles) CYCLES=$2; shift 2 ;;
        --sandboxes) SANDBOXES=$2; shift 2 ;;
        --skip-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done
bench_require_root bench-control.sh

Tools/install-deps.sh >&2
command -v pasta >/dev/null || bench_install_packages passt
bench_gatewayd_binaries "$BUILD"

bench_init gw-ctl-bench
# 1,000 TAP descriptors plus their host sockets and epoll registrations exceed the usual 1,024.
ulimit -n "$(ulimit -Hn)"

# Starts a gatewayd NAME with SHARDS shards (pinned to CPU when given), its own address pool, and a
# device sweep limited to this run's tag (the default sweep would remove other gatewayd instances'
# devices). Sets GWD (its PID) and CTL (gatewayctl talking to it).
start_gatewayd() { # name shards [cpu]
    local name=$1 shards=$2
    cat >"$WORK/$name.toml" <<TOML
shards = $shards
pin-shards = false
sweep-prefixes = ["gwv-$TAG"]
[addresses]
ipv4-pool = "10.77.0.0/16"
ipv6-pool = "fd47:5777::/48"
[dns]
upstreams = ["127.0.0.1:9"]
TOML
    GWD_CPUS=${3:-} gatewayd_spawn "$BINDIR" "$name"
    GWD=$GWD_PID
    CTL=("$BINDIR/gatewayctl" --control "$GWD_SOCK")
}

cat >"$WORK/onebyte.py" <<'PY'
# Accepts, sends one byte, closes: the server side of the connections-per-second test.
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(128)
while True:
    c, _ = s.accept(); c.sendall(b"x"); c.close()
PY
cat >"$WORK/cps.py" <<'PY'
# N sequential connect / read 1 byte / close; prints connections per second, the time from
# connect(2) to the first byte (median, p99, in µs) and how many connections failed (reset, or
# closed without the byte), which are left out of the times.
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def once():
    t = time.perf_counter()
    try:
        s = socket.create_connection((host, port), timeout=2)
        b = s.recv(1)
        d = time.perf_counter() - t
        s.close()
    except OSError:
        return None
    return d if b == b"x" else None
if all(once() is None for _ in range(50)):
    print("- - - all")  # every warm-up connection failed: not worth 2,000 time-outs
    sys.exit()
t0 = time.perf_counter()
got = []
while len(got) < n and time.perf_counter() - t0 < 60:  # a bound for a peer that stalls
    got.append(once())
cps = len(got) / (time.perf_counter() - t0)
ttfb = sorted(x for x in got if x is not None)
failed = n - len(ttfb)
if not ttfb:
    print(f"{cps:.0f} - - {failed}")
else:
    print(f"{cps:.0f} {ttfb[len(ttfb) // 2] * 1e6:.0f} {ttfb[min(len(ttfb) - 1, int(len(ttfb) * 0.99))] * 1e6:.0f} {failed}")
PY

# Runs a client command on CPU 1, on the host (CLIENT=lo) or in the client namespace (CLIENT=veth).
client() {
    if [[ $CLIENT == lo ]]; then taskset -c 1 "$@"; else ip netns exec "$CLIENT_NS" taskset -c 1 "$@"; fi
}
client_addr() { if [[ $CLIENT == lo ]]; then echo 127.0.0.1; else echo "$HOST_ADDR"; fi; }

# iperf3 to ADDR:PORT both ways; prints "host→guest guest→host" in Gbps.
iperf_both() {
    local port=$1 label=$2 out=() flag f
    for flag in "" "-R"; do
        f="$WORK/iperf-$label$flag.json"
        client iperf3 -c "$(client_addr)" -p "$port" -t "$SECS" -J $flag >"$f" && ! grep -q '"error"' "$f" || {
            grep '"error"' "$f" >&2; return 1; }
        out+=("$(json_get '"%.2f" % (d["end"]["sum_received"]["bits_per_second"] / 1e9)' <"$f")")
    done
    echo "${out[*]}"
}

# Both measurements through one published pair of ports; fills R[NAME_CLIENT_*].
measure_ports() { # name iperf-port cps-port
    local name=$1 k=$1_$CLIENT
    read -r R[${k}_down] R[${k}_up] < <(iperf_both "$2" "$k") || true
    if [[ -z ${R[${k}_up]:-} ]]; then
        echo "iperf3 through $name ($CLIENT) failed" >&2
        R[${k}_down]=${R[${k}_down]:-failed}; R[${k}_up]=failed
    fi
    echo "$name, client $CLIENT: host→guest ${R[${k}_down]} Gbps, guest→host ${R[${k}_up]} Gbps" >&2
    read -r R[${k}_cps] R[${k}_ttfb50] R[${k}_ttfb99] R[${k}_failed] < <(client python3 "$WORK/cps.py" "$(client_addr)" "$3" "$CONNS") || true
    echo "$name, client $CLIENT: ${R[${k}_cps]:-?} conn/s, first byte median ${R[${k}_ttfb50]:-?} µs," \
        "p99 ${R[${k}_ttfb99]:-?} µs, ${R[${k}_failed]:-?} of $CONNS failed" >&2
}

# percentile summary of a file of numbers: "median p99 min max"
summary() {
    python3 - "$1" <<'PY'
import sys
v = sorted(float(x) for x in open(sys.argv[1]))
n = len(v)
print(f"{v[n // 2]:.1f} {v[min(n - 1, int(n * 0.99))]:.1f} {v[0]:.1f} {v[-1]:.1f}")
PY
}

now_ns() { date +%s%N; }
# VmRSS of PID and its children (gatewayd's worker), KiB.
rss_kib() {
    local p
    for p in $(with_children "$1"); do cat "/proc/$p/status"; done | awk '/^VmRSS/ {s += $2} END {print s + 0}'
}
fd_count() {
    local p
    for p in $(with_children "$1"); do ls "/proc/$p/fd"; done | wc -l
}

DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A R

# --- the second client: a namespace reaching the host over a veth made here ----------------------
# From there the host's address on that veth is not loopback, so pasta must take its TAP path (from the host's
# own loopback it splices sockets instead); ours takes the same path either way.
# A /24 no address or route of the host uses yet (other tools may be running beside this one).
NET=$(free_subnet)
HOST_ADDR=$NET.1
# gwk-: a prefix no gatewayd sweeps (gwe- is, and other runs on this machine may start one).
CLIENT_NS=gwbench-$TAG-client
netns_add "$CLIENT_NS"
veth_add "$CLIENT_NS" "gwk-$TAG-h" "gwk-$TAG-c" "$NET"
for _ in $(seq 100); do ip netns exec "$CLIENT_NS" ping -c1 -W1 "$HOST_ADDR" >/dev/null 2>&1 && break; sleep 0.05; done

# --- 1 and 2: published port, ours -------------------------------------------------------------
# The client is on the host and connects to 127.0.0.1:HOSTPORT; gatewayd accepts there and opens
# the flow to the guest through the sandbox's stack and TAP.
echo "== published port through gatewayd ==" >&2
start_gatewayd pub 1 0
ns=gwbench-$TAG-gw
netns_add "$ns"
"${CTL[@]}" attach pub --netns "$ns" >/dev/null
spawn ip netns exec "$ns" iperf3 -s -p 5201 --logfile "$WORK/iperf3-gw.log"
spawn ip netns exec "$ns" python3 "$WORK/onebyte.py" 5202
wait_listen "" 5201 "$ns"
wait_listen "" 5202 "$ns"
GP1=$("${CTL[@]}" publish pub 5201 --json | json_get 'd["hostPort"]')
GP2=$("${CTL[@]}" publish pub 5202 --json | json_get 'd["hostPort"]')
GP3=$("${CTL[@]}" publish pub $HOST_ADDR:0:5201 --json | json_get 'd["hostPort"]')
GP4=$("${CTL[@]}" publish pub $HOST_ADDR:0:5202 --json | json_get 'd["hostPort"]')
echo "gatewayd: 127.0.0.1:$GP1/$GP2 and $HOST_ADDR:$GP3/$GP4 → guest 5201/5202" >&2
stats() { "${CTL[@]}" stats pub --json | json_get 'd["bytesIn"] + d["bytesOut"]'; }
b0=$(stats)
CLIENT=lo measure_ports gw "$GP1" "$GP2"
b1=$(stats)
CLIENT=veth measure_ports gw "$GP3" "$GP4"
b2=$(stats)
R[gw_lo_tap_mb]=$(((b1 - b0) / 1000000))
R[gw_veth_tap_mb]=$(((b2 - b1) / 1000000))
"${CTL[@]}" detach pub >/dev/null
stop "$GWD"

# --- 1 and 2: pasta -t --------------------------------------------------------------------------
# pasta binds the host ports on 127.0.0.1 and forwards into its namespace. A connection from the
# host's loopback takes pasta's splice path (socket to socket onto the namespace's loopback), not
# its TAP: see README-bench-control.md.
echo "== pasta -t ==" >&2
ns=gwbench-$TAG-pasta
netns_add "$ns" no-ipv6
spawn ip netns exec "$ns" iperf3 -s -p 5201 --logfile "$WORK/iperf3-pasta.log"
spawn ip netns exec "$ns" python3 "$WORK/onebyte.py" 5202
# Below the ephemeral ports (where the thousands of TIME-WAIT sockets of the connection test
# live) and outside gatewayd's 30000-39999.
free_port PP0; free_port PP1; free_port PP2; free_port PP3
tapbytes() { ip -n "$ns" -s -j link show gwpasta0 | json_get 'd[0]["stats64"]["rx"]["bytes"] + d[0]["stats64"]["tx"]["bytes"]'; }
# This pasta takes one bind address for all its -t options, so one instance per client variant.
pasta_run() { # client bind-address iperf-port cps-port
    spawn taskset -c 0 pasta -q -f --runas 0 --log-file "$WORK/pasta-$1.log" --config-net -4 -I gwpasta0 \
        -a 10.0.2.15 -n 24 -g 10.0.2.2 -t "$2/$3:5201" -t "$2/$4:5202" -u none -T none -U none --netns "$ns"
    local pasta=$LAST_PID b0 b1
    wait_listen "$2" "$3"
    wait_listen "$2" "$4"
    wait_address "$ns" gwpasta0 10.0.2.15
    # Until the guest has sent a frame this pasta does not know the guest's MAC, and connections it
    # forwards through its TAP are reset; one ping (unanswered: ICMP is off) teaches it.
    ip netns exec "$ns" ping -c1 -W1 10.0.2.2 >/dev/null 2>&1 || true
    b0=$(tapbytes)
    CLIENT=$1 measure_ports pasta "$3" "$4"
    b1=$(tapbytes)
    R[pasta_$1_tap_mb]=$(((b1 - b0) / 1000000))
    PEER_PID=$pasta peer_stop "$ns" gwpasta0
}
pasta_run lo 127.0.0.1 "$PP0" "$PP1"
pasta_run veth "$HOST_ADDR" "$PP2" "$PP3"
ip netns del "$ns"

# --- 3: attach and detach latency ----------------------------------------------------------------
# Each figure is the wall time of one gatewayctl run (process start, HTTP over the control socket,
# the daemon's work, exit), as a script would see it.
echo "== attach/detach, $CYCLES cycles ==" >&2
start_gatewayd ctl 2
: >"$WORK/attach.ms"
: >"$WORK/detach.ms"
for i in $(seq "$CYCLES"); do
    ns=gwbench-$TAG-c$i
    netns_add "$ns"
    t0=$(now_ns)
    "${CTL[@]}" attach "c$i" --netns "$ns" >/dev/null
    t1=$(now_ns)
    "${CTL[@]}" detach "c$i" >/dev/null
    t2=$(now_ns)
    echo "scale=3; ($t1 - $t0) / 1000000" | bc >>"$WORK/attach.ms"
    echo "scale=3; ($t2 - $t1) / 1000000" | bc >>"$WORK/detach.ms"
    ip netns del "$ns"
done
# The same through the API with curl (its own time_total: connect, request, the daemon's answer),
# which leaves out starting a gatewayctl process.
: >"$WORK/attach-api.ms"
: >"$WORK/detach-api.ms"
api() { curl -sS -o /dev/null -w '%{http_code} %{time_total}\n' --unix-socket "$WORK/ctl.sock" "$@"; }
for i in $(seq "$CYCLES"); do
    ns=gwbench-$TAG-a$i
    netns_add "$ns"
    read -r code t < <(api -X POST -d "{\"id\":\"a$i\",\"netns\":\"$ns\"}" http://gatewayd/v1/sandboxes)
    [[ $code == 201 ]] || { echo "attach over the API answered $code" >&2; exit 1; }
    echo "$t * 1000" | bc >>"$WORK/attach-api.ms"
    read -r code t < <(api -X DELETE "http://gatewayd/v1/sandboxes/a$i")
    [[ $code == 200 ]] || { echo "detach over the API answered $code" >&2; exit 1; }
    echo "$t * 1000" | bc >>"$WORK/detach-api.ms"
    ip netns del "$ns"
done
# VM sandboxes over the API: the daemon creates the monitor's TAP, its own TAP and the bridge.
: >"$WORK/attach-vm.ms"
: >"$WORK/detach-vm.ms"
for i in $(seq "$CYCLES"); do
    read -r code t < <(api -X POST -d "{\"id\":\"v$i\",\"vm\":{}}" http://gatewayd/v1/sandboxes)
    [[ $code == 201 ]] || { echo "VM attach over the API answered $code" >&2; exit 1; }
    echo "$t * 1000" | bc >>"$WORK/attach-vm.ms"
    read -r code t < <(api -X DELETE "http://gatewayd/v1/sandboxes/v$i")
    [[ $code == 200 ]] || { echo "VM detach over the API answered $code" >&2; exit 1; }
    echo "$t * 1000" | bc >>"$WORK/detach-vm.ms"
done
read -r R[vatt50] R[vatt99] R[vattmin] R[vattmax] < <(summary "$WORK/attach-vm.ms")
read -r R[vdet50] R[vdet99] R[vdetmin] R[vdetmax] < <(summary "$WORK/detach-vm.ms")
echo "VM sandboxes over the API: attach median ${R[vatt50]} ms p99 ${R[vatt99]} ms; detach median ${R[vdet50]} ms p99 ${R[vdet99]} ms" >&2
read -r R[aatt50] R[aatt99] R[aattmin] R[aattmax] < <(summary "$WORK/attach-api.ms")
read -r R[adet50] R[adet99] R[adetmin] R[adetmax] < <(summary "$WORK/detach-api.ms")
echo "over the API: attach median ${R[aatt50]} ms p99 ${R[aatt99]} ms; detach median ${R[adet50]} ms p99 ${R[adet99]} ms" >&2
read -r R[att50] R[att99] R[attmin] R[attmax] < <(summary "$WORK/attach.ms")
read -r R[det50] R[det99] R[detmin] R[detmax] < <(summary "$WORK/detach.ms")
echo "attach median ${R[att50]} ms p99 ${R[att99]} ms; detach median ${R[det50]} ms p99 ${R[det99]} ms" >&2

# --- 4: memory and descriptors with many idle sandboxes ------------------------------------------
echo "== $SANDBOXES idle sandboxes ==" >&2
sleep 1
R[rss0]=$(rss_kib "$GWD")
R[fd0]=$(fd_count "$GWD")
host_gw() { ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^gw' | sort || true; }
host_gw >"$WORK/gw-before"
t0=$(now_ns)
# Plain ip netns add (recorded for cleanup): the figure is for "ip netns add + gatewayctl attach",
# and netns_add would time bringing up each loopback as well.
for i in $(seq "$SANDBOXES"); do
    NAMESPACES+=("gwbench-$TAG-s$i")
    ip netns add "gwbench-$TAG-s$i"
    "${CTL[@]}" attach "s$i" --netns "gwbench-$TAG-s$i" >/dev/null
done
t1=$(now_ns)
R[attach_all_s]=$(echo "scale=1; ($t1 - $t0) / 1000000000" | bc)
sleep 2
R[rss1]=$(rss_kib "$GWD")
R[fd1]=$(fd_count "$GWD")
R[listed]=$("${CTL[@]}" list --json | json_get 'len(d)')
echo "attached ${R[listed]} in ${R[attach_all_s]} s: RSS ${R[rss0]} → ${R[rss1]} KiB, fds ${R[fd0]} → ${R[fd1]}" >&2
t0=$(now_ns)
for i in $(seq "$SANDBOXES"); do "${CTL[@]}" detach "s$i" >/dev/null; done
t1=$(now_ns)
R[detach_all_s]=$(echo "scale=1; ($t1 - $t0) / 1000000000" | bc)
sleep 2
R[rss2]=$(rss_kib "$GWD")
R[fd2]=$(fd_count "$GWD")
R[listed2]=$("${CTL[@]}" list --json | json_get 'len(d)')
# After detach each namespace should hold only its loopback.
R[ns_with_devices]=0
for i in $(seq "$SANDBOXES"); do
    n=$(ip -n "gwbench-$TAG-s$i" -o link | grep -vc ': lo:' || true)
    ((n == 0)) || R[ns_with_devices]=$((R[ns_with_devices] + 1))
done
# A second round into the same namespaces tells a leak (RSS grows again by as much) from memory the
# allocator kept after the first round (RSS stays put).
for i in $(seq "$SANDBOXES"); do "${CTL[@]}" attach "s$i" --netns "gwbench-$TAG-s$i" >/dev/null; done
sleep 2
R[rss3]=$(rss_kib "$GWD")
R[fd3]=$(fd_count "$GWD")
for i in $(seq "$SANDBOXES"); do "${CTL[@]}" detach "s$i" >/dev/null; done
sleep 2
R[rss4]=$(rss_kib "$GWD")
R[fd4]=$(fd_count "$GWD")
echo "second round: RSS ${R[rss3]} KiB attached, ${R[rss4]} KiB detached; fds ${R[fd3]}, ${R[fd4]}" >&2
for i in $(seq "$SANDBOXES"); do ip netns del "gwbench-$TAG-s$i"; done
host_gw >"$WORK/gw-after"
R[host_gw_new]=$(comm -13 "$WORK/gw-before" "$WORK/gw-after" | wc -l)
R[host_gw_names]=$(comm -13 "$WORK/gw-before" "$WORK/gw-after" | tr '\n' ' ')
R[state_files]=$(ls "$WORK/ctl-state/sandboxes" 2>/dev/null | wc -l)
echo "detached in ${R[detach_all_s]} s: RSS ${R[rss2]} KiB, fds ${R[fd2]}, namespaces still holding a device:" \
    "${R[ns_with_devices]}, new gw devices on the host: ${R[host_gw_new]} ${R[host_gw_names]}" >&2
stop "$GWD"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report --------------------------------------------------------------------------------------
per_sandbox=$(echo "scale=1; (${R[rss1]} - ${R[rss0]}) / $SANDBOXES" | bc)
cat <<EOF

control-plane and published-port benchmark, $DATE, kernel $(uname -r), $(nproc) CPUs
load average before $LOAD_BEFORE, after $LOAD_AFTER
network process (gatewayd with 1 shard, pasta) on CPU 0, host-side clients on CPU 1, guest servers unpinned

1-2. published port: iperf3 (~$SECS s each way) and $CONNS sequential connect / read 1 byte / close
     client "lo": on the host, to 127.0.0.1:HOSTPORT; client "veth": in a second namespace, to
     $HOST_ADDR:HOSTPORT over a veth made here. Servers in the sandbox's namespace.
$(printf '   %-18s %-6s %11s %11s %8s %10s %8s %7s %8s\n' path client "host→guest" "guest→host" conn/s "1st byte" p99 failed "TAP MB")
$(printf '   %-18s %-6s %11s %11s %8s %10s %8s %7s %8s\n' "" "" Gbps "Gbps (-R)" "" "median µs" µs "" "")
$(for k in gw_lo gw_veth pasta_lo pasta_veth; do
    label="gatewayd publish"; [[ $k == pasta* ]] && label="pasta -t"
    printf '   %-18s %-6s %11s %11s %8s %10s %8s %7s %8s\n' "$label" "${k#*_}" "${R[${k}_down]:-?}" "${R[${k}_up]:-?}" \
        "${R[${k}_cps]:-?}" "${R[${k}_ttfb50]:-?}" "${R[${k}_ttfb99]:-?}" "${R[${k}_failed]:-?}" "${R[${k}_tap_mb]:-?}"
done)
   TAP MB: bytes that crossed the sandbox's TAP during both tests (gatewayd's stats; pasta's link
   counters); 0 for pasta from lo means its splice path, socket to socket, carried everything.
   failed: connections reset or closed before the byte arrived (left out of the times).

3. $CYCLES × (ip netns add; gatewayctl attach; gatewayctl detach), wall time of each gatewayctl run (2 shards)
   attach  median ${R[att50]} ms  p99 ${R[att99]} ms  (min ${R[attmin]}, max ${R[attmax]})
   detach  median ${R[det50]} ms  p99 ${R[det99]} ms  (min ${R[detmin]}, max ${R[detmax]})
   the same over the API with curl (curl's time_total, no gatewayctl process start):
   attach  median ${R[aatt50]} ms  p99 ${R[aatt99]} ms  (min ${R[aattmin]}, max ${R[aattmax]})
   detach  median ${R[adet50]} ms  p99 ${R[adet99]} ms  (min ${R[adetmin]}, max ${R[adetmax]})
   VM sandboxes over the API (monitor TAP + gateway TAP + bridge):
   attach  median ${R[vatt50]} ms  p99 ${R[vatt99]} ms  (min ${R[vattmin]}, max ${R[vattmax]})
   detach  median ${R[vdet50]} ms  p99 ${R[vdet99]} ms  (min ${R[vdetmin]}, max ${R[vdetmax]})

4. $SANDBOXES idle namespace sandboxes on one gatewayd (2 shards)
   attached ${R[listed]} in ${R[attach_all_s]} s (ip netns add + gatewayctl attach each), detached in ${R[detach_all_s]} s
   VmRSS  ${R[rss0]} KiB before → ${R[rss1]} KiB attached → ${R[rss2]} KiB after detach; $per_sandbox KiB per sandbox
   fds    ${R[fd0]} before → ${R[fd1]} attached → ${R[fd2]} after detach
   again into the same namespaces: VmRSS ${R[rss3]} KiB attached → ${R[rss4]} KiB detached; fds ${R[fd3]} → ${R[fd4]}
   after detach: ${R[listed2]} sandboxes listed, ${R[state_files]} state files, ${R[ns_with_devices]} namespaces holding
   a device other than lo; gw devices on the host that were not there before: ${R[host_gw_new]} ${R[host_gw_names]}
EOF
