#!/usr/bin/env bash
# Many sandboxes at once: N namespaces per path loading it together, gatewayd (one process, one
# shard per CPU) beside N pasta processes and N kernel veths. Workloads (--workload, comma-separated):
#   iperf  one iperf3 per sandbox, all at once: aggregate throughput, fairness between sandboxes,
#          CPU per GB, and one extra sandbox's round-trip time while the N others load the path;
#   crr    every sandbox makes --requests K (default 50) sequential short connections (connect,
#          small GET, small answer, the client closes), all at once: connections/s, fairness, CPU
#          per connection;
#   fetch  --rounds R (default 5) rounds, in each every sandbox fetches 1 MiB over a new
#          connection, all at once: Gbps and fairness per round, CPU per GB.
# GWD_PERF=PREFIX in the environment: perf record -g of gatewayd's worker during each crr/fetch
# workload, kept as PREFIX-WORKLOAD.data.
# Usage: sudo Tools/bench-many.sh [--sandboxes N] [--workload LIST] [--requests K] [--rounds R]
#            [--seconds S] [--load-seconds S] [--mtu M] [--paths LIST] [--round-trips N]
#            [--no-pin-shards] [--shard-nice N] [--json FILE] [--skip-build]
# --sandboxes: namespaces per path (default 8, at most 200). --workload: default iperf.
# --seconds: each iperf3 transfer (default 5). --load-seconds: the transfers while the latency
# probe runs (default --seconds + 10; the probe starts 1 s in and must end before them). --mtu: of
# every path (default 1500). --paths: comma-separated subset of gatewayd,pasta,veth (default all).
# --round-trips: of the latency probe (default 1000, after 100 unmeasured). --no-pin-shards:
# gatewayd's pin-shards = false; --shard-nice N: gatewayd's shard-nice (default its own, 0).
# Nothing else is pinned: not the clients, not the servers, not pasta; gatewayd pins its own
# shards. Every server listens on 127.0.0.1 or on an address of a veth made here; everything made
# here (processes, namespaces gwmany-TAG-*, devices gwm-TAG-*) is removed at the end, on failure
# and on Ctrl-C. The ARP table's gc thresholds and fs.inotify.max_user_instances are raised for
# the run when too low for N, and put back at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
source Tools/bench-lib.sh

N=8
SECS=5
LOAD_SECS=
MTU=1500
PATHS=gatewayd,pasta,veth
ROUND_TRIPS=1000
JSON_OUT=
BUILD=1
PIN_SHARDS=true
GWD_NICE=0
WORKLOADS=iperf
REQUESTS=50
ROUNDS=5

while (($#)); do
    # Every option but the flags takes a value: a missing one is an error, not an empty value.
    case "$1" in
        --sandboxes|--workload|--requests|--rounds|--seconds|--load-seconds|--mtu|--paths|--round-trips|--json|--shard-nice)
            (($# >= 2)) || { echo "$1 takes a value (try --help)" >&2; exit 2; } ;;
    esac
    case "$1" in
        --sandboxes) N=$2; shift 2 ;;
        --workload) WORKLOADS=$2; shift 2 ;;
        --requests) REQUESTS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --seconds) SECS=$2; shift 2 ;;
        --load-seconds) LOAD_SECS=$2; shift 2 ;;
        --mtu) MTU=$2; shift 2 ;;
        --paths) PATHS=$2; shift 2 ;;
        --round-trips) ROUND_TRIPS=$2; shift 2 ;;
        --json) JSON_OUT=$(realpath -m "$2"); shift 2 ;;
        --skip-build) BUILD=0; shift ;;
        --no-pin-shards) PIN_SHARDS=false; shift ;;
        --shard-nice) GWD_NICE=$2; shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
        *) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done
if ! [[ $N =~ ^[0-9]+$ ]] || ((N < 1 || N > 200)); then echo "--sandboxes takes 1-200" >&2; exit 2; fi
if ! [[ $SECS =~ ^[0-9]+$ ]] || ((SECS < 2)); then echo "--seconds takes a whole number ≥ 2" >&2; exit 2; fi
LOAD_SECS=${LOAD_SECS:-$((SECS + 10))}
if ! [[ $LOAD_SECS =~ ^[0-9]+$ ]] || ((LOAD_SECS < 2)); then echo "--load-seconds takes a whole number ≥ 2" >&2; exit 2; fi
if ! [[ $MTU =~ ^[0-9]+$ ]] || ((MTU < 576 || MTU > 65535)); then echo "--mtu takes 576-65535" >&2; exit 2; fi
if ! [[ $ROUND_TRIPS =~ ^[0-9]+$ ]] || ((ROUND_TRIPS < 1)); then echo "--round-trips takes a whole number ≥ 1" >&2; exit 2; fi
if ! [[ $GWD_NICE =~ ^-?[0-9]+$ ]] || ((GWD_NICE < -20 || GWD_NICE > 19)); then echo "--shard-nice takes -20-19" >&2; exit 2; fi
if ! [[ $REQUESTS =~ ^[0-9]+$ ]] || ((REQUESTS < 1 || REQUESTS > 100000)); then
    echo "--requests takes 1-100000" >&2; exit 2
fi
if ! [[ $ROUNDS =~ ^[0-9]+$ ]] || ((ROUNDS < 1 || ROUNDS > 1000)); then echo "--rounds takes 1-1000" >&2; exit 2; fi
want() { [[ ",$PATHS," == *",$1,"* ]]; }
ORDER=()
for p in $(tr , ' ' <<<"$PATHS"); do
    [[ $p == gatewayd || $p == pasta || $p == veth ]] || { echo "--paths: unknown path '$p' (gatewayd, pasta, veth)" >&2; exit 2; }
done
for p in gatewayd pasta veth; do want "$p" && ORDER+=("$p"); done
((${#ORDER[@]})) || { echo "--paths names none of gatewayd, pasta, veth" >&2; exit 2; }
wants_workload() { [[ ",$WORKLOADS," == *",$1,"* ]]; }
for w in $(tr , ' ' <<<"$WORKLOADS"); do
    [[ $w == iperf || $w == crr || $w == fetch ]] || { echo "--workload: unknown workload '$w' (iperf, crr, fetch)" >&2; exit 2; }
done
WORKLOAD_ORDER=()
for w in iperf crr fetch; do wants_workload "$w" && WORKLOAD_ORDER+=("$w"); done
((${#WORKLOAD_ORDER[@]})) || { echo "--workload names none of iperf, crr, fetch" >&2; exit 2; }
# Sandbox 0, the latency probe, belongs to the iperf workload.
FIRST=1
wants_workload iperf && FIRST=0

bench_require_root bench-many.sh
# nginx-light: the HTTP server of the crr and fetch workloads (see README-bench-many.md for why).
bench_install_packages passt iperf3 python3 iproute2 util-linux libnl-3-dev libnl-route-3-dev pkg-config \
    $(wants_workload crr || wants_workload fetch && echo nginx-light)

if want gatewayd; then bench_gatewayd_binaries "$BUILD"; fi

bench_init gw-benchmany
RR="$(pwd)/Tools/bench-rr.py"
CPUS=$(nproc)
# pasta_start pins pasta with `taskset -c LOOP_CPU`: every CPU is the same as no pinning.
LOOP_CPU=0-$((CPUS - 1))

# bench_cleanup removes what it recorded; this also sweeps anything of this run's tag that a
# half-finished setup step made before it could be recorded.
many_cleanup() {
    bench_cleanup
    local n l
    for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^gwmany-$TAG-"); do ip netns del "$n" 2>/dev/null; done
    for l in $(ip -o link 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^gwm-$TAG-"); do
        ip link del "$l" 2>/dev/null
    done
    return 0
}
trap many_cleanup EXIT

# Without it, at N = 200 with another run on the machine, fetches stalled for seconds (SYNs dropped
# until re-resolved) and veth connections failed with "No route to host".
raise_neighbour_limits $((4 * (N + 1)))

# One gatewayd with the default shard count (one per CPU), each shard pinned to its CPU by
# gatewayd itself (unless --no-pin-shards): the way it is meant to run with many sandboxes. No sweep of stale devices
# (it would take other runs' devices); a DNS upstream no resolver answers. Sets GWD_PID, GWD_SOCK.
gatewayd_start_sharded() {
    GWD_SOCK="$WORK/gatewayd.sock"
    cat >"$WORK/gatewayd.toml" <<TOML
pin-shards = $PIN_SHARDS
sweep-stale-devices = false
busy-poll-us = ${GWD_BUSY_POLL_US:-50}
shard-nice = $GWD_NICE
[dns]
upstreams = ["127.0.0.1:9"]
TOML
    gatewayd_unlimit_connections "$BINDIR"
    spawn "$BINDIR/gatewayd" --config "$WORK/gatewayd.toml" --control "$GWD_SOCK" \
        --state-dir "$WORK/gatewayd-state" --egress-policy host-only >"$WORK/gatewayd.log" 2>&1
    GWD_PID=$LAST_PID
    gatewayd_wait "$BINDIR" "$GWD_SOCK" && return 0
    echo "gatewayd did not open $GWD_SOCK; its log:" >&2
    cat "$WORK/gatewayd.log" >&2
    return 1
}

# Sandbox I of a path: its namespace, the address its client dials, the iperf3 port it uses.
# I = 0 is the latency probe (iperf workload only); 1…N carry the load. NETPIDS: the path's network
# processes (the N load sandboxes'); OWNPIDS: every long-lived process the path's iperf workload
# uses (those, the probe's, its servers). SETUP_S: seconds the path's N sandboxes took to set up.
declare -A SB_NS SB_ADDR NETPIDS OWNPIDS SETUP_S
PORTS=()
if wants_workload iperf; then
    for i in $(seq "$N"); do free_port "PORTS[$i]"; done
    free_port RR_PORT
    free_port CRR_PORT
fi
free_port HTTP_PORT

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# Microseconds since the epoch, without a fork.
now_us() { echo "${EPOCHREALTIME/./}"; }

# Seconds since T0 (from now_us), to a tenth.
seconds_since() {
    local d=$(($(now_us) - $1))
    printf '%d.%d' $((d / 1000000)) $((d / 100000 % 10))
}

echo "setting up ${ORDER[*]}: $N sandboxes each$( ((FIRST)) || echo " and one latency probe")…" >&2
# Servers on the host's loopback, shared by gatewayd and pasta (both carry their gateway address
# to 127.0.0.1) since the paths take turns; unpinned.
LO_SERVERS=
if wants_workload iperf && { want gatewayd || want pasta; }; then
    for i in $(seq "$N"); do
        spawn iperf3 -s -B 127.0.0.1 -p "${PORTS[$i]}" --logfile "$WORK/iperf3-server-lo-$i.log"
        LO_SERVERS+=" $LAST_PID"
    done
    spawn python3 "$RR" server --bind 127.0.0.1 --rr-port "$RR_PORT" --crr-port "$CRR_PORT"
    LO_SERVERS+=" $LAST_PID"
    for i in $(seq "$N"); do wait_listen 127.0.0.1 "${PORTS[$i]}"; done
    wait_listen 127.0.0.1 "$RR_PORT"
fi

if want gatewayd; then
    t0=$(now_us)
    gatewayd_start_sharded
    # Attached without gatewayd_attach's list after each: one list at the end finds every gateway
    # address (a list per attach made the setup of 200 grow with the square of N).
    for i in $(seq "$FIRST" "$N"); do
        ns=gwmany-$TAG-gwd-$i
        netns_add "$ns"
        "$BINDIR/gatewayctl" --control "$GWD_SOCK" attach "many-$TAG-$i" --netns "$ns" --mtu "$MTU" >/dev/null
        SB_NS[gatewayd,$i]=$ns
    done
    NETPIDS[gatewayd]=$GWD_PID
    OWNPIDS[gatewayd]="$GWD_PID$LO_SERVERS"
    "$BINDIR/gatewayctl" --control "$GWD_SOCK" list --json >"$WORK/gatewayd-list.json"
    while read -r i gw; do SB_ADDR[gatewayd,$i]=$gw; done < <(python3 -c '
import json, sys
for s in json.load(open(sys.argv[1])):
    print(s["id"].rsplit("-", 1)[1], s["gatewayIPv4"])' "$WORK/gatewayd-list.json")
    for i in $(seq "$FIRST" "$N"); do
        [[ -n ${SB_ADDR[gatewayd,$i]:-} ]] || { echo "gatewayd lists no gateway address for many-$TAG-$i" >&2; exit 1; }
    done
    SETUP_S[gatewayd]=$(seconds_since "$t0")
fi

if want pasta; then
    t0=$(now_us)
    # Each pasta takes an inotify instance (to quit once its namespace is gone); the default 128
    # per user runs out before 200 sandboxes.
    raise_sysctl fs.inotify.max_user_instances $((2 * N + 256))
    NETPIDS[pasta]=
    OWNPIDS[pasta]=$LO_SERVERS
    for i in $(seq "$FIRST" "$N"); do
        ns=gwmany-$TAG-pasta-$i
        netns_add "$ns" no-ipv6
        pasta_start "$ns" "$MTU"
        SB_NS[pasta,$i]=$ns SB_ADDR[pasta,$i]=10.0.2.2
        ((i == 0)) || NETPIDS[pasta]+=" $PEER_PID"
        OWNPIDS[pasta]+=" $PEER_PID"
    done
    SETUP_S[pasta]=$(seconds_since "$t0")
fi

if want veth; then
    t0=$(now_us)
    NETPIDS[veth]=
    OWNPIDS[veth]=
    # One look for all the subnets: looking again for each would cost minutes at N = 200.
    mapfile -t SUBNETS < <(free_subnets $((N + 1 - FIRST)))
    ((${#SUBNETS[@]} == N + 1 - FIRST)) || { echo "not enough free 10.0.N.0/24 subnets for $N veths" >&2; exit 1; }
    for i in $(seq "$FIRST" "$N"); do
        ns=gwmany-$TAG-veth-$i
        netns_add "$ns"
        subnet=${SUBNETS[$((i - FIRST))]}
        veth_add "$ns" "gwm-$TAG-h$i" "gwm-$TAG-g$i" "$subnet" "$MTU"
        SB_NS[veth,$i]=$ns SB_ADDR[veth,$i]=$subnet.1
        if ((i == 0)); then
            spawn python3 "$RR" server --bind "$subnet.1" --rr-port "$RR_PORT" --crr-port "$CRR_PORT"
            OWNPIDS[veth]+=" $LAST_PID"
            wait_listen "$subnet.1" "$RR_PORT"
        elif wants_workload iperf; then
            spawn iperf3 -s -B "$subnet.1" -p "${PORTS[$i]}" --logfile "$WORK/iperf3-server-veth-$i.log"
            OWNPIDS[veth]+=" $LAST_PID"
            wait_listen "$subnet.1" "${PORTS[$i]}"
        fi
    done
    SETUP_S[veth]=$(seconds_since "$t0")
fi
for p in "${ORDER[@]}"; do echo "$p: $N sandboxes set up in ${SETUP_S[$p]} s" >&2; done

# The /proc files NAME (stat, task/*/schedstat) of the listed processes and of their children
# (gatewayd's worker, nginx's workers) that can be read, without a fork per process: with 200
# pasta processes, forks took seconds per reading.
proc_files() {
    local name=$1 p k kids f
    shift
    for p in "$@"; do
        kids=
        read -r kids 2>/dev/null <"/proc/$p/task/$p/children" || true
        for k in $p $kids; do
            for f in /proc/$k/$name; do [[ -r $f ]] && echo "$f"; done
        done
    done
}

# utime+stime, in clock ticks, of all the listed processes and their children together.
sum_ticks() {
    local files
    mapfile -t files < <(proc_files stat "$@")
    ((${#files[@]})) || { echo 0; return; }
    # A process may end between the listing and the reading: cat goes on past it, awk would not.
    cat "${files[@]}" 2>/dev/null | awk '{t += $14 + $15} END {print t + 0}'
}

# Nanoseconds the listed processes' threads together sat runnable without a CPU (field 2 of
# each /proc/PID/task/TID/schedstat).
sum_wait() {
    local files
    mapfile -t files < <(proc_files 'task/*/schedstat' "$@")
    ((${#files[@]})) || { echo 0; return; }
    cat "${files[@]}" 2>/dev/null | awk '{s += $2} END {printf "%.0f\n", s}'
}

# Busy clock ticks of the whole machine (user, nice, system, irq, softirq: not idle, iowait or the
# hypervisor's steal), from /proc/stat's first line.
machine_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat; }

# CPU ticks of everything this run started that has ended and been waited for (the clients and
# the probe): this shell's cutime + cstime (/proc/PID/stat fields 16 and 17).
waited_ticks() { awk '{print $16 + $17}' "/proc/$$/stat"; }

# The latency probe (sandbox 0 of PATH): first one fresh connection's connect + one round trip
# (to OUT.connect, in ms), then ROUND_TRIPS one-byte round trips over another connection to the
# path's RR server; JSON to OUT, its start and end (ns since the epoch) to OUT.time, every round
# trip (ns) to OUT.rtts.
rr_probe() {
    local path=$1 out=$2 t0
    t0=$(date +%s%N)
    run timeout -k 2 60 ip netns exec "${SB_NS[$path,0]}" python3 -c '
import socket, sys, time
t = time.perf_counter()
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=50)
c.sendall(b"x")
assert c.recv(1) == b"x"
print(f"{(time.perf_counter() - t) * 1e3:.3f}")
c.close()' "${SB_ADDR[$path,0]}" "$RR_PORT" >"$out.connect" || echo "$path: the probe's first connection failed" >&2
    run timeout -k 2 60 ip netns exec "${SB_NS[$path,0]}" python3 "$RR" rr --host "${SB_ADDR[$path,0]}" \
        --port "$RR_PORT" --round-trips "$ROUND_TRIPS" --warmup 100 --dump "$out.rtts" >"$out" || {
        echo "$path: the latency probe failed" >&2
        rm -f "$out"
    }
    echo "$t0 $(date +%s%N)" >"$out.time"
}

# One phase of PATH: all N clients started together, guest→host (up), host→guest (down, -R), or
# guest→host with the latency probe running in sandbox 0 after a second of load (load). Leaves
# WORK/PATH-PHASE-I.json per sandbox and WORK/PATH-PHASE.meta (wall ns, network process ticks,
# machine ticks, failed clients, start and end ns). iperf3 3.12 now and then hangs at the end of
# a reverse test: each client is killed SECS+15 s after it started, and a phase in which any
# client failed is run once more, whole, so that the N always ran together.
run_phase() {
    local path=$1 phase=$2 flag='' secs=$SECS attempt i rc failed t0 t1 c0 c1 m0 m1 o0 o1 w0 w1 base="$WORK/$1-$2"
    local -a pids
    [[ $phase == down ]] && flag=-R
    [[ $phase == load ]] && secs=$LOAD_SECS
    for attempt in 1 2; do
        pids=()
        failed=0
        # shellcheck disable=SC2086
        c0=$(sum_ticks ${NETPIDS[$path]})
        # shellcheck disable=SC2086
        w0=$(sum_wait ${NETPIDS[$path]})
        m0=$(machine_ticks)
        # shellcheck disable=SC2086
        o0=$(($(sum_ticks ${OWNPIDS[$path]}) + $(waited_ticks)))
        t0=$(date +%s%N)
        for i in $(seq "$N"); do
            spawn timeout -k 2 $((secs + 15)) ip netns exec "${SB_NS[$path,$i]}" \
                iperf3 -c "${SB_ADDR[$path,$i]}" -p "${PORTS[$i]}" -t "$secs" -J $flag >"$base-$i.json"
            pids+=("$LAST_PID")
        done
        if [[ $phase == load ]]; then
            sleep 1
            rr_probe "$path" "$base-rr.json"
        fi
        for i in $(seq "$N"); do
            rc=0
            wait "${pids[$((i - 1))]}" || rc=$?
            forget "${pids[$((i - 1))]}"
            if ((rc != 0)); then
                failed=$((failed + 1))
                echo "$path $phase: iperf3 in sandbox $i exited $rc (attempt $attempt of 2)" >&2
            fi
        done
        t1=$(date +%s%N)
        # shellcheck disable=SC2086
        c1=$(sum_ticks ${NETPIDS[$path]})
        # shellcheck disable=SC2086
        w1=$(sum_wait ${NETPIDS[$path]})
        m1=$(machine_ticks)
        # shellcheck disable=SC2086
        o1=$(($(sum_ticks ${OWNPIDS[$path]}) + $(waited_ticks)))
        ((failed == 0)) && break
        sleep 2
    done
    echo "$((t1 - t0)) $((c1 - c0)) $((m1 - m0)) $failed $t0 $t1 $((o1 - o0)) $secs $((w1 - w0))" >"$base.meta"
    python3 - "$base" "$N" "$path" "$phase" <<'EOF' >&2
import json, sys
base, n, path, phase = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rates, errors = [], {}
for i in range(1, n + 1):
    try:
        it = json.load(open(f"{base}-{i}.json"))
    except (OSError, ValueError) as e:
        errors[i] = f"no JSON ({e.__class__.__name__})"
        continue
    try:
        rates.append(it["end"]["sum_received"]["bits_per_second"] / 1e9)
    except KeyError:
        errors[i] = it.get("error", "no sum_received")
s = f"{path} {phase}: {sum(rates):.2f} Gbps over {len(rates)} of {n} sandboxes"
if rates:
    s += f" (min {min(rates):.2f}, max {max(rates):.2f})"
try:
    r = json.load(open(f"{base}-rr.json"))
    s += f"; probe RTT median {r['median_us']:.1f} µs, p99 {r['p99_us']:.1f} µs"
except (OSError, ValueError):
    pass
print(s)
for i, e in sorted(errors.items()):
    print(f"  sandbox {i}: {e}")
EOF
}

# The HTTP server of the crr and fetch workloads: nginx, one worker process per CPU, each with
# its own listening socket per address (reuseport), sendfile, no access log; on 127.0.0.1 for
# gatewayd and pasta and on every veth's host address, all on HTTP_PORT. /s answers one byte (crr),
# /blob is 1 MiB (fetch). Connections are kept alive, so the client closes first. Sets NGINX_PID.
nginx_start() {
    local dir="$WORK/nginx" listen="" i
    mkdir -p "$dir" "$WORK/www"
    head -c $((1 << 20)) /dev/urandom >"$WORK/www/blob"
    chmod 644 "$WORK/www/blob"
    if want gatewayd || want pasta; then listen+="        listen 127.0.0.1:$HTTP_PORT reuseport backlog=4096;"$'\n'; fi
    if want veth; then
        for i in $(seq 1 "$N"); do listen+="        listen ${SB_ADDR[veth,$i]}:$HTTP_PORT reuseport backlog=4096;"$'\n'; done
    fi
    cat >"$dir/nginx.conf" <<CONF
daemon off;
user www-data;
worker_processes $CPUS;
worker_rlimit_nofile 65536;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
    worker_connections 16384;
}
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 60s;
    keepalive_requests 100000;
    default_type application/octet-stream;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    server {
$listen        root $WORK/www;
        location = /s {
            return 200 "x";
        }
    }
}
CONF
    spawn nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
    NGINX_PID=$LAST_PID
    if want gatewayd || want pasta; then wait_listen 127.0.0.1 "$HTTP_PORT"; fi
    if want veth; then wait_listen "${SB_ADDR[veth,$N]}" "$HTTP_PORT"; fi
    kill -0 "$NGINX_PID" 2>/dev/null || { echo "nginx did not start:" >&2; cat "$dir/error.log" >&2; return 1; }
}

# Reads COUNT bytes from the ready FIFO (fd READY_FD) within SECS seconds; sets GOT to how many came.
collect_ready() {
    local count=$1 secs=$2 end=$((SECONDS + $2)) c
    GOT=0
    while ((GOT < count && SECONDS < end)); do
        read -r -N 1 -t $((end - SECONDS)) -u "$READY_FD" c || break
        GOT=$((GOT + 1))
    done
}

# One crr or fetch workload of PATH: one bench-many-guest.py per sandbox, each making ROUNDS rounds
# of CONNS connections to nginx for URL, then exiting when told (after the CPU readings). For each
# round this shell writes a start time (100 ms + 1 ms per sandbox ahead) to every client's own go
# FIFO; the round ends when every client has written one byte back to the shared ready FIFO. The
# clients' interpreters start before the first round, untimed. (One go FIFO for all would wake its
# readers one after another, each woken by the last, and let a quick client take a slow one's
# turn.) Leaves WORK/PATH-KIND-I.json per sandbox and WORK/PATH-KIND.meta: the clients' start-up
# seconds, how many started, the network processes', the machine's and nginx's CPU ticks and the
# network processes' run-queue wait (ns) over the rounds, whether a round ran out of time; then
# each round's start and end (µs since the epoch).
run_rounds() {
    local path=$1 kind=$2 base="$WORK/$1-$2" rounds=1 conns=$REQUESTS url=/s round_limit i t0 late=0 fd
    local c0 c1 m0 m1 s0 s1 w0 w1 started at
    local -a pids=() marks=() go_fds=()
    # Each connection may take the client's 30 s timeout; a stalled path should not hold the run for long.
    round_limit=$((120 + REQUESTS * N / 50))
    [[ $kind == fetch ]] && rounds=$ROUNDS conns=1 url=/blob round_limit=120
    rm -f "$WORK"/go-* "$WORK/ready"
    mkfifo "$WORK/ready"
    for i in $(seq "$N"); do mkfifo "$WORK/go-$i"; done
    # Held open for reading and writing here, so that no open blocks and no byte is lost; the go
    # FIFOs only once the clients are spawned, which then do not inherit 200 of them.
    exec {READY_FD}<>"$WORK/ready"
    t0=$(now_us)
    for i in $(seq "$N"); do
        spawn timeout -k 2 $((180 + rounds * round_limit)) ip netns exec "${SB_NS[$path,$i]}" python3 "$GUEST" \
            --host "${SB_ADDR[$path,$i]}" --port "$HTTP_PORT" --path "$url" --connections "$conns" \
            --go "$WORK/go-$i" --ready "$WORK/ready" >"$base-$i.json"
        pids+=("$LAST_PID")
    done
    for i in $(seq "$N"); do
        exec {fd}<>"$WORK/go-$i"
        go_fds+=("$fd")
    done
    collect_ready "$N" 180
    started=$GOT
    local start_s
    start_s=$(seconds_since "$t0")
    # shellcheck disable=SC2086
    c0=$(sum_ticks ${NETPIDS[$path]}) w0=$(sum_wait ${NETPIDS[$path]}) s0=$(sum_ticks "$NGINX_PID") m0=$(machine_ticks)
    if ((started == N)); then
        for ((r = 1; r <= rounds; r++)); do
            at=$(($(now_us) + 100000 + N * 1000))
            for fd in "${go_fds[@]}"; do printf 'g%s000' "$at" >&"$fd"; done
            collect_ready "$N" "$round_limit"
            marks+=("$at $(now_us)")
            if ((GOT < N)); then
                echo "$path $kind: round $r: only $GOT of $N clients ended within $round_limit s" >&2
                late=1
                break
            fi
        done
    else
        echo "$path $kind: only $started of $N clients started within 180 s" >&2
    fi
    # shellcheck disable=SC2086
    c1=$(sum_ticks ${NETPIDS[$path]}) w1=$(sum_wait ${NETPIDS[$path]}) s1=$(sum_ticks "$NGINX_PID") m1=$(machine_ticks)
    # Now the clients may print and exit.
    for fd in "${go_fds[@]}"; do printf q >&"$fd"; done
    for i in "${pids[@]}"; do
        ((started == N && !late)) || kill "$i" 2>/dev/null || true
        wait "$i" 2>/dev/null || true
        forget "$i"
    done
    for fd in "${go_fds[@]}"; do exec {fd}>&-; done
    exec {READY_FD}>&-
    rm -f "$WORK"/go-* "$WORK/ready"
    {
        echo "$start_s $started $((c1 - c0)) $((m1 - m0)) $((s1 - s0)) $((w1 - w0)) $late"
        for i in "${marks[@]}"; do echo "$i"; done
    } >"$base.meta"
    python3 Tools/bench_many_rounds.py "$WORK" "$path" "$kind" "$N" "$(getconf CLK_TCK)" >&2
}

if wants_workload iperf; then
    # The paths take turns phase by phase, so that load from elsewhere on the machine falls on each alike.
    for p in "${ORDER[@]}"; do rr_probe "$p" "$WORK/$p-idle-rr.json"; done
    for phase in up down load; do
        echo "== phase $phase: ${ORDER[*]} ==" >&2
        for p in "${ORDER[@]}"; do run_phase "$p" "$phase"; done
    done
fi
if wants_workload crr || wants_workload fetch; then
    GUEST="$(pwd)/Tools/bench-many-guest.py"
    nginx_start
    for w in crr fetch; do
        wants_workload "$w" || continue
        echo "== workload $w: ${ORDER[*]} ==" >&2
        for p in "${ORDER[@]}"; do
            # GWD_PERF=PREFIX: perf record -g of gatewayd's worker during its run of each workload,
            # kept as PREFIX-WORKLOAD.data (for perf report), to see where a path's time goes.
            perf_pid=
            if [[ $p == gatewayd && -n ${GWD_PERF:-} ]]; then
                worker=$(pgrep -P "$GWD_PID" | head -1 || true)
                perf record -q -g -o "$GWD_PERF-$w.data" -p "${worker:-$GWD_PID}" 2>/dev/null &
                perf_pid=$!
            fi
            run_rounds "$p" "$w"
            [[ -z $perf_pid ]] || { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
        done
    done
    stop "$NGINX_PID"
fi
if want gatewayd; then
    # Its counters, drops among them, for every sandbox (the probe's too) over the whole run.
    for i in $(seq "$FIRST" "$N"); do
        "$BINDIR/gatewayctl" --control "$GWD_SOCK" stats "many-$TAG-$i" --json >"$WORK/gatewayd-stats-$i.json" || true
    done
    stop "$GWD_PID"
fi

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- one table and JSON --------------------------------------------------------------------------
python3 - "$WORK" "$DATE" "$N" "$SECS" "$LOAD_SECS" "$MTU" "$ROUND_TRIPS" "$LOAD_BEFORE" "$LOAD_AFTER" "$JSON_OUT" \
    "$(getconf CLK_TCK)" "$(uname -r)" "$CPUS" "${GWD_BUSY_POLL_US:-50}" "$PIN_SHARDS" "$GWD_NICE" \
    "${WORKLOAD_ORDER[*]}" "$REQUESTS" "$ROUNDS" "$FIRST" \
    "$(for p in "${ORDER[@]}"; do echo -n "$p=${SETUP_S[$p]} "; done)" "${ORDER[@]}" <<'EOF'
import json, os, statistics, sys
(work, date, n, secs, load_secs, mtu, round_trips, load0, load1, json_out, clk, kernel, cpus,
 busy_poll, pin_shards, gwd_nice, workloads, requests, nrounds, first, setup) = sys.argv[1:22]
order = sys.argv[22:]
n, clk, cpus, first = int(n), int(clk), int(cpus), int(first)
workloads = workloads.split()
setup_s = {k: float(v) for k, v in (x.split("=") for x in setup.split())}
sys.path.insert(0, "Tools")
from bench_many_rounds import line as bench_line, summarize

def load(name):
    try:
        return json.load(open(os.path.join(work, name)))
    except (OSError, ValueError):
        return None

labels = {"gatewayd": "gatewayd (1 process)", "pasta": f"pasta ({n} processes)", "veth": f"kernel veth ×{n}"}
phases = [("up", "↑ guest→host"), ("down", "↓ host→guest"), ("load", "↑ + RTT probe")]
rows = []
for path in order if "iperf" in workloads else []:
    idle = load(f"{path}-idle-rr.json")
    for phase, plabel in phases:
        base = f"{path}-{phase}"
        rates, nbytes, errors = [], 0, []
        for i in range(1, n + 1):
            it = load(f"{base}-{i}.json")
            if it and "end" in it and "sum_received" in it["end"]:
                r = it["end"]["sum_received"]
                rates.append(r["bits_per_second"] / 1e9)
                nbytes += r["bytes"]
            else:
                errors.append((it or {}).get("error", "no JSON from iperf3"))
        wall_ns, net_ticks, mach_ticks, failed, t0, t1, own_ticks, psecs, net_wait_ns = (
            int(x) for x in open(os.path.join(work, base + ".meta")).read().split())
        row = dict(path=path, label=labels[path], phase=phase, phase_label=plabel, sandboxes=n, seconds=psecs,
                   reported=len(rates), client_errors=errors,
                   failed_clients=failed, per_sandbox_gbps=[round(x, 4) for x in rates], wall_s=wall_ns / 1e9)
        if rates:
            row.update(aggregate_gbps=sum(rates), min_gbps=min(rates), median_gbps=statistics.median(rates),
                       max_gbps=max(rates), jain=sum(rates) ** 2 / (len(rates) * sum(x * x for x in rates)))
        if nbytes:
            gb = nbytes / 1e9
            row["bytes"] = nbytes
            if path != "veth":
                row["net_cpu_s"] = net_ticks / clk
                row["net_cpu_s_per_gb"] = net_ticks / clk / gb
                row["net_busy"] = net_ticks / clk / (wall_ns / 1e9)
                row["net_wait"] = net_wait_ns / wall_ns
            row["run_cpu_s_per_gb"] = own_ticks / clk / gb
            row["machine_cpu_s_per_gb"] = mach_ticks / clk / gb
            row["machine_busy"] = mach_ticks / clk / (wall_ns / 1e9) / cpus
        if phase == "load":
            rr = load(f"{base}-rr.json")
            if rr:
                row.update(rtt_median_us=rr["median_us"], rtt_p99_us=rr["p99_us"], rtt_mean_us=rr["mean_us"])
                p0, p1 = (int(x) for x in open(os.path.join(work, base + "-rr.json.time")).read().split())
                # The probe must have ended while the clients were still sending (they started at t0).
                row["probe_within_load"] = p1 <= t0 + psecs * 10**9
                row["probe_seconds"] = (p1 - p0) / 1e9
                try:
                    rtts = [int(x) / 1e3 for x in open(os.path.join(work, base + "-rr.json.rtts")).read().split()]
                except OSError:
                    rtts = []
                try:
                    row["probe_connect_ms"] = float(open(os.path.join(work, base + "-rr.json.connect")).read())
                except (OSError, ValueError):
                    pass
                if rtts:
                    # What the probe spent outside its timed round trips: interpreter start, the
                    # first connection, connecting again, 100 warm-up round trips.
                    row["probe_untimed_s"] = row["probe_seconds"] - sum(rtts) / 1e6
                    row["rtt_max_us"] = max(rtts)
                    row["rtt_slow"] = {f"over_{t}_ms": sum(1 for x in rtts if x > t * 1e3) for t in (1, 10, 100)}
                    # How much of the probe's time the slowest 1 % of round trips took.
                    top = sorted(rtts)[-max(1, len(rtts) // 100):]
                    row["rtt_top1pct_share"] = sum(top) / sum(rtts)
            if idle:
                row.update(idle_rtt_median_us=idle["median_us"], idle_rtt_p99_us=idle["p99_us"],
                           idle_rtt_mean_us=idle["mean_us"])
        rows.append(row)

drops = {}
# Frames on the sandboxes' links over the whole run, and their mean size: how well the shards
# batch (a 64 KB GSO frame per write is cheap per byte, many small frames are not).
link = dict(framesIn=0, framesOut=0, bytesIn=0, bytesOut=0)
for i in range(first, n + 1):
    st = load(f"gatewayd-stats-{i}.json")
    for k, v in ((st or {}).get("drops") or {}).items():
        if v:
            drops.setdefault(k, {})[i] = v
    for k in link:
        link[k] += (st or {}).get(k) or 0

shards, probe_shard = None, None
lst = load("gatewayd-list.json")
if lst:
    shards = {}
    for s in lst:
        shards[s.get("shard")] = shards.get(s.get("shard"), 0) + 1
        if s.get("id", "").endswith("-0"):
            probe_shard = s.get("shard")

# gatewayd's throughput shard by shard (sandbox i is many-TAG-i).
shard_of = {}
for s in lst or []:
    try:
        shard_of[int(s["id"].rsplit("-", 1)[1])] = s["shard"]
    except (KeyError, ValueError):
        pass
for r in rows:
    if r["path"] == "gatewayd" and shard_of and len(r["per_sandbox_gbps"]) == n:
        per = {}
        for i, x in enumerate(r["per_sandbox_gbps"], start=1):
            per.setdefault(shard_of.get(i), []).append(x)
        r["per_shard_gbps"] = {str(k): round(sum(v), 3) for k, v in sorted(per.items(), key=lambda kv: str(kv[0]))}
        r["per_shard_sandboxes"] = {str(k): len(v) for k, v in sorted(per.items(), key=lambda kv: str(kv[0]))}

from bench_table import f, print_table

header = ["path", "phase", "agg Gbps", "min", "median", "max", "Jain", "net CPU s/GB", "net busy", "net wait",
          "all CPU s/GB", "machine busy", "RTT p50 µs", "RTT p99 µs", "RTT mean µs", "RTT max ms", "idle p50 µs"]
table = [header]
for r in rows:
    table.append([r["label"] if r["phase"] == "up" else "", r["phase_label"], f(r.get("aggregate_gbps")),
                  f(r.get("min_gbps")), f(r.get("median_gbps")), f(r.get("max_gbps")), f(r.get("jain"), "{:.3f}"),
                  f(r.get("net_cpu_s_per_gb")), f(r.get("net_busy") and r["net_busy"] * 100, "{:.0f}%"),
                  f(r.get("net_wait") and r["net_wait"] * 100, "{:.0f}%"),
                  f(r.get("run_cpu_s_per_gb")), f(r.get("machine_busy") and r["machine_busy"] * 100, "{:.0f}%"),
                  f(r.get("rtt_median_us"), "{:.1f}"), f(r.get("rtt_p99_us"), "{:.1f}"), f(r.get("rtt_mean_us"), "{:.1f}"),
                  f(r.get("rtt_max_us") and r["rtt_max_us"] / 1e3, "{:.1f}"),
                  f(r.get("idle_rtt_median_us"), "{:.1f}")])
described = dict(iperf=f"iperf (iperf3, one TCP stream each, {secs} s, {load_secs} s with the probe)",
                 crr=f"crr ({requests} sequential connections each)", fetch=f"fetch ({nrounds} rounds of 1 MiB each)")
print(f"many-sandbox benchmark {date}, kernel {kernel}, {cpus} CPUs; {n} sandboxes per path, MTU {mtu}; workloads "
      + ", ".join(described[w] for w in workloads))
print(f"gatewayd: one process, {cpus} shards, pin-shards = {pin_shards}, busy-poll-us = {busy_poll}"
      + f", shard-nice = {gwd_nice}"
      + (", sandboxes per shard " + ", ".join(f"{k}: {v}" for k, v in sorted(shards.items()))
       + (f" (the probe's, on shard {probe_shard}, included)" if first == 0 else "") if shards else "")
      + "; clients, servers and pasta unpinned")
print(f"load average before {load0}, after {load1}; setup of {n} sandboxes: "
      + ", ".join(f"{p} {setup_s[p]:.1f} s" for p in order if p in setup_s))
if rows:
    print()
    print_table(table, left=2)
    print()
if rows:
    print("agg: sum of the N clients' iperf3 receiver figures; min / median / max: one sandbox's; Jain: fairness")
    print("  index (Σx)² / (N·Σx²), 1 = all equal, 1/N = one sandbox took everything.")
    print("net CPU: utime+stime (/proc/PID/stat) of gatewayd's supervisor and worker, or of the N pasta processes summed,")
    print("  over the phase, per 10^9 payload bytes; busy = that ÷ wall time (may pass 100 % with 2+ CPUs);")
    print("  wait = time their threads sat runnable without a CPU (schedstat) ÷ wall time.")
    print("all CPU: of everything the path's phase ran (clients, servers, network processes, the probe) per")
    print("  10^9 bytes: other load on the machine excluded. machine busy: all CPUs' non-idle time (/proc/stat,")
    print(f"  without steal) ÷ ({cpus} × wall time), whoever used it.")
    print(f"RTT: one more sandbox on the same path, {round_trips} one-byte TCP round trips (bench-rr.py rr) started one")
    print("  second into a third ↑ phase, to a server on 127.0.0.1 (veth: its own host end); idle p50: the same")
    print("  probe before any load.")
if link["framesOut"] or link["framesIn"]:
    mean = lambda b, f: f"{b / f / 1024:.1f} KiB" if f else "-"
    print(f"gatewayd links over the run: to the guests {link['framesOut']:,} frames, mean "
          f"{mean(link['bytesOut'], link['framesOut'])}; from the guests {link['framesIn']:,} frames, mean "
          f"{mean(link['bytesIn'], link['framesIn'])}")
if drops:
    print("gatewayd drops over the run (sandbox: count; 0 is the probe): " + "; ".join(
        f"{k} " + ", ".join(f"{i}: {v}" for i, v in sorted(d.items())) for k, d in sorted(drops.items())))
for r in rows:
    if r.get("per_shard_gbps"):
        print(f"gatewayd {r['phase_label']} by shard: " + ", ".join(
            f"shard {k} {v:.2f} Gbps ({r['per_shard_sandboxes'][k]} sandboxes)" for k, v in r["per_shard_gbps"].items()))
for r in rows:
    if r["reported"] < n:
        print(f"note: {r['label']} {r['phase_label']}: only {r['reported']} of {n} clients reported"
              + (f" (first error: {r['client_errors'][0]})" if r["client_errors"] else ""))
    elif r["failed_clients"]:
        print(f"note: {r['label']} {r['phase_label']}: the phase was run twice ({r['failed_clients']} clients failed first)")
    if r.get("rtt_slow") and r["rtt_slow"]["over_10_ms"]:
        sl = r["rtt_slow"]
        print(f"{r['label']} RTT probe under load: {sl['over_1_ms']} round trips over 1 ms, {sl['over_10_ms']} over 10 ms, "
              f"{sl['over_100_ms']} over 100 ms; the slowest 1 % took {r['rtt_top1pct_share'] * 100:.0f} % of its time")
    if r.get("probe_connect_ms") is not None:
        print(f"{r['label']} RTT probe under load: first connection + 1 round trip {r['probe_connect_ms']:.1f} ms; "
              f"{r.get('probe_untimed_s', 0):.1f} of the probe's {r['probe_seconds']:.1f} s outside the timed round trips")
    if r.get("probe_within_load") is False:
        print(f"note: {r['label']}: the RTT probe ({r['probe_seconds']:.1f} s) outlasted the load; "
              "use more --load-seconds or fewer --round-trips")

# --- crr and fetch -------------------------------------------------------------------------------
crr = [summarize(work, p, "crr", n, clk, cpus) for p in order] if "crr" in workloads else []
fetch = [summarize(work, p, "fetch", n, clk, cpus) for p in order] if "fetch" in workloads else []
pct = lambda v: f(v is not None and v * 100 or None, "{:.0f}%")
if crr:
    table = [["path", "conn/s", "min /s", "median /s", "max /s", "Jain", "errors", "net µs/conn", "nginx µs/conn",
              "clients µs/conn", "machine µs/conn", "net busy", "machine busy", "wall s", "start ms"]]
    for r in crr:
        table.append([labels[r["path"]], f(r.get("per_second"), "{:.0f}"), f(r.get("min_sandbox"), "{:.1f}"),
                      f(r.get("median_sandbox"), "{:.1f}"), f(r.get("max_sandbox"), "{:.1f}"),
                      f(r.get("jain"), "{:.3f}"), str(r["errors"]), f(r.get("net_us_per_conn"), "{:.0f}"),
                      f(r.get("server_us_per_conn"), "{:.0f}"), f(r.get("client_us_per_conn"), "{:.0f}"),
                      f(r.get("machine_us_per_conn"), "{:.0f}"),
                      pct(r.get("net_busy")), pct(r.get("machine_busy")), f(r.get("wall_s")),
                      f(r.get("start_spread_ms"), "{:.0f}")])
    print()
    print(f"crr: {n} sandboxes at once, each {requests} sequential connections (connect, GET of 1 byte, answer, the client closes)")
    print()
    print_table(table, left=1)
    print()
    print("conn/s: all completed ÷ the time from the release of the clients to the last one's end; min / median /")
    print("  max: one sandbox's own rate (its connections ÷ its own time); errors: failed connections and clients")
    print("  that did not report. CPU µs per completed connection over the round: net = gatewayd's processes or")
    print("  the N pasta processes summed (utime+stime); nginx = the server's master and workers; clients = the N")
    print("  python clients' own CPU time over their connections; machine = all CPUs' non-idle time, whoever used")
    print(f"  it (other load too). busy: ÷ wall time (net) or ÷ {cpus} × wall time (machine). start ms: how long")
    print("  after the release the last client began.")
if fetch:
    table = [["path", "round", "agg Gbps", "min", "median", "max", "Jain", "errors", "wall ms", "start ms"]]
    for r in fetch:
        for x in r["rounds"]:
            table.append([labels[r["path"]] if x["round"] == 1 else "", str(x["round"]), f(x.get("aggregate_gbps")),
                          f(x.get("min_sandbox")), f(x.get("median_sandbox")), f(x.get("max_sandbox")),
                          f(x.get("jain"), "{:.3f}"), str(x["errors"]), f(x.get("wall_s") and x["wall_s"] * 1e3, "{:.0f}"),
                          f(x.get("start_spread_ms"), "{:.0f}")])
    print()
    print(f"fetch: {nrounds} rounds; in each, {n} sandboxes at once fetch 1 MiB over a new connection")
    print()
    print_table(table, left=1, blank_before=lambda i, t=table: i > 1 and t[i][0] != "")
    print()
    table = [["path", "median agg Gbps", "lowest Jain", "errors", "net CPU s/GB", "nginx CPU s/GB", "clients CPU s/GB",
              "machine CPU s/GB", "net busy", "machine busy"]]
    for r in fetch:
        table.append([labels[r["path"]], f(r.get("median_aggregate_gbps")), f(r.get("lowest_jain"), "{:.3f}"),
                      str(r["errors"]), f(r.get("net_cpu_s_per_gb")), f(r.get("server_cpu_s_per_gb")),
                      f(r.get("client_cpu_s_per_gb")),
                      f(r.get("machine_cpu_s_per_gb")), pct(r.get("net_busy")), pct(r.get("machine_busy"))])
    print_table(table, left=1)
    print()
    print("agg: all bytes of the round ÷ the time from its release to the last client's end; min / median / max:")
    print("  one sandbox's 1 MiB ÷ its own transfer time (connect to last byte); Jain over those. CPU per 10^9")
    print("  bytes over all rounds, as for crr.")
for r in crr + fetch:
    if r["clients_started"] < n or r["late"] or r["errors"]:
        print(f"note: {labels[r['path']]} {r['workload']}: {bench_line(r)}")

if json_out:
    with open(json_out, "w") as fh:
        json.dump(dict(date=date, kernel=kernel, cpus=cpus, sandboxes=n, seconds=int(secs),
                       load_seconds=int(load_secs), mtu=int(mtu),
                       round_trips=int(round_trips), busy_poll_us=int(busy_poll), load_before=load0,
                       load_after=load1, gatewayd_pin_shards=pin_shards == "true", gatewayd_nice=int(gwd_nice),
                       gatewayd_sandboxes_per_shard=shards,
                       gatewayd_probe_shard=probe_shard, gatewayd_drops=drops, rows=rows,
                       workloads=workloads, requests=int(requests), rounds=int(nrounds), setup_seconds=setup_s,
                       crr=crr, fetch=fetch), fh, indent=1)
    print(f"JSON: {json_out}")
EOF
