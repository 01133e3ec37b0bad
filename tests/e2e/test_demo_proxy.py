"""`releasegate demo`'s blue/green part: with nginx on PATH the demo starts its own nginx in
the workspace, switches the traffic between two slots, and a watch window that fails
switches back to the warm slot; with no proxy on PATH it says what it skips and still ends
well. Either way no proxy or slot process outlives the demo."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli import RELEASEGATE
from tests.lab.proxies import binary

pytestmark = pytest.mark.e2e

PROXIES = ("nginx", "haproxy", "caddy")


def run(cwd: Path, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
    env.update(NO_COLOR="1", COLUMNS="300", RELEASEGATE_USER="tester", TMPDIR=str(cwd), PATH=path)
    return subprocess.run(
        [RELEASEGATE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def path_without_proxies(folder: Path) -> str:
    """A PATH of one folder linking every command of today's PATH but the proxies."""
    folder.mkdir()
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for entry in os.scandir(d):
            dest = folder / entry.name
            if entry.name in PROXIES or dest.exists() or not os.access(entry.path, os.X_OK):
                continue
            dest.symlink_to(entry.path)
    return str(folder)


def processes_naming(text: str) -> list[str]:
    """Command lines of running processes that mention `text` (zombies have none)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def test_the_demo_switches_and_rolls_back_through_its_own_nginx(tmp_path: Path) -> None:
    nginx = binary("nginx")  # skips here, fails under CI=true, when nginx is missing
    ws = tmp_path / "ws"
    # nginx first on PATH (the demo prefers it anyway).
    path = os.pathsep.join([os.path.dirname(nginx), os.environ.get("PATH", "")])
    out = run(tmp_path, path, "demo", "--dir", str(ws))
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "nginx found" in text and "skipped:" not in text, text
    assert "through nginx: HTTP 502 before, v1 after" in text, text
    assert "through nginx: v1 before, v2 after" in text, text  # the switch
    assert "ROLLED BACK: watch failed: log: 1 line(s) matching" in text, text
    assert "through nginx: v2 before, v2 after" in text, text  # the switch back
    assert "the same process, nothing restarted" in text, text
    assert "web-blue-green runs v2 (verified v2)" in text, text

    shown = run(ws, path, "history", "--stack", "web-blue-green", "--steps", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = [json.loads(line) for line in shown.stdout.splitlines() if line.strip()]
    runs = [r for r in rows if r["action"] in ("deploy", "rollback")]
    deploy = next(r for r in runs if r["action"] == "deploy" and r["version"] == "v4")
    assert deploy["status"] == "fail" and "watch failed" in deploy["notes"], deploy
    back = next(r for r in runs if r["action"] == "rollback" and r["version"] == "v2")
    assert back["status"] == "success" and "from v4" in back["notes"], back
    steps = {r["action"] for r in rows if r["parent_id"] == back["action_id"]}
    assert "switch-traffic" in steps and "start-slot" not in steps, steps

    pid = int(re.search(r"^nginx pid (\d+) on 127\.0\.0\.1:", text, re.M)[1])  # type: ignore[index]
    assert not Path(f"/proc/{pid}").exists(), f"nginx pid {pid} still runs"
    assert processes_naming(str(ws)) == []  # no proxy, no slot app left behind


def test_without_a_proxy_the_demo_says_what_it_skips(tmp_path: Path) -> None:
    path = path_without_proxies(tmp_path / "bin")
    assert all(shutil.which(p, path=path) is None for p in PROXIES)
    out = run(tmp_path, path, "demo", "--dir", str(tmp_path / "ws"))
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    skipped = [line for line in text.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 1, text
    assert "no nginx, HAProxy or Caddy on PATH" in skipped[0]
    assert "apt-get install nginx-light" in skipped[0]
    assert "web-blue-green" not in text and not (tmp_path / "ws" / "proxy").exists()
    assert processes_naming(str(tmp_path / "ws")) == []
