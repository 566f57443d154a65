#!/usr/bin/env bash
# Idle sandboxes beside busy ones: what N attached, idle namespace sandboxes cost one gatewayd (CPU,
# shard wake-ups, context switches, system calls; against the same gatewayd with none attached), what
# their guests' kernels send by themselves, and whether B busy sandboxes get the same throughput with
# the N-B others attached as alone. With --sparse-sandboxes, instead: N sandboxes that each make one
# small exchange every P ms, and what that costs gatewayd at each busy-poll-us, beside a kernel veth.
# Usage: sudo Tools/bench-idle.sh [--sandboxes N] [--busy B] [--seconds S] [--idle-seconds S]
#            [--trace-seconds S] [--repeat R] [--no-reverse] [--perf] [--skip-build]
#        sudo Tools/bench-idle.sh --sparse-sandboxes N [--pace-ms P] [--busy-poll-us LIST] [--seconds S]
#            [--repeat R] [--skip-build]
# --sandboxes: attached in all (default 1000). --busy: of those, how many run iperf3 (default 10).
# --seconds: each iperf3 transfer (default 10). --idle-seconds: each idle window (default 20).
# --trace-seconds: strace -f -c on the worker after each idle window (default 10, 0: none).
# --repeat: busy runs per direction and setting, alone and beside the idle ones taking turns (default 2).
# --no-reverse: guest→host only. --perf: perf record -g on the worker during the N-idle window, its
# report in the output.
# --sparse-sandboxes N (default 0: the mode is off): N sandboxes, each with a client making one 1-byte
# round trip every --pace-ms P (default 100), staggered, for --seconds S (default 30) measured; once
# through a fresh gatewayd per --busy-poll-us setting, then through a kernel veth in each namespace;
# --repeat R (default 1) rounds of all of them taking turns. --busy-poll-us: comma-separated, each
# US (busy-poll-us, gatewayd's own busy-poll-hit-percent) or US:HIT (and busy-poll-hit-percent HIT);
# default 50,50:0,0 (the default; polling after every burst, as before the governor; off).
# Namespaces gwidle-TAG-*, veths gwk-TAG-*, the daemon's pool, socket and state are this run's own and
# are removed at the end, on failure and on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
source Tools/bench-lib.sh

N=1000
BUSY=10
SECS=
IDLE_SECS=20
TRACE_SECS=10
REPEAT=
SPARSE=0
PACE_MS=100
BUSY_POLL_LIST=50,50:0,0
REVERSE=1
PERF=0
BUILD=1
while (($#)); do
    case "$1" in
        --sandboxes) N=$2; shift 2 ;;
        --busy) BUSY=$2; shift 2 ;;
        --seconds) SECS=$2; shift 2 ;;
        --idle-seconds) IDLE_SECS=$2; shift 2 ;;
        --trace-seconds) TRACE_SECS=$2; shift 2 ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --no-reverse) REVERSE=0; shift ;;
        --perf) PERF=1; shift ;;
        --sparse-sandboxes) SPARSE=$2; shift 2 ;;
        --pace-ms) PACE_MS=$2; shift 2 ;;
        --busy-poll-us) BUSY_POLL_LIST=$2; shift 2 ;;
        --skip-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done
if [[ $SPARSE != 0 ]]; then
    SECS=${SECS:-30}
    REPEAT=${REPEAT:-1}
else
    SECS=${SECS:-10}
    REPEAT=${REPEAT:-2}
fi
for v in N BUSY SECS IDLE_SECS TRACE_SECS REPEAT SPARSE PACE_MS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "${v,,} takes a whole number" >&2; exit 2; }
done
if ((SPARSE)); then
    ((SPARSE <= 1000)) || { echo "--sparse-sandboxes takes 0-1000 (a python client each)" >&2; exit 2; }
    ((PACE_MS >= 1 && SECS >= 2 && REPEAT >= 1)) || { echo "--pace-ms takes ≥ 1, --seconds ≥ 2, --repeat ≥ 1" >&2; exit 2; }
    [[ $BUSY_POLL_LIST =~ ^[0-9]+(:[0-9]+)?(,[0-9]+(:[0-9]+)?)*$ ]] ||
        { echo "--busy-poll-us takes comma-separated settings, each µs or µs:hit-percent" >&2; exit 2; }
    N=$SPARSE
else
    ((N >= 1 && N <= 4000)) || { echo "--sandboxes takes 1-4000" >&2; exit 2; }
    ((BUSY >= 1 && BUSY <= N && BUSY <= 50)) || { echo "--busy takes 1-50, at most --sandboxes" >&2; exit 2; }
    ((SECS >= 2 && IDLE_SECS >= 2 && REPEAT >= 1)) || { echo "--seconds and --idle-seconds take ≥ 2, --repeat ≥ 1" >&2; exit 2; }
fi

bench_require_root bench-idle.sh
bench_install_packages iperf3 python3 iproute2 curl strace tcpdump libnl-3-dev libnl-route-3-dev pkg-config
bench_gatewayd_binaries "$BUILD"
bench_init gw-benchidle
ulimit -n "$(ulimit -Hn)"

# Namespaces go in and out by `ip -batch` (a thousand `ip netns add` processes take tens of seconds).
idle_cleanup() {
    bench_cleanup
    ip netns list 2>/dev/null | awk '{print $1}' | grep "^gwidle-$TAG-" | sed 's/^/netns del /' >"/tmp/gw-benchidle-$TAG.del" || true
    ip -batch "/tmp/gw-benchidle-$TAG.del" 2>/dev/null || true
    rm -f "/tmp/gw-benchidle-$TAG.del"
    return 0
}
trap idle_cleanup EXIT

ns_name() { echo "gwidle-$TAG-$1"; }
for i in $(seq 1 "$N"); do echo "netns add $(ns_name "$i")"; done >"$WORK/add.batch"
echo "making $N namespaces…" >&2
ip -batch "$WORK/add.batch"

# The first two octets of a /16 of 100.64.0.0/10 that no address or route on the host is in yet and
# that is not EXCEPT ("100.K").
free_slash16() {
    local k
    for k in $(shuf -i 64-127); do
        [[ "100.$k" == "${1:-}" ]] && continue
        ip -4 -o addr show to "100.$k.0.0/16" 2>/dev/null | grep -q . && continue
        ip -4 route show to match "100.$k.0.1" 2>/dev/null | grep -q "^100\.$k\." && continue
        echo "100.$k"
        return 0
    done
    echo "no free /16 in 100.64.0.0/10" >&2
    return 1
}
# The sandboxes' pool: 4,096 /28 blocks.
POOL16=$(free_slash16)
POOL="$POOL16.0.0/16"
V6=$(printf 'fd%02x:%04x:%04x' $((RANDOM % 256)) $RANDOM $RANDOM)

# The default shard count (one per CPU), unpinned (the machine is shared), and nothing swept (that
# would take other runs' devices); a DNS upstream no resolver answers; then the lines given.
gatewayd_config() {
    cat >"$WORK/gatewayd.toml" <<TOML
pin-shards = false
sweep-stale-devices = false
$*
[addresses]
ipv4-pool = "$POOL"
ipv4-sandbox-prefix = 28
ipv6-pool = "$V6::/48"
[dns]
upstreams = ["127.0.0.1:9"]
TOML
    gatewayd_unlimit_connections "$BINDIR"
}

# Starts gatewayd on WORK/gatewayd.toml; sets GWD_PID, GWD_SOCK and WORKER (its unprivileged worker,
# which carries the sandboxes).
gatewayd_up() {
    rm -rf "$WORK/gatewayd-state"
    gatewayd_spawn "$BINDIR" gatewayd --egress-policy host-only
    WORKER=$(cat "/proc/$GWD_PID/task/$GWD_PID/children" 2>/dev/null | awk '{print $1}')
    WORKER=${WORKER:-$GWD_PID}
}

api() { curl -sS --unix-socket "$GWD_SOCK" "$@"; }

# Attaches sandboxes FROM…TO over the API, four requests at a time.
attach_range() {
    local from=$1 to=$2
    seq "$from" "$to" | xargs -P 4 -I{} sh -c '
        code=$(curl -sS -o /dev/null -w "%{http_code}" --unix-socket "$0" -X POST \
            -d "{\"id\":\"idle-$1-{}\",\"netns\":\"gwidle-$1-{}\"}" http://gatewayd/v1/sandboxes)
        [ "$code" = 201 ] || { echo "attach idle-$1-{} answered $code" >&2; exit 255; }' "$GWD_SOCK" "$TAG"
}

# Context switches (voluntary, involuntary) of the supervisor and the worker, all threads, and per
# thread; one line "NAME/TID VOL INVOL" each, "all" first.
ctxsw() {
    local p
    for p in $(with_children "$GWD_PID"); do
        for t in /proc/"$p"/task/*; do
            printf '%s/%s %s\n' "$(tr ' ' _ <"$t/comm" 2>/dev/null)" "${t##*/}" \
                "$(awk '/^voluntary_ctxt_switches/{v=$2} /^nonvoluntary_ctxt_switches/{n=$2} END{print v+0, n+0}' "$t/status" 2>/dev/null)"
        done
    done | awk '{v[$1]+=$2; n[$1]+=$3; V+=$2; N+=$3} END {print "all", V, N; for (k in v) print k, v[k], n[k]}'
}

if ((SPARSE)); then
    source Tools/bench-idle-sparse.sh
    exit 0
fi
gatewayd_config
gatewayd_up

# One idle window of IDLE_SECS named LABEL: CPU ticks, /metrics and /v1/stats before and after,
# context switches; then (TRACE_SECS) the worker's system calls under strace; with PERF, a profile.
idle_window() {
    local label=$1 base="$WORK/idle-$1" t0 t1
    api http://gatewayd/metrics >"$base.metrics0"
    api http://gatewayd/v1/stats >"$base.stats0"
    ctxsw >"$base.ctx0"
    echo "$(cpu_ticks "$GWD_PID") $(awk '{print $14 + $15}' "/proc/$WORKER/stat")" >"$base.ticks0"
    t0=$(date +%s%N)
    if ((PERF)) && [[ $label != empty ]]; then
        run perf record -q -g -o "$WORK/perf.data" -p "$WORKER" -- sleep "$IDLE_SECS" >/dev/null 2>&1 || true
    else
        sleep "$IDLE_SECS"
    fi
    t1=$(date +%s%N)
    echo "$(cpu_ticks "$GWD_PID") $(awk '{print $14 + $15}' "/proc/$WORKER/stat")" >"$base.ticks1"
    ctxsw >"$base.ctx1"
    api http://gatewayd/metrics >"$base.metrics1"
    api http://gatewayd/v1/stats >"$base.stats1"
    echo "$t0 $t1" >"$base.time"
    if ((TRACE_SECS)); then
        run timeout -s INT "$TRACE_SECS" strace -f -c -q -o "$base.strace" -p "$WORKER" >/dev/null 2>&1 || true
    fi
    echo "idle window '$label' done" >&2
}

# --- 1. the empty daemon ---------------------------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "idle window with no sandbox (${IDLE_SECS} s)…" >&2
idle_window empty

# --- 2. the busy sandboxes alone --------------------------------------------------------------------
PORTS=()
for i in $(seq 1 "$BUSY"); do
    free_port "PORTS[$i]"
    spawn iperf3 -s -B 127.0.0.1 -p "${PORTS[$i]}" --logfile "$WORK/iperf3-server-$i.log"
done
for i in $(seq 1 "$BUSY"); do wait_listen 127.0.0.1 "${PORTS[$i]}"; done

attach_range 1 "$BUSY"
api http://gatewayd/v1/sandboxes >"$WORK/busy-list.json"
declare -A GW
while read -r id addr; do GW[$id]=$addr; done < <(json_get "'\n'.join(f\"{s['id']} {s['gatewayIPv4']}\" for s in d)" <"$WORK/busy-list.json")

# One busy run, all B clients at once: WORK/busy-LABEL-DIR-R-I.json per client and .meta (wall ns,
# gatewayd ticks, failed clients, ns gatewayd's threads sat runnable without a CPU). A run in which
# a client failed is run again, whole, once.
busy_run() {
    local label=$1 dir=$2 r=$3 flag='' attempt i rc failed t0 t1 c0 c1 base="$WORK/busy-$1-$2-$3"
    local -a pids
    local w0 w1
    [[ $dir == down ]] && flag=-R
    for attempt in 1 2; do
        pids=()
        failed=0
        c0=$(cpu_ticks "$GWD_PID")
        w0=$(run_wait_ns "$GWD_PID")
        t0=$(date +%s%N)
        for i in $(seq 1 "$BUSY"); do
            spawn timeout -k 2 $((SECS + 15)) ip netns exec "$(ns_name "$i")" \
                iperf3 -c "${GW[idle-$TAG-$i]}" -p "${PORTS[$i]}" -t "$SECS" -J $flag >"$base-$i.json"
            pids+=("$LAST_PID")
        done
        for i in $(seq 1 "$BUSY"); do
            rc=0
            wait "${pids[$((i - 1))]}" || rc=$?
            forget "${pids[$((i - 1))]}"
            ((rc == 0)) || { failed=$((failed + 1)); echo "$label $dir: iperf3 in sandbox $i exited $rc" >&2; }
        done
        t1=$(date +%s%N)
        c1=$(cpu_ticks "$GWD_PID")
        w1=$(run_wait_ns "$GWD_PID")
        ((failed == 0)) && break
        sleep 2
    done
    echo "$((t1 - t0)) $((c1 - c0)) $failed $((w1 - w0))" >"$base.meta"
    echo "busy run $label $dir #$r done" >&2
}

DIRS=(up)
((REVERSE)) && DIRS+=(down)
# Runs 1…R of both settings can not interleave (the idle ones are attached once, in between), so
# each setting's own runs give the spread to compare the difference with.
# A short run first, not counted: the first transfers of a fresh daemon map its buffer slabs and
# were slower than any later run.
SECS_SET=$SECS
SECS=2
busy_run warmup up 1
SECS=$SECS_SET
for r in $(seq 1 "$REPEAT"); do for d in "${DIRS[@]}"; do busy_run alone "$d" "$r"; done; done

# --- 3. N attached, all idle ----------------------------------------------------------------------
# A capture in one idle namespace from before its device exists: what a guest's kernel sends by itself.
PROBE=$N
spawn ip netns exec "$(ns_name "$PROBE")" tcpdump -i any -n -q -U -w "$WORK/probe.pcap"
PROBE_PID=$LAST_PID
sleep 0.5
echo "attaching $((N - BUSY)) more sandboxes…" >&2
t0=$(date +%s%N)
((N > BUSY)) && attach_range $((BUSY + 1)) "$N"
t1=$(date +%s%N)
ATTACH_S=$(echo "($t1 - $t0) / 10^9" | bc -l)
# What the guests send once attached: all sandboxes' framesIn every 2 s for 16 s.
for k in $(seq 0 8); do
    echo "$(date +%s%N) $(api http://gatewayd/v1/stats | json_get "sum(s['framesIn'] for s in d)")"
    ((k == 8)) || sleep 2
done >"$WORK/settle.frames"
echo "idle window with $N sandboxes (${IDLE_SECS} s)…" >&2
idle_window full
stop "$PROBE_PID"
tcpdump -r "$WORK/probe.pcap" -n -tt 2>/dev/null >"$WORK/probe.txt" || true
if ((PERF)) && [[ -f $WORK/perf.data ]]; then
    perf report -i "$WORK/perf.data" --no-children --stdio -g none --sort comm,tid,sym --percent-limit 3 2>/dev/null | grep -v "^#" | grep -v "^$" | head -40 >"$WORK/perf.txt" || true
fi

# --- 4. the busy sandboxes beside N-B idle ones -----------------------------------------------------
for r in $(seq 1 "$REPEAT"); do for d in "${DIRS[@]}"; do busy_run beside "$d" "$r"; done; done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report --------------------------------------------------------------------------------------------
python3 - "$WORK" "$DATE" "$N" "$BUSY" "$SECS" "$IDLE_SECS" "$TRACE_SECS" "$REPEAT" "$LOAD_BEFORE" "$LOAD_AFTER" \
    "$(getconf CLK_TCK)" "$(uname -r)" "$(nproc)" "$ATTACH_S" "$PROBE" "${DIRS[@]}" <<'EOF'
import json, os, re, statistics, sys
(work, date, n, busy, secs, idle_secs, trace_secs, repeat, load0, load1, clk, kernel, cpus, attach_s,
 probe) = sys.argv[1:16]
dirs = sys.argv[16:]
n, busy, repeat, clk, cpus, trace_secs = int(n), int(busy), int(repeat), int(clk), int(cpus), int(trace_secs)
sys.path.insert(0, "Tools")
from bench_table import f, print_table

def read(name):
    return open(os.path.join(work, name)).read()

def metrics(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(gatewayd_shard_(?:wakeups|polled_wakeups|sleeps)_total)\{shard="(\d+)"\} (\S+)', line)
        if m:
            out[(m[1], m[2])] = float(m[3])
    return out

def ctx(text):
    return {p[0]: (int(p[1]), int(p[2])) for p in (l.split() for l in text.splitlines()) if len(p) == 3}

def strace(name):
    """Calls per second by system call, from strace -c's table."""
    try:
        text = read(name)
    except OSError:
        return None
    calls = {}
    for line in text.splitlines():
        p = line.split()
        if len(p) >= 5 and re.match(r'^[\d.]+$', p[0]) and p[-1] != "total":
            try:
                calls[p[-1]] = int(p[3])
            except ValueError:
                pass
    return {k: v / trace_secs for k, v in calls.items()}

windows = {}
for label in ("empty", "full"):
    b = f"idle-{label}"
    t0, t1 = (int(x) for x in read(b + ".time").split())
    secs_w = (t1 - t0) / 1e9
    (a0, w0), (a1, w1) = ([int(x) for x in read(b + ".ticks0").split()], [int(x) for x in read(b + ".ticks1").split()])
    m0, m1 = metrics(read(b + ".metrics0")), metrics(read(b + ".metrics1"))
    rate = {}
    for (fam, shard), v in m1.items():
        rate.setdefault(fam, 0.0)
        rate[fam] += (v - m0.get((fam, shard), 0)) / secs_w
    c0, c1 = ctx(read(b + ".ctx0")), ctx(read(b + ".ctx1"))
    threads = {k: ((c1[k][0] - c0.get(k, (0, 0))[0]) / secs_w, (c1[k][1] - c0.get(k, (0, 0))[1]) / secs_w)
               for k in c1 if k != "all"}
    s0, s1 = json.loads(read(b + ".stats0")), json.loads(read(b + ".stats1"))
    fin0 = {s["id"]: s.get("framesIn", 0) for s in s0}
    fout0 = {s["id"]: s.get("framesOut", 0) for s in s0}
    frames_in = sum(s.get("framesIn", 0) - fin0.get(s["id"], 0) for s in s1)
    frames_out = sum(s.get("framesOut", 0) - fout0.get(s["id"], 0) for s in s1)
    sc = strace(b + ".strace")
    windows[label] = dict(seconds=secs_w, sandboxes=len(s1), cpu_pct=(a1 - a0) / clk / secs_w * 100,
                          worker_cpu_pct=(w1 - w0) / clk / secs_w * 100,
                          wakeups=rate.get("gatewayd_shard_wakeups_total", 0),
                          polled=rate.get("gatewayd_shard_polled_wakeups_total", 0),
                          sleeps=rate.get("gatewayd_shard_sleeps_total", 0),
                          ctx_vol=(c1["all"][0] - c0["all"][0]) / secs_w, ctx_invol=(c1["all"][1] - c0["all"][1]) / secs_w,
                          threads=threads, frames_in=frames_in / secs_w, frames_out=frames_out / secs_w,
                          syscalls=sc)

print(f"idle benchmark {date}, kernel {kernel}, {cpus} CPUs; {n} namespace sandboxes, {busy} busy; "
      f"load average before {load0}, after {load1}")
print(f"gatewayd: one process, {cpus} shards (its default), pin-shards = false, busy-poll-us = its default")
print()
print(f"1. idle cost: {idle_secs} s with no sandbox, then {idle_secs} s with {n} attached and idle")
hdr = ["sandboxes", "CPU % of a core", "worker %", "wake-ups/s", "polled/s", "sleeps/s", "ctx sw/s (vol)",
       "invol/s", "syscalls/s", "frames in/s", "frames out/s"]
tab = [hdr]
for label in ("empty", "full"):
    w = windows[label]
    tab.append([str(w["sandboxes"]), f(w["cpu_pct"], "{:.2f}"), f(w["worker_cpu_pct"], "{:.2f}"),
                f(w["wakeups"], "{:.1f}"), f(w["polled"], "{:.1f}"), f(w["sleeps"], "{:.1f}"),
                f(w["ctx_vol"], "{:.1f}"), f(w["ctx_invol"], "{:.1f}"),
                f(w["syscalls"] and sum(w["syscalls"].values()), "{:.1f}"),
                f(w["frames_in"], "{:.2f}"), f(w["frames_out"], "{:.2f}")])
print_table(tab, left=2)
e, w = windows["empty"], windows["full"]
print(f"  difference, {n} idle sandboxes: {w['cpu_pct'] - e['cpu_pct']:+.2f} % of a core, "
      f"{w['wakeups'] - e['wakeups']:+.1f} wake-ups/s, {w['sleeps'] - e['sleeps']:+.1f} sleeps/s, "
      f"{w['ctx_vol'] - e['ctx_vol']:+.1f} voluntary context switches/s")
print("  CPU: utime+stime of supervisor and worker (/proc/PID/stat) over the window; ctx sw: voluntary and")
print("  involuntary context switches of all their threads (/proc/PID/task/*/status); wake-ups, polled,")
print("  sleeps: gatewayd_shard_*_total deltas on /metrics, all shards; frames: GET /v1/stats framesIn/Out.")
for label in ("empty", "full"):
    th = windows[label]["threads"]
    busy_threads = sorted(((k, v) for k, v in th.items() if v[0] + v[1] >= 0.05), key=lambda kv: -kv[1][0])
    print(f"  threads that woke ({windows[label]['sandboxes']} sandboxes), voluntary switches/s: "
          + (", ".join(f"{k} {v[0]:.1f}" for k, v in busy_threads) or "none"))
for label in ("empty", "full"):
    sc = windows[label]["syscalls"]
    if sc is not None:
        print(f"  worker's system calls under strace -f -c, {trace_secs} s after the window "
              f"({windows[label]['sandboxes']} sandboxes), calls/s: "
              + (", ".join(f"{k} {v:.1f}" for k, v in sorted(sc.items(), key=lambda kv: -kv[1])) or "none"))

print()
print(f"2. what the guests send by themselves: all sandboxes' framesIn after the last attach "
      f"({n - busy} attached in {float(attach_s):.1f} s, 4 at a time over the API)")
rows = [l.split() for l in read("settle.frames").splitlines()]
t_first = int(rows[0][0])
print("  " + ", ".join(f"{(int(t) - t_first) / 1e9:.0f} s: {int(v)}" for t, v in rows))
deltas = [(int(b[1]) - int(a[1])) / ((int(b[0]) - int(a[0])) / 1e9) for a, b in zip(rows, rows[1:])]
print("  frames/s in each 2 s: " + ", ".join(f"{d:.1f}" for d in deltas)
      + f"; during the idle window: {windows['full']['frames_in']:.2f}/s")
try:
    lines = read("probe.txt").splitlines()
except OSError:
    lines = []
if lines:
    t0 = float(lines[0].split()[0])
    kinds = {}
    for l in lines:
        k = re.sub(r'^[\d.]+\s+\S+\s+(In|Out|M|P|B)\s+', '', l)
        k = re.sub(r'\b[0-9a-f:]{6,}\b|\b\d+\.\d+\.\d+\.\d+\b', 'ADDR', k)
        k = re.sub(r'length \d+', '', k).strip()
        kinds.setdefault(k, []).append(float(l.split()[0]) - t0)
    print(f"  one guest's own capture (sandbox {probe}, tcpdump -i any in its namespace, from before its attach "
          f"to the end of the idle window): {len(lines)} frames, the last {float(lines[-1].split()[0]) - t0:.1f} s "
          "after the first")
    for k, ts in sorted(kinds.items(), key=lambda kv: kv[1][0]):
        print(f"    {len(ts):3d} × {k[:90]}  (at " + ", ".join(f"{t:.1f}" for t in ts[:6]) + (" …" if len(ts) > 6 else "") + " s)")

print()
print(f"3. {busy} busy sandboxes, iperf3 -t {secs} each to its own server on 127.0.0.1 through the gateway "
      f"address, all at once; alone (only they attached) and beside {n - busy} idle ones; {repeat} run(s) each")
shards = {}
for sb in json.loads(read("busy-list.json")):
    shards[sb.get("shard")] = shards.get(sb.get("shard"), 0) + 1
print("  the busy sandboxes by shard: " + ", ".join(f"shard {k}: {v}" for k, v in sorted(shards.items())))
hdr = ["setting", "dir", "run", "agg Gbps", "min", "median", "max", "Jain", "gatewayd CPU s/GB", "CPU % of a core",
       "wait %"]
tab = [hdr]
summary = {}
for label in ("alone", "beside"):
    for d in dirs:
        for r in range(1, repeat + 1):
            base = f"busy-{label}-{d}-{r}"
            rates, nbytes = [], 0
            for i in range(1, busy + 1):
                try:
                    it = json.loads(read(f"{base}-{i}.json"))
                    s = it["end"]["sum_received"]
                    rates.append(s["bits_per_second"] / 1e9)
                    nbytes += s["bytes"]
                except (OSError, ValueError, KeyError):
                    pass
            wall, ticks, failed, waited = (int(x) for x in read(base + ".meta").split())
            agg = sum(rates) if rates else None
            jain = sum(rates) ** 2 / (len(rates) * sum(x * x for x in rates)) if rates else None
            summary.setdefault((label, d), []).append((agg, jain, ticks / clk / (nbytes / 1e9) if nbytes else None))
            tab.append([label if r == 1 and d == dirs[0] else "", "↑ guest→host" if d == "up" else "↓ host→guest",
                        str(r) + ("" if len(rates) == busy else f" ({len(rates)}/{busy})"),
                        f(agg), f(rates and min(rates)), f(rates and statistics.median(rates)), f(rates and max(rates)),
                        f(jain, "{:.3f}"), f(nbytes and ticks / clk / (nbytes / 1e9), "{:.3f}"),
                        f(ticks / clk / (wall / 1e9) * 100, "{:.0f}"), f(waited / wall * 100, "{:.0f}")])
print_table(tab, left=2)
for d in dirs:
    a = [x[0] for x in summary[("alone", d)] if x[0]]
    b = [x[0] for x in summary[("beside", d)] if x[0]]
    if a and b:
        print(f"  {'↑' if d == 'up' else '↓'}: alone {min(a):.2f}–{max(a):.2f} Gbps, beside the idle ones "
              f"{min(b):.2f}–{max(b):.2f} Gbps; means {statistics.mean(a):.2f} → {statistics.mean(b):.2f} "
              f"({(statistics.mean(b) / statistics.mean(a) - 1) * 100:+.0f} %)")
print("  agg: sum of the clients' iperf3 receiver figures; Jain: (Σx)² / (B·Σx²), 1 = all equal; gatewayd CPU:")
print("  utime+stime of supervisor and worker over the run per 10^9 payload bytes, and ÷ wall time; wait: time")
print("  their threads sat runnable without a CPU (schedstat) ÷ wall time, how much other load held them back.")
if os.path.exists(os.path.join(work, "perf.txt")):
    print()
    print(f"4. perf record -g of the worker over the {n}-sandbox idle window (perf report --no-children -g none, by thread and symbol, ≥ 3 %):")
    lines = read("perf.txt").splitlines()
    for l in lines:
        print("  " + l)
    if not lines:
        print("  no samples: the worker did not run long enough in the window to be sampled")
EOF
