"""The crash matrix of issue 15, on the releases runtime on this machine: each step of a deploy
(v2 -> v3) and of a rollback (v2 -> v1) interrupted by SIGINT (Ctrl-C), a second Ctrl-C,
SIGTERM and SIGKILL. What each case checks is in tests/lab/crash.py's docstring.

The stack with v1 and v2 deployed is built once per module and copied for each case (the app
is started again on the copy), so a case costs the interrupted run and the checks only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from releasegate.demo.workspace import free_port
from tests.lab.crash import (
    Case,
    CrashStack,
    base_env,
    cases,
    clone,
    prepare_stack,
    run_case,
    stop_app,
)

pytestmark = pytest.mark.e2e

DEPLOY_STEPS = (
    "preflight",
    "backup",
    "prepare",
    "migrate",
    "switch",
    "restart",
    "restart-cmd",  # inside the team's restart command
    "smoke",
    "cleanup",
)
ROLLBACK_STEPS = ("prepare", "switch", "restart", "restart-cmd", "smoke")
MAIN = ("SIGINT", "SIGTERM", "SIGKILL")

MATRIX = [
    *cases("deploy", DEPLOY_STEPS, MAIN),
    *cases("deploy", ("restart-cmd", "smoke"), ("SIGINT2",)),
    *cases("rollback", ROLLBACK_STEPS, MAIN),
    *cases("rollback", ("restart-cmd",), ("SIGINT2",)),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrashStack]:
    root = tmp_path_factory.mktemp("crash-template")
    stack = CrashStack(root, root / "srv" / "web", "127.0.0.1", free_port(), base_env(root))
    try:
        prepare_stack(stack)
    finally:
        stop_app(stack)
    yield stack


@pytest.fixture()
def stack(template: CrashStack, tmp_path: Path) -> Iterator[CrashStack]:
    # A port of its own: an app that a failing case leaves behind cannot answer for the next.
    root = tmp_path / "ws"
    copy = clone(
        template, root, dir_here=root / "srv" / "web", dir_config="srv/web", port=free_port()
    )
    yield copy
    copy.cleanup()


@pytest.mark.parametrize("case", MATRIX, ids=[c.id for c in MATRIX])
def test_interrupted_run_ends_at_a_safe_point(stack: CrashStack, case: Case) -> None:
    run_case(stack, case)
