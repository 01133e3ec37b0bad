#!/usr/bin/env bash
# The Swarm lab: the Docker lab's engine (scripts/lab/docker.sh) made a single-node Swarm
# manager, for the `runtime: swarm` tests. Nothing to install: Swarm is built into the engine.
#
# Usage: bash scripts/lab/swarm.sh up|down|status
#   up      bring the Docker lab up (docker.sh up), then `docker swarm init --advertise-addr
#           127.0.0.1` unless the engine is a Swarm manager already. Idempotent.
#   down    remove the stacks the tests left (named rgswarm-*), then leave the swarm only if
#           `up` made it (a marker in lab-run/swarm/); the engine itself is left running.
#   status  print the engine's Swarm state and the stacks.
# The routing mesh does not answer on loopback here: the tests publish ports in `mode: host`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="$ROOT/lab-run"
LAB_NAME="swarm lab"
LAB_SCRIPT="scripts/lab/swarm.sh"
# shellcheck source=scripts/lab/common.sh
. "$ROOT/scripts/lab/common.sh"
SWARM_DIR="$RUN_DIR/swarm"
MARKER="$SWARM_DIR/initialised-by-up"
PREFIX="rgswarm-"

swarm_state() {
  timeout 20 docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}' \
    2>/dev/null || echo "unknown false"
}

cmd_up() {
  bash "$ROOT/scripts/lab/docker.sh" up
  mkdir -p "$SWARM_DIR"
  local state
  state="$(swarm_state)"
  case "$state" in
    "active true")
      say "the engine is a Swarm manager already (left as it is)"
      ;;
    "inactive "*)
      say "docker swarm init --advertise-addr 127.0.0.1"
      # The join tokens it prints are of no use here: not shown, not kept.
      timeout 60 docker swarm init --advertise-addr 127.0.0.1 >/dev/null ||
        die "docker swarm init failed"
      touch "$MARKER"
      ;;
    *)
      die "the engine's Swarm state is '$state' (a worker, or pending): not a manager"
      ;;
  esac
  [ "$(swarm_state)" = "active true" ] || die "the engine is not a Swarm manager after init"
  say "single-node Swarm manager ready in $((SECONDS - START_SECONDS))s"
}

our_stacks() {
  docker stack ls --format '{{.Name}}' 2>/dev/null | grep "^$PREFIX" || true
}

cmd_down() {
  local stack
  for stack in $(our_stacks); do
    say "docker stack rm $stack"
    docker stack rm "$stack" >/dev/null 2>&1 || true
  done
  if [ -f "$MARKER" ] && [ "$(swarm_state)" = "active true" ]; then
    say "docker swarm leave --force (this script initialised the swarm)"
    timeout 60 docker swarm leave --force >/dev/null 2>&1 || true
  fi
  rm -f "$MARKER"
  say "down"
}

cmd_status() {
  local state
  state="$(swarm_state)"
  say "swarm: $state (LocalNodeState ControlAvailable)"
  if [ "$state" = "active true" ]; then
    say "stacks: $(docker stack ls --format '{{.Name}}' | tr '\n' ' ')"
    return 0
  fi
  return 1
}

lab_main "$@"
