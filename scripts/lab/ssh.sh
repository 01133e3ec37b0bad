#!/usr/bin/env bash
# The SSH lab for end-to-end tests: N SSH hosts on this machine, each an `sshd` on its own
# loopback address (127.0.0.11, 127.0.0.12, ...) with its own /srv: every sshd runs in a private
# mount namespace where lab-run/ssh/hN/srv is bind-mounted on /srv. Root logs in with the lab's
# client key only. Installs what is missing (apt: openssh-server, openssh-client).
#
# Usage: bash scripts/lab/ssh.sh up [N]|down|status
#   up [N]  install what is missing, create the keys on first use, start hosts h1..hN (default
#           5; a host of this checkout that already runs is reused), wait until each answers
#           `cat /srv/whoami` over ssh with its own name. Idempotent.
#   down    stop, by pid, every sshd `up` started.
#   status  print what runs; non-zero when a host of the last `up` is down or does not answer.
#
# Facts (tests read them from lab-run/ssh/lab.env, which can be sourced):
#   hosts        hN = 127.0.0.(10+N), port 22 (RG_LAB_SSH_PORT; a port taken by something else
#                on any of the addresses moves every host to a free port from 10022 up)
#   user         root, key lab-run/ssh/client_key (ed25519, no passphrase)
#   known_hosts  lab-run/ssh/known_hosts (every host's own ed25519 host key)
#   ssh_config   lab-run/ssh/ssh_config: `ssh -F lab-run/ssh/ssh_config h3 cat /srv/whoami`
#   each host    /srv/whoami holds its name (h1, h2, ...); sftp is served (internal-sftp);
#                root's ~/.bashrc is lab-run/ssh/host_bashrc (no-op when non-interactive);
#                its `docker` talks to lab-run/ssh/hN/docker.sock (DOCKER_HOST): a Docker
#                engine of the host's own once scripts/lab/docker_hosts.sh up runs
# Logs and pid files: lab-run/ssh/hN/sshd.log, lab-run/ssh/hN/sshd.pid.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="$ROOT/lab-run"
LAB_NAME="ssh lab"
LAB_SCRIPT="scripts/lab/ssh.sh"
LAB_USAGE="up [N]|down|status"
# shellcheck source=scripts/lab/common.sh
. "$ROOT/scripts/lab/common.sh"
SSH_DIR="$RUN_DIR/ssh"
LAB_USER="root"
WANT_PORT="${RG_LAB_SSH_PORT:-22}"
FALLBACK_PORT=10022
DEFAULT_COUNT=5
MAX_COUNT=200
SSHD=/usr/sbin/sshd
APT_PACKAGES=(openssh-server openssh-client)
HOST_WAIT=20

CLIENT_KEY="$SSH_DIR/client_key"
AUTHORIZED_KEYS="$SSH_DIR/authorized_keys"
KNOWN_HOSTS="$SSH_DIR/known_hosts"
SSH_CONFIG="$SSH_DIR/ssh_config"
FACTS="$SSH_DIR/lab.env"
PORT_FILE="$SSH_DIR/port"
COUNT_FILE="$SSH_DIR/count"
HOST_BASHRC="$SSH_DIR/host_bashrc"
APT_LOG="$SSH_DIR/apt.log"
LOCK="$SSH_DIR/.lock"

START_NS="$(date +%s%N)"

elapsed() {
  local ms=$((($(date +%s%N) - START_NS) / 1000000))
  printf '%d.%03ds' $((ms / 1000)) $((ms % 1000))
}

addr_of() { printf '127.0.0.%d\n' $((10 + $1)); }
host_dir() { printf '%s/h%d\n' "$SSH_DIR" "$1"; }

# port_taken ADDR PORT: something accepts TCP connections on ADDR:PORT, or listens on the
# wildcard address on PORT (a bind to ADDR:PORT would then fail).
port_taken() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null && return 0
  ss -Hltn "sport = :$2" 2>/dev/null | awk '{print $4}' | grep -Eq '^(0\.0\.0\.0|\*|\[::\]):'
}

# --- install --------------------------------------------------------------------------------

check_tools() {
  local tool
  [ -x "$SSHD" ] || die "$SSHD is missing after the install"
  for tool in ssh ssh-keygen unshare mount setsid flock ss; do
    command -v "$tool" >/dev/null || die "\`$tool\` is missing"
  done
}

# --- keys and files -------------------------------------------------------------------------

# The .bashrc of root on every host (bind-mounted over /root/.bashrc in its namespace): Debian's
# default does nothing for the non-interactive shells that run commands over ssh.
write_host_bashrc() {
  printf '%s\n' '# ~/.bashrc of root on an SSH lab host (scripts/lab/ssh.sh): nothing for' \
    '# non-interactive shells, like a fresh server.' 'case $- in *i*) ;; *) return ;; esac' \
    >"$HOST_BASHRC"
}

make_client_key() {
  if [ ! -s "$CLIENT_KEY" ] || [ ! -s "$CLIENT_KEY.pub" ]; then
    rm -f "$CLIENT_KEY" "$CLIENT_KEY.pub"
    ssh-keygen -q -t ed25519 -N '' -C "releasegate-ssh-lab" -f "$CLIENT_KEY" ||
      die "ssh-keygen (client key) failed"
    say "client key $CLIENT_KEY"
  fi
  chmod 0600 "$CLIENT_KEY"
  cp "$CLIENT_KEY.pub" "$AUTHORIZED_KEYS"
  chmod 0600 "$AUTHORIZED_KEYS"
}

# prepare_host I: host key, /srv with its whoami file.
prepare_host() {
  local dir
  dir="$(host_dir "$1")"
  mkdir -p "$dir/srv"
  if [ ! -s "$dir/ssh_host_ed25519_key" ]; then
    rm -f "$dir/ssh_host_ed25519_key" "$dir/ssh_host_ed25519_key.pub"
    ssh-keygen -q -t ed25519 -N '' -C "h$1" -f "$dir/ssh_host_ed25519_key" ||
      die "ssh-keygen (host key of h$1) failed"
  fi
  chmod 0600 "$dir/ssh_host_ed25519_key"
  printf 'h%d\n' "$1" >"$dir/srv/whoami"
}

# known_hosts_name ADDR PORT: how OpenSSH names the host in known_hosts.
known_hosts_name() {
  if [ "$2" = 22 ]; then printf '%s\n' "$1"; else printf '[%s]:%s\n' "$1" "$2"; fi
}

write_client_files() {
  local count="$1" port="$2" i addr tmp hosts=""
  tmp="$KNOWN_HOSTS.tmp"
  : >"$tmp"
  for ((i = 1; i <= count; i++)); do
    addr="$(addr_of "$i")"
    printf '%s %s\n' "$(known_hosts_name "$addr" "$port")" \
      "$(cut -d' ' -f1-2 "$(host_dir "$i")/ssh_host_ed25519_key.pub")" >>"$tmp"
    hosts+="$addr "
  done
  mv "$tmp" "$KNOWN_HOSTS"
  tmp="$SSH_CONFIG.tmp"
  {
    printf '# Written by scripts/lab/ssh.sh up: ssh -F %s h1 cat /srv/whoami\n' "$SSH_CONFIG"
    for ((i = 1; i <= count; i++)); do
      printf 'Host h%d\n  HostName %s\n' "$i" "$(addr_of "$i")"
    done
    printf 'Host h* %s\n' "${hosts% }"
    printf '  User %s\n  Port %s\n  IdentityFile %s\n  IdentitiesOnly yes\n' \
      "$LAB_USER" "$port" "$CLIENT_KEY"
    printf '  UserKnownHostsFile %s\n  GlobalKnownHostsFile /dev/null\n' "$KNOWN_HOSTS"
    printf '  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 5\n'
  } >"$tmp"
  mv "$tmp" "$SSH_CONFIG"
}

# --- hosts ----------------------------------------------------------------------------------

# host_answers I PORT: `cat /srv/whoami` over ssh prints hI.
host_answers() {
  local out
  out="$(timeout 10 ssh -F /dev/null -o BatchMode=yes -o ConnectTimeout=3 \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$KNOWN_HOSTS" \
    -o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes -i "$CLIENT_KEY" \
    -p "$2" "$LAB_USER@$(addr_of "$1")" cat /srv/whoami 2>/dev/null)" || return 1
  [ "$out" = "h$1" ]
}

# choose_port COUNT: the port of the hosts of this checkout that run, else WANT_PORT if free
# on every address, else the first port from FALLBACK_PORT free on every address.
choose_port() {
  local count="$1" port i free
  if [ -s "$PORT_FILE" ]; then
    port="$(cat "$PORT_FILE")"
    for ((i = 1; i <= MAX_COUNT; i++)); do
      if alive "$(host_dir "$i")/sshd.pid" sshd; then
        printf '%s\n' "$port"
        return
      fi
    done
  fi
  for port in "$WANT_PORT" $(seq "$FALLBACK_PORT" $((FALLBACK_PORT + 49))); do
    free=1
    for ((i = 1; i <= count; i++)); do
      if port_taken "$(addr_of "$i")" "$port"; then
        free=0
        break
      fi
    done
    if [ "$free" -eq 1 ]; then
      printf '%s\n' "$port"
      return
    fi
  done
  die "no port free on 127.0.0.11..$(addr_of "$count") in $WANT_PORT, $FALLBACK_PORT..$((FALLBACK_PORT + 49))"
}

# start_host I PORT: start hI's sshd (in the foreground of its own mount namespace: the pid
# we keep is sshd's own) unless it already runs.
start_host() {
  local i="$1" port="$2" dir addr log pidfile
  dir="$(host_dir "$i")"
  addr="$(addr_of "$i")"
  log="$dir/sshd.log"
  pidfile="$dir/sshd.pid"
  if alive "$pidfile" sshd; then
    return
  fi
  rm -f "$pidfile"
  : >"$log"
  # sh -c's arguments are positional ($1 = srv dir, $2 = the hosts' root .bashrc, then sshd's
  # argv): nothing is pasted into the script text. exec: unshare, sh and sshd are one process,
  # the pid $! below. A host's root gets a plain .bashrc (HOST_BASHRC): bash sources root's
  # ~/.bashrc for every command sshd runs, and this machine's (pyenv init) costs ~0.2 s of CPU
  # a command, which a real server does not.
  # shellcheck disable=SC2016 # $1, $2 and $@ are for the inner sh
  spawn "$log" unshare -m --propagation private sh -c \
    'mount --bind "$1" /srv || exit 1
     if [ -e /root/.bashrc ]; then mount --bind "$2" /root/.bashrc || exit 1; fi
     shift 2; exec "$@"' sh "$dir/srv" "$HOST_BASHRC" \
    "$SSHD" -D -e -f /dev/null \
    -o ListenAddress="$addr:$port" \
    -o HostKey="$dir/ssh_host_ed25519_key" \
    -o PidFile="$dir/sshd.own.pid" \
    -o AuthorizedKeysFile="$AUTHORIZED_KEYS" \
    -o StrictModes=no \
    -o PermitRootLogin=prohibit-password \
    -o PubkeyAuthentication=yes \
    -o PasswordAuthentication=no \
    -o KbdInteractiveAuthentication=no \
    -o UsePAM=no \
    -o UseDNS=no \
    -o PrintMotd=no \
    -o MaxStartups=200:30:400 \
    -o MaxSessions=64 \
    -o LogLevel=INFO \
    -o "SetEnv=DOCKER_HOST=unix://$dir/docker.sock" \
    -o "Subsystem=sftp internal-sftp"
  echo "$!" >"$pidfile"
}

# wait_host I PORT
wait_host() {
  local i="$1" port="$2" dir ticks=0 pid
  dir="$(host_dir "$i")"
  pid="$(cat "$dir/sshd.pid")"
  until host_answers "$i" "$port"; do
    running "$pid" || die "sshd of h$i ($(addr_of "$i"):$port) exited during start" \
      "$dir/sshd.log"
    [ "$ticks" -lt $((HOST_WAIT * 10)) ] ||
      die "h$i ($(addr_of "$i"):$port) did not answer in ${HOST_WAIT}s" "$dir/sshd.log"
    sleep 0.1
    ticks=$((ticks + 1))
  done
  alive "$dir/sshd.pid" sshd || die "pid $pid of h$i is not sshd" "$dir/sshd.log"
}

write_facts() {
  local count="$1" port="$2" i hosts="" tmp
  for ((i = 1; i <= count; i++)); do hosts+="$(addr_of "$i") "; done
  tmp="$FACTS.tmp"
  cat >"$tmp" <<EOF
# Written by scripts/lab/ssh.sh up; read by tests/lab/ssh.py. Values are single-quoted: the
# file can be sourced. Host hN is the N-th address of SSH_HOSTS; its /srv/whoami holds "hN".
SSH_COUNT='$count'
SSH_HOSTS='${hosts% }'
SSH_PORT='$port'
SSH_USER='$LAB_USER'
SSH_KEY='$CLIENT_KEY'
SSH_KNOWN_HOSTS='$KNOWN_HOSTS'
SSH_CONFIG='$SSH_CONFIG'
SSH_DIR='$SSH_DIR'
SSH_VERSION='$("$SSHD" -V 2>&1 | head -n 1 || true)'
EOF
  mv "$tmp" "$FACTS"
}

# --- stop -----------------------------------------------------------------------------------

# stop_host DIR: SIGTERM the sshd of DIR/sshd.pid (its sessions end with it), SIGKILL after 10s.
stop_host() {
  local pidfile="$1/sshd.pid" pid ticks=0
  if ! alive "$pidfile" sshd; then
    rm -f "$pidfile"
    return
  fi
  pid="$(head -n 1 "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
  while running "$pid"; do
    if [ "$ticks" -ge 50 ]; then
      say "sshd $pid ($1) still runs after 10s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
    ticks=$((ticks + 1))
  done
  rm -f "$pidfile"
}

# --- commands -------------------------------------------------------------------------------

cmd_up() {
  local count="${1:-$DEFAULT_COUNT}" port i started=0
  if ! [[ "$count" =~ ^[0-9]+$ ]] || [ "$count" -lt 1 ] || [ "$count" -gt "$MAX_COUNT" ]; then
    die "N must be a number from 1 to $MAX_COUNT, not '$count'"
  fi
  lock
  install_apt
  check_tools
  mkdir -p /run/sshd /srv
  chmod 0755 /run/sshd
  make_client_key
  write_host_bashrc
  for ((i = 1; i <= count; i++)); do prepare_host "$i"; done
  port="$(choose_port "$count")"
  [ "$port" = "$WANT_PORT" ] || say "port $WANT_PORT is taken (not by this lab): hosts use $port"
  printf '%s\n' "$port" >"$PORT_FILE"
  write_client_files "$count" "$port"
  for ((i = 1; i <= count; i++)); do
    if ! alive "$(host_dir "$i")/sshd.pid" sshd; then
      start_host "$i" "$port"
      started=$((started + 1))
    fi
  done
  say "$started sshd started, $((count - started)) reused; waiting for h1..h$count"
  # In parallel: a host that fails prints its own message and log tail.
  local pids=() failed=0
  for ((i = 1; i <= count; i++)); do
    wait_host "$i" "$port" &
    pids+=("$!")
  done
  for i in "${pids[@]}"; do wait "$i" || failed=1; done
  [ "$failed" -eq 0 ] || die "not every host came up (see above)"
  printf '%s\n' "$count" >"$COUNT_FILE"
  write_facts "$count" "$port"
  say "h1..h$count answer: $LAB_USER@127.0.0.11..$(addr_of "$count") port $port," \
    "key $CLIENT_KEY, known_hosts $KNOWN_HOSTS, config $SSH_CONFIG"
  say "up in $(elapsed)"
}

cmd_down() {
  local dir n=0
  lock
  for dir in "$SSH_DIR"/h*; do
    [ -d "$dir" ] || continue
    if alive "$dir/sshd.pid" sshd; then n=$((n + 1)); fi
    stop_host "$dir"
  done
  rm -f "$COUNT_FILE"
  say "down ($n sshd stopped) in $(elapsed)"
}

cmd_status() {
  local count port i rc=0 dir
  if [ ! -s "$COUNT_FILE" ] || [ ! -s "$PORT_FILE" ]; then
    say "not up in this checkout (bash scripts/lab/ssh.sh up)"
    return 1
  fi
  count="$(cat "$COUNT_FILE")"
  port="$(cat "$PORT_FILE")"
  for ((i = 1; i <= count; i++)); do
    dir="$(host_dir "$i")"
    if ! alive "$dir/sshd.pid" sshd; then
      say "h$i $(addr_of "$i"):$port: not running"
      rc=1
    elif host_answers "$i" "$port"; then
      say "h$i $(addr_of "$i"):$port: answers (pid $(cat "$dir/sshd.pid"))"
    else
      say "h$i $(addr_of "$i"):$port: runs (pid $(cat "$dir/sshd.pid")) but does not answer"
      rc=1
    fi
  done
  return "$rc"
}

lab_main "$@"
