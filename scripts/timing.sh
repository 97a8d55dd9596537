#!/usr/bin/env bash
# Prints the probe's timing figures against the tests' loopback fakes (run as root). Usage: scripts/timing.sh [--release]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=debug
[ "${1:-}" = "--release" ] && profile=release
if [ "$profile" = release ]; then cargo build --release --bin vpce-probe; else cargo build --bin vpce-probe; fi
VPCE_PROBE_BIN="$PWD/target/$profile/vpce-probe" cargo run --quiet --example timing
