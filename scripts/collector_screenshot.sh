#!/usr/bin/env bash
# Makes docs/collector-fleet.png: the collector's fleet page, with one broken subnet, as headless
# Chromium shows it. It runs the browser test (crates/collector/tests/browser.rs), which seeds
# the fleet, checks the pages and saves the screenshot. Needs chromium and chromium-driver
# (scripts/install-deps.sh installs them). Usage: scripts/collector_screenshot.sh [OUT.png]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$(realpath -m "${1:-$REPO/docs/collector-fleet.png}")
for tool in chromium chromedriver; do
  command -v "$tool" >/dev/null 2>&1 ||
    { echo "collector_screenshot.sh: $tool is missing: run scripts/install-deps.sh" >&2; exit 2; }
done
cd "$REPO"
VPCE_COLLECTOR_SCREENSHOT="$OUT" cargo test --locked -p vpce-collector --test browser -- --nocapture
echo "wrote $OUT"
