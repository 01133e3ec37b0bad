#!/usr/bin/env bash
# The proxy lab for end-to-end tests: nginx (Debian's nginx-light), Caddy and HAProxy.
#
# Usage: bash scripts/lab/proxy.sh up|down|status
#   up      install what is missing (apt) and check that each binary runs. No daemon is
#           started here: each test starts its own proxy on free loopback ports, with a config
#           folder of its own, and stops it by the pid it started (tests/lab/proxies.py).
#   down    nothing to stop (up starts nothing); the packages' own services are never started.
#   status  print the versions; non-zero when one is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="$ROOT/lab-run"
LAB_NAME="proxy lab"
LAB_SCRIPT="scripts/lab/proxy.sh"
# shellcheck source=scripts/lab/common.sh
. "$ROOT/scripts/lab/common.sh"
PROXY_DIR="$RUN_DIR/proxy"
APT_PACKAGES=(nginx-light caddy haproxy)
APT_LOG="$PROXY_DIR/apt.log"
LOCK="$PROXY_DIR/.lock"
LAB_USAGE="up|down|status"

# versions: each proxy's version line; non-zero when one does not run.
versions() {
  local rc=0
  PATH="$PATH:/usr/sbin:/sbin"
  local out
  for cmd in "nginx -v" "caddy version" "haproxy -v"; do
    # No pipe into head: a version text longer than one line would SIGPIPE it under pipefail.
    if out="$($cmd 2>&1)"; then
      printf '%s\n' "${out%%$'\n'*}"
    else
      printf 'missing or broken: %s\n' "${cmd%% *}"
      rc=1
    fi
  done
  return "$rc"
}

cmd_up() {
  mkdir -p "$PROXY_DIR"
  lock
  install_apt
  versions | while IFS= read -r line; do say "$line"; done
  versions >/dev/null || die "a proxy binary does not run"
  say "ready (tests start their own proxies on loopback)"
}

cmd_down() {
  say "nothing to stop: up starts no daemon"
}

cmd_status() {
  versions
}

lab_main "$@"
