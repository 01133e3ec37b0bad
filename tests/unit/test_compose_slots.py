"""Compose blue/green as data: a project per slot, the argv that starts and stops one, the
preflight rule (the file publishes the slot's port, no fixed container names), and the plan
a compose slot stack gets (no `docker compose up` in a rollback to the warm slot)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from releasegate.config import load_config
from releasegate.plan import Facts, plan_deploy, plan_rollback
from releasegate.proxy.slots import SlotFacts
from releasegate.runtimes import compose_slots as cs

CONFIG = """
stacks:
  web:
    env: staging
    runtime: compose
    dir: srv/web
    compose: {project: shop}
    smoke:
      - name: health
        http: http://127.0.0.1:8080/health
    proxy:
      kind: nginx
      slots: {blue: "127.0.0.1:8101", green: "127.0.0.1:8102"}
      drain_s: 1
      nginx: {upstream_file: up.conf, conf: nginx.conf}
"""

PUBLISHED = """
services:
  web:
    image: reg/web:${IMAGE_TAG}
    ports: ["127.0.0.1:${RELEASEGATE_SLOT_PORT:-8080}:80"]
  worker:
    image: reg/worker:${IMAGE_TAG}
"""


def load(tmp_path: Path, text: str = CONFIG) -> Any:
    path = tmp_path / "releasegate.yaml"
    path.write_text(text)
    return load_config(path).stack("web")


def test_a_project_per_slot() -> None:
    assert cs.slot_project("shop", "green") == "shop-green"
    with pytest.raises(ValueError):
        cs.slot_project("shop", "red; rm -rf /")
    base = cs.slot_base("shop", "blue", PurePosixPath("/srv/web"), ["docker-compose.yml"], [])
    assert base == [
        "docker", "compose", "-p", "shop-blue", "--project-directory", "/srv/web",
        "-f", "/srv/web/docker-compose.yml",
    ]  # fmt: skip
    assert cs.stop(base) == [*base, "stop"]  # stop, not down: the containers stay


@pytest.mark.parametrize(
    ("ports", "ok"),
    [
        ('["127.0.0.1:${RELEASEGATE_SLOT_PORT:-8080}:80"]', True),
        ('["$RELEASEGATE_SLOT_PORT:80"]', True),
        ("[{target: 80, published: '${RELEASEGATE_SLOT_PORT}', host_ip: 127.0.0.1}]", True),
        ('["127.0.0.1:8080:80"]', False),  # both slots would ask for 8080
        ('["127.0.0.1:${RELEASEGATE_SLOT_PORTS}:80"]', False),  # another variable
        ("[]", False),
    ],
)
def test_the_file_must_publish_the_slot_port(ports: str, ok: bool) -> None:
    text = f"services:\n  web:\n    image: reg/web:${{IMAGE_TAG}}\n    ports: {ports}\n"
    (check,) = cs.slot_checks({"docker-compose.yml": text})
    assert check.name == "compose-slot-port" and check.ok is ok
    if not ok:
        assert "RELEASEGATE_SLOT_PORT" in check.hint


def test_fixed_container_names_are_refused() -> None:
    text = PUBLISHED.replace("  worker:\n", "  worker:\n    container_name: worker\n")
    checks = {c.name: c for c in cs.slot_checks({"a.yml": text, "broken.yml": "{"})}
    assert not checks["compose-slot-names"].ok and "worker" in checks["compose-slot-names"].summary
    assert checks["compose-slot-port"].ok


def test_compose_deploy_and_warm_rollback_plans(tmp_path: Path) -> None:
    stack = load(tmp_path)
    live_blue = SlotFacts("blue", {"blue": "v1"})
    deploy = plan_deploy(
        stack,
        "v2",
        Facts(running="v1", rollback_target="v1", artifact="reg/web:v2", slots=live_blue),
    )
    steps = {s.name: s.title for s in deploy.steps}
    release = ["prepare", "start-slot", "smoke-slot", "switch", "switch-traffic", "drain"]
    wanted = {*release, "stop-old-slot", "restart"}
    assert [s.name for s in deploy.steps if s.name in wanted] == [*release, "stop-old-slot"]
    assert "docker compose -p shop-green up -d" in steps["start-slot"]
    assert "docker compose -p shop-blue stop" in steps["stop-old-slot"]
    warm = SlotFacts("green", {"blue": "v1", "green": "v2"})
    back = plan_rollback(
        stack, "v1", Facts(running="v2", rollback_target="v1", artifact="reg/web:v1", slots=warm)
    )
    names = [s.name for s in back.steps]
    assert "start-slot" not in names and "prepare" not in names and "restart" not in names
    assert "switch-traffic" in names
    assert not any("up -d" in s.title for s in back.steps)


# -- the runtime's slot programs, driven with canned answers (as test_compose_programs) -------
def _slot_runtime(tmp_path: Path) -> Any:
    from releasegate.redact import Redactor
    from releasegate.runtimes.compose import ComposeRuntime
    from releasegate.transport.local import LocalTransport

    stack = load(tmp_path, CONFIG.replace("compose: {project: shop}",
                                          "compose: {project: shop, wait_timeout: 5}"))  # fmt: skip
    return ComposeRuntime(stack, LocalTransport(), Redactor([]), "tok")


def _drive(program: Any, answer: Any) -> tuple[Any, list[Any]]:
    from releasegate.ops import Cmd

    asked: list[Any] = []
    try:
        op = next(program)
        while True:
            asked.append(op)
            op = program.send(answer(op) if isinstance(op, Cmd) else None)
    except StopIteration as stop:
        return stop.value, asked


def _answer(running: dict[str, str]) -> Any:
    """docker answers: `ps -q` of a slot project names one container per running slot;
    `inspect` says it runs web at that slot's tag, healthy."""
    import json

    from releasegate.transport.base import CommandResult

    def answer(op: Any) -> CommandResult:
        argv = list(op.argv)
        out = ""
        if "ps" in argv:
            slot = argv[argv.index("-p") + 1].rsplit("-", 1)[1]
            out = f"id-{slot}\n" if slot in running else ""
        elif argv[:2] == ["docker", "inspect"]:
            slot = argv[-1].removeprefix("id-")
            out = json.dumps([{
                "Name": f"/shop-{slot}-web-1", "Image": "sha256:1",
                "Config": {"Image": f"reg/web:{running[slot]}",
                           "Labels": {"com.docker.compose.service": "web"}},
                "State": {"Status": "running", "ExitCode": 0, "Health": {"Status": "healthy"}},
            }])  # fmt: skip
        return CommandResult(tuple(argv), 0, out, "", 0.01)

    return answer


def _ups(asked: list[Any]) -> list[tuple[str, dict[str, str]]]:
    return [
        (op.argv[op.argv.index("-p") + 1], dict(op.env or {}))
        for op in asked
        if hasattr(op, "argv") and "up" in op.argv
    ]


def test_slot_start_is_up_in_the_slot_project_with_its_port(tmp_path: Path) -> None:
    rt = _slot_runtime(tmp_path)
    phase, asked = _drive(rt.slot_start_ops("green", "v2", "v1", None), _answer({"green": "v2"}))
    assert phase.ok, phase.summary
    ((project, env),) = _ups(asked)
    assert project == "shop-green"
    assert env["IMAGE_TAG"] == "v2" and env["RELEASEGATE_SLOT_PORT"] == "8102"
    assert env["RELEASEGATE_SLOT"] == "green" and env["COMPOSE_PROJECT_NAME"] == "shop-green"


def test_restart_and_stop_act_on_the_slots_never_a_third_project(tmp_path: Path) -> None:
    rt = _slot_runtime(tmp_path)
    phase, asked = _drive(rt.restart_ops("v1", None), _answer({"blue": "v1", "green": "v2"}))
    assert phase.ok, phase.summary
    assert [(p, e["RELEASEGATE_SLOT_PORT"]) for p, e in _ups(asked)] == [("shop-blue", "8101")]
    missing, asked = _drive(rt.restart_ops("v9", None), _answer({"blue": "v1"}))
    assert not missing.ok and "v9" in missing.summary and not _ups(asked)
    stopped, asked = _drive(rt.stop_ops(), _answer({}))
    assert stopped.ok
    stops = [op.argv for op in asked if "stop" in op.argv]
    assert [a[a.index("-p") + 1] for a in stops] == ["shop-blue", "shop-green"]
