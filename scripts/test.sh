#!/usr/bin/env bash
# The project's test command (README "Tests"). Run as root: the loopback fakes bind ports 53
# and 443 on 127.x addresses, and some tests drop packets with iptables.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: run as root (sudo scripts/test.sh): the tests bind ports 53/443 on loopback and use iptables" >&2
  exit 2
fi
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo clippy -p vpce-collector --all-targets --locked -- -D warnings
# Every binary of the workspace: tests/collector_e2e.rs runs target/debug/vpce-collector.
cargo build --workspace --locked
cargo test --all-targets --locked
cargo test -p vpce-collector --all-targets --locked
# The VPC lab (lab/README.md). `cargo test --all-targets` builds examples only as test
# harnesses, so the lab's server binary (target/debug/examples/lab_servers) is built here.
cargo build --locked --example lab_servers
# The .deb and .rpm, built from the debug binary and inspected, the SSM document and the unit
# (packaging/README.md, systemd/README.md).
python3 scripts/check_packages.py
python3 lab/run_scenarios.py --binary target/debug/vpce-probe
