"""The swarm runtime's restart phase as a program of operations, driven by a small stand-in
for Docker's answers: what is asked, in which order, and what the answers make of it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from releasegate.config import load_config
from releasegate.ops import Cmd, Program, Sleep
from releasegate.redact import Redactor
from releasegate.runtimes.swarm import SwarmRuntime
from releasegate.transport.base import CommandResult
from releasegate.transport.local import LocalTransport

D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


class FakeSwarm:
    """Services of stack `shop` and their running tasks; `docker stack deploy` moves them to
    D3, where Swarm rolls `web` back itself and leaves `worker` updated."""

    def __init__(self) -> None:
        self.services: dict[str, dict[str, Any]] = {
            name: {"digest": D2, "state": "completed", "started": "t0", "replicas": n}
            for name, n in (("web", 1), ("worker", 2))
        }
        self.asked: list[Cmd] = []

    def __call__(self, op: Cmd) -> CommandResult:
        self.asked.append(op)
        argv = list(op.argv)
        out = ""
        if argv[:2] == ["sh", "-c"] and "base64" in argv[2]:  # hosttext's read of .env
            out = base64.b64encode(b"PORT=8080\nSECRET=hunter2\nIMAGE_TAG=v3\n").decode()
        elif argv[:3] == ["docker", "service", "ls"]:
            out = "\n".join(f"id-{n}" for n in self.services)
        elif argv[:3] == ["docker", "service", "inspect"]:
            out = "\n".join(
                json.dumps(
                    {
                        "id": f"id-{n}",
                        "name": f"shop_{n}",
                        "image": f"r/web:x@{s['digest']}",
                        "mode": {"Replicated": {"Replicas": s["replicas"]}},
                        "update": {"State": s["state"], "StartedAt": s["started"], "Message": ""},
                    }
                )
                for n, s in self.services.items()
            )
        elif argv[:3] == ["docker", "service", "ps"]:
            out = "\n".join(
                f"t-{n}-{i}" for n, s in self.services.items() for i in range(s["replicas"])
            )
        elif argv[:3] == ["docker", "inspect", "--type"]:
            out = "\n".join(
                json.dumps(
                    {
                        "id": f"t-{n}-{i}",
                        "service": f"id-{n}",
                        "state": "running",
                        "desired": "running",
                        "image": f"r/web:x@{s['digest']}",
                        "err": "",
                    }
                )
                for n, s in self.services.items()
                for i in range(s["replicas"])
            )
        elif argv[:3] == ["docker", "stack", "deploy"]:
            self.services["web"].update(state="rollback_completed", started="t1")
            self.services["worker"].update(digest=D3, state="completed", started="t1")
        elif argv[:3] == ["docker", "service", "rollback"]:
            name = argv[-1].removeprefix("id-")
            self.services[name].update(digest=D2, state="rollback_completed")
        return CommandResult(tuple(argv), 0, out, "", 0.01)


def _drive(program: Program[Any], docker: FakeSwarm) -> Any:
    reply: Any = None
    try:
        op = next(program)
        while True:
            reply = docker(op) if isinstance(op, Cmd) else None
            assert not isinstance(op, Sleep) or op.seconds <= 1
            op = program.send(reply)
    except StopIteration as stop:
        return stop.value


def _runtime(tmp_path: Path, compose: str = "") -> SwarmRuntime:
    (tmp_path / "releasegate.yaml").write_text(
        "stacks:\n  shop-staging:\n    env: staging\n    runtime: swarm\n"
        f"    dir: {tmp_path}/run\n    compose: {{project: shop, wait_timeout: 5{compose}}}\n"
    )
    stack = load_config(tmp_path / "releasegate.yaml").stack("shop-staging")
    return SwarmRuntime(stack, LocalTransport(), Redactor(["hunter2"]), "tok")


def test_a_failed_rollout_goes_back_only_where_swarm_did_not(tmp_path: Path) -> None:
    rt, docker = _runtime(tmp_path), FakeSwarm()
    phase = _drive(rt.restart_ops("v3", "v2"), docker)
    assert not phase.ok and "web: update rolled back by Swarm" in phase.summary
    [deploy] = [op for op in docker.asked if op.argv[:3] == ("docker", "stack", "deploy")]
    assert deploy.argv[-2:] == ("--", "shop")
    assert deploy.env is not None and deploy.env["IMAGE_TAG"] == "v3"
    assert deploy.env["PORT"] == "8080"  # the .env's values travel in the environment
    assert "hunter2" not in json.dumps(phase.commands)  # nor in the evidence

    back = _drive(rt.restart_ops("x", "v3"), docker)  # the way back: to what ran before
    rollbacks = [op.argv for op in docker.asked if op.argv[:3] == ("docker", "service", "rollback")]
    assert rollbacks == [
        ("docker", "service", "rollback", "--detach", "--quiet", "--", "id-worker")
    ]
    assert back.ok, back.summary
    assert "web (swarm)" in back.summary and "worker (docker service rollback)" in back.summary
    assert {i["digest"] for i in back.facts["images"].values()} == {D2}
    assert back.facts["services"]["worker"]["replicas"] == "2/2"


def test_compose_and_swarm_rule_findings_become_checks_alike(tmp_path: Path) -> None:
    """Both runtimes' rules name file:line and service, and carry the finding's evidence."""
    rt = _runtime(tmp_path, ", rules: [no-latest]")
    stack_file = tmp_path / "stack.yml"
    stack_file.write_text("services:\n  web:\n    image: r/web:latest\n")
    checks = rt.rule_checks([stack_file], tmp_path, {}, None)
    by_name = {c.name: c for c in checks}
    latest = by_name["no-latest"]
    assert not latest.ok
    assert latest.summary.startswith(f"{stack_file}:3: web: no-latest: ")
    assert latest.evidence["file"] == str(stack_file) and latest.evidence["line"] == 3
    assert latest.evidence["service"] == "web" and latest.evidence["rule"] == "no-latest"
    update = by_name["swarm-update-config"]
    assert not update.ok and update.evidence["service"] == "web"
    assert update.summary.startswith(f"{stack_file}:2: web: swarm-update-config: ")
    assert update.evidence["file"] == str(stack_file) and update.hint
    assert all(not c.ok for c in checks)
