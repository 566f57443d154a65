#!/usr/bin/env bash
# Published ports beside pasta -t, in one run: iperf3 throughput host→guest and guest→host through
# the published port, new connections per second and time to first byte. The client sits in a
# second namespace behind a veth this script makes (so neither side can splice a loopback
# connection) and connects to the veth's host address, where both forwarders listen.
# Usage: sudo Tools/bench-publish.sh   (release build; everything removed at exit)
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh" pub
LINKS+=("gwp-$TAG-h")
HOSTIP=10.0.6.1

# The client's namespace, behind a veth to the host. The veth is named gwp-…: gatewayd sweeps
# its own role prefixes (gwt-, gwb-, gwv-, gwe-) when it starts.
client=gwpub-$TAG-c; NAMESPACES+=("$client"); ip netns add "$client"
ip link add "gwp-$TAG-h" type veth peer name "gwp-$TAG-c" netns "$client"
ip addr add $HOSTIP/24 dev "gwp-$TAG-h"; ip link set "gwp-$TAG-h" up
ip -n "$client" addr add 10.0.6.2/24 dev "gwp-$TAG-c"; ip -n "$client" link set "gwp-$TAG-c" up; ip -n "$client" link set lo up

cat >"$WORK/oneshot.py" <<'PY'
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(128)
while True:
    c, _ = s.accept(); c.sendall(b"x"); c.close()
PY
cat >"$WORK/conns.py" <<'PY'
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), 2000
ttfb = []
t0 = time.perf_counter()
for _ in range(n):
    t = time.perf_counter(); s = socket.create_connection((host, port)); s.recv(1); ttfb.append(time.perf_counter() - t); s.close()
cps = n / (time.perf_counter() - t0)
ttfb.sort()
print(f"{cps:.0f} {ttfb[n//2]*1e6:.0f} {ttfb[int(n*0.99)]*1e6:.0f}")
PY

results=()
measure() { # label port
    local up down conns
    up=$(ip netns exec "$client" iperf3 -c $HOSTIP -p "$2" -t 4 -J | python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))')
    down=$(ip netns exec "$client" iperf3 -c $HOSTIP -p "$2" -t 4 -R -J | python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))')
    conns=$(ip netns exec "$client" python3 "$WORK/conns.py" $HOSTIP "$3")
    results+=("$1 $down $up $conns")
    echo "$1: host→guest $down Gbps, guest→host $up Gbps, conn/s + TTFB median/p99 µs: $conns" >&2
}

# gatewayd: iperf3 and the one-shot server in the sandbox, published on the veth's host address.
SOCK="$WORK/gw.sock"
printf '[dns]\nupstreams = ["127.0.0.1:9"]\n' >"$WORK/gw.toml"
"$BIN/gatewayd" --config "$WORK/gw.toml" --control "$SOCK" --state-dir "$WORK/state" --shards 1 >"$WORK/gw.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [[ -S $SOCK ]] && break; sleep 0.1; done
ns=gwpub-$TAG-gw; NAMESPACES+=("$ns"); ip netns add "$ns"
"$BIN/gatewayctl" --control "$SOCK" attach pub --netns "$ns" >/dev/null
ip netns exec "$ns" iperf3 -s -p 5201 >/dev/null 2>&1 & PIDS+=($!)
ip netns exec "$ns" python3 "$WORK/oneshot.py" 7000 & PIDS+=($!)
sleep 0.5
"$BIN/gatewayctl" --control "$SOCK" publish pub $HOSTIP:31201:5201 >&2
"$BIN/gatewayctl" --control "$SOCK" publish pub $HOSTIP:31700:7000 >&2
measure gatewayd 31201 31700

# pasta -t: the same servers in pasta's namespace; its listeners take every host address, the
# client uses the same one.
ns=gwpub-$TAG-pasta; NAMESPACES+=("$ns"); ip netns add "$ns"
pasta -f --runas 0 --log-file "$WORK/pasta.log" --config-net -4 -I gwpasta0 -a 10.0.2.15 -n 24 -g 10.0.2.2 \
    -t 32201:5201 -t 32700:7000 -u none -T none -U none --netns "$ns" & PIDS+=($!)
for _ in $(seq 100); do ip -n "$ns" -4 -o addr show dev gwpasta0 2>/dev/null | grep -q 10.0.2.15 && break; sleep 0.05; done
ip netns exec "$ns" iperf3 -s -p 5201 >/dev/null 2>&1 & PIDS+=($!)
ip netns exec "$ns" python3 "$WORK/oneshot.py" 7000 & PIDS+=($!)
sleep 0.5
measure "pasta -t" 32201 32700 || { echo "pasta run failed:"; cat "$WORK/pasta.log"; } >&2

echo
printf '%-10s %16s %16s %10s %16s %14s\n' path "host→guest Gbps" "guest→host Gbps" "conn/s" "TTFB median µs" "TTFB p99 µs"
for r in "${results[@]}"; do
    read -r a b c d e f g <<<"$r"
    if [[ $a == pasta ]]; then printf '%-10s %16s %16s %10s %16s %14s\n' "pasta -t" "$c" "$d" "$e" "$f" "$g"
    else printf '%-10s %16s %16s %10s %16s %14s\n' "$a" "$b" "$c" "$d" "$e" "$f"; fi
done
