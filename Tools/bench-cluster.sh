#!/usr/bin/env bash
# The cluster view in etcd, measured: registration delay (attach returns → the sandbox's full record
# readable in etcd), reconciliation after an etcd restart (etcd answers → all N sandboxes present),
# and how long a kill -9'd node's entries outlive it (default TTL 10 s and a short one).
# Figures and how to read them: Tools/README-bench-cluster.md.
# Usage: sudo Tools/bench-cluster.sh [--sandboxes N] [--short-ttl S] [--skip-build]
# etcd runs as one member on loopback ports picked free, its data under the run's directory; every
# process, namespace and device made here is removed at the end, on failure and on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
source Tools/bench-lib.sh

SANDBOXES=100
SHORT_TTL=3
BUILD=1
while (($#)); do
    case "$1" in
        --sandboxes) SANDBOXES=$2; shift 2 ;;
        --short-ttl) SHORT_TTL=$2; shift 2 ;;
        --skip-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done
bench_require_root bench-cluster.sh

Tools/install-deps.sh >&2
bench_gatewayd_binaries "$BUILD"
bench_init gw-cluster-bench
ulimit -n "$(ulimit -Hn)"

free_port ETCD_CLIENT
free_port ETCD_PEER
ETCD_URL="http://127.0.0.1:$ETCD_CLIENT"

# Starts (or restarts) the etcd member on data directory $1. Sets ETCD_PID.
etcd_start() {
    spawn etcd --name bench --data-dir "$1" --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
        --initial-cluster "bench=http://127.0.0.1:$ETCD_PEER" >>"$WORK/etcd.log" 2>&1
    ETCD_PID=$LAST_PID
}

etcd_kill() {
    kill -9 "$ETCD_PID" 2>/dev/null || true
    wait "$ETCD_PID" 2>/dev/null || true
    forget "$ETCD_PID"
}

# Starts gatewayd NAME as cluster node NAME with lease TTL $2 (none: no [cluster]). Sets GWD, CTL.
start_node() { # name [ttl]
    local name=$1 ttl=${2:-}
    cat >"$WORK/$name.toml" <<TOML
shards = 1
pin-shards = false
sweep-prefixes = ["gwv-$TAG"]
[addresses]
ipv4-pool = "10.78.0.0/16"
ipv6-pool = "fd47:5778::/48"
[dns]
upstreams = ["127.0.0.1:9"]
TOML
    [[ -z $ttl ]] || printf '[cluster]\netcd = ["%s"]\nnode = "%s"\nlease-ttl = %s\n' "$ETCD_URL" "$name" "$ttl" >>"$WORK/$name.toml"
    gatewayd_spawn "$BINDIR" "$name"
    GWD=$GWD_PID
    CTL=("$BINDIR/gatewayctl" --control "$GWD_SOCK")
}

# kill -9 of a node: its worker and its supervisor at once, as a host dying leaves etcd.
kill_node() {
    local p
    for p in $(with_children "$1"); do kill -9 "$p" 2>/dev/null || true; done
    wait "$1" 2>/dev/null || true
    forget "$1"
}

cat >"$WORK/measure.py" <<'PY'
# Reads etcd through its JSON gateway (the same calls gatewayd makes) and times what the shell
# script asks: registration, reconciliation, expiry. Prints one "name value" line per figure.
import base64, json, socket, statistics, subprocess, sys, time, urllib.request

url, mode = sys.argv[1], sys.argv[2]
b64 = lambda s: base64.b64encode(s.encode()).decode()

def post(path, body, timeout=1.0):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)

def prefix(p):
    end = p[:-1] + chr(ord(p[-1]) + 1)
    kvs = post("/v3/kv/range", {"key": b64(p), "range_end": b64(end)}).get("kvs", [])
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode() for kv in kvs}

def full(key):
    kvs = post("/v3/kv/range", {"key": b64(key)}).get("kvs", [])
    return bool(kvs) and "guestIPv4" in base64.b64decode(kvs[0].get("value", "")).decode()

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

if mode in ("register", "attach"):
    # register: each attach, then its full record in etcd; attach: attaches alone (no [cluster]).
    ctl, n, ns_prefix = sys.argv[3].split(" "), int(sys.argv[4]), sys.argv[5]
    delays, attaches = [], []
    for i in range(n):
        t0 = time.monotonic()
        subprocess.run(ctl + ["attach", f"reg-{i}", "--netns", f"{ns_prefix}{i}"], check=True, stdout=subprocess.DEVNULL)
        t1 = time.monotonic()
        while mode == "register" and not full(f"/gatewayd/sandboxes/reg-{i}"):
            time.sleep(0.0005)
        delays.append(time.monotonic() - t1)
        attaches.append(t1 - t0)
    ms = lambda x: f"{x * 1000:.1f}"
    if mode == "attach":
        print("attach_median_ms", ms(statistics.median(attaches)))
        print("attach_p99_ms", ms(pct(attaches, 99)))
        sys.exit(0)
    print("register_median_ms", ms(statistics.median(delays)))
    print("register_p99_ms", ms(pct(delays, 99)))
    print("register_max_ms", ms(max(delays)))
    print("attach_median_ms", ms(statistics.median(attaches)))
    print("attach_p99_ms", ms(pct(attaches, 99)))
elif mode == "reconcile":
    # etcd answers → all N sandboxes present and gatewayd's reconciliation counted (it also runs,
    # reading every key, when etcd kept them all).
    n, sock = int(sys.argv[3]), sys.argv[4]
    def reconciles():
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: gatewayd\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        return json.loads(data.split(b"\r\n\r\n", 1)[1])["cluster"].get("reconciles", 0)
    before = reconciles()
    print("ready", flush=True)
    while True:
        try:
            post("/v3/kv/range", {"key": b64("/")}, timeout=0.2)
            break
        except Exception:
            time.sleep(0.005)
    up = time.monotonic()
    while sum(1 for k in prefix("/gatewayd/sandboxes/")) < n or reconciles() <= before:
        time.sleep(0.002)
    print("reconcile_s", f"{time.monotonic() - up:.3f}")
elif mode == "expire":
    node, killed = sys.argv[3], float(sys.argv[4])
    while any(k == f"/gatewayd/nodes/{node}" or f'"node":"{node}"' in v for k, v in prefix("/gatewayd/").items()):
        time.sleep(0.01)
    print("expire_s", f"{time.time() - killed:.2f}")
PY

# Starts etcd on WORK/etcd-data once the measurement watches (it takes gatewayd's reconciliation
# count first, and then sees the first moment etcd answers); its figures go to WORK/reconcile.out.
measure_reconcile() {
    python3 "$WORK/measure.py" "$ETCD_URL" reconcile "$SANDBOXES" "$GWD_SOCK" >"$WORK/reconcile.out" &
    local watcher=$!
    for _ in $(seq 200); do grep -q ready "$WORK/reconcile.out" && break; sleep 0.02; done
    etcd_start "$WORK/etcd-data"
    wait "$watcher"
}

etcd_start "$WORK/etcd-data"
for _ in $(seq 100); do curl -sf -m 1 "$ETCD_URL/v3/kv/range" -d '{"key":"Lw=="}' >/dev/null && break; sleep 0.1; done

echo "namespaces: $SANDBOXES…" >&2
for i in $(seq 0 $((SANDBOXES - 1))); do netns_add "gwbench-$TAG-$i"; done

start_node a 10
echo "registration: $SANDBOXES attaches…" >&2
REGISTER=$(python3 "$WORK/measure.py" "$ETCD_URL" register "${CTL[*]}" "$SANDBOXES" "gwbench-$TAG-")

echo "reconciliation: etcd killed, restarted on an empty data directory…" >&2
etcd_kill
for _ in $(seq 100); do
    curl -s --unix-socket "$GWD_SOCK" http://gatewayd/v1/health | grep -q '"unreachable"' && break
    sleep 0.1
done
rm -rf "$WORK/etcd-data"
measure_reconcile
RECONCILE_EMPTY=$(cat "$WORK/reconcile.out")

echo "reconciliation: etcd killed, restarted on its data…" >&2
etcd_kill
for _ in $(seq 100); do
    curl -s --unix-socket "$GWD_SOCK" http://gatewayd/v1/health | grep -q '"unreachable"' && break
    sleep 0.1
done
measure_reconcile
RECONCILE_KEPT=$(cat "$WORK/reconcile.out")

echo "expiry: kill -9 of the node (TTL 10 s)…" >&2
sleep 1
KILLED=$(date +%s.%N)
kill_node "$GWD"
EXPIRE_DEFAULT=$(python3 "$WORK/measure.py" "$ETCD_URL" expire a "$KILLED")
for i in $(seq 0 $((SANDBOXES - 1))); do ip netns del "gwbench-$TAG-$i" 2>/dev/null; netns_add "gwbench-$TAG-$i"; done

echo "expiry: kill -9 of the node (TTL $SHORT_TTL s)…" >&2
start_node b "$SHORT_TTL"
for i in $(seq 0 9); do "${CTL[@]}" attach "short-$i" --netns "gwbench-$TAG-$i" >/dev/null; done
sleep 1
KILLED=$(date +%s.%N)
kill_node "$GWD"
EXPIRE_SHORT=$(python3 "$WORK/measure.py" "$ETCD_URL" expire b "$KILLED")
for i in $(seq 0 9); do ip netns del "gwbench-$TAG-$i" 2>/dev/null; netns_add "gwbench-$TAG-$i"; done

echo "attach latency without [cluster]: $SANDBOXES attaches…" >&2
start_node plain
BASELINE=$(python3 "$WORK/measure.py" "$ETCD_URL" attach "${CTL[*]}" "$SANDBOXES" "gwbench-$TAG-")

figure() { awk -v k="$2" '$1 == k {print $2}' <<<"$1"; }
cat <<REPORT
cluster view, etcd $(etcd --version | awk '/^etcd Version/ {print $3}') (one member, loopback), $(nproc) CPUs, $SANDBOXES sandboxes
registration delay, attach returns → full record in etcd:  median $(figure "$REGISTER" register_median_ms) ms, p99 $(figure "$REGISTER" register_p99_ms) ms, max $(figure "$REGISTER" register_max_ms) ms
attach latency (gatewayctl) with the ID claim:              median $(figure "$REGISTER" attach_median_ms) ms, p99 $(figure "$REGISTER" attach_p99_ms) ms
attach latency (gatewayctl) without [cluster]:              median $(figure "$BASELINE" attach_median_ms) ms, p99 $(figure "$BASELINE" attach_p99_ms) ms
reconciliation, etcd answers → all $SANDBOXES sandboxes present and gatewayd reconciled:
  etcd restarted empty (every key written again):           $(figure "$RECONCILE_EMPTY" reconcile_s) s
  etcd restarted on its data (every key read, none written): $(figure "$RECONCILE_KEPT" reconcile_s) s
kill -9 → every entry of the node gone:
  lease TTL 10 s:                                           $(figure "$EXPIRE_DEFAULT" expire_s) s
  lease TTL $SHORT_TTL s:                                            $(figure "$EXPIRE_SHORT" expire_s) s
REPORT
