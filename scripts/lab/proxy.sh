#!/usr/bin/env bash
# The proxy lab for end-to-end tests: nginx (Debian's nginx-light), Caddy and HAProxy.
#
# Usage: bash scripts/lab/proxy.sh up|down|status
#   up      install what is missing (apt) and check that each binary runs. No daemon is
#           started here: each test starts its own proxy on free loopback ports, with a config
#           folder of its own, and stops it by the pid it started (tests/lab/proxies.py).
#           It sets net.ipv4.tcp_migrate_req=1 (the old value kept in lab-run/proxy/): Caddy 2.6
#           swaps its listening socket on every admin API change, and without it the kernel
#           resets connections still queued on the old socket (docs/proxy.md,
#           benchmarks/caddy_resets.py); the Caddy e2e then requires 0 failed requests.
#   down    puts tcp_migrate_req back as up found it; nothing else to stop (up starts no
#           daemon; the packages' own services are never started).
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
MIGRATE_REQ=/proc/sys/net/ipv4/tcp_migrate_req
MIGRATE_BEFORE="$PROXY_DIR/tcp_migrate_req.before"

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
  migrate_on
  say "ready (tests start their own proxies on loopback)"
}

# migrate_on: connections queued on a closed SO_REUSEPORT socket move to its successor.
migrate_on() {
  [ -e "$MIGRATE_REQ" ] || { say "no $MIGRATE_REQ (kernel < 5.14): Caddy may reset"; return 0; }
  local now
  now="$(cat "$MIGRATE_REQ")"
  [ "$now" = 1 ] && { say "tcp_migrate_req is 1"; return 0; }
  [ -e "$MIGRATE_BEFORE" ] || printf '%s\n' "$now" >"$MIGRATE_BEFORE"
  if printf '1\n' >"$MIGRATE_REQ" 2>/dev/null; then
    say "tcp_migrate_req set to 1 (was $now; down puts it back)"
  else
    rm -f "$MIGRATE_BEFORE"
    say "cannot set tcp_migrate_req (not root): Caddy may reset new connections"
  fi
}

cmd_down() {
  if [ -e "$MIGRATE_BEFORE" ]; then
    local before
    before="$(cat "$MIGRATE_BEFORE")"
    case "$before" in 0 | 1) printf '%s\n' "$before" >"$MIGRATE_REQ" ;; esac
    rm -f "$MIGRATE_BEFORE"
    say "tcp_migrate_req put back to $before"
  fi
  say "nothing else to stop: up starts no daemon"
}

cmd_status() {
  versions
}

lab_main "$@"
