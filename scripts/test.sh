#!/usr/bin/env bash
# The project's test command (README "Tests"). Needs root: the loopback fakes bind ports 53 and
# 443 on 127.x addresses, some tests drop packets with iptables, and the VPC lab creates network
# namespaces; run as a user, it runs itself again through sudo. Installs what it needs first.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/root.sh
. "$REPO/scripts/lib/root.sh"
require_root "$REPO/scripts/test.sh" "$@"
trap 'give_back_build_files "$REPO"' EXIT
cd "$REPO"
# What the tests need (idempotent: a few seconds when everything is there already).
bash scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Every binary of the workspace, the lab's server binary and the binary the package check and
# the VPC lab use (tests/collector_e2e.rs runs target/debug/vpce-collector). Built together: an
# example turns the dev-dependencies on, which changes the features of ~28 shared crates
# (serde_json, hashbrown, regex, ...), so that `--bin vpce-probe` alone would rebuild them and
# relink the binary. check_packages.py runs the same command: a no-op here.
cargo build --workspace --locked --bins --example lab_servers
cargo test --workspace --all-targets --locked
# The .deb and .rpm, built from the debug binary and inspected, the SSM document and the unit
# (packaging/README.md, systemd/README.md).
python3 scripts/check_packages.py
# The .deb it built, installed in a Debian 12 container booted under systemd-nspawn: the unit
# live under a real systemd (systemd/README.md). The root file system is cached in
# /var/cache/vpce-probe-test/ (3-5 min more the first time; ~50 s after).
python3 scripts/systemd_test.py
# The saved Athena queries, run with DuckDB on reports in the S3 sink's layout.
/opt/vpce-probe-test/venv/bin/python packaging/athena/check_queries.py
python3 lab/run_scenarios.py --binary target/debug/vpce-probe
