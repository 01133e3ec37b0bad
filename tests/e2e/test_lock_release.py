"""`lock status` and `lock release` against a live holder, a dead one and one on another
host: a live holder is never freed, another host's needs --force --reason (recorded)."""

import json
import socket
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from releasegate.identity import process_start
from releasegate.ledger import Ledger
from releasegate.model import LockInfo

pytestmark = pytest.mark.e2e


def _plant_lock(lab, *, host: str, pid: int, pid_start: str) -> None:
    """A lock row as a run of `host` would have left it."""
    info = LockInfo(
        stack="web-staging", run_id="r" * 12, user="someone", host=host, pid=pid,
        pid_start=pid_start, since=datetime.now(UTC),
    )  # fmt: skip
    with Ledger.open(str(lab.root / ".releasegate" / "state.db")) as led:
        assert led.try_acquire_lock(info) is None


def _locked(lab) -> list[dict]:
    out = lab.rg("lock", "status", "--json")
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def _unlock_marks(lab) -> list[tuple[str, dict]]:
    db = sqlite3.connect(lab.root / ".releasegate" / "state.db")
    try:
        rows = db.execute(
            "SELECT notes, details FROM entries WHERE kind = 'mark' AND action = 'unlock'"
        ).fetchall()
    finally:
        db.close()
    return [(notes, json.loads(details or "{}")) for notes, details in rows]


def _step_running(lab, stack, step):
    out = lab.rg("history", "--json", "--stack", stack, "--steps")
    if out.returncode != 0:  # no ledger yet: the deploy has not written its first row
        return False
    return any(
        r["action"] == step and r["status"] == "running"
        for r in map(json.loads, out.stdout.splitlines())
    )


def test_a_live_holder_is_never_released(gated_lab):
    lab = gated_lab
    first = lab.rg_background("deploy", "web-staging", "staging", "v1")
    lab.wait_for(lambda: _step_running(lab, "web-staging", "prepare"), "the deploy to hold")
    [held] = _locked(lab)
    assert held["state"] == "alive" and held["pid"] == first.pid
    text = lab.rg("lock", "status").stdout
    assert f"holder is alive: pid {first.pid} is running on this host" in text

    for extra in ((), ("--force",), ("--force", "--reason", "I am sure")):
        out = lab.rg("lock", "release", "web-staging", *extra)
        assert out.returncode == 5, (extra, out.stdout + out.stderr)
        assert "alive on this host" in out.stderr and f"kill {first.pid}" in out.stderr
    assert [x["pid"] for x in _locked(lab)] == [first.pid]

    lab.open_go("web-staging")
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, out + err
    assert _locked(lab) == [] and _unlock_marks(lab) == []


def test_a_dead_holder_is_named_dead_and_released_without_force(lab):
    gone = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    token = process_start(gone.pid)
    gone.kill()
    gone.wait()
    _plant_lock(lab, host=socket.gethostname(), pid=gone.pid, pid_start=token)

    [held] = _locked(lab)
    assert held["state"] == "dead"
    text = lab.rg("lock", "status").stdout
    assert f"holder is dead: pid {gone.pid} is gone from this host" in text
    assert "lock release web-staging" in text

    out = lab.rg("lock", "release", "web-staging")
    assert out.returncode == 0, out.stdout + out.stderr
    assert _locked(lab) == []
    [(notes, details)] = _unlock_marks(lab)
    assert notes.startswith("released from locked by someone")
    assert details["holder_state"] == "dead" and details["forced"] is False
    assert lab.rg("audit", "verify").returncode == 0


def test_another_hosts_holder_needs_force_and_a_recorded_reason(lab):
    _plant_lock(lab, host="build-elsewhere", pid=4242, pid_start="1")
    [held] = _locked(lab)
    assert held["state"] == "unknown"
    assert "held from host build-elsewhere" in lab.rg("lock", "status").stdout

    out = lab.rg("lock", "release", "web-staging")
    assert out.returncode == 5 and "--force --reason" in out.stderr, out.stderr
    out = lab.rg("lock", "release", "web-staging", "--force")
    assert out.returncode == 2 and "needs --reason" in out.stderr, out.stderr
    assert len(_locked(lab)) == 1 and _unlock_marks(lab) == []

    out = lab.rg("lock", "release", "web-staging", "--force", "--reason", "box died INC-7")
    assert out.returncode == 0, out.stdout + out.stderr
    assert _locked(lab) == []
    [(notes, details)] = _unlock_marks(lab)
    assert notes.startswith("released by force from") and notes.endswith(": box died INC-7")
    assert details == {
        "holder_state": "unknown",
        "holder_run_id": "r" * 12,
        "holder_pid": 4242,
        "holder_host": "build-elsewhere",
        "forced": True,
        "reason": "box died INC-7",
    }
    assert lab.rg("audit", "verify").returncode == 0
    # and a deploy now goes through
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
