#!/usr/bin/env bash
# Installs what the VPC lab (lab/lab.sh) and the tests' loopback fakes need on Debian 12: the part
# of scripts/install-deps.sh that scripts/demo.sh needs (no packaging tools). Idempotent; runs
# itself through sudo when not root.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/root.sh
. "$REPO/scripts/lib/root.sh"
require_root "$REPO/scripts/install-lab-deps.sh" "$@"

command -v apt-get >/dev/null 2>&1 ||
  { echo "install-lab-deps.sh: apt-get not found: this script installs on Debian/Ubuntu only (see lab/README.md for the list)" >&2; exit 2; }

need=()
# The lab's network (iproute2, iptables), its CAs (openssl), a real proxy (tinyproxy-bin: the
# binary without the service), a real DNS server (dnsmasq-base), libfaketime (faketime) for clock
# skew, curl (a scenario's own client), and a C compiler for aws-lc-sys (gcc).
for tool in iptables:iptables ip:iproute2 openssl:openssl tinyproxy:tinyproxy-bin \
  dnsmasq:dnsmasq-base faketime:faketime curl:curl cc:gcc flock:util-linux; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "install-lab-deps.sh: apt-get install ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# moto (fake S3/DynamoDB/STS server) in its own venv, with prometheus-client (its text parser
# reads the agent's /metrics in the tests) and duckdb (runs the saved Athena queries of
# packaging/athena/ on local files).
MOTO_VERSION=5.2.5
PROMETHEUS_CLIENT_VERSION=0.26.0
DUCKDB_VERSION=2.0.1
MOTO_VENV=/opt/vpce-probe-test/venv
if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
  echo "install-lab-deps.sh: moto $MOTO_VERSION into $MOTO_VENV (pip)" >&2
  py=/usr/bin/python3
  [ -x "$py" ] || py=$(command -v python3) ||
    { echo "install-lab-deps.sh: python3 not found: apt-get install python3" >&2; exit 2; }
  probe_dir=$(mktemp -d)
  if ! "$py" -m venv "$probe_dir/v" >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3-venv
  fi
  rm -rf "$probe_dir"
  rm -rf "$MOTO_VENV"
  mkdir -p "$(dirname "$MOTO_VENV")"
  "$py" -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install -q "moto[server]==$MOTO_VERSION" \
    "prometheus-client==$PROMETHEUS_CLIENT_VERSION" "duckdb==$DUCKDB_VERSION"
  "$MOTO_VENV/bin/moto_server" --help >/dev/null
fi
# A venv made before prometheus-client joined the list gets it too.
"$MOTO_VENV/bin/python" -c "import prometheus_client" 2>/dev/null ||
  "$MOTO_VENV/bin/pip" install -q "prometheus-client==$PROMETHEUS_CLIENT_VERSION"
# And duckdb, added after both.
"$MOTO_VENV/bin/python" -c "import duckdb" 2>/dev/null ||
  "$MOTO_VENV/bin/pip" install -q "duckdb==$DUCKDB_VERSION"
