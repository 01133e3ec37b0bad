"""The team's commands, as a deploy runs them: a failure shows the end of its output on the
terminal (masked), and a restart that leaves a daemon holding its output ends at its own
exit, saying which process holds it and how to detach it."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

pytestmark = pytest.mark.e2e

RESTART = f'["{sys.executable}", "-m", "releasegate.demo.service", "restart"]'


def _restart(lab, argv: str) -> None:
    text = lab.config.read_text().replace(
        f"      restart: {RESTART}\n", f"      restart: {argv}\n", 1
    )
    assert argv in text
    lab.config.write_text(text)


def test_a_failed_restart_prints_the_end_of_its_output(lab):
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    secret = "s3cr3t-token-value"
    env = lab.root / "srv" / "web-staging" / "shared" / ".env"
    env.write_text(env.read_text() + f"API_TOKEN={secret}\n")
    _restart(lab, f"""["sh", "-c", "echo line-one; echo boom-marker {secret}; exit 3"]""")
    out = lab.rg("deploy", "web-staging", "staging", "v2")
    assert out.returncode == 1, out.stdout + out.stderr  # the rollback restarts the same way
    assert "│ boom-marker" in out.stderr, out.stderr
    assert secret not in out.stdout + out.stderr


def test_a_daemon_holding_the_output_does_not_hold_the_step(lab):
    marker = lab.root / "daemon.pid"
    daemon = f"sleep 300 & echo $! > {marker}; echo started"
    argv = RESTART[:-1] + "]"
    _restart(lab, f"""["sh", "-c", "{argv[2:-2].replace('", "', " ")} && {{ {daemon}; }}"]""")
    started = time.monotonic()
    out = lab.rg("deploy", "web-staging", "staging", "v1", timeout=120)
    took = time.monotonic() - started
    try:
        assert out.returncode == 0, out.stdout + out.stderr
        assert took < 60, took  # not the 900 s command timeout
        assert "sleep" in out.stderr and ("nohup" in out.stderr or "setsid" in out.stderr), (
            out.stderr
        )
        pid = int(marker.read_text())
        os.kill(pid, 0)  # the daemon still runs
    finally:
        if marker.exists():
            try:
                os.kill(int(marker.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
