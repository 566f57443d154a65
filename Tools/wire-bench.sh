#!/usr/bin/env bash
# Builds WireBench in release mode and prints ns/frame and allocations per call for each Wire
# format. Usage: Tools/wire-bench.sh. See Tools/README-wire-bench.md.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product WireBench >/dev/null
exec .build/release/WireBench "$@"
