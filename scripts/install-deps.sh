#!/usr/bin/env bash
# Installs what the tests need on Debian 12 (as root). Idempotent; the one place install steps live.
set -euo pipefail
need=()
# The VPC lab (lab/lab.sh) also needs a real proxy (tinyproxy-bin: the binary without the
# service), a real DNS server (dnsmasq-base) and libfaketime (faketime) for clock skew.
# The package check (scripts/check_packages.py) reads the .rpm with rpm and rpm2archive, strips
# the debug binary with objcopy (binutils), lets cargo-deb compute the libc dependency with
# dpkg-shlibdeps (dpkg-dev) and checks the unit with systemd-analyze, systemd-sysusers and
# systemd-tmpfiles (systemd; it is only installed, not booted).
for tool in curl:curl iptables:iptables ip:iproute2 openssl:openssl tinyproxy:tinyproxy-bin \
  dnsmasq:dnsmasq-base faketime:faketime rpm:rpm rpm2archive:rpm2cpio objcopy:binutils \
  dpkg-shlibdeps:dpkg-dev systemd-analyze:systemd; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

# The package builders (packaging/README.md), pinned: the package check relies on their
# behaviour. Measured here: cargo-deb ~2 min, cargo-generate-rpm ~4-7 min (on 2 busy cores).
CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1
cargo deb --version 2>/dev/null | grep -qx "cargo-deb $CARGO_DEB_VERSION" ||
  cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
cargo generate-rpm --version 2>/dev/null | grep -qx "cargo-generate-rpm $CARGO_GENERATE_RPM_VERSION" ||
  cargo install --locked --quiet cargo-generate-rpm --version "$CARGO_GENERATE_RPM_VERSION"

# moto (fake S3/DynamoDB/STS server) for the AWS-level integration tests, in its own venv, with
# prometheus-client (its text parser reads the agent's /metrics in the tests).
MOTO_VERSION=5.2.5
PROMETHEUS_CLIENT_VERSION=0.26.0
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
  "$MOTO_VENV/bin/pip" install -q "moto[server]==$MOTO_VERSION" \
    "prometheus-client==$PROMETHEUS_CLIENT_VERSION"
  "$MOTO_VENV/bin/moto_server" --help >/dev/null
fi
# A venv made before prometheus-client joined the list gets it too.
"$MOTO_VENV/bin/python" -c "import prometheus_client" 2>/dev/null ||
  "$MOTO_VENV/bin/pip" install -q "prometheus-client==$PROMETHEUS_CLIENT_VERSION"
