"""The compose runtime's phases as programs of operations, driven here with canned answers:
what a host is asked, in which order, and what the answers make of the phase."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from releasegate.config import load_config
from releasegate.ops import Cmd, Program, Sleep
from releasegate.redact import Redactor
from releasegate.runtimes.compose import ComposeRuntime
from releasegate.transport.base import CommandResult
from releasegate.transport.local import LocalTransport


def _runtime(tmp_path: Path) -> ComposeRuntime:
    (tmp_path / "releasegate.yaml").write_text(
        "stacks:\n  web:\n    env: staging\n    runtime: compose\n"
        f"    dir: {tmp_path}/run\n    compose: {{files: [compose.yaml], wait_timeout: 5}}\n"
    )
    stack = load_config(tmp_path / "releasegate.yaml").stack("web")
    return ComposeRuntime(stack, LocalTransport(), Redactor(["hunter2"]), "tok")


def _ok(stdout: str = "", code: int = 0, stderr: str = "") -> CommandResult:
    return CommandResult(("x",), code, stdout, stderr, 0.01)


def _drive(program: Program[Any], answer: Callable[[Cmd], CommandResult]) -> tuple[Any, list[Any]]:
    asked: list[Any] = []
    reply: Any = None
    try:
        op = next(program)
        while True:
            asked.append(op)
            reply = answer(op) if isinstance(op, Cmd) else None
            op = program.send(reply)
    except StopIteration as stop:
        return stop.value, asked


def _inspect(state: str, health: str | None) -> str:
    item: dict[str, Any] = {
        "Name": "/web-web-1",
        "Image": "sha256:1",
        "Config": {"Image": "r/web:v2", "Labels": {"com.docker.compose.service": "web"}},
        "State": {"Status": state, "ExitCode": 0},
    }
    if health:
        item["State"]["Health"] = {"Status": health, "Log": []}
    return json.dumps([item])


def _is_read(op: Cmd) -> bool:
    return op.argv[:2] == ("sh", "-c") and "base64" in op.argv[2]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_switch_reads_then_writes_the_env_in_one_round_trip(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    env = "SECRET=hunter2\nIMAGE_TAG=v1\n"
    phase, asked = _drive(rt.switch_ops("v2"), lambda op: _ok(_b64(env)) if _is_read(op) else _ok())
    assert phase.ok and phase.summary.startswith("IMAGE_TAG: v1 -> v2")
    assert [_is_read(op) for op in asked] == [True, False]
    write = asked[1]
    assert write.stdin == "SECRET=hunter2\nIMAGE_TAG=v2\n"  # the content travels on stdin
    assert "hunter2" not in " ".join(write.argv) and "hunter2" not in json.dumps(phase.commands)


def test_an_env_that_cannot_be_read_is_never_rewritten(tmp_path: Path) -> None:
    # Before, a failed read counted as an empty .env: the switch wrote IMAGE_TAG alone over it.
    rt = _runtime(tmp_path)
    unreadable = _ok(code=1, stderr="not a readable file: .env")
    phase, asked = _drive(rt.switch_ops("v2"), lambda op: unreadable if _is_read(op) else _ok())
    assert not phase.ok and "not a readable file" in phase.summary
    assert len(asked) == 1


def test_a_failed_write_fails_the_switch(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    failed = _ok(code=1, stderr="no folder /srv/run")
    phase, _ = _drive(
        rt.switch_ops("v2"), lambda op: _ok(_b64("IMAGE_TAG=v1\n")) if _is_read(op) else failed
    )
    assert not phase.ok and "could not write IMAGE_TAG" in phase.summary


def test_restart_waits_for_health_then_records_digests(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    healths = iter(["starting", "healthy"])

    def answer(op: Cmd) -> CommandResult:
        if "up" in op.argv:
            return _ok()
        if "ps" in op.argv:
            return _ok("abc\n")
        if op.argv[:3] == ("docker", "inspect", "--type"):
            return _ok(_inspect("running", next(healths)))
        digests = [{"Id": "sha256:1", "RepoDigests": ["r/web@sha256:" + "c" * 64]}]
        return _ok(json.dumps(digests))

    phase, asked = _drive(rt.restart_ops("v2", "v1"), answer)
    assert phase.ok and phase.summary == "1 container(s) running, 1 healthy"
    assert sum(isinstance(op, Sleep) for op in asked) == 1  # one wait between the two looks
    assert phase.facts["images"]["web"]["digest"] == "sha256:" + "c" * 64


def test_an_unhealthy_container_fails_restart_at_once(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)

    def answer(op: Cmd) -> CommandResult:
        if "ps" in op.argv:
            return _ok("abc\n")
        if op.argv[:2] == ("docker", "inspect"):
            return _ok(_inspect("running", "unhealthy"))
        return _ok("[]")

    phase, asked = _drive(rt.restart_ops("v2", None), answer)
    assert not phase.ok and phase.summary == "web is unhealthy"
    assert not any(isinstance(op, Sleep) for op in asked)


def test_a_pull_that_fails_names_the_registry_error(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    phase, asked = _drive(
        rt.prepare_ops("v9", "v1"),
        lambda op: _ok(code=1, stderr="Error response from daemon: manifest unknown"),
    )
    assert not phase.ok and phase.summary == "pull of v9 failed: " + (
        "Error response from daemon: manifest unknown"
    )
    assert asked[0].env == {"IMAGE_TAG": "v9"} and "v9" not in asked[0].argv
