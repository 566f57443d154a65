#!/usr/bin/env bash
# Fuzzes every Wire parser through WireFuzz for a time budget: Tools/fuzz.sh for the wire target alone.
# Usage: Tools/fuzz-wire.sh [seconds]   (default 60).
exec "$(dirname "$0")/fuzz.sh" wire "${1:-60}"
