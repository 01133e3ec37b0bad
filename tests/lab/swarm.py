"""The Swarm lab (scripts/lab/swarm.sh up: the Docker lab's engine as a single-node Swarm
manager) and a releasegate workspace with a staging and a prod swarm stack on it.

The images are the busybox web images of tests/lab/images.py, pushed to their own
repository (`rgswarm/web`) and without the test label: the Docker tests' cleanup removes
every labelled container, and a Swarm task's container removed under a running test would
be replaced by Swarm, not gone.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.lab import compose_workspace
from tests.lab.compose_workspace import ComposeWorkspace
from tests.lab.docker import REGISTRY, docker, require_docker, under_ci
from tests.lab.images import SERVE, _write_root

REPOSITORY = "rgswarm/web"
PREFIX = "rgswarm-"
UP_HINT = "start it with: bash scripts/lab/swarm.sh up"

# One service publishes its port in mode host (the routing mesh does not answer on loopback
# here), so it updates stop-first; the other serves no port and updates start-first. Tight
# timings: the whole v1 -> v2 -> v3 story runs in about a minute.
STACK_FILE = """\
services:
  web:
    image: {registry}/{repository}:${{IMAGE_TAG}}
    ports:
      - target: 80
        published: ${{PORT}}
        mode: host
    healthcheck: &health
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/health"]
      interval: 1s
      timeout: 2s
      retries: 2
    deploy:
      replicas: 1
      # A failed task is not replaced while its update fails: on one node the replacement
      # would reserve the host port, and Swarm's own rollback then waited a minute for it.
      restart_policy: {{condition: none}}
      update_config: {{order: stop-first, delay: 0s, monitor: 3s, failure_action: rollback}}
      rollback_config: {{order: stop-first, delay: 0s, monitor: 3s}}
  worker:
    image: {registry}/{repository}:${{IMAGE_TAG}}
    healthcheck: *health
    deploy:
      replicas: 2
      update_config: {{order: start-first, delay: 0s, monitor: 3s, failure_action: rollback}}
      rollback_config: {{order: start-first, delay: 0s, monitor: 3s}}
"""


def require_swarm() -> None:
    """Skip (developer) or fail (CI=true) unless the Docker lab's engine is a Swarm manager."""
    require_docker()
    state = docker(
        "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}", check=False
    ).stdout.strip()
    if state != "active true":
        message = f"Swarm lab unavailable: the engine's swarm state is {state!r} ({UP_HINT})"
        if under_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def image_ref(version: str) -> str:
    return f"{REGISTRY}/{REPOSITORY}:{version}"


def build_image(version: str, *, broken: bool = False, serves: str | None = None) -> str:
    """The busybox web image of `version` (`broken`: no /health, so its healthcheck fails;
    `serves`: the version its pages claim, for an image healthy to Swarm that fails its
    smoke check), pushed to the lab registry; the local copy removed so Swarm really pulls."""
    ref = image_ref(version)
    with tempfile.TemporaryDirectory(prefix="rg-swarm-image-") as tmp:
        root = Path(tmp) / "root"
        _write_root(root, serves or version, broken)
        tar = subprocess.run(
            ["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner",
             "-C", str(root), "-c", "."],
            capture_output=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        changes = [f'CMD ["/bin/sh", "-c", "{SERVE}"]', "EXPOSE 80", "WORKDIR /www"]
        argv = ["docker", "import"]
        for change in changes:
            argv += ["--change", change]
        subprocess.run([*argv, "-", ref], input=tar, capture_output=True, check=True, timeout=120)
    docker("push", ref, timeout=180)
    docker("rmi", ref, check=False)
    return ref


def remove_stack(name: str) -> None:
    """`docker stack rm NAME`, then wait (bounded) until its services are gone."""
    docker("stack", "rm", name, check=False, timeout=60)
    for _ in range(60):
        left = docker(
            "service", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={name}",
            check=False,
        ).stdout.split()  # fmt: skip
        running = docker(
            "ps", "-q", "--filter", f"label=com.docker.stack.namespace={name}", check=False
        ).stdout.split()
        if not left and not running:
            return
        subprocess.run(["sleep", "0.5"], check=False)


def make_workspace(root: Path, *, wait_timeout: float = 60) -> ComposeWorkspace:
    """web-staging and web-prod (promote_from web-staging), each a swarm stack of its own."""
    return compose_workspace.make_workspace(
        root,
        REGISTRY,
        PREFIX,
        runtime="swarm",
        compose_text=STACK_FILE.format(registry=REGISTRY, repository=REPOSITORY),
        secret="tok-secret-swarm-123",
        wait_timeout=wait_timeout,
        migrate=False,
        smoke=(4, 10),
    )
