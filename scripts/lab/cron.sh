#!/usr/bin/env bash
# The cron lab for end-to-end tests: Debian's cron daemon (there is no systemd here), and a
# lab user whose crontab the tests may replace. Installs what is missing (apt).
#
# Usage: bash scripts/lab/cron.sh up|down|status
#   up      install cron if missing, create the lab user, start `/usr/sbin/cron -f` in the
#           background (a cron that already runs on this machine is used as it is, and never
#           stopped by `down`), wait until it runs. Idempotent.
#   down    stop, by pid, the cron that `up` started (none other).
#   status  print what runs; non-zero when no cron daemon runs.
#
# Facts (tests read them from lab-run/cron/lab.env): RG_CRON_USER, the lab user (its crontab
# belongs to the tests); RG_CRON_D, the folder cron reads job files from (/etc/cron.d).
# Logs and the pid file: lab-run/cron/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="$ROOT/lab-run"
LAB_NAME="cron lab"
LAB_SCRIPT="scripts/lab/cron.sh"
# shellcheck source=scripts/lab/common.sh
. "$ROOT/scripts/lab/common.sh"
CRON_DIR="$RUN_DIR/cron"
APT_PACKAGES=(cron)
APT_LOG="$CRON_DIR/apt.log"
LOCK="$CRON_DIR/.lock"
PIDFILE="$CRON_DIR/cron.pid"
LOG="$CRON_DIR/cron.log"
FACTS="$CRON_DIR/lab.env"
CRON_BIN=/usr/sbin/cron
LAB_USER=rg-cron

# other_cron: the pid of a cron daemon this lab did not start (empty if none).
other_cron() {
  local pid
  for pid in $(pgrep -x cron 2>/dev/null || true); do
    if ! { [ -s "$PIDFILE" ] && [ "$(head -n 1 "$PIDFILE")" = "$pid" ]; }; then
      printf '%s\n' "$pid"
      return
    fi
  done
}

cmd_up() {
  lock
  install_apt
  [ -x "$CRON_BIN" ] || die "$CRON_BIN is missing after the install"
  command -v crontab >/dev/null || die "crontab is missing after the install"
  if ! id -u "$LAB_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /bin/sh "$LAB_USER" ||
      die "could not create the lab user $LAB_USER"
    say "created the lab user $LAB_USER"
  fi
  mkdir -p /etc/cron.d
  if alive "$PIDFILE" cron; then
    say "cron already runs (pid $(head -n 1 "$PIDFILE"), started by this lab)"
  else
    rm -f "$PIDFILE"
    local other
    other="$(other_cron)"
    if [ -n "$other" ]; then
      say "a cron daemon of this machine runs (pid $other): using it, it is not ours to stop"
    else
      spawn "$LOG" "$CRON_BIN" -f
      echo "$!" >"$PIDFILE"
      local ticks=0
      until alive "$PIDFILE" cron; do
        [ "$ticks" -lt 50 ] || die "cron did not start" "$LOG"
        sleep 0.2
        ticks=$((ticks + 1))
      done
      say "cron started (pid $(head -n 1 "$PIDFILE"))"
    fi
  fi
  printf 'RG_CRON_USER=%s\nRG_CRON_D=%s\n' "$LAB_USER" /etc/cron.d >"$FACTS"
  say "up"
}

cmd_down() {
  lock
  if ! alive "$PIDFILE" cron; then
    rm -f "$PIDFILE"
    say "down (nothing of ours ran)"
    return
  fi
  local pid ticks=0
  pid="$(head -n 1 "$PIDFILE")"
  say "stopping cron (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  while running "$pid"; do
    if [ "$ticks" -ge 50 ]; then
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
    ticks=$((ticks + 1))
  done
  rm -f "$PIDFILE"
  say "down"
}

cmd_status() {
  if alive "$PIDFILE" cron; then
    say "cron runs (pid $(head -n 1 "$PIDFILE"), started by this lab)"
  elif [ -n "$(other_cron)" ]; then
    say "cron runs (pid $(other_cron), not started by this lab)"
  else
    say "no cron daemon runs (bash $LAB_SCRIPT up)"
    return 1
  fi
}

lab_main "$@"
