#!/usr/bin/env bash
# See vpce-probe work without an AWS account, in one command: installs what the VPC lab needs
# (scripts/install-lab-deps.sh), builds the debug binary and the lab's servers, brings the lab up
# (network namespaces playing an EC2 instance in a private subnet with S3 and DynamoDB gateway
# endpoints, lab/README.md), probes it healthy and with two faults, prints each text report and
# tears the lab down, also on failure or Ctrl-C.
#
#   scripts/demo.sh           as root, or as a user with sudo (it runs itself again through sudo)
#   scripts/demo.sh --keep    leave the lab up at the end (sudo bash lab/lab.sh down removes it)
#
# The build leaves out the control-plane feature (EC2 Describe*, the aws-sdk-ec2 crate, which
# alone takes minutes and ~8 GB to compile): the lab's private subnet cannot reach EC2's API
# anyway. scripts/test.sh builds everything.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/root.sh
. "$REPO/scripts/lib/root.sh"

KEEP=0
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=1 ;;
    -h | --help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown argument '$arg' (--keep, --help)" >&2; exit 2 ;;
  esac
done
require_root "$REPO/scripts/demo.sh" "$@"
cd "$REPO"

STARTED=$SECONDS
STEP=0
STEPS=7
BOLD='' PLAIN=''
[ -t 1 ] && BOLD=$'\033[1m' PLAIN=$'\033[0m'
step() {
  STEP=$((STEP + 1))
  printf '\n%s==> [%d/%d] %s%s  (%d s so far)\n' "$BOLD" "$STEP" "$STEPS" "$*" "$PLAIN" "$((SECONDS - STARTED))"
}
say() { printf '    %s\n' "$*"; }
fail() { echo "demo.sh: $*" >&2; exit 1; }

LAB_UP=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ "$LAB_UP" = 1 ]; then
    if [ "$KEEP" = 1 ] && [ "$rc" -eq 0 ]; then
      say "lab left up (--keep): sudo bash lab/lab.sh probe | apply FAULT | reset | down"
    else
      [ "$rc" -eq 0 ] || echo "demo.sh: stopped (exit $rc): tearing the lab down" >&2
      bash lab/lab.sh down && say "lab removed: no namespace, process or file left behind"
    fi
  fi
  give_back_build_files "$REPO"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
step "installing the lab's packages (iproute2, iptables, tinyproxy, dnsmasq, faketime, moto in a venv)"
bash scripts/install-lab-deps.sh
command -v cargo >/dev/null 2>&1 ||
  fail "cargo not found: install Rust 1.94 or newer with rustup (https://rustup.rs), then run this again"
say "done"

step "building the debug binary and the lab's servers (several minutes on a clean checkout with 2 cores)"
t=$SECONDS
cargo build --locked --no-default-features --bin vpce-probe --example lab_servers
say "built in $((SECONDS - t)) s: target/debug/vpce-probe, target/debug/examples/lab_servers"

# One lab per machine: hold the lab's lock for the whole demo (lab.sh then skips taking it),
# unless the caller holds it already (VPL_LOCK_HELD=1, as lab.sh understands it).
if [ "${VPL_LOCK_HELD:-}" != 1 ]; then
  exec 9>>"${VPL_LOCK_FILE:-/run/vpce-lab.lock}"
  if ! flock -n 9; then
    say "another lab run holds the lab lock; waiting for it"
    flock 9
  fi
  export VPL_LOCK_HELD=1
fi

step "bringing the VPC lab up (network namespaces: instance, router, AWS, IMDS/resolver, corporate)"
LAB_UP=1
bash lab/lab.sh up

UNEXPECTED=()
# probe NAME EXPECTED_EXIT: runs the probe in the instance namespace and prints its text report.
probe() {
  local rc=0
  say "vpce-probe probe --bucket lab-bucket --table lab-table ... (run inside the instance namespace)"
  echo
  bash lab/lab.sh probe || rc=$?
  echo
  if [ "$rc" -eq "$2" ]; then
    say "exit $rc, as expected"
  else
    say "exit $rc, expected $2"
    UNEXPECTED+=("$1")
  fi
}
fault_description() { bash lab/lab.sh faults | awk -v f="$1" '$1 == f { $1 = ""; sub(/^ +/, ""); print }'; }

step "healthy: S3 and DynamoDB through the gateway endpoints (exit 0)"
probe healthy 0

step "broken: $(fault_description hosts-stale-s3) (exit 1)"
bash lab/lab.sh apply hosts-stale-s3
probe hosts-stale 1
bash lab/lab.sh reset

step "broken: $(fault_description nacl-ephemeral-narrow) (exit 1)"
bash lab/lab.sh apply nacl-ephemeral-narrow
probe nacl-ephemeral-narrow 1
bash lab/lab.sh reset

step "done in $((SECONDS - STARTED)) s"
if [ "$KEEP" = 0 ]; then
  bash lab/lab.sh down
  LAB_UP=0
  say "lab removed: no namespace, process or file left behind"
fi
say "next: every scenario: sudo python3 lab/run_scenarios.py (lab/README.md); the tests: scripts/test.sh"
[ "${#UNEXPECTED[@]}" -eq 0 ] || fail "unexpected exit code in: ${UNEXPECTED[*]}"
