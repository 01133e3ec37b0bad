"""The watch window through the real CLI: after a release is live and verified, its
checks run for a few seconds; an error line in the app's log or a rise of 5xx in the
access log rolls it back (exit 4, the old version answers); `releasegate watch --accept`
ends a window early; Ctrl-C during a window leaves the release live."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.e2e.test_notify import webhook  # noqa: F401 - a fixture

pytestmark = pytest.mark.e2e

# A sample app whose behaviour its MODE file picks: ok, errlog (writes an error line to its
# log half a second after it starts), 5xx (answers /api with 500). Every request goes to an
# access log in the common format, as nginx writes it.
SERVER = r"""
import json, os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSION = (HERE / "VERSION").read_text().split()[0]
MODE = (HERE / "MODE").read_text().strip()
ACCESS = Path(os.environ["RELEASEGATE_SHARED_DIR"]) / "logs" / "access.log"
LOCK = threading.Lock()

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            code, body = 200, json.dumps({"status": "ok", "version": VERSION})
        else:
            failing = MODE == "5xx" and self.path.startswith("/api")
            code, body = (500 if failing else 200), f"page {VERSION}"
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
        with LOCK, open(ACCESS, "a") as log:
            log.write(f'127.0.0.1 - - [{stamp}] "GET {self.path} HTTP/1.1" {code} {len(data)}\n')

    def log_message(self, fmt, *args):
        pass

def later():
    time.sleep(0.5)
    print("ERROR: payment backend unreachable", flush=True)

port = int(sys.argv[sys.argv.index("--port") + 1])
server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
print(f"app {VERSION} ({MODE}) listening", flush=True)
if MODE == "errlog":
    threading.Thread(target=later, daemon=True).start()
server.serve_forever()
"""

WATCH = """\
    watch:
      duration: {duration}
      interval: 0.2
      smoke: true
      log:
        path: srv/web-staging/shared/logs/app.log
        pattern: "(?i)error"
      access_log:
        path: srv/web-staging/shared/logs/access.log
        max_5xx_share: 0.2
        min_requests: 5
"""


def _setup(lab, duration: float = 3) -> None:
    for version, mode in (("w1", "ok"), ("w2", "errlog"), ("w3", "5xx"), ("w4", "ok")):
        folder = lab.root / "artifacts" / version
        folder.mkdir(parents=True)
        (folder / "server.py").write_text(SERVER)
        (folder / "VERSION").write_text(f"{version}\n")
        (folder / "MODE").write_text(mode)
    text = lab.config.read_text()
    text = text.replace("  web-prod:\n", WATCH.format(duration=duration) + "  web-prod:\n", 1)
    lab.config.write_text(text)


class Traffic:
    """Requests to /api every 50 ms while a deploy runs (what the access log counts)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/x", timeout=2).read()
            except (urllib.error.URLError, OSError):
                pass
            self.stop.wait(0.05)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def _window(lab) -> dict:
    out = lab.rg("watch", "web-staging", "staging", "--no-follow", "--json")
    assert out.returncode in (0, 1, 4), out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_an_error_line_in_the_log_rolls_back(lab):
    _setup(lab)
    with Traffic(lab.ports["web-staging"]):
        first = lab.rg("deploy", "web-staging", "staging", "w1")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "watch" in first.stderr and "passed" in first.stderr
        out = lab.rg("deploy", "web-staging", "staging", "w2")
    assert out.returncode == 4, out.stdout + out.stderr
    assert "ROLLED BACK: watch failed: log: 1 line(s) matching '(?i)error'" in out.stdout
    assert "watch failed: watch failed" not in out.stdout
    assert "payment backend unreachable" in out.stdout
    assert "rolled back to w1" in out.stdout
    assert lab.running_version("web-staging") == "w1"
    state = _window(lab)
    assert state["version"] == "w2" and state["status"] == "fail"
    # w1's window ran too and passed; the error came only from w2's lines
    rows = lab.history_rows("--stack", "web-staging")
    assert [r[3:6] for r in rows] == [
        ["deploy", "w1", "success"],
        ["watch-window", "w1", "success"],
        ["deploy", "w2", "fail"],
        ["watch-window", "w2", "fail"],
        ["rollback", "w1", "success"],
    ]
    # the version brought back is the verified one again, not the one that failed
    verified = json.loads(lab.rg("verified", "--json").stdout)
    assert verified["version"] == "w1"
    # exit code 4 for the follower too
    assert lab.rg("watch", "web-staging", "staging").returncode == 4


def test_a_5xx_rise_in_the_access_log_rolls_back(lab, webhook):  # noqa: F811
    _setup(lab)
    posts, hook_port = webhook
    text = lab.config.read_text()
    lab.config.write_text(text + f"notify:\n  urls: ['json://127.0.0.1:{hook_port}/h']\n"
                          "  events: [watch_failed]\n")  # fmt: skip
    with Traffic(lab.ports["web-staging"]):
        assert lab.rg("deploy", "web-staging", "staging", "w1").returncode == 0
        out = lab.rg("deploy", "web-staging", "staging", "w3")
    assert out.returncode == 4, out.stdout + out.stderr
    assert "5xx share" in out.stdout and "rolled back to w1" in out.stdout
    assert lab.running_version("web-staging") == "w1"
    [deploy] = [r for r in lab.history_json("--stack", "web-staging") if r["version"] == "w3"
                and r["action"] == "deploy"]  # fmt: skip
    assert deploy["details"]["watch"]["outcome"] == "failed"
    [post] = posts  # the team is told, once, that the window failed and why
    assert post["json"]["title"].endswith("w3 on web-staging (staging): WATCH FAILED, ROLLED BACK")
    assert "5xx share" in post["json"]["message"]


def test_accept_ends_a_window_early_and_is_recorded(lab):
    _setup(lab, duration=60)
    proc = lab.rg_background("deploy", "web-staging", "staging", "w1")
    lab.wait_for(lambda: _window(lab).get("status") == "running", "the window to open", 60)
    follower = lab.rg_background("watch", "web-staging", "staging")
    assert lab.rg("watch", "web-staging", "staging", "--accept").returncode == 2  # no reason
    started = time.monotonic()
    out = lab.rg("watch", "web-staging", "staging", "--accept", "--reason", "looks good")
    assert out.returncode == 0, out.stdout + out.stderr
    code = proc.wait(timeout=60)
    assert time.monotonic() - started < 45  # far less than the 60 s window
    assert code == 0, proc.stdout.read() + proc.stderr.read()
    assert follower.wait(timeout=30) == 0
    assert lab.running_version("web-staging") == "w1"
    state = _window(lab)
    assert state["status"] == "success" and "accepted early by tester: looks good" in state["notes"]
    [acc] = [r for r in lab.history_json("--stack", "web-staging") if r["action"] == "watch-accept"]
    assert acc["user"] == "tester" and acc["reason"] == "looks good"
    # nothing left to accept
    assert lab.rg("watch", "web-staging", "staging", "--accept", "--reason", "x").returncode == 2


def test_ctrl_c_during_the_window_leaves_the_release_live(lab):
    _setup(lab, duration=60)
    proc = lab.rg_background("deploy", "web-staging", "staging", "w4")
    lab.wait_for(
        lambda: (s := _window(lab)).get("status") == "running" and s["version"] == "w4",
        "the window of w4",
        90,
    )
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert lab.running_version("web-staging") == "w4"
    state = _window(lab)
    assert state["status"] == "interrupted" and "stays live" in state["notes"]
    assert lab.rg("watch", "web-staging", "staging").returncode == 1
    rows = lab.history_rows("--stack", "web-staging")
    assert rows[-2][3:6] == ["deploy", "w4", "success"]
    # the next deploy sees a clean stack: nothing to recover, w4 is the last good one
    status = lab.rg("status", "--json")
    assert status.returncode == 0


def test_a_killed_window_is_closed_by_the_next_run_and_the_release_stays(lab):
    _setup(lab, duration=60)
    proc = lab.rg_background("deploy", "web-staging", "staging", "w1")
    lab.wait_for(lambda: _window(lab).get("status") == "running", "the window to open", 60)
    proc.kill()  # SIGKILL: no handler runs, the rows stay `running`
    proc.wait(timeout=30)
    assert _window(lab)["status"] == "stale"
    assert lab.rg("watch", "web-staging", "staging").returncode == 1  # its process is gone
    assert lab.running_version("web-staging") == "w1"
    lab.config.write_text(lab.config.read_text().replace("duration: 60", "duration: 1"))
    out = lab.rg("deploy", "web-staging", "staging", "w4")
    assert out.returncode == 0, out.stdout + out.stderr
    rows = lab.history_rows("--stack", "web-staging")
    assert [r[3:6] for r in rows[:2]] == [
        ["deploy", "w1", "success"],  # it was live and verified before its process died
        ["watch-window", "w1", "interrupted"],
    ]
    assert not [r for r in rows if r[3] == "rollback"]  # nothing went back


def test_a_window_whose_lock_is_released_elsewhere_stops_at_its_next_round(lab):
    """Another machine frees the lock by force while the window runs: the window stops at
    its next round (it checks the lock each round), the release stays live, exit 5, and a
    `lock-lost` row records it; nothing stops or goes back after that."""
    _setup(lab, duration=60)
    proc = lab.rg_background("deploy", "web-staging", "staging", "w1")
    lab.wait_for(lambda: _window(lab).get("status") == "running", "the window to open", 60)
    started = time.monotonic()
    freed = lab.rg(
        "lock", "release", "web-staging", "--force", "--reason", "hung", RELEASEGATE_HOST_ID="m2"
    )
    assert freed.returncode == 0, freed.stdout + freed.stderr
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 5, out + err
    assert time.monotonic() - started < 45  # far less than the 60 s window
    assert "w1 is live on web-staging (verified)" in out + err and "during watch" in out + err
    assert lab.running_version("web-staging") == "w1"
    state = _window(lab)
    assert state["status"] == "interrupted" and "a lock takeover" in state["notes"]
    rows = lab.history_rows("--stack", "web-staging")
    assert rows[-2][3:6] == ["deploy", "w1", "success"]
    [mark] = lab.mark_notes("lock-lost")
    assert "during watch" in mark
    assert lab.rg("audit", "verify").returncode == 0
