#!/usr/bin/env bash
# The main job: installs what it needs, builds, starts gatewayd, attaches a namespace sandbox,
# shows traffic both ways (guest → host service through the gateway address, host → guest
# through a published port), shows `list`, `routes` and `stats`, and cleans everything up.
# Needs root (network namespaces, TAP devices). Only loopback and the demo's own namespace
# are ever addressed.
set -euo pipefail
cd "$(dirname "$0")/.."

Tools/install-deps.sh
echo "== building"
swift build --product gatewayd >/dev/null
swift build --product gatewayctl >/dev/null
bin="$(swift build --show-bin-path)"

tag="$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
work="$(mktemp -d /tmp/gwdemo-XXXXXX)"
# gatewayd's unprivileged worker keeps its state under here.
chmod 755 "$work"
ns="gwdemo-$tag"
sock="$work/control.sock"
export GATEWAYD_CONTROL="$sock"
pids=()

cleanup() {
    set +e
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    if [[ -n "${gw_pid:-}" ]]; then
        kill -TERM "$gw_pid" 2>/dev/null
        wait "$gw_pid" 2>/dev/null
    fi
    ip netns delete "$ns" 2>/dev/null
    rm -rf "/etc/netns/$ns" "$work"
}
trap cleanup EXIT

echo "== starting gatewayd (control socket $sock)"
# The DNS forwarder is pointed at a port on loopback where nothing answers: the demo resolves
# only the gateway's own name and never asks a real resolver.
cat >"$work/gatewayd.toml" <<TOML
[dns]
upstreams = ["127.0.0.1:9"]
TOML
"$bin/gatewayd" --config "$work/gatewayd.toml" --control "$sock" --state-dir "$work/state" \
    --egress-policy host-only >"$work/gatewayd.log" 2>&1 &
gw_pid=$!
for _ in $(seq 100); do "$bin/gatewayctl" list >/dev/null 2>&1 && break; sleep 0.1; done
"$bin/gatewayctl" list >/dev/null 2>&1 || { echo "gatewayd did not start:"; cat "$work/gatewayd.log"; exit 1; }

echo "== a sandbox: network namespace $ns"
ip netns add "$ns"
"$bin/gatewayctl" attach demo --netns "$ns"
echo
"$bin/gatewayctl" list
gw="$("$bin/gatewayctl" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["gatewayIPv4"])')"
mkdir -p "/etc/netns/$ns"
echo "nameserver $gw" >"/etc/netns/$ns/resolv.conf"

echo
echo "== guest → host: an HTTP server on the host's 127.0.0.1, reached at the gateway address"
mkdir -p "$work/www"
echo "hello from the host" >"$work/www/hello.txt"
port=$((20000 + RANDOM % 10000))
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do ss -ltnH "sport = :$port" | grep -q LISTEN && break; sleep 0.1; done
echo "\$ curl http://host.gateway.internal:$port/hello.txt   (inside the sandbox)"
ip netns exec "$ns" curl -sS --max-time 10 "http://host.gateway.internal:$port/hello.txt"
echo "\$ ping -c 2 $gw"
ip netns exec "$ns" ping -c 2 -i 0.2 "$gw" | tail -2
echo "\$ curl http://$gw:1/   (nothing listens on the host's port 1: refused at once)"
ip netns exec "$ns" curl -sS --max-time 5 "http://$gw:1/" 2>&1 | sed 's/^/  /' || true

echo
echo "== host → guest: a server in the sandbox, published on the host's loopback"
mkdir -p "$work/guest-www"
echo "hello from the sandbox" >"$work/guest-www/hello.txt"
ip netns exec "$ns" python3 -m http.server 8080 --directory "$work/guest-www" >/dev/null 2>&1 &
pids+=($!)
sleep 0.5
if out="$("$bin/gatewayctl" publish demo 8080 2>&1)"; then
    echo "$out"
    hostport="$(echo "$out" | grep -oE '127\.0\.0\.1:[0-9]+' | head -1 | cut -d: -f2)"
    echo "\$ curl http://127.0.0.1:$hostport/hello.txt   (on the host)"
    curl -sS --max-time 10 "http://127.0.0.1:$hostport/hello.txt"
    echo
    "$bin/gatewayctl" routes
else
    echo "  publish: $out"
fi

echo
echo "== counters"
"$bin/gatewayctl" stats demo
echo
"$bin/gatewayctl" detach demo
echo "detached; stopping gatewayd"
