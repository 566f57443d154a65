#!/usr/bin/env bash
# The test command: installs dependencies, builds, runs every unit and integration test (root
# needed for the integration tests), then fuzzes the parsers, the stack and the relays for a fixed budget.
set -euo pipefail
cd "$(dirname "$0")/.."

Tools/install-deps.sh
start=$(date +%s)

if [[ $(id -u) -ne 0 ]]; then
    echo "warning: not root: integration tests that need CAP_NET_ADMIN will fail" >&2
fi

# Removes namespaces and devices a crashed test run may have left (tests clean up after
# themselves, but a process killed mid-test cannot).
sweep() {
    ip netns list 2>/dev/null | awk '/^gwtest-/ {print $1}' | xargs -r -n1 ip netns delete 2>/dev/null || true
    ip -o link show 2>/dev/null | awk -F': ' '$2 ~ /^gw[a-z][a-z0-9]{5}-/ {split($2, n, "@"); print n[1]}' \
        | xargs -r -n1 ip link delete 2>/dev/null || true
}
trap sweep EXIT

swift build --build-tests
# Swift Testing runs tests in parallel; the integration tests use unique names so they may.
swift test --skip-build

# The .deb of this build installed, started as its systemd unit would start it, and purged.
if [[ $(id -u) -eq 0 ]]; then
    Tools/test-deb.sh
fi

# The fuzz targets share the fuzzing time on two cores: the parsers on one, a stack driven by
# step sequences then the relays' state machines on the other (Tools/README-fuzz.md).
if [[ -x Tools/fuzz.sh ]]; then
    fuzz_seconds=${FUZZ_SECONDS:-60}
    Tools/fuzz.sh wire "$fuzz_seconds" , stack $((fuzz_seconds * 3 / 4)) relay $((fuzz_seconds / 4))
fi

echo "test command wall time: $(( $(date +%s) - start )) s"
