#!/usr/bin/env bash
# Installs what the tests need on Debian 12 (as root). Idempotent; the one place install steps live.
set -euo pipefail
need=()
for tool in iptables:iptables ip:iproute2 openssl:openssl; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
