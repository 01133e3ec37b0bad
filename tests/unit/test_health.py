"""health.py's checks as data: each program's operations, and its verdict on the answers."""

from __future__ import annotations

from pathlib import PurePosixPath
from types import SimpleNamespace
from typing import Any

import pytest

from releasegate.health import (
    HealthFlag,
    HealthProbe,
    current_release_ops,
    health_probe,
    probe_ops,
    stack_flags_ops,
)
from releasegate.ops import Cmd, Get, HttpReply
from releasegate.transport.base import CommandResult

ROOT = PurePosixPath("/srv/web")


def drive(program: Any, answers: list[Any]) -> tuple[list[Any], Any]:
    """Run a program on canned answers; return the operations it asked for and its value."""
    ops: list[Any] = []
    answers = list(answers)
    try:
        op = next(program)
        while True:
            ops.append(op)
            op = program.send(answers.pop(0))
    except StopIteration as stop:
        assert answers == [], "the program asked fewer questions than expected"
        return ops, stop.value


def ran(argv: tuple[str, ...], rc: int = 0, out: str = "") -> CommandResult:
    return CommandResult(argv, rc, out, "", 0.01)


def test_a_current_whose_release_is_gone_is_flagged() -> None:
    ops, flag = drive(
        current_release_ops(ROOT),
        [ran(("readlink",), out="releases/v2\n"), ran(("test",), rc=1)],
    )
    assert [op.argv for op in ops] == [
        ("readlink", "--", "/srv/web/current"),
        ("test", "-d", "/srv/web/current"),
    ]
    assert isinstance(flag, HealthFlag) and flag.kind == "release-gone"
    assert flag.message.startswith("current points at releases/v2, which is gone")


def test_a_present_release_or_no_current_is_fine() -> None:
    _, flag = drive(current_release_ops(ROOT), [ran(("readlink",), out="releases/v2\n"), ran(())])
    assert flag is None
    ops, flag = drive(current_release_ops(ROOT), [ran(("readlink",), rc=1)])
    assert flag is None and len(ops) == 1  # nothing deployed: one question only


@pytest.mark.parametrize(
    ("expect", "reply", "kind"),
    [
        (200, HttpReply(None, "", 3000.0, "ConnectError: refused"), "health-no-answer"),
        (200, HttpReply(500, "boom", 5.0), "health-bad-status"),
        (204, HttpReply(200, "", 5.0), "health-bad-status"),
        (200, HttpReply(200, "ok", 5.0), None),
        (None, HttpReply(404, "", 5.0), "health-bad-status"),
        (None, HttpReply(302, "", 5.0), None),
    ],
)
def test_probe_verdicts(expect: int | None, reply: HttpReply, kind: str | None) -> None:
    probe = HealthProbe("http://127.0.0.1:8080/health", expect)
    ops, flag = drive(probe_ops(probe, timeout=2.0), [reply])
    assert ops == [Get("http://127.0.0.1:8080/health", 2.0)]
    assert (flag.kind if flag else None) == kind
    if kind == "health-no-answer":
        assert flag is not None and "does not answer (ConnectError: refused)" in flag.message


def stack(**kw: Any) -> Any:
    base: dict[str, Any] = {
        "runtime": "releases", "dir": "/srv/web", "compose": None, "smoke": [], "hosts": [],
    }  # fmt: skip
    return SimpleNamespace(**{**base, **kw})


def http(url: str, expect_status: int = 200) -> Any:
    return SimpleNamespace(http=url, expect_status=expect_status)


def test_which_url_is_probed() -> None:
    cmd_check = SimpleNamespace(command="true")
    smoke = [cmd_check, http("http://127.0.0.1:1/h", 204), http("http://127.0.0.1:2/h")]
    assert health_probe(stack(smoke=smoke)) == HealthProbe("http://127.0.0.1:1/h", 204)
    compose = SimpleNamespace(health_url="https://shop.example.org")
    assert health_probe(stack(runtime="compose", compose=compose, smoke=smoke)) == HealthProbe(
        "https://shop.example.org", None
    )
    assert health_probe(stack(smoke=[cmd_check])) is None
    assert health_probe(stack(smoke=[http("http://{host}:8080/h")])) is None  # per host
    versioned = stack(smoke=[http("http://127.0.0.1:1/{version}/h")])
    assert health_probe(versioned, "v3") == HealthProbe("http://127.0.0.1:1/v3/h", 200)
    assert health_probe(versioned, None) is None


def test_stack_flags_ask_both_questions_only_when_something_runs() -> None:
    web = stack(smoke=[http("http://127.0.0.1:9/h")])
    ops, flags = drive(
        stack_flags_ops(web, "v1"),
        [ran(("readlink",), out="releases/v1"), ran(("test",), rc=1), HttpReply(None, "", 1, "x")],
    )
    assert [type(op) for op in ops] == [Cmd, Cmd, Get]
    assert [f.kind for f in flags] == ["release-gone", "health-no-answer"]
    ops, flags = drive(stack_flags_ops(web, None), [ran(("readlink",), rc=1)])
    assert [type(op) for op in ops] == [Cmd] and flags == []
    compose = stack(runtime="compose", compose=SimpleNamespace(health_url=None), smoke=[])
    assert drive(stack_flags_ops(compose, "sha-1"), []) == ([], [])


def test_a_flag_never_shows_the_urls_credentials() -> None:
    probe = HealthProbe("http://ops:s3cret@127.0.0.1:8080/health?token=abc123", 200)
    _, flag = drive(probe_ops(probe), [HttpReply(None, "", 1.0, "ConnectError: refused")])
    assert flag is not None and "s3cret" not in flag.message and "abc123" not in flag.message
    assert "127.0.0.1:8080/health" in flag.message
