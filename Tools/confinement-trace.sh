#!/usr/bin/env bash
# Finds the system calls gatewayd makes, one workload at a time (attach, egress, DNS, publish,
# capture, SIGHUP, restart, ...), by attaching strace to a running gatewayd for each, and splits
# them into the supervisor's (netlink, TUN, namespaces) and the worker's, against the worker's
# allow-list (Sources/Confinement). Tools/README-confinement.md tells what it found.
#
# Usage: sudo Tools/confinement-trace.sh [BIN_DIR]   (default: swift build's debug products)
# Needs root. Only loopback and the run's own namespaces are ever addressed.
set -euo pipefail
cd "$(dirname "$0")/.."
source Tools/bench-lib.sh
bench_require_root confinement-trace.sh
bench_install_packages strace curl netcat-openbsd iputils-ping python3 libseccomp-dev

bin=${1:-}
if [[ -z $bin ]]; then
    swift build --product gatewayd >/dev/null
    swift build --product gatewayctl >/dev/null
    swift build --product confinement-probe >/dev/null
    bin="$(swift build --show-bin-path)"
fi
bench_init gwtrace
out=${TRACE_OUT:-/tmp/gwtrace-$TAG}
mkdir -p "$out"
ctl="$bin/gatewayctl"
sock=$WORK/control.sock
export GATEWAYD_CONTROL=$sock
base=$((20000 + RANDOM % 8000))
dnsport=$base httpport=$((base + 1)) udpport=$((base + 2)) metricsport=$((base + 3))
cat >"$WORK/gatewayd.toml" <<TOML
shards = 2
flow-log = "$WORK/flows.jsonl"
metrics-address = "127.0.0.1:$metricsport"
sweep-prefixes = ["gwv-$TAG", "gwb-$TAG", "gwt-$TAG"]
host-device-tag = "$TAG"
[dns]
upstreams = ["127.0.0.1:$dnsport"]
TOML

# Loopback services: a resolver answering every A query with 127.0.0.1, a UDP echo, a web server.
spawn python3 -c '
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    q, a = s.recvfrom(2048); end = q[12:].index(0) + 5; qtype = struct.unpack("!H", q[12 + end - 4:12 + end - 2])[0]
    ans = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x01" if qtype == 1 else b""
    s.sendto(q[:2] + b"\x81\x80" + q[4:6] + struct.pack("!HHH", 1 if ans else 0, 0, 0) + q[12:12 + end] + ans, a)
' "$dnsport"
udp_echo='
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    d, a = s.recvfrom(65536); s.sendto(d, a)
'
spawn python3 -c "$udp_echo" 127.0.0.1 "$udpport"
mkdir -p "$WORK/www"
echo hello >"$WORK/www/hello.txt"
spawn python3 -m http.server "$httpport" --bind 127.0.0.1 --directory "$WORK/www"

# gatewayd keeps the shell's pid (so signals and kill -9 reach it); a strace attached before the
# exec sees its start, and detaches on SIGINT, leaving it running.
launch() {
    bash -c 'strace -f -qq -o "$0" -p $$ 2>/dev/null & echo $! >"$0.tracer"
        for _ in $(seq 100); do grep -q "^TracerPid:[[:space:]]*[1-9]" /proc/$$/status && break; sleep 0.02; done
        exec "$@"' "$out/$1.trace" "$bin/gatewayd" --config "$WORK/gatewayd.toml" --control "$sock" \
        --state-dir "$WORK/state" --egress-policy host-only >>"$WORK/gatewayd.log" 2>&1 &
    gw_pid=$!
    PIDS+=("$gw_pid")
    for _ in $(seq 200); do "$ctl" list >/dev/null 2>&1 && break; sleep 0.1; done
    sleep 0.3
    kill -INT "$(cat "$out/$1.trace.tracer")"
    sleep 0.3
}
segment_start() {
    strace -f -qq -o "$out/$1.trace" -p "$gw_pid" &
    tracer=$!
    sleep 0.5
}
segment_end() {
    sleep 0.3
    # Gone already when gatewayd exited (SIGTERM).
    kill -INT "$tracer" 2>/dev/null || true
    wait "$tracer" 2>/dev/null || true
}
in_ns() { ip netns exec "$ns" "$@"; }

launch 00-startup
for i in 1 2 3 4; do
    ip netns add "gwtrace-$TAG-$i"
    NAMESPACES+=("gwtrace-$TAG-$i")
done
segment_start 01-attach-netns
for i in 1 2 3 4; do "$ctl" attach "s$i" --netns "gwtrace-$TAG-$i" >/dev/null; done
segment_end
ns=gwtrace-$TAG-1
gw=$("$ctl" list --json | python3 -c 'import json,sys; print([s for s in json.load(sys.stdin) if s["id"]=="s1"][0]["gatewayIPv4"])')
mkdir -p "/etc/netns/$ns"
echo "nameserver $gw" >"/etc/netns/$ns/resolv.conf"
trap 'rm -rf "/etc/netns/$ns"; bench_cleanup' EXIT

segment_start 02-tcp-egress
for _ in 1 2 3; do in_ns curl -sS --max-time 10 -o /dev/null "http://$gw:$httpport/hello.txt"; done
in_ns curl -sS --max-time 5 "http://$gw:1/" 2>/dev/null || true
segment_end
segment_start 03-udp-egress
for _ in 1 2 3; do echo udp | in_ns nc -u -w1 "$gw" "$udpport" >/dev/null; done
segment_end
segment_start 04-icmp
in_ns ping -c 3 -i 0.2 "$gw" >/dev/null
segment_end
segment_start 05-dns
in_ns getent hosts a.example.test >/dev/null
in_ns getent hosts host.gateway.internal >/dev/null
segment_end
spawn ip netns exec "$ns" python3 -m http.server 8080 --directory "$WORK/www"
spawn ip netns exec "$ns" python3 -c "$udp_echo" 0.0.0.0 9999
sleep 0.7
segment_start 06-publish
tcp_port=$("$ctl" publish s1 8080 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["hostPort"])')
udp_port=$("$ctl" publish s1 9999/udp --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["hostPort"])')
segment_end
segment_start 07-published-traffic
curl -sS --max-time 5 -o /dev/null "http://127.0.0.1:$tcp_port/hello.txt"
echo x | nc -u -w1 127.0.0.1 "$udp_port" >/dev/null
segment_end
segment_start 08-capture
"$ctl" capture s1 --count 6 --seconds 3 -w "$WORK/capture.pcap" >/dev/null 2>&1 &
capture=$!
sleep 0.3
in_ns ping -c 3 -i 0.2 "$gw" >/dev/null
wait "$capture"
segment_end
segment_start 09-stats-metrics
"$ctl" stats s1 >/dev/null
"$ctl" list >/dev/null
"$ctl" routes >/dev/null
"$ctl" flows >/dev/null
curl -sS -o /dev/null "http://127.0.0.1:$metricsport/metrics"
segment_end
segment_start 10-sighup
mv "$WORK/flows.jsonl" "$WORK/flows.1"
kill -HUP "$gw_pid"
sleep 0.5
segment_end
segment_start 11-policy
"$ctl" policy s2 open >/dev/null
segment_end
segment_start 12-unpublish
"$ctl" unpublish s1 "$tcp_port" >/dev/null 2>&1 || "$ctl" unpublish s1 8080 >/dev/null 2>&1 || true
segment_end
segment_start 13-attach-vm
"$ctl" attach vm1 --vm >/dev/null 2>&1
segment_end
segment_start 14-detach-vm
"$ctl" detach vm1 >/dev/null
segment_end
segment_start 15-detach-netns
"$ctl" detach s4 >/dev/null
"$ctl" detach s3 >/dev/null
segment_end
kill -9 "$gw_pid"
wait "$gw_pid" 2>/dev/null || true
launch 16-restart-restore
segment_start 17-stop-sigterm
kill -TERM "$gw_pid"
for _ in $(seq 100); do kill -0 "$gw_pid" 2>/dev/null || break; sleep 0.1; done
segment_end

"$bin/confinement-probe" list >"$out/allow-list.md"
python3 Tools/confinement_trace.py --allow-list "$out/allow-list.md" --executable "$bin/gatewayd" "$out"/[0-9]*.trace
echo "traces kept in $out" >&2
