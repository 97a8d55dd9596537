#!/usr/bin/env bash
# Installs what the tests need on Debian 12 (as root). Idempotent; the one place install steps live.
set -euo pipefail
need=()
# The VPC lab (lab/lab.sh) also needs a real proxy (tinyproxy-bin: the binary without the
# service), a real DNS server (dnsmasq-base) and libfaketime (faketime) for clock skew.
for tool in iptables:iptables ip:iproute2 openssl:openssl tinyproxy:tinyproxy-bin \
  dnsmasq:dnsmasq-base faketime:faketime; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

# moto (fake S3/DynamoDB/STS server) for the AWS-level integration tests, in its own venv.
MOTO_VERSION=5.2.5
MOTO_VENV=/opt/vpce-probe-test/venv
if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
  py=/usr/bin/python3
  [ -x "$py" ] || py=$(command -v python3)
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
  "$MOTO_VENV/bin/pip" install -q "moto[server]==$MOTO_VERSION"
  "$MOTO_VENV/bin/moto_server" --help >/dev/null
fi
