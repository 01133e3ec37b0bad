"""Compose blue/green slots on fleet hosts: two SSH lab hosts, each with a Docker engine of its
own (scripts/lab/docker_hosts.sh) and its own nginx in front of its two slot projects
(`<project>-blue`, `<project>-green`), which publish on the host's own address
(`${RELEASEGATE_SLOT_HOST}:${RELEASEGATE_SLOT_PORT}`). A deploy v1 -> v2 under keep-alive load
through each host's proxy fails no request; `rollback` is a warm switch on both hosts: no
`docker compose up` among its steps, the old slot's containers not recreated."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_ssh.test_fleet_proxy import ProxyFleet, get, stop_pidfile
from tests.lab.docker import require_docker
from tests.lab.images import build_web_image, image_ref, in_registry, sha_version
from tests.lab.load import Load
from tests.lab.ssh import SshLab, docker_host, require_docker_hosts, run_rg

pytestmark = pytest.mark.e2e

HOSTS = 2
COMPOSE = """\
services:
  web:
    image: 127.0.0.1:5000/rg/web:${IMAGE_TAG}
    ports: ["${RELEASEGATE_SLOT_HOST:-127.0.0.1}:${RELEASEGATE_SLOT_PORT:-8080}:80"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/health"]
      interval: 1s
      retries: 30
"""
# Fixed versions: built and pushed once, then found in the registry by later runs.
V1, V2 = sha_version("fleet-compose-slots-v1"), sha_version("fleet-compose-slots-v2")


def _image(version: str) -> None:
    if not in_registry(image_ref(version)):
        build_web_image(version)


class ComposeSlotFleet(ProxyFleet):
    """ProxyFleet's per-host nginx (its upstream file naming blue, which nothing serves yet),
    in front of a compose project per slot on each host's own engine."""

    def __init__(self, lab: SshLab, tmp: Path) -> None:
        super().__init__(lab, tmp)
        self.addresses = self.addresses[:HOSTS]
        self.project = f"fcs{os.getpid()}{time.monotonic_ns() % 10**6}"
        for i in range(1, HOSTS + 1):
            where = self.host_path(i)
            where.mkdir(parents=True, exist_ok=True)
            (where / "compose.yaml").write_text(COMPOSE)
            (where / ".env").write_text("# this host's own settings\nAPP_TOKEN=hunter2-slots\n")

    def config(self) -> None:
        super().config()
        path = self.tmp / "releasegate.yaml"
        stack = json.loads(path.read_text())["stacks"]["web"]
        for key in ("artifacts", "commands", "backup"):
            stack.pop(key)
        stack["hosts"] = stack["hosts"][:HOSTS]
        stack["runtime"] = "compose"
        stack["compose"] = {"project": self.project, "wait_timeout": 60}
        stack["smoke"][0]["body_contains"] = '"version": "{version}"'
        path.write_text(json.dumps({"stacks": {"web": stack}}))

    def health(self, index: int) -> str:
        return get(self.url(index, "/health")).strip()

    def engine(self, index: int, *args: str) -> str:
        """docker on host h<index>'s own engine."""
        done = subprocess.run(
            ["docker", *args],
            env={**os.environ, "DOCKER_HOST": docker_host(index)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def containers(self, index: int, slot: str) -> dict[str, tuple[str, str, bool]]:
        """A slot's containers on host h<index>: id -> (image tag, started at, running)."""
        label = f"label=com.docker.compose.project={self.project}-{slot}"
        ids = self.engine(index, "ps", "-aq", "--filter", label).split()
        found = json.loads(self.engine(index, "inspect", *ids)) if ids else []
        return {
            c["Id"]: (
                c["Config"]["Image"].rsplit(":", 1)[1],
                c["State"]["StartedAt"],
                c["State"]["Running"],
            )
            for c in found
        }

    def last_steps(self) -> list[dict[str, Any]]:
        """The steps of the newest run, as `history --steps` records them."""
        shown = run_rg(self.lab, self.tmp, "history", "--stack", "web", "--json", "--steps")
        assert shown.returncode == 0, shown.stderr
        rows = [json.loads(line) for line in shown.stdout.splitlines()]
        run = [r for r in rows if not r.get("parent_id")][-1]
        return [r for r in rows if r.get("parent_id") == run["action_id"]]

    def stop(self) -> None:
        for i in range(1, HOSTS + 1):
            label = "label=com.docker.compose.project"
            for slot in ("blue", "green"):
                ids = self.engine(i, "ps", "-aq", "--filter", f"{label}={self.project}-{slot}")
                if ids.split():
                    self.engine(i, "rm", "-f", "-v", *ids.split())
                subprocess.run(
                    ["docker", "network", "rm", f"{self.project}-{slot}_default"],
                    env={**os.environ, "DOCKER_HOST": docker_host(i)},
                    capture_output=True,
                    timeout=60,
                )
            stop_pidfile(self.host_path(i, "proxy", "nginx.pid"))
        super().stop()


@pytest.fixture()
def slot_fleet(tmp_path: Path) -> Iterator[ComposeSlotFleet]:
    require_docker()
    lab = require_docker_hosts(HOSTS)
    for version in (V1, V2):
        _image(version)
    fleet = ComposeSlotFleet(lab, tmp_path)
    try:
        fleet.start_proxies()
        fleet.config()
        yield fleet
    finally:
        fleet.stop()


def _under_load(fleet: ComposeSlotFleet, *args: str) -> list[Load]:
    """`releasegate ARGS` while a keep-alive client GETs /health through each host's proxy
    (one per host: on a machine of 2 cores more clients only slow the run down)."""
    loads = [
        Load(fleet.url(i, "/health"), clients=1, keepalive=True, max_s=240)
        for i in range(1, HOSTS + 1)
    ]
    for load in loads:
        load.__enter__()
    try:
        time.sleep(0.5)  # steady traffic before the run
        done = fleet.rg(*args)
        time.sleep(0.5)
    finally:
        for load in loads:
            load.__exit__(None, None, None)
    assert done.returncode == 0, done.stdout + done.stderr
    return loads


def test_compose_slots_on_two_hosts_deploy_under_load_and_warm_rollback(
    slot_fleet: ComposeSlotFleet,
) -> None:
    fleet = slot_fleet
    first = fleet.rg("deploy", "web", "staging", V1)
    assert first.returncode == 0, first.stdout + first.stderr
    # Each host's nginx named blue (empty): v1 went to green on each host's own engine.
    for i in range(1, HOSTS + 1):
        assert f'"version": "{V1}"' in fleet.health(i)
        assert [t for t, _, up in fleet.containers(i, "green").values() if up] == [V1]

    loads = _under_load(fleet, "deploy", "web", "staging", V2)
    for i, load in enumerate(loads, start=1):
        result = load.result
        assert result.failed == 0, (i, result.errors)
        seen = " ".join(result.bodies)
        assert V1 in seen and V2 in seen, seen  # the switch happened under load
    warm: dict[int, dict[str, tuple[str, str, bool]]] = {}
    for i in range(1, HOSTS + 1):
        assert f'"version": "{V2}"' in fleet.health(i)
        assert [t for t, _, up in fleet.containers(i, "blue").values() if up] == [V2]
        warm[i] = fleet.containers(i, "green")  # keep_old: v1 still runs in green
        assert [(t, up) for t, _, up in warm[i].values()] == [(V1, True)]

    loads = _under_load(fleet, "rollback", "web", "staging")
    for i, load in enumerate(loads, start=1):
        assert load.result.failed == 0, (i, load.result.errors)
    for i in range(1, HOSTS + 1):
        assert f'"version": "{V1}"' in fleet.health(i)
        assert fleet.containers(i, "green") == warm[i]  # not recreated, not restarted
        env = fleet.host_path(i, ".env").read_text()  # the `switch` step's tag, the rest kept
        assert f"IMAGE_TAG={V1}\n" in env and "APP_TOKEN=hunter2-slots" in env, env
    shown = fleet.rg("status", "--json")
    web = next(r for r in map(json.loads, shown.stdout.splitlines()) if r.get("stack") == "web")
    assert web["running"] == V1 and web["mixed"] is False, web
    steps = fleet.last_steps()
    names = [s["action"] for s in steps]
    assert "switch-traffic" in names, names
    assert "start-slot" not in names and "restart" not in names and "prepare" not in names
    said = json.dumps(steps)
    assert " up" not in said and "compose up" not in said  # no `docker compose up` at all
    assert "hunter2-slots" not in said  # the hosts' .env secrets never reach the ledger
