"""The crash matrix of issue 15 on one SSH host of the lab (scripts/lab/ssh.sh up): a releases
stack on `ssh://root@127.0.0.11`, its app bound to that host's address, interrupted at the
steps a remote run adds risk to by SIGINT, SIGTERM and SIGKILL. What each case checks is in
tests/lab/crash.py's docstring.

The stack with v1 and v2 deployed is built once per module and copied for each case, on the
host too (its /srv is lab-run/ssh/h1/srv here).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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
from tests.lab.ssh import SshLab, host_dir, require_ssh_lab, rg_env

pytestmark = pytest.mark.e2e

# A remote host adds risk at the upload (prepare), the switch and the team's command over the
# connection, the smoke of the host's own address, and cleanup.
DEPLOY_STEPS = ("prepare", "switch", "restart-cmd", "smoke", "cleanup")
ROLLBACK_STEPS = ("switch", "restart-cmd", "smoke")
MAIN = ("SIGINT", "SIGTERM", "SIGKILL")

MATRIX = [*cases("deploy", DEPLOY_STEPS, MAIN), *cases("rollback", ROLLBACK_STEPS, MAIN)]


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def _on_host(name: str) -> tuple[Path, str]:
    """Where this machine sees the stack's dir on host h1, and its path there (/srv/NAME)."""
    return host_dir(1) / "srv" / name, f"/srv/{name}"


@pytest.fixture(scope="module")
def lab() -> SshLab:
    return require_ssh_lab(1)


@pytest.fixture(scope="module")
def template(lab: SshLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrashStack]:
    root = tmp_path_factory.mktemp("crash-ssh-template")
    name = f"crash-{os.getpid()}-{time.monotonic_ns()}"
    here, there = _on_host(name)
    addr = lab.addresses[0]
    env = base_env(root, {k: v for k, v in rg_env(lab).items() if k.startswith("RELEASEGATE_")})
    stack = CrashStack(root, here, addr, _free_port(addr), env, lab.url(1), there)
    try:
        prepare_stack(stack)
    finally:
        stop_app(stack)
    yield stack
    shutil.rmtree(here, ignore_errors=True)


@pytest.fixture()
def stack(lab: SshLab, template: CrashStack, tmp_path: Path) -> Iterator[CrashStack]:
    here, there = _on_host(f"{template.dir_here.name}-{time.monotonic_ns()}")
    copy = clone(
        template, tmp_path / "ws", dir_here=here, dir_config=there, port=_free_port(template.addr)
    )
    yield copy
    copy.cleanup()
    shutil.rmtree(here, ignore_errors=True)


@pytest.mark.parametrize("case", MATRIX, ids=[c.id for c in MATRIX])
def test_interrupted_run_on_one_ssh_host_ends_at_a_safe_point(
    stack: CrashStack, case: Case
) -> None:
    run_case(stack, case)
