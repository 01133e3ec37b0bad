"""Compose blue/green through a real nginx on the real Docker lab: each slot is its own
compose project (`<project>-blue`, `<project>-green`) publishing $RELEASEGATE_SLOT_PORT. A
deploy v1 -> v2 under load fails no request; a rollback to the warm slot is a switch (its
containers are not recreated, no `docker compose up`); status and history say so."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_proxy.compose_stack import ComposeSlots, make
from tests.lab.fixtures import DockerLab
from tests.lab.load import Load
from tests.lab.proxies import get

pytestmark = pytest.mark.e2e


@pytest.fixture(params=[True, False], ids=["keep-old", "stop-old"])
def stack(
    request: pytest.FixtureRequest, tmp_path: Path, docker_lab: DockerLab
) -> Iterator[ComposeSlots]:
    made = make(tmp_path, docker_lab, keep_old=bool(request.param))
    try:
        yield made
    finally:
        made.down()


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
