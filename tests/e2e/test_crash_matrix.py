"""The crash matrix of issue 15, on the releases runtime on this machine: each step of a deploy
(v2 -> v3) and of a rollback (v2 -> v1) interrupted by SIGINT (Ctrl-C), a second Ctrl-C,
SIGTERM and SIGKILL. What each case checks is in tests/lab/crash.py's docstring.

The stack with v1 and v2 deployed is built once per module and copied for each case (the app
is started again on the copy), so a case costs the interrupted run and the checks only.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from releasegate.demo.workspace import free_port
from tests.lab.crash import Case, CrashStack, alive, cases, prepare_stack, run_case, wait_until

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


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
    env.update(
        RELEASEGATE_CONFIG=str(root / "releasegate.yaml"),
        RELEASEGATE_USER="tester",
        NO_COLOR="1",
        COLUMNS="200",
    )
    return env


def _stop_app(stack: CrashStack) -> None:
    try:
        pid = int((stack.dir_here / "shared" / "http.pid").read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    wait_until(lambda: not alive(pid), 5)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrashStack]:
    root = tmp_path_factory.mktemp("crash-template")
    stack = CrashStack(root, root / "srv" / "web", "127.0.0.1", free_port(), _env(root))
    try:
        prepare_stack(stack)
        stack.base_seq = max(r["seq"] for r in stack.history("--steps"))
    finally:
        _stop_app(stack)
    yield stack


@pytest.fixture()
def stack(template: CrashStack, tmp_path: Path) -> Iterator[CrashStack]:
    root = tmp_path / "ws"
    shutil.copytree(template.root, root, symlinks=True)
    # A port of its own: an app that a failing case leaves behind cannot answer for the next.
    port = free_port()
    config = root / "releasegate.yaml"
    config.write_text(config.read_text().replace(f":{template.port}/", f":{port}/"))
    copy = CrashStack(root, root / "srv" / "web", template.addr, port, _env(root))
    copy.base_seq = template.base_seq
    (copy.dir_here / "shared" / "port").write_text(str(port))
    (copy.dir_here / "shared" / "http.pid").unlink(missing_ok=True)  # the template's app
    current = copy.dir_here / "current"
    subprocess.run(
        ["sh", "restart.sh"],
        cwd=current,
        env={
            **copy.env,
            "RELEASEGATE_DIR": str(copy.dir_here),
            "RELEASEGATE_SHARED_DIR": str(copy.dir_here / "shared"),
        },
        check=True,
        timeout=30,
    )
    assert copy.settle() == "v2"
    yield copy
    copy.cleanup()
    _stop_app(copy)


@pytest.mark.parametrize("case", MATRIX, ids=[c.id for c in MATRIX])
def test_interrupted_run_ends_at_a_safe_point(stack: CrashStack, case: Case) -> None:
    run_case(stack, case)
