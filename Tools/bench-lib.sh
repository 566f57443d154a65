# Shared setup of the gatewayd-vs-pasta benchmark scripts (sourced, not run): installs what they
# need, builds gatewayd/gatewayctl in release, and removes every process, device and namespace
# recorded in PIDS, LINKS and NAMESPACES when the script exits, also on failure.
# Usage: source Tools/bench-lib.sh NAME   (NAME labels the work directory)

cd "$(dirname "${BASH_SOURCE[0]}")/.."
Tools/install-deps.sh
command -v pasta >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq passt >/dev/null
swift build -c release --product gatewayd >&2
swift build -c release --product gatewayctl >&2
BIN="$(swift build -c release --show-bin-path)"
TAG=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
WORK=$(mktemp -d "/tmp/gw-$1-$TAG.XXXXXX")
PIDS=()
LINKS=()
NAMESPACES=()
bench_cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    for l in "${LINKS[@]}"; do ip link del "$l" 2>/dev/null; done
    for n in "${NAMESPACES[@]}"; do ip netns del "$n" 2>/dev/null; done
    rm -rf "$WORK"
}
trap bench_cleanup EXIT
