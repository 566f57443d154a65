#!/usr/bin/env bash
# CNI ADD and DEL latency, measured: gatewayd-cni called as a runtime calls it, beside the standard
# bridge (+ host-local IPAM) + portmap chain, each with one port mapping, in the same run.
# Figures and how to read them: Tools/README-bench-cni.md.
# Usage: sudo Tools/bench-cni.sh [--cycles N] [--skip-build]
# Every namespace, device, process and file made here is removed at the end, on failure and on
# Ctrl-C (portmap leaves its empty top-level iptables chains, CNI-HOSTPORT-*, as it always does).
set -euo pipefail
cd "$(dirname "$0")/.."
source Tools/bench-lib.sh

CYCLES=200
BUILD=1
while (($#)); do
    case "$1" in
        --cycles) CYCLES=$2; shift 2 ;;
        --skip-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done
bench_require_root bench-cni.sh

Tools/install-deps.sh >&2
bench_gatewayd_binaries "$BUILD"
if ((BUILD)) && [[ -z ${GWD_BINDIR:-} ]]; then swift build -c release --product gatewayd-cni >&2; fi
[[ -x $BINDIR/gatewayd-cni ]] || { echo "$BINDIR/gatewayd-cni is missing: run without --skip-build" >&2; exit 1; }
STD=/usr/lib/cni
for p in bridge host-local portmap; do
    [[ -x $STD/$p ]] || { echo "$STD/$p is missing: apt-get install containernetworking-plugins" >&2; exit 1; }
done

bench_init gw-cni-bench
gatewayd_start "$BINDIR"

BRIDGE=gwk-$TAG-br
LINKS+=("$BRIDGE")
SUBNET=$(free_subnet)
free_port GW_PORT
free_port STD_PORT
mkdir -p "$WORK/ipam"

# The two networks as a runtime's conflist would give them, one plugin's part each; the runtime's
# portMappings capability filled in as libcni would.
cat >"$WORK/gatewayd.json" <<JSON
{"cniVersion": "1.0.0", "name": "gwbench-$TAG", "type": "gatewayd-cni", "control": "$GWD_SOCK",
 "runtimeConfig": {"portMappings": [{"hostPort": $GW_PORT, "containerPort": 80, "protocol": "tcp"}]}}
JSON
cat >"$WORK/bridge.json" <<JSON
{"cniVersion": "1.0.0", "name": "gwbench-$TAG-std", "type": "bridge", "bridge": "$BRIDGE", "isGateway": true,
 "ipMasq": false, "ipam": {"type": "host-local", "ranges": [[{"subnet": "$SUBNET.0/24"}]],
 "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$WORK/ipam"}}
JSON
cat >"$WORK/portmap.json" <<JSON
{"cniVersion": "1.0.0", "name": "gwbench-$TAG-std", "type": "portmap", "snat": true,
 "runtimeConfig": {"portMappings": [{"hostPort": $STD_PORT, "containerPort": 80, "protocol": "tcp"}]}}
JSON

echo "cycles: $CYCLES, gatewayd-cni from $BINDIR, standard plugins from $STD" >&2
# The timing loop is Python: one clock (perf_counter_ns) around each plugin process, no shell
# in between. A chain's ADD is its plugins' ADDs in order, each given the one before's result as
# prevResult (SPEC.md, Section 3); its DEL runs them in reverse, each given the chain's result.
# Each cycle gets a fresh namespace, made before the clock starts and removed after it stops, as a
# runtime makes one per container (bench_cleanup removes any left by a failure).
cat >"$WORK/cycles.py" <<'PY'
import json, os, subprocess, sys, time

cycles, prefix, gateway_plugin, std, work = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
netns = None

def fresh_namespace(i):
    global netns
    name = f"{prefix}-{i}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    netns = f"/run/netns/{name}"
    return name

def call(binary, command, config, prev=None, container="gwbench"):
    if prev is not None:
        config = dict(config, prevResult=prev)
    env = dict(os.environ, CNI_COMMAND=command, CNI_CONTAINERID=container, CNI_NETNS=netns,
               CNI_IFNAME="eth0", CNI_PATH=std)
    p = subprocess.run([binary], input=json.dumps(config).encode(), env=env, capture_output=True)
    if p.returncode != 0:
        sys.exit(f"{os.path.basename(binary)} {command} failed: {p.stdout.decode()} {p.stderr.decode()}")
    return json.loads(p.stdout) if p.stdout.strip() else None

def load(name):
    with open(f"{work}/{name}.json") as f:
        return json.load(f)

chains = {
    "gatewayd-cni": [(gateway_plugin, load("gatewayd"))],
    "bridge+portmap": [(f"{std}/bridge", load("bridge")), (f"{std}/portmap", load("portmap"))],
}

def add(chain):
    result = None
    for binary, config in chain:
        result = call(binary, "ADD", config, result)
    return result

def delete(chain, result):
    for binary, config in reversed(chain):
        call(binary, "DEL", config, result)

def percentile(sorted_ms, q):
    return sorted_ms[min(len(sorted_ms) - 1, int(round(q * (len(sorted_ms) - 1))))]

figures = {}
for name, chain in chains.items():
    adds, dels = [], []
    for i in range(cycles + 3):
        namespace = fresh_namespace(i)
        t0 = time.perf_counter_ns()
        result = add(chain)
        t1 = time.perf_counter_ns()
        delete(chain, result)
        t2 = time.perf_counter_ns()
        subprocess.run(["ip", "netns", "del", namespace], check=True)
        # The first three are not counted: they page the binaries in and make iptables chains.
        if i >= 3:
            adds.append((t1 - t0) / 1e6)
            dels.append((t2 - t1) / 1e6)
    figures[name] = (sorted(adds), sorted(dels))

# The floor under each: starting the plugin binary and answering VERSION, no work and no I/O.
floors = {}
for name, chain in chains.items():
    times = []
    for _ in range(cycles):
        t0 = time.perf_counter_ns()
        for binary, _config in chain:
            subprocess.run([binary], input=b'{"cniVersion": "1.0.0"}', env=dict(os.environ, CNI_COMMAND="VERSION"),
                           capture_output=True, check=True)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    floors[name] = percentile(sorted(times), .5)

print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
print(f"{'plugins':<16} {'ADD median':>11} {'ADD p99':>9} {'DEL median':>11} {'DEL p99':>9}   (ms, {cycles} cycles)")
for name, (adds, dels) in figures.items():
    print(f"{name:<16} {percentile(adds, .5):>11.2f} {percentile(adds, .99):>9.2f} "
          f"{percentile(dels, .5):>11.2f} {percentile(dels, .99):>9.2f}   (VERSION median {floors[name]:.2f})")
PY
run python3 "$WORK/cycles.py" "$CYCLES" "gwbench-$TAG-c" "$BINDIR/gatewayd-cni" "$STD" "$WORK"
