#!/usr/bin/env bash
# Installs what the tests need on Debian 12: the lab's part (scripts/install-lab-deps.sh), then
# the package check's tools. Idempotent; the one place install steps live. Runs itself through
# sudo when not root.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/root.sh
. "$REPO/scripts/lib/root.sh"
require_root "$REPO/scripts/install-deps.sh" "$@"
trap 'give_back_build_files "$REPO"' EXIT

bash "$REPO/scripts/install-lab-deps.sh"

need=()
# The package check (scripts/check_packages.py) reads the .rpm with rpm and rpm2archive, strips
# the debug binary with objcopy (binutils), lets cargo-deb compute the libc dependency with
# dpkg-shlibdeps (dpkg-dev) and checks the unit with systemd-analyze, systemd-sysusers and
# systemd-tmpfiles (systemd; it is only installed, not booted). The systemd test
# (scripts/systemd_test.py) boots a Debian 12 root file system made by debootstrap under
# systemd-nspawn (systemd-container) and enters it with nsenter (util-linux). Without
# recommends, systemd-container does not pull libnss-mymachines, so the host's nsswitch.conf
# stays as it was (the probe reads it: src/checks/app_resolve.rs, the lab's nsswitch scenarios).
# tests/tty_color.rs runs the probe under a pseudo-terminal with util-linux script (bsdutils,
# essential on Debian). The collector's browser test (crates/collector/tests/browser.rs) drives
# Debian's headless chromium through chromedriver.
for tool in rpm:rpm rpm2archive:rpm2cpio objcopy:binutils dpkg-shlibdeps:dpkg-dev \
  systemd-analyze:systemd gzip:gzip script:bsdutils \
  systemd-nspawn:systemd-container debootstrap:debootstrap nsenter:util-linux \
  chromium:chromium chromedriver:chromium-driver; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
# The collector's tests run every store test on PostgreSQL too, on a throwaway server they
# start with initdb and postgres from /usr/lib/postgresql/*/bin (Debian 12: PostgreSQL 15, and
# the postgres user the server runs as when the tests run as root). Only the binaries are
# needed: the packaged cluster may stay stopped.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
command -v cargo >/dev/null 2>&1 ||
  { echo "install-deps.sh: cargo not found: install Rust 1.94 or newer with rustup (https://rustup.rs) first" >&2; exit 2; }
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

# The package builders (packaging/README.md), pinned: the package check relies on their
# behaviour. Measured here: cargo-deb ~2 min, cargo-generate-rpm ~4-7 min (on 2 busy cores).
CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1
cargo deb --version 2>/dev/null | grep -qx "cargo-deb $CARGO_DEB_VERSION" ||
  cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
cargo generate-rpm --version 2>/dev/null | grep -qx "cargo-generate-rpm $CARGO_GENERATE_RPM_VERSION" ||
  cargo install --locked --quiet cargo-generate-rpm --version "$CARGO_GENERATE_RPM_VERSION"
