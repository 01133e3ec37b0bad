"""The watch window on SSH hosts (the SSH lab): the app's log and the access log are read on
each host, from where each ended at the switch, through the same executor as every phase.
An error line on one host, or a 5xx rise in one host's access log, fails the window naming
that host, and the deploy goes back the normal way (no proxy): ROLLED BACK, exit 4."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli import RELEASEGATE
from tests.lab.ssh import (
    SshLab,
    current_links,
    free_port,
    host_dir,
    require_ssh_lab,
    rg_env,
    run_rg,
    serving,
)

pytestmark = pytest.mark.e2e

HOSTS = 2
# The release's restart: stop the last app, start this one bound to the host's own address,
# its output appended to the app's log (what `log:` watches).
RESTART = """\
#!/bin/sh
set -eu
addr=$(cat "$RELEASEGATE_SHARED_DIR/addr")
port=$(cat "$RELEASEGATE_SHARED_DIR/port")
mkdir -p "$RELEASEGATE_SHARED_DIR/logs"
pidfile="$RELEASEGATE_SHARED_DIR/app.pid"
if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; sleep 0.2; fi
setsid python3 app.py "$addr" "$port" </dev/null >>"$RELEASEGATE_SHARED_DIR/logs/app.log" 2>&1 &
echo $! > "$pidfile"
"""
# Serves its folder; on the host named in BAD (if any) it logs an error a moment after it
# starts: while the window watches.
APP = """\
import functools, sys, threading, time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

addr, port = sys.argv[1], int(sys.argv[2])
here = Path.cwd()
version = (here / "version.txt").read_text().strip()
bad = (here / "BAD").read_text().strip() if (here / "BAD").exists() else ""
print(f"app {version} listening on {addr}:{port}", flush=True)

def later():
    time.sleep(1.5)
    print(f"ERROR: payment backend unreachable ({addr})", flush=True)

if bad == addr:
    threading.Thread(target=later, daemon=True).start()

class Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

handler = functools.partial(Handler, directory=str(here))
ThreadingHTTPServer((addr, port), handler).serve_forever()
"""
CADDY_500 = (
    '{"level":"error","ts":1764781200.5,"logger":"http.log.access","msg":"handled request",'
    '"request":{"method":"GET","uri":"/api"},"status":500,"size":0}\n'
)
NGINX_200 = '127.0.0.1 - - [03/Dec/2026:17:00:00 +0000] "GET /api HTTP/1.1" 200 12 "-" "t"\n'


class Stack:
    def __init__(self, lab: SshLab, tmp: Path) -> None:
        self.lab, self.tmp = lab, tmp
        self.addresses = lab.addresses[:HOSTS]
        self.labels = [a if lab.port == 22 else f"{a}:{lab.port}" for a in self.addresses]
        self.dir = f"/srv/watch-{os.getpid()}-{time.monotonic_ns()}"
        self.port = free_port(self.addresses)
        for i, addr in enumerate(self.addresses, start=1):
            shared = self.host_path(i) / "shared"
            shared.mkdir(parents=True, exist_ok=True)
            (shared / "addr").write_text(addr)
            (shared / "port").write_text(str(self.port))

    def host_path(self, index: int) -> Path:
        """The host's own /srv/watch-..., seen from this machine."""
        return host_dir(index) / "srv" / self.dir.removeprefix("/srv/")

    def artifact(self, version: str, bad_host: int | None = None) -> None:
        folder = self.tmp / "artifacts" / version
        folder.mkdir(parents=True)
        (folder / "version.txt").write_text(f"{version}\n")
        (folder / "restart.sh").write_text(RESTART)
        (folder / "app.py").write_text(APP)
        if bad_host is not None:
            (folder / "BAD").write_text(self.addresses[bad_host - 1])

    def config(self, duration: float) -> None:
        hosts = "\n".join(f"      - ssh://root@{a}:{self.lab.port}" for a in self.addresses)
        logs = f"{self.dir}/shared/logs"
        (self.tmp / "releasegate.yaml").write_text(
            f"""\
stacks:
  web:
    env: staging
    runtime: releases
    hosts:
{hosts}
    dir: {self.dir}
    artifacts: ./artifacts
    commands:
      restart: [sh, restart.sh]
    smoke:
      - http: "http://{{host}}:{self.port}/version.txt"
        body_contains: "{{version}}"
        retries: 20
        interval: 0.2
        timeout: 10
    backup: {{files: []}}
    watch:
      duration: {duration}
      interval: 0.3
      smoke: true
      log:
        path: {logs}/app.log
        pattern: "(?i)error"
      access_log:
        path: {logs}/access.log
        max_5xx_share: 0.2
        min_requests: 5
"""
        )

    def rg(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_rg(self.lab, self.tmp, *args, timeout=300)

    def rg_background(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [RELEASEGATE, *args],
            cwd=self.tmp,
            env=rg_env(self.lab),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def window(self) -> dict:
        out = self.rg("watch", "web", "staging", "--no-follow", "--json")
        assert out.returncode in (0, 1, 4), out.stdout + out.stderr
        return json.loads(out.stdout.splitlines()[-1])

    def wait_for_window(self, version: str) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = self.window()
            if state.get("version") == version and state.get("status") == "running":
                return
            time.sleep(0.3)
        raise AssertionError(f"the window of {version} never opened: {self.window()}")

    def current(self) -> list[str | None]:
        return current_links([self.host_path(i) / "current" for i in range(1, HOSTS + 1)])

    def serving(self) -> list[str | None]:
        return serving(self.addresses, self.port)

    def history(self) -> list[dict]:
        out = self.rg("history", "--stack", "web", "--json")
        assert out.returncode == 0, out.stderr
        return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]

    def stop(self) -> None:
        for i in range(1, HOSTS + 1):
            pidfile = self.host_path(i) / "shared" / "app.pid"
            try:
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
            shutil.rmtree(self.host_path(i), ignore_errors=True)


@pytest.fixture()
def stack(tmp_path: Path) -> object:
    s = Stack(require_ssh_lab(HOSTS), tmp_path)
    yield s
    s.stop()


def _deploy_v1(stack: Stack) -> None:
    stack.artifact("v1")
    stack.config(duration=1.5)
    first = stack.rg("deploy", "web", "staging", "v1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "passed" in first.stderr and "(across 2 hosts)" in first.stderr  # the window's rounds
    assert stack.serving() == ["v1", "v1"]


def test_an_error_line_on_one_host_fails_the_window_naming_it(stack: Stack) -> None:
    _deploy_v1(stack)
    # The log holds an old error from before v2's switch: never counted.
    with open(stack.host_path(1) / "shared" / "logs" / "app.log", "a") as log:
        log.write("ERROR: an old one, before the switch\n")
    stack.artifact("v2", bad_host=2)
    stack.config(duration=30)
    out = stack.rg("deploy", "web", "staging", "v2")
    assert out.returncode == 4, out.stdout + out.stderr  # ROLLED BACK
    good, bad = stack.labels
    assert f"watch failed: log: {bad}: 1 line(s) matching '(?i)error'" in out.stdout
    assert f"payment backend unreachable ({stack.addresses[1]})" in out.stdout
    assert good not in out.stdout.split("watch failed:", 1)[1].split("\n", 1)[0]
    assert "rolled back to v1" in out.stdout
    assert stack.current() == ["v1", "v1"] and stack.serving() == ["v1", "v1"]
    rows = [(r["action"], r["version"], r["status"]) for r in stack.history()]
    assert rows[-3:] == [
        ("deploy", "v2", "fail"),
        ("watch-window", "v2", "fail"),
        ("rollback", "v1", "success"),
    ], rows
    history = stack.history()
    [window] = [r for r in history if r["action"] == "watch-window" and r["version"] == "v2"]
    offsets = window["details"]["offsets"]  # each host's place at the switch, in the ledger
    assert sorted(offsets) == sorted(stack.labels)
    assert all(isinstance(o["offset"], int) for h in offsets.values() for o in h.values())
    assert stack.window()["status"] == "fail"
    assert stack.rg("watch", "web", "staging").returncode == 4  # a follower's exit code too


def test_a_5xx_rise_in_one_hosts_access_log_fails_the_window(stack: Stack) -> None:
    _deploy_v1(stack)
    stack.artifact("v3")
    stack.config(duration=60)
    proc = stack.rg_background("deploy", "web", "staging", "v3")
    try:
        stack.wait_for_window("v3")
        # Each host's own access log: h1's answers fail (Caddy's JSON lines), h2's are fine
        # (nginx's combined lines); neither host's proxy runs here, only its log is read.
        with open(stack.host_path(1) / "shared" / "logs" / "access.log", "a") as log:
            log.write(CADDY_500 * 6)
        with open(stack.host_path(2) / "shared" / "logs" / "access.log", "a") as log:
            log.write(NGINX_200 * 6)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 4, stdout + stderr
    bad, good = stack.labels
    assert f"access-log: {bad}: 5xx share 100.0% of 6 request(s)" in stdout, stdout
    assert good not in stdout.split("watch failed:", 1)[1].split("\n", 1)[0]
    assert stack.current() == ["v1", "v1"] and stack.serving() == ["v1", "v1"]
