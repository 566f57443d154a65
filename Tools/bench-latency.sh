#!/usr/bin/env bash
# Request/response latency (1-byte TCP ping-pong, 10,000 round trips) and new connections per
# second (2,000 sequential connect/read-1-byte/close) from a guest namespace to servers on the
# host's 127.0.0.1: through gatewayd, through pasta, and over a kernel veth, in one run.
# Usage: sudo Tools/bench-latency.sh   (release build; every process and namespace removed at exit)
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh" lat
LINKS+=("gwe-$TAG-h")

cat >"$WORK/server.py" <<'PY'
import socket, sys, threading
def pingpong(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(16)
    while True:
        c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            d = c.recv(1)
            if not d: break
            c.sendall(d)
        c.close()
def accepter(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(128)
    while True:
        c, _ = s.accept(); c.sendall(b"x"); c.close()
threading.Thread(target=pingpong, args=(int(sys.argv[1]),), daemon=True).start()
accepter(int(sys.argv[2]))
PY
cat >"$WORK/client.py" <<'PY'
import socket, sys, time
host, pp, ap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = socket.create_connection((host, pp)); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for _ in range(500): c.sendall(b"x"); c.recv(1)
rtts = []
for _ in range(10000):
    t = time.perf_counter(); c.sendall(b"x"); c.recv(1); rtts.append(time.perf_counter() - t)
c.close()
rtts.sort()
n = 2000
t0 = time.perf_counter()
for _ in range(n):
    s = socket.create_connection((host, ap)); s.recv(1); s.close()
cps = n / (time.perf_counter() - t0)
print(f"{rtts[len(rtts)//2]*1e6:.0f} {rtts[int(len(rtts)*0.99)]*1e6:.0f} {cps:.0f}")
PY
PP=$((40000 + RANDOM % 5000)); AP=$((PP + 1))
python3 "$WORK/server.py" "$PP" "$AP" & PIDS+=($!)
sleep 0.5

results=()
measure() { # label ns host
    local out; out=$(ip netns exec "$2" taskset -c 1 python3 "$WORK/client.py" "$3" "$PP" "$AP")
    results+=("$1 $out")
    echo "$1: $out" >&2
}

# gatewayd
SOCK="$WORK/gw.sock"
printf '[dns]\nupstreams = ["127.0.0.1:9"]\n' >"$WORK/gw.toml"
taskset -c 0 "$BIN/gatewayd" --config "$WORK/gw.toml" --control "$SOCK" --state-dir "$WORK/state" --shards 1 >"$WORK/gw.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [[ -S $SOCK ]] && break; sleep 0.1; done
ns=gwlat-$TAG-gw; NAMESPACES+=("$ns"); ip netns add "$ns"
"$BIN/gatewayctl" --control "$SOCK" attach lat --netns "$ns" >/dev/null
gw=$("$BIN/gatewayctl" --control "$SOCK" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["gatewayIPv4"])')
measure gatewayd "$ns" "$gw"

# pasta (gateway address mapped to the host's loopback)
ns=gwlat-$TAG-pasta; NAMESPACES+=("$ns"); ip netns add "$ns"
taskset -c 0 pasta -q -f --runas 0 --config-net -4 -I gwpasta0 -a 10.0.2.15 -n 24 -g 10.0.2.2 \
    -t none -u none -T none -U none --netns "$ns" & PIDS+=($!)
for _ in $(seq 100); do ip -n "$ns" -4 -o addr show dev gwpasta0 2>/dev/null | grep -q 10.0.2.15 && break; sleep 0.05; done
measure pasta "$ns" 10.0.2.2

# kernel veth: the server is reached at a veth address (iptables-free DNAT is not needed: a
# second server copy listens there)
ns=gwlat-$TAG-veth; NAMESPACES+=("$ns"); ip netns add "$ns"
ip link add "gwe-$TAG-h" type veth peer name "gwe-$TAG-g" netns "$ns"
ip addr add 10.0.5.1/24 dev "gwe-$TAG-h"; ip link set "gwe-$TAG-h" up
ip -n "$ns" addr add 10.0.5.2/24 dev "gwe-$TAG-g"; ip -n "$ns" link set "gwe-$TAG-g" up; ip -n "$ns" link set lo up
sed 's/"127.0.0.1"/"10.0.5.1"/' "$WORK/server.py" >"$WORK/server-veth.py"
python3 "$WORK/server-veth.py" "$PP" "$AP" & PIDS+=($!)
sleep 0.5
measure "kernel veth" "$ns" 10.0.5.1

echo
printf '%-12s %14s %14s %14s\n' path "median RTT µs" "p99 RTT µs" "connections/s"
for r in "${results[@]}"; do
    set -- $r
    if [[ $1 == kernel ]]; then printf '%-12s %14s %14s %14s\n' "kernel veth" "$3" "$4" "$5"
    else printf '%-12s %14s %14s %14s\n' "$1" "$2" "$3" "$4"; fi
done
