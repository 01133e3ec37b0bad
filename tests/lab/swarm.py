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

from tests.lab.compose_workspace import ComposeWorkspace
from tests.lab.docker import REGISTRY, docker, free_port, require_docker, under_ci
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
    ports = {"web-staging": free_port(), "web-prod": free_port()}
    tag = "".join(ch for ch in root.name.lower() if ch.isalnum())[-8:] or "ws"
    stacks = {s: f"{PREFIX}{s}-{tag}" for s in ports}
    blocks = []
    for stack, env in (("web-staging", "staging"), ("web-prod", "prod")):
        run = root / "srv" / stack
        run.mkdir(parents=True)
        (run / "docker-compose.yml").write_text(
            STACK_FILE.format(registry=REGISTRY, repository=REPOSITORY)
        )
        (run / ".env").write_text(f"PORT={ports[stack]}\nAPI_TOKEN=tok-secret-swarm-123\n")
        promote = "    promote_from: web-staging\n" if env == "prod" else ""
        blocks.append(
            f"  {stack}:\n    env: {env}\n    runtime: swarm\n    dir: srv/{stack}\n{promote}"
            f"    compose:\n      project: {stacks[stack]}\n      wait_timeout: {wait_timeout}\n"
            f"    smoke:\n      - name: health\n"
            f"        http: http://127.0.0.1:{ports[stack]}/health\n"
            f'        body_contains: \'"version": "{{version}}"\'\n'
            f"        retries: 4\n        interval: 0.5\n        timeout: 10\n"
        )
    (root / "releasegate.yaml").write_text("stacks:\n" + "".join(blocks))
    return ComposeWorkspace(root, ports, stacks)
