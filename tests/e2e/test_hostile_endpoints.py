"""Issue 16, rows 7, 8, 9, 10 and 17, through the real CLI: smoke endpoints that trickle or
answer without end, credentials in smoke URLs, control characters in recorded text, and
the modes of the files releasegate keeps. Real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.cli import RELEASEGATE

pytestmark = pytest.mark.e2e

SECRETS = ("s3cret", "abc123")


class Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sent = 0  # bytes of the long answer written
    healthy = True  # /health answers 200 (else 503)

    def do_GET(self):
        try:
            self._answer()
        except OSError:  # the client hung up: what a bounded reader does
            pass

    def _send(self, code: int, body: bytes, **headers: str) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _answer(self) -> None:
        if self.path.startswith("/trickle-headers"):
            for b in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
                self.wfile.write(bytes([b]))
                self.wfile.flush()
                time.sleep(0.2)
        elif self.path.startswith("/trickle"):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):  # one byte every 0.2 s: 200 s in all
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)
        elif self.path.startswith("/huge"):
            # 2 GiB announced, the version first. Gives up after 64 MiB, so that a reader
            # that takes everything fails this test in seconds, not minutes.
            self.send_response(200)
            self.send_header("Content-Length", str(2 * 1024**3))
            self.end_headers()
            self.wfile.write(b'{"version": "v1"}\n')
            chunk = b"a" * 65536
            for _ in range(1024):
                self.wfile.write(chunk)
                type(self).sent += len(chunk)
            self.close_connection = True
        elif self.path.startswith("/health"):
            # Answers only with the credentials of the URL, and echoes what it was asked.
            authorized = "token=abc123" in self.path and self.headers.get("Authorization")
            ok = authorized and type(self).healthy
            self._send(200 if ok else 503, f"ok: you asked for {self.path}".encode())
        else:
            self._send(404, b"no such page")

    def log_message(self, *a):
        pass


@pytest.fixture()
def hostile():
    Hostile.sent, Hostile.healthy = 0, True
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def set_smoke(lab, stack: str, checks: str) -> None:
    """Replace the smoke checks of `stack` in the lab's config by `checks` (YAML items)."""
    text = lab.config.read_text(encoding="utf-8")
    pattern = re.compile(rf"(  {stack}:\n(?:    .*\n|      .*\n)*?    smoke:\n)((?:      .*\n)+)")
    indented = "".join(f"      {line}\n" for line in checks.strip("\n").splitlines())
    text, n = pattern.subn(lambda m: m[1] + indented, text)
    assert n == 1, text
    lab.config.write_text(text, encoding="utf-8")


def result_of(out: subprocess.CompletedProcess[str]) -> dict:
    """The `result` line of a command run with --json."""
    for line in reversed(out.stdout.splitlines()):
        data = json.loads(line)
        if "result" in data:
            return data["result"]
    raise AssertionError(out.stdout + out.stderr)


def step(result: dict, name: str) -> dict:
    return next(s for s in result["steps"] if s["step"] == name)


# ---- row 8: one deadline per attempt ---------------------------------------------------------


@pytest.mark.parametrize("path, timeout", [("/trickle", 5), ("/trickle-headers", 3)])
def test_a_trickling_endpoint_fails_within_its_timeout(lab, hostile, path, timeout):
    set_smoke(
        lab,
        "web-staging",
        f"- {{name: slow, http: 'http://{hostile}{path}', retries: 0, timeout: {timeout}}}",
    )
    out = lab.rg("deploy", "web-staging", "staging", "v1", "--json", timeout=120)
    assert out.returncode != 0, out.stdout + out.stderr
    smoke = step(result_of(out), "smoke")
    assert not smoke["ok"]
    [check] = smoke["checks"]
    assert f"no complete answer within {timeout} s" in check["summary"], check
    assert smoke["duration_s"] < timeout + 1.0  # the bound (the step: this one check)
    locks = lab.rg("lock", "status", "--json")
    assert locks.returncode == 0 and locks.stdout.strip() == "", locks.stdout  # released


# ---- row 9: a body read up to its cap ---------------------------------------------------------

# Runs the CLI and reports the largest RSS (KiB) of what it waited for: the CLI itself and
# the short commands it ran (the sample app it starts is not waited for).
MAX_RSS = """\
import resource, subprocess, sys
rc = subprocess.run(sys.argv[2:]).returncode
with open(sys.argv[1], "w") as fh:
    fh.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(rc)
"""


def test_a_2_gib_body_keeps_the_process_small(lab, hostile, tmp_path):
    set_smoke(
        lab,
        "web-staging",
        f"""\
- name: huge
  http: 'http://{hostile}/huge'
  body_contains: '"version": "{{version}}"'
  retries: 0
  timeout: 30""",
    )
    rss_file = tmp_path / "rss"
    cli = [RELEASEGATE, "deploy", "web-staging", "staging", "v1", "--json"]
    out = subprocess.run(
        [sys.executable, "-c", MAX_RSS, str(rss_file), *cli],
        cwd=lab.root,
        env=lab.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    [check] = step(result_of(out), "smoke")["checks"]
    [attempt] = check["evidence"]["attempts"]
    assert attempt["ok"] and attempt["body_truncated_at"] == 1024 * 1024
    max_rss_kib = int(rss_file.read_text())
    assert max_rss_kib < 100 * 1024, f"{max_rss_kib} KiB"
    assert Hostile.sent < 32 * 1024 * 1024  # the client hung up after its cap


# ---- row 7: credentials in URLs are masked wherever output goes --------------------------------


def test_credentials_in_a_smoke_url_never_reach_any_output(lab, hostile):
    """The README says URLs are masked: every output, and every file releasegate writes."""
    url = f"http://user:s3cret@{hostile}/health?token=abc123&page=2"
    set_smoke(lab, "web-staging", f"- {{name: health, http: '{url}', body_contains: ok, "
              "retries: 1, interval: 0.1, timeout: 5}")  # fmt: skip
    outputs = []

    def rg(*args: str) -> subprocess.CompletedProcess[str]:
        out = lab.rg(*args)
        outputs.append((args, out.stdout + out.stderr))
        return out

    assert rg("deploy", "web-staging", "staging", "v1").returncode == 0
    Hostile.healthy = False  # v2's smoke fails (and the rollback's): summaries with the URL
    assert rg("deploy", "web-staging", "staging", "v2", "--json").returncode != 0
    assert rg("deploy", "web-staging", "staging", "v2").returncode != 0
    Hostile.healthy = True
    rg("deploy", "web-staging", "staging", "v2", "--dry-run")
    rg("deploy", "web-staging", "staging", "v2", "--dry-run", "--json")
    rg("smoke", "web-staging", "staging")
    rg("smoke", "web-staging", "staging", "--json")
    for fmt in ("table", "log", "json"):
        rg("history", "--steps", "--format", fmt)
    rg("status")
    rg("status", "--json")
    # A config error quoting the URL.
    text = lab.config.read_text(encoding="utf-8")
    lab.config.write_text(text.replace(url, url.replace("http://", "htp://")), encoding="utf-8")
    bad = rg("status")
    assert bad.returncode == 2 and "htp://user:***@" in bad.stderr, bad.stderr

    for args, text in outputs:
        for secret in SECRETS:
            assert secret not in text, (args, text)
    history = next(text for args, text in outputs if args[:1] == ("history",))
    assert "http://user:***@127.0.0.1" in history and "token=***&page=2" in history, history

    state = lab.root / ".releasegate"
    files = [p for p in state.rglob("*") if p.is_file() and "backups" not in p.parts]
    assert any(p.name == "state.db" for p in files)
    assert len([p for p in files if p.suffix == ".md"]) >= 3
    for path in files:
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, path
    record = next(p for p in files if p.suffix == ".md" and "-v2" in p.name)
    assert "token=***" in record.read_text(encoding="utf-8")


# ---- row 17: control characters in recorded text ------------------------------------------------

HOSTILE_REASON = "\x1b]0;pwned\x07\x1b[31mred\x9b2J [/] [bold]x\rover"


def test_control_characters_in_a_reason_never_reach_the_terminal(lab):
    out = lab.rg("deploy", "web-prod", "prod", "v1", "--force", "--reason", HOSTILE_REASON)
    assert out.returncode == 0, out.stdout + out.stderr
    outputs = {"deploy": out.stdout + out.stderr}
    for fmt in ("table", "log", "json"):
        done = lab.rg("history", "--format", fmt)
        assert done.returncode == 0, done.stderr  # "[/]" is text, not markup to choke on
        outputs[fmt] = done.stdout + done.stderr
    for name, text in outputs.items():
        for raw in ("\x1b", "\x07", "\x9b", "\r"):
            assert raw not in text, (name, raw, text)
    # Shown, escaped, not dropped: the reader can see what was recorded.
    assert "\\x1b]0;pwned\\x07\\x1b[31mred\\x9b2J [/] [bold]x\\x0dover" in outputs["table"]
    assert "FORCED: \\x1b]0;pwned" in outputs["log"]
    [rec] = [json.loads(line) for line in outputs["json"].splitlines()]
    assert rec["reason"] == HOSTILE_REASON  # JSON keeps the value whole, escaped as JSON
    # The execution record is read with `cat` too.
    [record] = (lab.root / ".releasegate" / "records").glob("*.md")
    text = record.read_text(encoding="utf-8")
    assert "\x1b" not in text and "\x07" not in text and "\\x1b]0;pwned" in text


# ---- row 10: files at rest ----------------------------------------------------------------------


def modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
        for p in [root, *root.rglob("*")]
        if not p.is_symlink()
    }


def test_state_records_and_backups_are_private_and_older_ones_are_tightened(lab):
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    state = lab.root / ".releasegate"
    # The CLI closed its connection, which removed SQLite's -wal and -shm: open the ledger
    # as releasegate does (this test runs with umask 022) to see them while they exist.
    from releasegate.ledger import Ledger

    with Ledger.open(str(state / "state.db")) as ledger:
        ledger.locks()
        found = modes(state)
    for name in (".", "state.db", "state.db-wal", "state.db-shm", "records", "backups"):
        assert name in found, sorted(found)
    for name, mode in found.items():
        is_dir = (state / name).is_dir() or name in (".", "records", "backups")
        assert mode == (0o700 if is_dir else 0o600), (name, oct(mode))

    # As an older releasegate left them: world-readable.
    for path in [state, *state.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    out = lab.rg("deploy", "web-staging", "staging", "v2")
    assert out.returncode == 0, out.stdout + out.stderr
    notices = [line for line in out.stderr.splitlines() if line.startswith("notice:")]
    assert any("state.db: mode 0644 -> 0600" in n for n in notices), out.stderr
    assert any("records: mode 0755 -> 0700" in n for n in notices), out.stderr
    for name, mode in modes(state).items():
        if name.startswith("backups/") and name.count("/") >= 2:
            continue  # sets from before: unreachable now that their parents are 0700
        assert not mode & 0o077, (name, oct(mode))
