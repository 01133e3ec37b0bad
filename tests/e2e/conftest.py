"""End-to-end fixtures: a workspace with the sample app's artifacts, run directories and
a releasegate.yaml, driven through the real CLI in subprocesses."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from releasegate.demo import workspace as demo_ws
from tests.cli import RELEASEGATE

STACK = """\
  {name}:
    env: {env}
    runtime: releases
    dir: srv/{name}
    artifacts: artifacts
    shared: [.env, logs/]
    keep_releases: 3
{promote}    commands:
{install}      restart: ["{python}", "-m", "releasegate.demo.service", "restart"]
    smoke:
      - name: health
        http: http://127.0.0.1:{port}/health
        body_contains: '"version": "{{version}}"'
        retries: 2
        interval: 0.1
        timeout: 5
"""

# Blocks until the test creates <dir>/go: a deterministic way to hold a run mid-step.
GATE = 'while [ ! -f "$RELEASEGATE_DIR/go" ]; do sleep 0.05; done'


@dataclass
class Lab:
    root: Path
    ports: dict[str, int]
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.root / "releasegate.yaml"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
        env.update(
            RELEASEGATE_CONFIG=str(self.config),
            NO_COLOR="1",
            COLUMNS="200",
            RELEASEGATE_USER="tester",
        )
        return env

    def rg(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        """The CLI in the workspace; `env` adds variables (RELEASEGATE_HOST_ID="m2": as if
        from another machine)."""
        return subprocess.run(
            [RELEASEGATE, *args],
            cwd=self.root,
            env={**self.env(), **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def rg_background(self, *args: str, **env: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [RELEASEGATE, *args],
            cwd=self.root,
            env={**self.env(), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def health(self, stack: str) -> tuple[int, dict[str, str] | None]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.ports[stack]}/health", timeout=5
            ) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
        except OSError:
            return 0, None

    def mark_notes(self, action: str) -> list[str]:
        """The notes of the ledger's single-row facts of one kind (e.g. `lock-lost`), which
        `history` does not list, read straight from the SQLite ledger."""
        uri = f"{(self.root / '.releasegate/state.db').as_uri()}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as db:
            rows = db.execute(
                "SELECT notes FROM entries WHERE kind = 'mark' AND action = ?", (action,)
            ).fetchall()
        return [str(r[0]) for r in rows]

    def running_version(self, stack: str) -> str | None:
        _, body = self.health(stack)
        return body["version"] if body else None

    def history_log(self, *args: str) -> list[str]:
        out = self.rg("history", "--format", "log", *args)
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    def history_rows(self, *args: str) -> list[list[str]]:
        """The log lines split into the seed's seven fields."""
        return [[f.strip() for f in line.split(" |", 6)] for line in self.history_log(*args)]

    def history_json(self, *args: str) -> list[dict]:
        out = self.rg("history", "--json", *args)
        assert out.returncode == 0, out.stderr
        return [json.loads(line) for line in out.stdout.splitlines()]

    def wait_for(self, predicate, what: str, limit: float = 30.0) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def open_go(self, stack: str) -> None:
        (self.root / "srv" / stack / "go").write_text("go")


def build_lab(root: Path, *, gated: tuple[str, ...] = ()) -> Lab:
    """Artifacts v1-v3 (v3 broken), stacks web-staging and web-prod (promotes from staging).
    Stacks named in `gated` run GATE as their install command."""
    ws = demo_ws.create(root)
    text = "stacks:\n"
    for name, env, promote in (
        ("web-staging", "staging", None),
        ("web-prod", "prod", "web-staging"),
    ):
        text += STACK.format(
            name=name,
            env=env,
            port=ws.ports[name],
            python=sys.executable,
            promote=f"    promote_from: {promote}\n" if promote else "",
            install=f"      install: '{GATE}'\n" if name in gated else "",
        )
    ws.config.write_text(text, encoding="utf-8")
    return Lab(root, ws.ports)


@pytest.fixture()
def lab(tmp_path: Path):
    lab = build_lab(tmp_path / "ws")
    yield lab
    _teardown(lab)


@pytest.fixture()
def gated_lab(tmp_path: Path):
    lab = build_lab(tmp_path / "ws", gated=("web-staging",))
    yield lab
    _teardown(lab)


def _teardown(lab: Lab) -> None:
    for stack in lab.ports:
        (lab.root / "srv" / stack).mkdir(parents=True, exist_ok=True)
        (lab.root / "srv" / stack / "go").write_text("go")
    for proc in lab.procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    demo_ws.stop_services(demo_ws.Workspace(lab.root, lab.config, lab.ports))
