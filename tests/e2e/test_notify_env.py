"""`notify:` URLs read from the environment (`- url_env: NAME`): a real deploy delivers to
the URL the variable holds; a variable that is not set is named (never a value) by `check`
and `preflight`, and recorded as an undelivered target while the deploy goes on. The URL's
secret reaches no file of the workspace (ledger, records, logs) and no command output."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.cli import RELEASEGATE
from tests.e2e.conftest import Lab

pytestmark = pytest.mark.e2e

SECRET = "EnVsEcReTtOkEn42"
SET_VAR = "RG_TEST_NOTIFY_HOOK"
MISSING_VAR = "RG_TEST_NOTIFY_MISSING"


@pytest.fixture()
def webhook() -> Iterator[tuple[list[dict], int]]:
    posts: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            posts.append({"path": self.path, "json": json.loads(self.rfile.read(length))})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield posts, int(server.server_address[1])
    server.shutdown()
    server.server_close()


def run(lab: Lab, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RELEASEGATE, *args], cwd=lab.root, env={**lab.env(), **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def files_holding(root: Path, needle: bytes) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle in path.read_bytes():
                    found.append(path)
            except OSError:
                continue
    return found


def test_url_env_delivers_names_a_missing_variable_and_leaks_nothing(
    lab: Lab, webhook: tuple[list[dict], int]
) -> None:
    posts, port = webhook
    lab.config.write_text(
        lab.config.read_text() + "notify:\n"
        "  timeout: 5\n"
        "  urls:\n"
        f"    - url_env: {SET_VAR}\n"
        f"    - url_env: {MISSING_VAR}\n",
        encoding="utf-8",
    )
    env = {SET_VAR: f"json://127.0.0.1:{port}/hooks/{SECRET}"}
    outputs: list[str] = []

    # The config loads with the variable missing; check and preflight name it.
    check = run(lab, env, "check", "web-staging", "staging")
    outputs.append(check.stdout + check.stderr)
    assert check.returncode == 3, check.stdout + check.stderr  # nothing runs yet, and notify
    said = f"notify target #2 ${MISSING_VAR}: the environment variable {MISSING_VAR} is not set"
    assert f"notify-targets: {said}" in check.stdout
    check_json = run(lab, env, "check", "web-staging", "staging", "--json")
    outputs.append(check_json.stdout + check_json.stderr)
    assert MISSING_VAR in check_json.stdout
    pre = run(lab, env, "preflight", "web-staging", "staging")
    outputs.append(pre.stdout + pre.stderr)
    assert pre.returncode == 0, pre.stdout + pre.stderr  # not a gate
    assert f"the environment variable {MISSING_VAR} is not set" in pre.stderr

    # The deploy is unaffected; the set variable's URL gets the messages.
    out = run(lab, env, "deploy", "web-staging", "staging", "v1")
    outputs.append(out.stdout + out.stderr)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"notification #2 ${MISSING_VAR} failed: the environment variable {MISSING_VAR} " \
        "is not set" in out.stderr  # fmt: skip
    assert [p["path"] for p in posts] == [f"/hooks/{SECRET}"] * 2
    titles = sorted(p["json"]["title"].rsplit(": ", 1)[1] for p in posts)
    assert titles == ["LIVE", "STARTED"]
    again = run(lab, env, "deploy", "web-staging", "staging", "v2", "--json")
    outputs.append(again.stdout + again.stderr)
    assert again.returncode == 0, again.stdout + again.stderr

    # Recorded by name: the `notify` actions of the deploy, the missing target failed.
    steps = run(lab, env, "history", "--json", "--steps")
    outputs.append(steps.stdout + steps.stderr)
    notify = [json.loads(line) for line in steps.stdout.splitlines()]
    notify = [r for r in notify if r["action"] == "notify"]
    assert len(notify) == 4 and all(r["status"] == "fail" for r in notify), notify
    targets = notify[-1]["details"]["targets"]
    assert [t["target"] for t in targets] == [f"#1 json from ${SET_VAR}", f"#2 ${MISSING_VAR}"]
    assert [t["ok"] for t in targets] == [True, False]
    for args in (("status", "--json"), ("stacks", "--json"), ("history", "--format", "log")):
        shown = run(lab, env, *args)
        outputs.append(shown.stdout + shown.stderr)

    # The URL's secret is nowhere: no file of the workspace, no output (the search does find
    # what is recorded: the missing variable's name is in the ledger).
    assert files_holding(lab.root, MISSING_VAR.encode())
    assert files_holding(lab.root, SECRET.encode()) == []
    assert all(SECRET not in text and f"127.0.0.1:{port}" not in text for text in outputs)
