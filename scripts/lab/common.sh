# shellcheck shell=bash
# Helpers shared by the lab scripts (db.sh, docker.sh, ssh.sh, docker_hosts.sh); sourced, not run.
#
# The sourcing script sets, before sourcing:
#   LAB_NAME       how its messages start ("db lab", "ssh lab", ...)
#   LAB_SCRIPT     its path for messages (scripts/lab/db.sh)
# and, for the helpers it uses:
#   APT_PACKAGES   install_apt: the Debian packages it needs
#   APT_LOG        install_apt: where apt-get writes
#   LOCK           lock: its lock file
#   LAB_USAGE      lab_main: its arguments, for the usage line ("up [N]|down|status")

START_SECONDS=$SECONDS

say() { printf '%s [%ss]: %s\n' "$LAB_NAME" "$((SECONDS - START_SECONDS))" "$*"; }

# die MESSAGE [LOG]: print the message and the tail of LOG, exit non-zero.
die() {
  printf '%s: FAILED: %s\n' "$LAB_NAME" "$1" >&2
  if [ "$#" -ge 2 ] && [ -f "$2" ]; then
    printf '%s: last lines of %s:\n' "$LAB_NAME" "$2" >&2
    tail -n 30 "$2" | sed 's/^/  | /' >&2
  fi
  exit 1
}

# running PID: the process exists and is not a zombie (an exited daemon whose parent is
# gone stays a zombie until PID 1 reaps it, which here takes a few seconds).
running() {
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null || true)"
  [ -n "$state" ] && [[ "$state" != Z* ]]
}

# alive PIDFILE NAME: PIDFILE (first line) names a running process whose command is NAME, so a
# pid reused by something else after a reboot is never taken for the lab's daemon.
alive() {
  local pid
  [ -s "$1" ] || return 1
  pid="$(head -n 1 "$1")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  running "$pid" && [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = "$2" ]
}

# spawn LOG CMD...: start CMD detached (own session, no inherited descriptors beyond 0-2, so a
# caller's pipe is never held open by a daemon), appending its output to LOG.
spawn() {
  local log="$1"
  shift
  (
    for fd in /proc/self/fd/*; do
      fd="${fd##*/}"
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec setsid "$@" </dev/null >>"$log" 2>&1
  ) &
}

# apt_missing: the APT_PACKAGES not installed, one per line.
apt_missing() {
  local pkg status
  for pkg in "${APT_PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    [ "$status" = "install ok installed" ] || printf '%s\n' "$pkg"
  done
}

# apt_has_candidates PKG...: the package lists know every PKG (else apt-get update first).
apt_has_candidates() {
  local pkg
  for pkg in "$@"; do
    apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [0-9]' || return 1
  done
}

# install_apt: install what is missing of APT_PACKAGES, updating the package lists only when
# they lack a package or an install with the old lists fails. The packages' own services do
# not start (no systemd here, policy-rc.d): only the lab's daemons run, on the lab's ports.
install_apt() {
  local missing updated=0
  mapfile -t missing < <(apt_missing)
  if [ "${#missing[@]}" -eq 0 ]; then
    say "apt packages present: ${APT_PACKAGES[*]}"
    return
  fi
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  mkdir -p "$(dirname "$APT_LOG")"
  : >"$APT_LOG"
  if ! apt_has_candidates "${missing[@]}"; then
    say "apt-get update (package lists lack ${missing[*]})"
    apt-get update >>"$APT_LOG" 2>&1 || die "apt-get update failed" "$APT_LOG"
    updated=1
  fi
  say "apt-get install ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    "${missing[@]}" >>"$APT_LOG" 2>&1; then
    [ "$updated" -eq 0 ] || die "apt-get install failed" "$APT_LOG"
    say "apt-get install failed with the old package lists; apt-get update and retry"
    apt-get update >>"$APT_LOG" 2>&1 || die "apt-get update failed" "$APT_LOG"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      "${missing[@]}" >>"$APT_LOG" 2>&1 || die "apt-get install failed" "$APT_LOG"
  fi
  mapfile -t missing < <(apt_missing)
  [ "${#missing[@]}" -eq 0 ] || die "still not installed: ${missing[*]}" "$APT_LOG"
  say "installed ${APT_PACKAGES[*]}"
}

# lock: hold LOCK (fd 9) for the rest of the script, so two runs never start the same daemons.
lock() {
  mkdir -p "$(dirname "$LOCK")"
  exec 9>"$LOCK"
  if ! flock -n 9; then
    say "waiting for another $LAB_SCRIPT (lock $LOCK)"
    flock -w 120 9 || die "another $LAB_SCRIPT still holds $LOCK after 120s"
  fi
}

# lab_main ARGS...: run cmd_up (with its optional count), cmd_down or cmd_status, which the
# sourcing script defines; anything else prints the usage line and exits 2.
lab_main() {
  case "${1:-}" in
    up) cmd_up "${2:-}" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *)
      echo "usage: $0 ${LAB_USAGE:-up|down|status}" >&2
      exit 2
      ;;
  esac
}
