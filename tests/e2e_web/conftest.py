"""The dashboard's fixtures: a demo workspace (`releasegate demo --dir`) with one user per
role, made through the real CLI; the app in-process (Starlette's TestClient) or served by
`releasegate serve` on a free loopback port."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.cli import RELEASEGATE
from tests.e2e.test_change_signed_approvals import PLAN

PASSWORD = "correct horse battery staple"
USERS = {
    "alice": "admin",
    "olga": "operator",
    "amy": "approver",
    "bob": "approver",
    "carol": "approver",  # the author of the change records below
    "vic": "viewer",
}


@dataclass
class Workspace:
    root: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.root / "releasegate.yaml"

    def env(self, user: str = "tester") -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
        env.update(
            RELEASEGATE_CONFIG=str(self.config), NO_COLOR="1", COLUMNS="200",
            RELEASEGATE_USER=user,
        )  # fmt: skip
        return env

    def rg(
        self, *args: str, user: str = "tester", stdin: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [RELEASEGATE, *args], cwd=self.root, env=self.env(user), input=stdin,
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def plan(self, change_id: str, risk: str, payload: str = "ok") -> Path:
        doc = self.root / "changes" / f"{change_id}.md"
        doc.parent.mkdir(exist_ok=True)
        doc.write_text(
            PLAN.format(id=change_id, risk=risk, stack_line="", payload=payload, br="  "),
            encoding="utf-8",
        )
        return doc


def make_workspace(root: Path) -> Workspace:
    ws = Workspace(root)
    out = subprocess.run(
        [RELEASEGATE, "demo", "--dir", str(root)], env=ws.env(), capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert "releasegate serve" in last and str(root) in last, last  # how to open the dashboard
    for name, role in USERS.items():
        done = ws.rg("user", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD)
        assert done.returncode == 0, done.stderr
        token = ws.rg("user", "token", name, "--label", "tests")
        assert token.returncode == 0, token.stderr
        ws.tokens[name] = token.stdout.strip()
    return ws


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    ws = make_workspace(tmp_path_factory.mktemp("web") / "demo")
    try:
        yield ws
    finally:
        # A rollback or a flag change from the dashboard starts the sample app (it outlives
        # the request, as a real service does): stopped here by the pid file it wrote.
        from releasegate.demo.service import stop

        for stack in ("web-staging", "web-prod"):
            stop(ws.root / "srv" / stack / "shared")


FLAG = "SUPPLIER_EVAL_ENABLED"


def features(ws: Workspace, stack: str = "web-staging") -> int:
    """The sample app's /features: 200 with a switch on, 403 without (0: not answering)."""
    env = (ws.root / "srv" / stack / "shared" / ".env").read_text(encoding="utf-8")
    port = re.search(r"^PORT=(\d+)$", env, re.M)
    assert port, env
    try:
        return httpx.get(f"http://127.0.0.1:{port[1]}/features", timeout=5).status_code
    except httpx.TransportError:
        return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[str]


@pytest.fixture(scope="module")
def server(workspace: Workspace) -> Iterator[Server]:
    """`releasegate serve` on a free loopback port, stopped (by its pid) at the end."""
    port = free_port()
    log = (workspace.root / "serve.log").open("w")
    proc = subprocess.Popen(
        [RELEASEGATE, "serve", "--bind", f"127.0.0.1:{port}"], cwd=workspace.root,
        env=workspace.env(), stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/login", timeout=2).close()
            break
        except (urllib.error.URLError, ConnectionError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError((workspace.root / "serve.log").read_text()) from None
            time.sleep(0.1)
    try:
        yield Server(url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
