"""Compose blue/green through a real nginx on the real Docker lab: each slot is its own
compose project (`<project>-blue`, `<project>-green`) publishing $RELEASEGATE_SLOT_PORT. A
deploy v1 -> v2 under load fails no request; a rollback to the warm slot is a switch (its
containers are not recreated, no `docker compose up`); status and history say so."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_proxy.slots import SlotStack
from tests.lab.docker import compose, docker
from tests.lab.fixtures import DockerLab
from tests.lab.images import sha_version
from tests.lab.load import Load
from tests.lab.proxies import free_port, get, start_proxy

pytestmark = pytest.mark.e2e

COMPOSE_FILE = """\
services:
  web:
    image: {registry}/rg/web:${{IMAGE_TAG}}
    ports: ["127.0.0.1:${{RELEASEGATE_SLOT_PORT:-8080}}:80"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/health"]
      interval: 1s
      timeout: 2s
      retries: 2
"""


@dataclass
class ComposeSlots(SlotStack):
    project: str = ""
    v1: str = ""
    v2: str = ""
    keep_old: bool = False

    def slot_containers(self, slot: str) -> list[dict[str, Any]]:
        ids = docker(
            "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}-{slot}"
        ).stdout.split()
        return json.loads(docker("inspect", *ids).stdout) if ids else []

    def rows(self, *args: str) -> list[dict[str, Any]]:
        shown = self.rg("history", "--stack", "web", "--json", *args)
        assert shown.returncode == 0, shown.stderr
        return [json.loads(line) for line in shown.stdout.splitlines()]

    def last_steps(self) -> list[dict[str, Any]]:
        """The steps of the newest run (a line each, under its run's action_id)."""
        rows = self.rows("--steps")
        run = [r for r in rows if not r.get("parent_id")][-1]
        return [r for r in rows if r.get("parent_id") == run["action_id"]]


def make(root: Path, lab: DockerLab, keep_old: bool) -> ComposeSlots:
    v1, v2 = sha_version(f"compose-slots-v1-{root.name}"), sha_version(f"cslots-v2-{root.name}")
    lab.image(v1), lab.image(v2)
    project = lab.project("cslots-" + "".join(c for c in root.name.lower() if c.isalnum())[-10:])
    run_dir = root / "srv" / "web"
    run_dir.mkdir(parents=True)
    (run_dir / "docker-compose.yml").write_text(COMPOSE_FILE.format(registry=lab.registry))
    (run_dir / ".env").write_text(f"IMAGE_TAG={v1}\n")
    slots = {"blue": f"127.0.0.1:{free_port()}", "green": f"127.0.0.1:{free_port()}"}
    proxy = start_proxy("nginx", root, slots)
    stack = {
        "env": "staging",
        "runtime": "compose",
        "dir": "srv/web",
        "compose": {"project": project, "wait_timeout": 60},
        "smoke": [
            {
                "name": "health",
                "http": f"{proxy.url}/health",
                "body_contains": '"version": "{version}"',
                "retries": 20,
                "interval": 0.25,
                "timeout": 6,
            }
        ],
        "preflight": {"disk_free_min_percent": 1},
        "proxy": proxy.config(drain_s=0.5, keep_old=keep_old),
    }
    (root / "releasegate.yaml").write_text(json.dumps({"stacks": {"web": stack}}, indent=2))
    return ComposeSlots(root, proxy, project, v1, v2, keep_old)


@pytest.fixture(params=[True, False], ids=["keep-old", "stop-old"])
def stack(
    request: pytest.FixtureRequest, tmp_path: Path, docker_lab: DockerLab
) -> Iterator[ComposeSlots]:
    made = make(tmp_path, docker_lab, keep_old=bool(request.param))
    try:
        yield made
    finally:
        made.proxy.stop()
        for slot in ("blue", "green"):
            compose(f"{made.project}-{slot}", "down", "-v", "-t", "2", check=False)


def ok(run: Any) -> None:
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"


def status(stack: ComposeSlots) -> dict[str, Any]:
    shown = stack.rg("status", "--json")
    ok(shown)
    return dict(json.loads(shown.stdout.splitlines()[0]))


def test_deploy_under_load_then_rollback_is_a_switch(stack: ComposeSlots) -> None:
    v1, v2 = stack.v1, stack.v2
    compose_file = stack.root / "srv" / "web" / "docker-compose.yml"
    good = compose_file.read_text()
    compose_file.write_text(good.replace("${RELEASEGATE_SLOT_PORT:-8080}", "8080"))
    refused = stack.rg("deploy", "web", "staging", v1)  # both slots would want port 8080
    assert refused.returncode != 0 and "REFUSED: preflight failed" in refused.stdout
    assert "no service publishes ${RELEASEGATE_SLOT_PORT}" in refused.stdout + refused.stderr
    assert not stack.slot_containers("blue") and not stack.slot_containers("green")
    compose_file.write_text(good)
    ok(stack.rg("deploy", "web", "staging", v1))  # v1 starts in green (nginx's blue is empty)
    assert f'"version": "{v1}"' in get(stack.proxy.url + "/health")[1]
    dry = stack.rg("deploy", "web", "staging", v2, "--dry-run")
    ok(dry)
    assert f"docker compose -p {stack.project}-blue up -d" in dry.stdout
    url = stack.proxy.url + "/health"
    with Load(url, clients=2, keepalive=True) as kept, Load(url, clients=2, keepalive=False) as new:
        time.sleep(0.5)
        ok(stack.rg("deploy", "web", "staging", v2))
        time.sleep(0.5)
    for load in (kept, new):
        assert load.result.failed == 0, load.result.errors
        seen = " ".join(load.result.bodies)
        assert v1 in seen and v2 in seen  # the switch happened under load
    assert f'"version": "{v2}"' in get(url)[1]
    green = stack.slot_containers("green")
    assert [c["Config"]["Image"].rsplit(":", 1)[1] for c in green] == [v1]
    assert status(stack)["running"] == v2

    if not stack.keep_old:
        # stop-old-slot stopped v1's project (its containers kept): a rollback starts it again.
        assert "stop-old-slot" in [s["action"] for s in stack.last_steps()]
        assert green and not _running(green)
        with Load(url, clients=2) as load:
            ok(stack.rg("rollback", "web", "staging"))
        assert load.result.failed == 0, load.result.errors
        assert "start-slot" in [s["action"] for s in stack.last_steps()]
        assert f'"version": "{v1}"' in get(url)[1]
        assert status(stack)["running"] == v1, stack.rg("status", "--json").stdout
        return

    assert _running(green)  # keep_old: the old slot stays warm
    started = {c["Id"]: c["State"]["StartedAt"] for c in green}
    with Load(url, clients=2) as load:
        ok(stack.rg("rollback", "web", "staging"))
    assert load.result.failed == 0, load.result.errors
    assert f'"version": "{v1}"' in get(url)[1]
    steps = stack.last_steps()
    names = [s["action"] for s in steps]
    assert "start-slot" not in names and "prepare" not in names and "restart" not in names
    assert "switch-traffic" in names
    assert " up" not in json.dumps(steps)  # no `docker compose up` anywhere in its evidence
    # The warm slot's containers answered as they were: not recreated, not restarted.
    assert {c["Id"]: c["State"]["StartedAt"] for c in stack.slot_containers("green")} == started
    assert status(stack)["running"] == v1
    rows = stack.rows()
    assert [(r["action"], r["version"], r["status"]) for r in rows][-3:] == [
        ("deploy", v1, "success"), ("deploy", v2, "success"), ("rollback", v1, "success"),
    ]  # fmt: skip


def _running(containers: list[dict[str, Any]]) -> bool:
    return bool(containers) and all(c["State"]["Running"] for c in containers)
