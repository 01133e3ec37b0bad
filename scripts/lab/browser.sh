#!/usr/bin/env bash
# The browser lab for the dashboard's end-to-end tests: Debian's chromium and chromedriver.
# Nothing runs between tests: each test starts its own headless chromium (through Selenium,
# which finds /usr/bin/chromedriver) and stops it.
#
# Usage: bash scripts/lab/browser.sh up|down|status
#   up      install chromium and chromium-driver when missing (apt), then check both start.
#   down    nothing to stop (no daemon); says so.
#   status  print the versions; non-zero when either is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="$ROOT/lab-run"
LAB_NAME="browser lab"
LAB_SCRIPT="scripts/lab/browser.sh"
# shellcheck source=scripts/lab/common.sh
. "$ROOT/scripts/lab/common.sh"
BROWSER_DIR="$RUN_DIR/browser"
APT_PACKAGES=(chromium chromium-driver)
APT_LOG="$BROWSER_DIR/apt.log"
LOCK="$BROWSER_DIR/.lock"

versions() {
  local chromium driver
  chromium="$(timeout 30 chromium --version 2>/dev/null)" || return 1
  driver="$(timeout 30 chromedriver --version 2>/dev/null)" || return 1
  say "$chromium; $driver"
}

cmd_up() {
  lock
  install_apt
  versions || die "chromium or chromedriver does not start" "$APT_LOG"
}

cmd_down() {
  say "nothing to stop: each test starts and stops its own browser"
}

cmd_status() {
  versions || { say "chromium or chromedriver missing: bash $LAB_SCRIPT up"; exit 1; }
}

lab_main "$@"
