#!/usr/bin/env bash
# A Docker engine of its own for each SSH lab host, so that a compose fleet has one daemon per
# host as real servers do (one shared daemon would make every host's project the same one).
#
# Usage: bash scripts/lab/docker_hosts.sh up [N]|down|status
#   up [N]  start a dockerd for hosts h1..hN (default: every host of the SSH lab's last `up`),
#           then check over ssh that each host's `docker` reaches its own engine. Needs the
#           Docker lab (scripts/lab/docker.sh up: dockerd, compose plugin, registry) and the
#           SSH lab (scripts/lab/ssh.sh up). Idempotent.
#   down    stop, by pid, every dockerd `up` started, and remove their bridges.
#   status  non-zero when a host's engine is down.
#
# Facts: host hN's engine listens on lab-run/ssh/hN/docker.sock, which the SSH lab's sshd hands
# to every session as DOCKER_HOST. Each engine has its own data root (vfs) under
# lab-run/docker-hosts/hN, its own bridge rgdhN (10.230.N.1/24, so it never touches docker0) and
# its own address pool for compose networks (10.(100+N).0.0/16), and no iptables rules: a
# published port (e.g. "127.0.0.1N:8080:80") is served by docker-proxy. Images come from the lab
# registry, 127.0.0.1:5000, which every engine trusts over plain HTTP (127.0.0.0/8).
# RG_LAB_DOCKER_HOSTS_NET=K (0..40, default 0) numbers the networks from K+1: a second checkout
# on the same machine (another worktree's lab) then takes bridges rgdh(K+N) and pools 10.(100+K+N)
# that are not the first one's (the same bridge and pool in two engines would clash, and the
# other's `down` would delete the bridge). `up` keeps K in lab-run/docker-hosts/net for `down`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="$ROOT/lab-run"
LAB_NAME="docker hosts lab"
LAB_SCRIPT="scripts/lab/docker_hosts.sh"
LAB_USAGE="up [N]|down|status"
# shellcheck source=scripts/lab/common.sh
. "$ROOT/scripts/lab/common.sh"
SSH_DIR="$RUN_DIR/ssh"
HOSTS_DIR="$RUN_DIR/docker-hosts"
ENGINE_WAIT=60

socket_of() { printf '%s/h%d/docker.sock\n' "$SSH_DIR" "$1"; }
# The network number of host I: I plus this checkout's offset (kept by `up` for `down`).
net_of() {
  local k
  k="$(cat "$HOSTS_DIR/net" 2>/dev/null || printf '%s' "${RG_LAB_DOCKER_HOSTS_NET:-0}")"
  printf '%d\n' "$(($1 + k))"
}
bridge_of() { printf 'rgdh%d\n' "$(net_of "$1")"; }

# engine_answers I: this machine's docker client reaches hI's engine.
engine_answers() {
  DOCKER_HOST="unix://$(socket_of "$1")" timeout 10 docker info --format '{{.ID}}' >/dev/null 2>&1
}

# start_engine I: hI's bridge, then its dockerd (in a session of its own, output to its log).
start_engine() {
  local i="$1" dir bridge
  dir="$HOSTS_DIR/h$i"
  bridge="$(bridge_of "$i")"
  mkdir -p "$dir"
  if alive "$dir/dockerd.pid" dockerd; then
    return
  fi
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add name "$bridge" type bridge
    ip addr add "10.230.$(net_of "$i").1/24" dev "$bridge"
  fi
  ip link set "$bridge" up
  # A fresh data root every start: a dockerd given --bridge that restarts on an old root
  # deletes docker0, the lab engine's own bridge (seen with 20.10). Images are pulled again.
  rm -rf "$dir/data" "$dir/exec"
  rm -f "$dir/dockerd.pid" "$(socket_of "$i")"
  setsid dockerd --storage-driver=vfs \
    --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
    -H "unix://$(socket_of "$i")" \
    --bridge "$bridge" --iptables=false --ip6tables=false \
    --default-address-pool "base=10.$((100 + $(net_of "$i"))).0.0/16,size=24" \
    </dev/null >"$dir/dockerd.log" 2>&1 &
}

# wait_engine I: hI's engine answers here, and over ssh as the host's own `docker`.
wait_engine() {
  local i="$1" dir waited=0 seen
  dir="$HOSTS_DIR/h$i"
  until engine_answers "$i"; do
    [ "$waited" -lt "$ENGINE_WAIT" ] || die "h$i's dockerd did not answer in ${ENGINE_WAIT}s" \
      "$dir/dockerd.log"
    sleep 1
    waited=$((waited + 1))
  done
  seen="$(timeout 20 ssh -F "$SSH_DIR/ssh_config" "h$i" docker info --format '{{.DockerRootDir}}' \
    2>&1 || true)"
  [ "$seen" = "$dir/data" ] || die "over ssh, h$i's docker does not reach its own engine" \
    "(it answered: ${seen:-nothing}); an sshd started before this lab passed DOCKER_HOST:" \
    "restart the SSH lab (scripts/lab/ssh.sh down && scripts/lab/ssh.sh up)"
}

cmd_up() {
  local count="${1:-}" i pids=() failed=0
  [ -s "$SSH_DIR/count" ] || die "the SSH lab is not up (bash scripts/lab/ssh.sh up)"
  count="${count:-$(cat "$SSH_DIR/count")}"
  if ! [[ "$count" =~ ^[0-9]+$ ]] || [ "$count" -lt 1 ] || [ "$count" -gt 50 ]; then
    die "N must be a number from 1 to 50, not '$count'"
  fi
  [ "$count" -le "$(cat "$SSH_DIR/count")" ] ||
    die "the SSH lab has $(cat "$SSH_DIR/count") host(s), not $count"
  command -v dockerd >/dev/null || die "dockerd is not installed (bash scripts/lab/docker.sh up)"
  docker compose version >/dev/null 2>&1 ||
    die "the compose plugin is missing (bash scripts/lab/docker.sh up)"
  command -v ip >/dev/null || die "ip (iproute2) is not installed"
  if [ ! -s "$HOSTS_DIR/count" ]; then # not up: this run's offset holds until `down`
    local net="${RG_LAB_DOCKER_HOSTS_NET:-0}"
    [[ "$net" =~ ^[0-9]+$ ]] && [ "$net" -le 40 ] ||
      die "RG_LAB_DOCKER_HOSTS_NET must be a number from 0 to 40, not '$net'"
    mkdir -p "$HOSTS_DIR"
    printf '%s\n' "$net" >"$HOSTS_DIR/net"
  fi
  for ((i = 1; i <= count; i++)); do start_engine "$i"; done
  for ((i = 1; i <= count; i++)); do
    wait_engine "$i" &
    pids+=("$!")
  done
  for i in "${pids[@]}"; do wait "$i" || failed=1; done
  [ "$failed" -eq 0 ] || die "not every host's engine came up (see above)"
  printf '%s\n' "$count" >"$HOSTS_DIR/count"
  say "h1..h$count each have a Docker engine of their own (DOCKER_HOST over ssh)"
}

cmd_down() {
  local dir i pid n=0 waited
  for dir in "$HOSTS_DIR"/h*; do
    [ -d "$dir" ] || continue
    i="${dir##*/h}"
    if alive "$dir/dockerd.pid" dockerd; then
      pid="$(cat "$dir/dockerd.pid")"
      # Containers first: dockerd stops them on SIGTERM too, 10 s each at worst.
      # shellcheck disable=SC2016 # $ids is for the inner sh
      DOCKER_HOST="unix://$(socket_of "$i")" timeout 60 sh -c \
        'ids=$(docker ps -aq) && [ -z "$ids" ] || docker rm -f $ids' >/dev/null 2>&1 || true
      # A network's bridge outlives a stopped dockerd: prune them while it still answers.
      DOCKER_HOST="unix://$(socket_of "$i")" timeout 60 docker network prune -f >/dev/null 2>&1 ||
        true
      kill "$pid" 2>/dev/null || true
      waited=0
      while running "$pid" && [ "$waited" -lt 30 ]; do
        sleep 1
        waited=$((waited + 1))
      done
      if running "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
      n=$((n + 1))
    fi
    if ip link show "$(bridge_of "$i")" >/dev/null 2>&1; then
      ip link del "$(bridge_of "$i")" || true
    fi
  done
  rm -f "$HOSTS_DIR/count" "$HOSTS_DIR/net"
  say "down ($n engine(s) stopped)"
}

cmd_status() {
  local count i rc=0
  if [ ! -s "$HOSTS_DIR/count" ]; then
    say "not up in this checkout (bash scripts/lab/docker_hosts.sh up)"
    return 1
  fi
  count="$(cat "$HOSTS_DIR/count")"
  for ((i = 1; i <= count; i++)); do
    if engine_answers "$i"; then
      say "h$i: engine answers on $(socket_of "$i")"
    else
      say "h$i: engine does not answer"
      rc=1
    fi
  done
  return "$rc"
}

lab_main "$@"
