# bench-idle.sh's sparse mode (--sparse-sandboxes N): N sandboxes that each make one 1-byte round trip
# every P ms, through gatewayd at each busy-poll-us and through a kernel veth per namespace.
# Sourced by bench-idle.sh once it has made the namespaces and chosen the pool; not run by itself.

RR="$(pwd)/Tools/bench-rr.py"
# The interpreter itself, not a version manager's shim in front of it: N of them start at once.
PYTHON=$(python3 -c 'import sys; print(sys.executable)')
IFS=, read -ra BUSY_POLLS <<<"$BUSY_POLL_LIST"

# Three ARP entries per sandbox: its gateway's in the namespace, its veth's at each end.
raise_neighbour_limits $((4 * N))

# --- the veths: one per namespace, a /30 each in a second free /16 --------------------------------
VETH16=$(free_slash16 "$POOL16")
# The host's (.1) and the guest's (.2) address of namespace I's /30.
veth_addr() {
    local j=$((($1 - 1) * 4))
    echo "$VETH16.$((j >> 8)).$(((j & 255) + $2))"
}
echo "making $N veths…" >&2
for i in $(seq 1 "$N"); do
    echo "link add gwk-$TAG-$i type veth peer name gwsparse0 netns $(ns_name "$i")"
    echo "addr add $(veth_addr "$i" 1)/30 dev gwk-$TAG-$i"
    echo "link set gwk-$TAG-$i up"
done >"$WORK/veth.batch"
ip -batch "$WORK/veth.batch"
# `ip -batch` takes no -n: one `ip -n NS -batch` per namespace.
for i in $(seq 1 "$N"); do
    printf 'addr add %s/30 dev gwsparse0\nlink set gwsparse0 up\n' "$(veth_addr "$i" 2)" | ip -n "$(ns_name "$i")" -batch -
done

# --- the servers: one for gatewayd's sandboxes (their gateway address is the host's 127.0.0.1), one
# on every veth's host end -------------------------------------------------------------------------
free_port GW_PORT
free_port VETH_PORT
spawn "$PYTHON" "$RR" rr-many --bind 127.0.0.1 --port "$GW_PORT"
GW_SERVER=$LAST_PID
VETH_BINDS=()
for i in $(seq 1 "$N"); do VETH_BINDS+=(--bind "$(veth_addr "$i" 1)"); done
spawn "$PYTHON" "$RR" rr-many "${VETH_BINDS[@]}" --port "$VETH_PORT"
VETH_SERVER=$LAST_PID
wait_listen 127.0.0.1 "$GW_PORT"
wait_listen "$(veth_addr "$N" 1)" "$VETH_PORT"

# Readings at one end of a measured window, as BASE.time (ns), .stat (/proc/stat's cpu line),
# .load, .ours (CPU time of the run's clients in ns, then its server's in ticks: what of the machine's
# busy time is the benchmark's own; a client's time is its schedstat's, as ticks it would be rounded
# down in each of N processes); with gatewayd running also .ticks (its CPU ticks, the worker's, its
# threads' run-queue wait in ns), .ctx (context switches) and .metrics.
sample() {
    local base=$1 server=$2 f ns clients=0
    date +%s%N >"$base.time"
    head -1 /proc/stat >"$base.stat"
    cut -d' ' -f1-3 /proc/loadavg >"$base.load"
    for f in "${CLIENT_STATS[@]}"; do
        read -r ns _ <"$f" 2>/dev/null && clients=$((clients + ns))
    done
    echo "$clients $(cpu_ticks "$server")" >"$base.ours"
    if [[ -n ${GWD_PID:-} ]]; then
        echo "$(cpu_ticks "$GWD_PID") $(awk '{print $14 + $15}' "/proc/$WORKER/stat") $(run_wait_ns "$GWD_PID")" >"$base.ticks"
        ctxsw >"$base.ctx"
        api http://gatewayd/metrics >"$base.metrics"
    fi
}

# Sleeps until the Unix time T (seconds, fractional).
sleep_until() {
    sleep "$(awk -v t="$1" -v now="$(date +%s.%N)" 'BEGIN { d = t - now; printf "%.3f", (d > 0 ? d : 0) }')"
}

# One measured run named LABEL: a client in each namespace I dialling ADDR[I]:PORT, staggered evenly
# over one period, all in one window of SECS; leaves WORK/sparse-LABEL-I.json (the client's
# summary), .rtt (its round trips, ns) and WORK/sparse-LABEL.{0,1}.* (the readings) and .meta.
sparse_run() {
    local label=$1 port=$2 server=$3 base="$WORK/sparse-$1" i pid child rc failed=0 ready=0 start
    local -a pids=()
    rm -f "$base.start"
    for i in $(seq 1 "$N"); do
        # A client that outlives its window by minutes has hung; the window has been read by then.
        spawn timeout -k 2 $((SECS + 180)) ip netns exec "$(ns_name "$i")" "$PYTHON" "$RR" rr \
            --host "${ADDR[$i]}" --port "$port" --warmup 3 --pace-ms "$PACE_MS" --seconds "$SECS" \
            --offset-ms "$(awk -v i="$i" -v n="$N" -v p="$PACE_MS" 'BEGIN { printf "%.3f", (i - 1) * p / n }')" \
            --start-file "$base.start" --dump "$base-$i.rtt" >"$base-$i.json" 2>"$base-$i.err"
        pids+=("$LAST_PID")
    done
    # Every client connected (its server's end established) before the window is given out.
    for _ in $(seq $((600 + N))); do
        ready=$(ss -Htn state established "( sport = :$port )" | wc -l)
        ((ready >= N)) && break
        sleep 0.1
    done
    ((ready >= N)) || echo "$label: only $ready of $N clients connected; measuring those" >&2
    # The clients themselves: each `timeout`'s child (`ip netns exec` becomes the interpreter).
    CLIENT_STATS=()
    for pid in "${pids[@]}"; do
        # The file has no newline: read assigns, then fails.
        child=
        read -r child <"/proc/$pid/task/$pid/children" 2>/dev/null || true
        [[ -n $child ]] && CLIENT_STATS+=("/proc/$child/schedstat")
    done
    start=$(awk -v now="$(date +%s.%N)" 'BEGIN { printf "%.6f", now + 2 }')
    echo "$start" >"$base.start.tmp"
    mv "$base.start.tmp" "$base.start"
    sleep_until "$start"
    sample "$base.0" "$server"
    # The second reading a little before the end, while every client is still there to be read.
    sleep_until "$(awk -v s="$start" -v d="$SECS" 'BEGIN { printf "%.6f", s + d - 0.25 }')"
    sample "$base.1" "$server"
    for pid in "${pids[@]}"; do
        rc=0
        wait "$pid" || rc=$?
        forget "$pid"
        ((rc == 0)) || failed=$((failed + 1))
    done
    ((failed == 0)) || echo "$label: $failed clients failed (first: $(cat "$base"-*.err | head -1))" >&2
    echo "$ready $failed" >"$base.meta"
    echo "sparse run $label done" >&2
}

# Each busy-poll-us on a fresh gatewayd with all N attached, then the veths; R rounds in turn.
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A ADDR
RUNS=()
for r in $(seq 1 "$REPEAT"); do
    for setting in "${BUSY_POLLS[@]}"; do
        us=${setting%%:*}
        config="busy-poll-us = $us"
        label="bp$us"
        if [[ $setting == *:* ]]; then
            config+=$'\n'"busy-poll-hit-percent = ${setting#*:}"
            label+="h${setting#*:}"
        fi
        gatewayd_config "$config"
        gatewayd_up
        echo "gatewayd busy-poll-us $setting: attaching $N sandboxes…" >&2
        attach_range 1 "$N"
        api http://gatewayd/v1/sandboxes >"$WORK/sparse-$label-$r.sandboxes.json"
        while read -r i addr; do ADDR[$i]=$addr; done < <(json_get \
            "'\n'.join(f\"{s['id'].rsplit('-', 1)[1]} {s['gatewayIPv4']}\" for s in d)" <"$WORK/sparse-$label-$r.sandboxes.json")
        sparse_run "$label-$r" "$GW_PORT" "$GW_SERVER"
        RUNS+=("$label-$r")
        stop "$GWD_PID"
        GWD_PID=
    done
    for i in $(seq 1 "$N"); do ADDR[$i]=$(veth_addr "$i" 1); done
    sparse_run "veth-$r" "$VETH_PORT" "$VETH_SERVER"
    RUNS+=("veth-$r")
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report --------------------------------------------------------------------------------------------
python3 - "$WORK" "$DATE" "$N" "$PACE_MS" "$SECS" "$REPEAT" "$LOAD_BEFORE" "$LOAD_AFTER" "$(getconf CLK_TCK)" \
    "$(uname -r)" "$(nproc)" "${RUNS[@]}" <<'EOF'
import json, os, re, sys
work, date, n, pace, secs, repeat, load0, load1, clk, kernel, cpus = sys.argv[1:12]
runs = sys.argv[12:]
n, pace, secs, repeat, clk, cpus = int(n), int(pace), int(secs), int(repeat), int(clk), int(cpus)
sys.path.insert(0, "Tools")
from bench_table import f, print_table


def read(name):
    return open(os.path.join(work, name)).read()


def shard_counters(text):
    """All shards' wake-up counters summed, and their busy-poll hit shares (builds with the governor)."""
    out, hits = {}, []
    for line in text.splitlines():
        m = re.match(r'^gatewayd_shard_(wakeups|polled_wakeups|sleeps|polls_skipped)_total\{shard="\d+"\} (\S+)', line)
        if m:
            out[m[1]] = out.get(m[1], 0) + float(m[2])
        m = re.match(r'^gatewayd_shard_busy_poll_hit_percent\{shard="\d+"\} (\S+)', line)
        if m:
            hits.append(float(m[1]))
    return out, hits


def unbusy_jiffies(line):
    """Idle, iowait and steal of /proc/stat's cpu line. The busy fields are sampled at the tick,
    which misses much of work that runs in short bursts between idle periods; idle time is
    measured, so busy time is what the window's CPUs did not spend idle."""
    v = [int(x) for x in line.split()[1:9]]
    return v[3] + v[4] + v[7]


def pct(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))] if sorted_values else None


rows = []
for run in runs:
    base = f"sparse-{run}"
    ready, failed = (int(x) for x in read(base + ".meta").split())
    rtts, clients, missed, client_p99 = [], 0, 0, []
    for i in range(1, n + 1):
        try:
            s = json.loads(read(f"{base}-{i}.json"))
            mine = [int(x) for x in read(f"{base}-{i}.rtt").split()]
        except (OSError, ValueError):
            continue
        if not mine:
            continue
        clients += 1
        missed += s.get("missed", 0)
        rtts += mine
        client_p99.append(pct(sorted(mine), 0.99))
    rtts.sort()
    t0, t1 = int(read(base + ".0.time")), int(read(base + ".1.time"))
    wall = (t1 - t0) / 1e9
    idle = (unbusy_jiffies(read(base + ".1.stat")) - unbusy_jiffies(read(base + ".0.stat"))) / clk
    (k0, s0), (k1, s1) = ([int(x) for x in read(base + f".{k}.ours").split()] for k in (0, 1))
    row = dict(run=run, setting=run.rsplit("-", 1)[0], round=int(run.rsplit("-", 1)[1]), clients=clients,
               ready=ready, failed=failed, round_trips=len(rtts), missed=missed, rt_per_s=len(rtts) / secs,
               p50=pct(rtts, 0.5), p90=pct(rtts, 0.9), p99=pct(rtts, 0.99), p999=pct(rtts, 0.999),
               worst_client_p99=max(client_p99) if client_p99 else None,
               machine_busy_pct=max(0.0, 100 - idle / (wall * cpus) * 100),
               clients_pct=(k1 - k0) / 1e9 / wall * 100, server_pct=(s1 - s0) / clk / wall * 100,
               load0=read(base + ".0.load").strip(), load1=read(base + ".1.load").strip())
    if os.path.exists(os.path.join(work, base + ".0.ticks")):
        (c0, w0, q0), (c1, w1, q1) = ([int(x) for x in read(base + f".{k}.ticks").split()] for k in (0, 1))
        (m0, _), (m1, hits) = shard_counters(read(base + ".0.metrics")), shard_counters(read(base + ".1.metrics"))
        ctx0 = int(read(base + ".0.ctx").split("\n")[0].split()[1])
        ctx1 = int(read(base + ".1.ctx").split("\n")[0].split()[1])
        cpu_s = (c1 - c0) / clk
        row.update(cpu_pct=cpu_s / wall * 100, worker_pct=(w1 - w0) / clk / wall * 100,
                   cpu_us_per_rt=cpu_s / wall / row["rt_per_s"] * 1e6 if row["rt_per_s"] else None,
                   wait_pct=(q1 - q0) / 1e9 / wall * 100, ctx_per_s=(ctx1 - ctx0) / wall,
                   hit_percent=hits or None,
                   **{k + "_per_s": (m1.get(k, 0) - m0.get(k, 0)) / wall
                      for k in ("wakeups", "polled_wakeups", "sleeps", "polls_skipped")})
        m = re.fullmatch(r"bp(\d+)(?:h(\d+))?", row["setting"])
        row["busy_poll_us"] = int(m[1])
        row["busy_poll_hit_percent"] = int(m[2]) if m[2] else None
    row["rest_pct"] = row["machine_busy_pct"] * cpus - row["clients_pct"] - row["server_pct"] - row.get("cpu_pct", 0)
    rows.append(row)

print(f"sparse benchmark {date}, kernel {kernel}, {cpus} CPUs; {n} namespace sandbox{'es' if n != 1 else ''}, each one 1-byte round "
      f"trip every {pace} ms, staggered over the period; {secs} s measured per run, {repeat} round(s); "
      f"load average before {load0}, after {load1}")
print(f"gatewayd: one process, {cpus} shards (its default), pin-shards = false, a fresh daemon per busy-poll-us; "
      f"veth: a kernel veth per namespace, its server on the veth's host end")
print()
def path(row):
    bp, hit = row.get("busy_poll_us"), row.get("busy_poll_hit_percent")
    if bp is None:
        return "kernel veth"
    return f"gatewayd busy-poll-us {bp}" + (f", hit-percent {hit}" if hit is not None else "")


us = lambda v: f(v and v / 1e3, "{:.0f}")
print("1. what the sandboxes get: round-trip time, µs")
tab = [["path", "run", "clients", "RT/s", "missed", "p50", "p90", "p99", "p99.9", "worst client's p99",
        "clients CPU %", "server %", "rest %", "machine busy %", "load average at start → end"]]
for row in rows:
    tab.append([path(row), str(row["round"]), f"{row['clients']}/{n}", f(row["rt_per_s"], "{:.0f}"), str(row["missed"]),
                us(row["p50"]), us(row["p90"]), us(row["p99"]), us(row["p999"]), us(row["worst_client_p99"]),
                f(row["clients_pct"], "{:.1f}"), f(row["server_pct"], "{:.1f}"), f(row.get("rest_pct"), "{:.0f}"),
                f(row["machine_busy_pct"], "{:.1f}"), f"{row['load0']} → {row['load1']}"])
print_table(tab, left=1)
print("  RT/s: round trips in the window, all clients; missed: slots skipped because the round trip before was")
print("  still out when they came; p50…p99.9: over all clients' round trips, each timed by its client (send to")
print("  echo); worst client's p99: the highest of the clients' own. clients, server: the CPU time of the N")
print("  python clients and of the one server, % of one core; rest: the machine's busy time less theirs and")
print("  gatewayd's, % of one core (other processes, kernel threads: what else the CPUs did meanwhile);")
print(f"  machine busy: the time all CPUs were not idle (wall time less /proc/stat's idle, iowait and")
print(f"  steal) over the window, % of all {cpus}.")
print()
print("2. what gatewayd spends on them")
tab = [["path", "run", "CPU % of a core", "worker %", "CPU µs/RT", "wait %", "wake-ups/s", "per RT", "polled/s",
        "sleeps/s", "skipped/s", "hit %", "ctx sw/s"]]
for row in rows:
    bp = row.get("busy_poll_us")
    if bp is None:
        continue
    tab.append([path(row), str(row["round"]), f(row["cpu_pct"], "{:.1f}"), f(row["worker_pct"], "{:.1f}"),
                f(row["cpu_us_per_rt"], "{:.1f}"), f(row["wait_pct"], "{:.1f}"), f(row["wakeups_per_s"], "{:.0f}"),
                f(row["rt_per_s"] and row["wakeups_per_s"] / row["rt_per_s"], "{:.2f}"),
                f(row["polled_wakeups_per_s"] if bp else None, "{:.0f}"),
                f(row["sleeps_per_s"] if bp else None, "{:.0f}"),
                f(row["polls_skipped_per_s"] if bp and row["hit_percent"] else None, "{:.0f}"),
                "/".join(f"{h:.0f}" for h in row["hit_percent"]) if bp and row["hit_percent"] else "-",
                f(row["ctx_per_s"], "{:.0f}")])
print_table(tab, left=1)
print("  CPU: utime+stime of supervisor and worker (/proc/PID/stat) over the window, and ÷ round trips; wait:")
print("  their threads' time runnable without a CPU (schedstat) ÷ wall time. wake-ups: shard passes that")
print("  handled I/O; polled: of those, the ones whose I/O came while the shard spun; sleeps: a shard blocking")
print("  in epoll_wait; skipped: bursts of I/O after which the shard's governor let it sleep at once, its")
print("  recent quiet spells having ended within busy-poll-us too seldom; hit %: that share per shard at the")
print("  window's end (polled, sleeps, skipped and hit counted with busy-poll-us > 0 only; all shards,")
print("  /metrics). No hit-percent named: gatewayd's default busy-poll-hit-percent. ctx sw: voluntary and")
print("  involuntary context switches of all of gatewayd's threads.")
missed = sum(r["missed"] for r in rows)
bad = [r for r in rows if r["clients"] < n or r["failed"]]
if missed or bad:
    print(f"  slots missed (a round trip still out when its successor was due): {missed}; runs with clients "
          "missing: " + (", ".join(f"{r['run']} ({r['clients']}/{n}, {r['failed']} failed)" for r in bad) or "none"))
EOF
