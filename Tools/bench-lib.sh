# Shared pieces of the benchmark scripts (bench-stack.sh, bench-gateway.sh, …): what a run made and
# its removal, process helpers, iperf3 runs, and the setup of each compared path. Sourced, not run.
#
# The caller sets `set -euo pipefail`, calls bench_init, and may set before sourcing or after:
#   SECS (iperf3 seconds), REPEAT (runs per figure, best kept), LOOP_CPU (network process),
#   GUEST_CPU (guest-side tools).
# Every name made here carries the run's random TAG: namespaces gwbench-TAG-…, veth devices gwk-TAG-…
# (not gwe-: a gatewayd starting anywhere on the machine removes host devices named gwt-, gwb-,
# gwv-, gwe- as a crashed run's leftovers).

SECS=${SECS:-4}
REPEAT=${REPEAT:-1}
LOOP_CPU=${LOOP_CPU:-0}
GUEST_CPU=${GUEST_CPU:-1}

# --- setup ------------------------------------------------------------------------------------

bench_require_root() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "$1 makes namespaces and devices: run it as root (sudo Tools/$1)" >&2
        exit 1
    fi
}

# Installs the Debian packages named (those missing only), quietly.
bench_install_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "installing: ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    command -v swift >/dev/null || { echo "swift not found on PATH: install Swift 6.3 first" >&2; exit 1; }
}

# Sets TAG and WORK (a fresh directory under /tmp named after PREFIX) and installs the traps that
# remove everything the run made, on success, failure and Ctrl-C alike.
bench_init() {
    TAG=$(tr -dc 'a-z0-9' </dev/urandom | head -c 5 || true)
    WORK=$(mktemp -d "/tmp/$1-$TAG.XXXXXX")
    # gatewayd's unprivileged worker keeps its state under here.
    chmod 755 "$WORK"
    PIDS=()
    NAMESPACES=()
    LINKS=()
    RAISED=()
    trap bench_cleanup EXIT
    trap 'echo "interrupted: cleaning up" >&2; exit 130' INT TERM HUP PIPE
}

bench_cleanup() {
    set +e
    local p n l
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    for l in "${LINKS[@]}"; do ip link del "$l" 2>/dev/null; done
    for n in "${NAMESPACES[@]}"; do ip netns del "$n" 2>/dev/null; done
    # Whatever a helper (gateway-bench) made under this run's tag, should it have died before its own cleanup.
    for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^gwbench-$TAG-"); do ip netns del "$n" 2>/dev/null; done
    for l in $(ip -o link 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^gw[tek]-$TAG-"); do
        ip link del "$l" 2>/dev/null
    done
    local r name was set
    for r in "${RAISED[@]}"; do
        read -r name was set <<<"$r"
        [[ $(sysctl -n "$name") != "$set" ]] || sysctl -qw "$name=$was"
    done
    rm -rf "$WORK"
}

# Raises the kernel limit NAME to at least WANT for the run. bench_cleanup puts it back, unless
# something else (another run doing the same) changed it meanwhile.
raise_sysctl() {
    local name=$1 want=$2 now
    now=$(sysctl -n "$name")
    ((now >= want)) && return 0
    sysctl -qw "$name=$want"
    RAISED+=("$name $now $want")
}

# The kernel's ARP table is one for all namespaces: each sandbox holds an entry for its gateway
# (gatewayd, pasta) or two (veth: one in the namespace, one on the host), and beyond gc_thresh3
# (1,024 by default) new entries fail with "neighbor table overflow". Raised for ENTRIES more
# than the defaults allow, so that another run on the machine does not push this one's out.
raise_neighbour_limits() {
    raise_sysctl net.ipv4.neigh.default.gc_thresh2 $((512 + $1))
    raise_sysctl net.ipv4.neigh.default.gc_thresh3 $((1024 + $1))
}

# --- processes --------------------------------------------------------------------------------

# Starts a background process and records its PID (in LAST_PID) for cleanup.
spawn() {
    "$@" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

forget() {
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# Ends one recorded process (by its PID) and forgets it.
stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    forget "$1"
}

# Runs a command in the background and waits for it, so a signal reaches the trap at once.
run() {
    spawn "$@"
    local pid=$LAST_PID rc=0
    wait "$pid" || rc=$?
    forget "$pid"
    return $rc
}

# Waits until something listens on TCP ADDR:PORT (ADDR "" = any address) in namespace NS, or in
# the host namespace when NS is left out.
wait_listen() {
    local addr=$1 port=$2 ns=${3:-} filter
    if [[ -n $addr ]]; then filter="src $addr:$port"; else filter="sport = :$port"; fi
    for _ in $(seq 100); do
        ${ns:+ip netns exec "$ns"} ss -Hltn "$filter" 2>/dev/null | grep -q . && return 0
        sleep 0.05
    done
    echo "nothing listens on ${addr:-*}:$port${ns:+ in $ns}" >&2
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

# A TCP port in 20000-29999 that no socket in the host namespace uses: fixed ports would collide
# with another benchmark running at the same time, and that range is below the kernel's ephemeral
# ports (32768-60999 by default), which the run's own connections take. Sets the variable named.
free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 10000))
        [[ " ${TAKEN_PORTS:-} " == *" $p "* ]] && continue
        ss -Htan "sport = :$p" 2>/dev/null | grep -q . && continue
        TAKEN_PORTS="${TAKEN_PORTS:-} $p"
        printf -v "$1" %s "$p"
        return 0
    done
    echo "no free TCP port found in 20000-29999" >&2
    return 1
}

# PID and its children: gatewayd is a privileged supervisor and the worker it spawned, which
# carries the sandboxes; both count in its figures (pasta and slirp4netns have no children).
with_children() { echo "$1" $(cat "/proc/$1/task/$1/children" 2>/dev/null); }

# utime+stime of PID and its children in clock ticks, all their threads (/proc/PID/stat fields 14
# and 15; the name in field 2 has no spaces here).
cpu_ticks() {
    local p t=0
    for p in $(with_children "$1"); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
    echo "$t"
}

# Nanoseconds the threads of PID and its children have spent runnable but waiting for a CPU
# (field 2 of each /proc/PID/task/TID/schedstat): how much other load on the machine held them back.
run_wait_ns() {
    local p
    for p in $(with_children "$1"); do cat /proc/"$p"/task/*/schedstat 2>/dev/null; done |
        awk '{s += $2} END {printf "%.0f\n", s}'
}

# Waits until gatewayd answers on SOCK (its socket file exists before it listens); 0 when it does.
gatewayd_wait() {
    local bindir=$1 sock=$2
    for _ in $(seq 200); do "$bindir/gatewayctl" --control "$sock" list >/dev/null 2>&1 && return 0; sleep 0.05; done
    return 1
}

# --- namespaces and paths ---------------------------------------------------------------------

# Makes namespace NAME (recorded for cleanup); with "no-ipv6", IPv6 off inside (pasta and
# slirp4netns are configured for IPv4 only, and router solicitations would only add noise).
netns_add() {
    NAMESPACES+=("$1")
    ip netns add "$1"
    ip -n "$1" link set lo up
    if [[ ${2:-} == no-ipv6 ]]; then
        ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    fi
}

# COUNT /24s in 10.0.4.0-10.0.250.0 that no address or route on this host names yet; prints the
# first three octets of each, one a line. One look at the addresses and routes for all of them:
# free_subnet's look-ups per candidate take seconds per veth once there are a hundred.
free_subnets() {
    local count=$1 n used
    used=" $({ ip -4 -o addr show; ip -4 route show; } 2>/dev/null | { grep -oE '(^| )10\.0\.[0-9]+\.' || true; } |
        cut -d. -f3 | sort -u | tr '\n' ' ') "
    for n in $(seq 4 250); do
        ((count > 0)) || return 0
        [[ $used == *" $n "* ]] && continue
        echo "10.0.$n"
        count=$((count - 1))
    done
    ((count == 0)) || { echo "not enough free 10.0.N.0/24 subnets ($count short)" >&2; return 1; }
}

# A /24 in 10.0.4.0-10.0.250.0 that no address on this host is in yet; prints its first three octets.
free_subnet() {
    local n
    for n in $(seq 4 250); do
        ip -4 -o addr show to "10.0.$n.0/24" 2>/dev/null | grep -q . && continue
        ip -4 route show to match "10.0.$n.1" 2>/dev/null | grep -q "^10\.0\.$n\." && continue
        echo "10.0.$n"
        return 0
    done
    echo "no free 10.0.N.0/24 subnet" >&2
    return 1
}

# A veth pair HOST_IF (host, SUBNET.1/24) ↔ GUEST_IF (in NS, SUBNET.2/24), both up, at MTU.
veth_add() {
    local ns=$1 host_if=$2 guest_if=$3 subnet=$4 mtu=${5:-1500}
    LINKS+=("$host_if")
    ip link add "$host_if" mtu "$mtu" type veth peer name "$guest_if" netns "$ns" mtu "$mtu"
    ip addr add "$subnet.1/24" dev "$host_if"
    ip link set "$host_if" up
    ip -n "$ns" addr add "$subnet.2/24" dev "$guest_if"
    ip -n "$ns" link set "$guest_if" up
}

veth_set_mtu() {
    local ns=$1 host_if=$2 guest_if=$3 mtu=$4
    ip link set "$host_if" mtu "$mtu"
    ip -n "$ns" link set "$guest_if" mtu "$mtu"
}

# Builds the release gatewayd and gatewayctl when $1 is 1, and sets BINDIR to where they are;
# fails when either is missing (a --skip-build run without an earlier build). GWD_BINDIR, when
# set, names another build's binaries to use instead (another commit's, for before/after figures).
bench_gatewayd_binaries() {
    if [[ -n ${GWD_BINDIR:-} ]]; then
        BINDIR=$GWD_BINDIR
    elif (($1)); then
        echo "building gatewayd and gatewayctl (release)…" >&2
        swift build -c release --product gatewayd >&2
        swift build -c release --product gatewayctl >&2
    fi
    [[ -n ${GWD_BINDIR:-} ]] || BINDIR="$(swift build -c release --show-bin-path)"
    for b in gatewayd gatewayctl; do
        [[ -x $BINDIR/$b ]] || { echo "$BINDIR/$b is missing: run without --skip-build" >&2; return 1; }
    done
}

# Starts BINDIR's gatewayd as NAME: config WORK/NAME.toml (the caller writes it), control socket
# WORK/NAME.sock, state WORK/NAME-state, log WORK/NAME.log, then ARGS; pinned by taskset to the
# CPUs in GWD_CPUS when that is set. Returns once the control socket answers, so a gatewayctl
# right after it is not refused. Sets GWD_PID and GWD_SOCK.
gatewayd_spawn() {
    local bindir=$1 name=$2
    shift 2
    GWD_SOCK="$WORK/$name.sock"
    spawn ${GWD_CPUS:+taskset -c "$GWD_CPUS"} "$bindir/gatewayd" --config "$WORK/$name.toml" --control "$GWD_SOCK" \
        --state-dir "$WORK/$name-state" "$@" >"$WORK/$name.log" 2>&1
    GWD_PID=$LAST_PID
    gatewayd_wait "$bindir" "$GWD_SOCK" && return 0
    echo "gatewayd did not answer on $GWD_SOCK; its log:" >&2
    cat "$WORK/$name.log" >&2
    return 1
}

# Starts the release gatewayd from BINDIR with its own control socket and state under WORK, one
# shard on LOOP_CPU, host-only egress, and a DNS upstream (127.0.0.1:9, discard) that no real
# resolver answers. GWD_BUSY_POLL_US sets its busy-poll-us (default 50, gatewayd's own default),
# GWD_SHARD_NICE its shard-nice (default: gatewayd's own). Sets GWD_PID and GWD_SOCK.
# Builds that limit new flows per sandbox (200 a second by default) get no limit, so conn/s
# measures the data path; older builds do not know the key (and have no limit).
gatewayd_unlimit_connections() {
    if grep -q "half-open-timeout-ms" "$1/gatewayd"; then
        printf '[limits]\nconnection-rate = 0\n' >>"$WORK/gatewayd.toml"
    fi
}

gatewayd_start() {
    # pin-shards off: the shard thread then keeps taskset's CPU instead of choosing CPU 0 itself.
    # No sweep of stale devices: that would take the devices of other runs on this machine too.
    cat >"$WORK/gatewayd.toml" <<TOML
pin-shards = false
sweep-stale-devices = false
busy-poll-us = ${GWD_BUSY_POLL_US:-50}
${GWD_SHARD_NICE:+shard-nice = $GWD_SHARD_NICE}
[dns]
upstreams = ["127.0.0.1:9"]
TOML
    gatewayd_unlimit_connections "$1"
    # GWD_ARGS: more flags, e.g. --no-privsep to measure what privilege separation costs.
    # shellcheck disable=SC2086
    GWD_CPUS=$LOOP_CPU gatewayd_spawn "$1" gatewayd --shards 1 --egress-policy host-only ${GWD_ARGS:-}
}

# Attaches NS to the running gatewayd as sandbox ID at MTU; sets GWD_GATEWAY to its gateway IPv4.
gatewayd_attach() {
    local bindir=$1 id=$2 ns=$3 mtu=$4
    "$bindir/gatewayctl" --control "$GWD_SOCK" attach "$id" --netns "$ns" --mtu "$mtu" >/dev/null
    GWD_GATEWAY=$("$bindir/gatewayctl" --control "$GWD_SOCK" list --json |
        json_get "[s for s in d if s['id'] == '$id'][0]['gatewayIPv4']")
}

gatewayd_detach() {
    "$1/gatewayctl" --control "$GWD_SOCK" detach "$2" >/dev/null
}

# pasta joins a namespace made here (--netns) rather than making its own: run as root it drops to
# nobody, and could then not set up the user namespace its command mode needs; --runas 0 keeps
# the rights to enter ours. By default (no --no-map-gw) TCP to the gateway address 10.0.2.2 is
# connected to 127.0.0.1 on the host. No port forwarding (-t/-u/-T/-U none). Sets PEER_PID.
pasta_start() {
    local ns=$1 mtu=$2
    spawn taskset -c "$LOOP_CPU" pasta -q -f --runas 0 --log-file "$WORK/pasta-$ns-$mtu.log" --config-net -4 \
        -I gwpasta0 -a 10.0.2.15 -n 24 -g 10.0.2.2 -m "$mtu" -t none -u none -T none -U none --netns "$ns"
    PEER_PID=$LAST_PID
    wait_address "$ns" gwpasta0 10.0.2.15
    ip -n "$ns" link set gwpasta0 mtu "$mtu"
}

# slirp4netns: 10.0.2.2 is the host's loopback unless --disable-host-loopback. Sets PEER_PID.
slirp_start() {
    local ns=$1 mtu=$2
    spawn taskset -c "$LOOP_CPU" slirp4netns --configure --mtu="$mtu" --netns-type=path "/run/netns/$ns" gwslirp0 \
        >"$WORK/slirp4netns-$ns-$mtu.log" 2>&1
    PEER_PID=$LAST_PID
    wait_address "$ns" gwslirp0 10.0.2.100
}

# Ends the userspace peer (pasta or slirp4netns) and waits for its device DEV in NS to go.
peer_stop() {
    local ns=$1 dev=$2
    stop "$PEER_PID"
    for _ in $(seq 50); do ip -n "$ns" link show "$dev" >/dev/null 2>&1 || break; sleep 0.05; done
}

# --- measurements -----------------------------------------------------------------------------

# Prints the Python expression EXPR, evaluated with d bound to the JSON document on stdin: the one
# way these scripts read a field of gatewayctl's, iperf3's or ip's JSON.
json_get() {
    python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

# One iperf3 client run from inside NS, JSON on stdout. iperf3 3.12 now and then hangs at the end
# of a reverse (-R) test, after the data went, waiting for the server's results: a run that does
# not end in time is killed and tried again (the server recovers once the client is gone).
iperf_client() {
    local ns=$1 addr=$2 port=$3 flag=${4:-} attempt rc
    for attempt in 1 2 3; do
        rc=0
        run timeout -k 2 $((SECS + 15)) ip netns exec "$ns" taskset -c "$GUEST_CPU" \
            iperf3 -c "$addr" -p "$port" -t "$SECS" -J $flag >"$WORK/iperf-client.out" || rc=$?
        if ((rc == 0)); then
            cat "$WORK/iperf-client.out"
            return 0
        fi
        echo "iperf3 -c $addr -p $port $flag in $ns: exit $rc (attempt $attempt of 3)" >&2
        sleep 1
    done
    return 1
}

# One iperf3 run from inside NS to ADDR:PORT in direction DIR (up: guest→host, down: -R), as run
# number R of BASE (WORK/iperf-LABEL-MTU-DIR): leaves BASE.runR.json (iperf3's) and, with PEER_PID
# (the userspace network process), BASE.runR.ticks and .wait, that process's CPU ticks and
# run-queue wait (ns) during the run.
iperf_once() {
    local ns=$1 addr=$2 port=$3 dir=$4 base=$5 r=$6 peer_pid=${7:-} flag= before= waited=
    [[ $dir == down ]] && flag=-R
    [[ -n $peer_pid ]] && before=$(cpu_ticks "$peer_pid") waited=$(run_wait_ns "$peer_pid")
    iperf_client "$ns" "$addr" "$port" $flag >"$base.run$r.json"
    [[ -z $peer_pid ]] || {
        echo $(($(cpu_ticks "$peer_pid") - before)) >"$base.run$r.ticks"
        echo $(($(run_wait_ns "$peer_pid") - waited)) >"$base.run$r.wait"
    }
}

# Of BASE's runs 1…REPEAT keeps the fastest as BASE.json (and .ticks), all rates in BASE.all, and
# says what it got.
iperf_best() {
    local base=$1 label=$2 mtu=$3 dir=$4
    python3 - "$base" "$REPEAT" "$label" "$mtu" "$dir" <<'EOF' >&2
import json, shutil, sys, os
base, repeat, label, mtu, d = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
runs = [json.load(open(f"{base}.run{r}.json"))["end"]["sum_received"] for r in range(1, repeat + 1)]
best = max(range(repeat), key=lambda i: runs[i]["bits_per_second"])
shutil.copy(f"{base}.run{best + 1}.json", f"{base}.json")
for ext in ("ticks", "wait"):
    if os.path.exists(f"{base}.run{best + 1}.{ext}"):
        shutil.copy(f"{base}.run{best + 1}.{ext}", f"{base}.{ext}")
with open(f"{base}.all", "w") as f:
    f.write(" ".join(f"{r['bits_per_second'] / 1e9:.2f}" for r in runs))
rates = ", ".join(f"{r['bits_per_second'] / 1e9:.2f}" for r in runs)
r = runs[best]
print(f"{label} MTU {mtu} {'guest→host' if d == 'up' else 'host→guest'}: {r['bytes'] / 2**30:.2f} GiB in "
      f"{r['seconds']:.2f} s = {r['bits_per_second'] / 1e9:.2f} Gbps" + (f" (runs: {rates})" if repeat > 1 else ""))
EOF
}

# iperf3 from inside NS to ADDR:PORT, each direction, REPEAT times keeping the fastest; PEER_PID
# (optional) is the userspace network process whose CPU time is sampled around each run.
# Leaves WORK/iperf-LABEL-MTU-{up,down}.json and .ticks as iperf_best does.
iperf_pair() {
    local label=$1 mtu=$2 ns=$3 addr=$4 port=$5 peer_pid=${6:-} dir r
    for dir in up down; do
        for r in $(seq "$REPEAT"); do
            iperf_once "$ns" "$addr" "$port" "$dir" "$WORK/iperf-$label-$mtu-$dir" "$r" "$peer_pid"
        done
        iperf_best "$WORK/iperf-$label-$mtu-$dir" "$label" "$mtu" "$dir"
    done
}
