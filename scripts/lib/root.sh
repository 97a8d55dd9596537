# shellcheck shell=bash
# Sourced by the scripts that need root (network namespaces, iptables, apt-get, ports 53 and 443
# on loopback). Not executable on its own.

# require_root SCRIPT [ARGS...]: returns when already root. Otherwise re-runs SCRIPT through sudo,
# keeping the caller's Rust toolchain (sudo resets PATH and HOME, so rustup's cargo and its
# CARGO_HOME/RUSTUP_HOME would not be found as root) with the sbin directories in front (a
# user's PATH lacks them: iptables, dnsmasq), or exits 2 with one line when there is no sudo.
require_root() {
  local script=$1 name
  shift
  [ "$(id -u)" -eq 0 ] && return 0
  name=$(basename "$script")
  if ! command -v sudo >/dev/null 2>&1; then
    echo "$name: needs root (network namespaces, iptables, apt-get) and sudo is not installed: run it as root" >&2
    exit 2
  fi
  local keep=(PATH="/usr/local/sbin:/usr/sbin:/sbin:$PATH" CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}")
  [ -n "${CARGO_TARGET_DIR:-}" ] && keep+=(CARGO_TARGET_DIR="$CARGO_TARGET_DIR")
  [ -n "${RUSTUP_TOOLCHAIN:-}" ] && keep+=(RUSTUP_TOOLCHAIN="$RUSTUP_TOOLCHAIN")
  echo "$name: not root: running it again through sudo" >&2
  exec sudo env "${keep[@]}" bash "$script" "$@"
}

# give_back_build_files REPO: after a run through sudo, hands the files root created in the
# target directory, the invoking user's CARGO_HOME and RUSTUP_HOME (registry, installed tools,
# components) back to that user, so that their own cargo keeps working. Only files owned by root
# are touched, and only in directories the user owns.
give_back_build_files() {
  local repo=$1 dir
  [ -n "${SUDO_UID:-}" ] && [ "${SUDO_UID}" != 0 ] && [ "$(id -u)" -eq 0 ] || return 0
  for dir in "${CARGO_TARGET_DIR:-$repo/target}" "${CARGO_HOME:-}" "${RUSTUP_HOME:-}"; do
    [ -n "$dir" ] && [ -d "$dir" ] || continue
    # The directory itself may be root's when root made it (a first build through sudo).
    [ "$(stat -c %u "$dir")" = "$SUDO_UID" ] || [ "$(stat -c %u "$(dirname "$dir")")" = "$SUDO_UID" ] || continue
    chown -R --from=0 "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$dir" 2>/dev/null || true
  done
}
