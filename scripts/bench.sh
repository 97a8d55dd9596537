#!/usr/bin/env bash
# Benchmarks vpce-probe against the manual checklist and blackbox_exporter in the VPC lab and
# writes BENCHMARKS.md (issue 7). As root: sudo bash scripts/bench.sh [--quick] [--binary PATH] ...
exec "$( [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || command -v python3)" "$(dirname "${BASH_SOURCE[0]}")/../benches/bench.py" "$@"
