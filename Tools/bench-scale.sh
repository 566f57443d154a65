#!/usr/bin/env bash
# Detach, restart and shutdown at scale: attaches N namespace sandboxes, times detaches (and
# re-attaches) of a sample of them with N attached, then a kill -9 and the restart that restores
# them all, then SIGTERM until gatewayd has exited, and checks that no device is left in any namespace.
# Usage: sudo Tools/bench-scale.sh [--sandboxes N] [--samples N] [--debug] [--skip-build] [--bin DIR]
# --bin runs the gatewayd and gatewayctl in DIR (e.g. an earlier build, for a before/after).
# Every namespace made here carries the run's tag and is removed at the end, on failure too.
set -euo pipefail
cd "$(dirname "$0")/.."

SANDBOXES=1000
SAMPLES=200
CONFIG=release
BUILD=1
BIN=""
while (($#)); do
    case "$1" in
        --sandboxes) SANDBOXES=$2; shift 2 ;;
        --samples) SAMPLES=$2; shift 2 ;;
        --debug) CONFIG=debug; shift ;;
        --skip-build) BUILD=0; shift ;;
        --bin) BIN=$2; BUILD=0; shift 2 ;;
        -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done
if [[ $(id -u) -ne 0 ]]; then
    echo "bench-scale.sh makes namespaces: run it as root" >&2
    exit 1
fi
if ((BUILD)); then
    swift build -c "$CONFIG" --product gatewayd >&2
    swift build -c "$CONFIG" --product gatewayctl >&2
fi
[[ -n $BIN ]] || BIN="$(swift build -c "$CONFIG" --show-bin-path)"
[[ -x $BIN/gatewayd && -x $BIN/gatewayctl ]] || { echo "no gatewayd and gatewayctl in $BIN" >&2; exit 1; }

TAG=$(tr -dc 'a-z0-9' </dev/urandom | head -c 5 || true)
[[ -n $TAG ]] || { echo "could not make a run tag" >&2; exit 1; }
WORK=$(mktemp -d "/tmp/gw-scale-$TAG.XXXXXX")
chmod 755 "$WORK"  # the unprivileged worker keeps its state under here
GWD=""
cleanup() {
    set +e
    [[ -n $GWD ]] && kill -9 "$GWD" 2>/dev/null && wait "$GWD" 2>/dev/null
    ip netns list | awk '{print $1}' | grep "^gwscale-$TAG-" | sed 's/^/netns del /' >"$WORK/del.batch"
    ip -batch "$WORK/del.batch" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "interrupted: cleaning up" >&2; exit 130' INT TERM HUP
ulimit -n "$(ulimit -Hn)"

echo "creating $SANDBOXES namespaces…" >&2
for i in $(seq 1 "$SANDBOXES"); do echo "netns add gwscale-$TAG-$i"; done >"$WORK/add.batch"
ip -batch "$WORK/add.batch"

cat >"$WORK/gatewayd.toml" <<TOML
pin-shards = false
sweep-prefixes = ["gwv-$TAG"]
[addresses]
ipv4-pool = "10.96.0.0/12"
ipv4-sandbox-prefix = 28
ipv6-pool = "fd47:5796::/48"
[dns]
upstreams = ["127.0.0.1:9"]
TOML
SOCK="$WORK/control.sock"
"$BIN/gatewayd" --config "$WORK/gatewayd.toml" --control "$SOCK" --state-dir "$WORK/state" >"$WORK/gatewayd.log" 2>&1 &
GWD=$!
for _ in $(seq 200); do "$BIN/gatewayctl" --control "$SOCK" list >/dev/null 2>&1 && break; sleep 0.05; done

# One request, its HTTP status and time in ms on stdout.
api() { curl -sS -o /dev/null -w '%{http_code} %{time_total}\n' --unix-socket "$SOCK" "$@" | awk '{printf "%s %.3f\n", $1, $2 * 1000}'; }

echo "attaching $SANDBOXES sandboxes…" >&2
t0=$(date +%s.%N)
for i in $(seq 1 "$SANDBOXES"); do
    read -r code _ < <(api -X POST -d "{\"id\":\"s$i\",\"netns\":\"gwscale-$TAG-$i\"}" http://gatewayd/v1/sandboxes)
    [[ $code == 201 ]] || { echo "attach s$i answered $code" >&2; tail -5 "$WORK/gatewayd.log" >&2; exit 1; }
done
t1=$(date +%s.%N)
echo "attached $SANDBOXES in $(echo "$t1 - $t0" | bc) s" >&2

# Detach then attach again at once (same ID, same namespace), so that N stay attached; the
# re-attach also proves the ID, the address block and the device name are free right away.
: >"$WORK/detach.ms"
: >"$WORK/attach.ms"
for i in $(seq 1 "$SAMPLES"); do
    n=$(( (i * 7919) % SANDBOXES + 1 ))
    read -r code t < <(api -X DELETE "http://gatewayd/v1/sandboxes/s$n")
    [[ $code == 200 ]] || { echo "detach s$n answered $code" >&2; exit 1; }
    echo "$t" >>"$WORK/detach.ms"
    read -r code t < <(api -X POST -d "{\"id\":\"s$n\",\"netns\":\"gwscale-$TAG-$n\"}" http://gatewayd/v1/sandboxes)
    [[ $code == 201 ]] || { echo "re-attach s$n answered $code" >&2; tail -5 "$WORK/gatewayd.log" >&2; exit 1; }
    echo "$t" >>"$WORK/attach.ms"
done

stats() {
    sort -n "$1" | awk '{a[NR] = $1} END {k = int(NR * 0.99 + 0.5); if (k < 1) k = 1
        printf "median %.2f ms  p99 %.2f ms  (n=%d)\n", a[int((NR + 1) / 2)], a[k], NR}'
}
echo "detach at $SANDBOXES attached:    $(stats "$WORK/detach.ms")"
echo "re-attach at $SANDBOXES attached: $(stats "$WORK/attach.ms")"

# kill -9, then a restart on the same state directory: the restore runs before the control
# socket opens, so the time to the first answer is the time to bring every sandbox back.
kill -9 "$GWD"
wait "$GWD" 2>/dev/null || true
t0=$(date +%s.%N)
"$BIN/gatewayd" --config "$WORK/gatewayd.toml" --control "$SOCK" --state-dir "$WORK/state" >>"$WORK/gatewayd.log" 2>&1 &
GWD=$!
for _ in $(seq 6000); do "$BIN/gatewayctl" --control "$SOCK" list >/dev/null 2>&1 && break; sleep 0.05; done
t1=$(date +%s.%N)
restored=$("$BIN/gatewayctl" --control "$SOCK" list --json | python3 -c "import json,sys; print(len(json.load(sys.stdin)))")
echo "restart after kill -9 with $SANDBOXES attached: $restored restored, API answering after $(echo "$t1 - $t0" | bc) s"

t0=$(date +%s.%N)
kill -TERM "$GWD"
wait "$GWD" || true
t1=$(date +%s.%N)
GWD=""
echo "SIGTERM to exit with $SANDBOXES attached: $(echo "$t1 - $t0" | bc) s"
left=0
for i in $(seq 1 "$SANDBOXES"); do
    if ip -n "gwscale-$TAG-$i" -o link show 2>/dev/null | grep -q "gwt-"; then left=$((left + 1)); fi
done
echo "devices left after exit: $left"
