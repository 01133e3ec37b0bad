"""Smoke checks against a real HTTP server on loopback, and real commands."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from releasegate.redact import Redactor
from releasegate.smoke import HttpClientSource, run_checks
from releasegate.transport import LocalTransport


class Handler(BaseHTTPRequestHandler):
    calls = 0
    fail_first = 0
    delay = 0.0

    def do_GET(self):
        type(self).calls += 1
        time.sleep(self.delay)
        if self.path == "/health" and type(self).calls > self.fail_first:
            body, code = json.dumps({"version": "v7", "token": "s3cr3t-value"}), 200
        else:
            body, code = "down", 503
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture()
def server():
    Handler.calls, Handler.fail_first, Handler.delay = 0, 0, 0.0
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def http(url, **kw):
    base = dict(
        name="h",
        http=url,
        expect_status=200,
        body_contains=None,
        body_matches=None,
        latency_ms=None,
        retries=0,
        interval=0.0,
        timeout=5.0,
    )
    return SimpleNamespace(**{**base, **kw})


class Spec:
    def __init__(self, argv):
        self._argv = argv

    def argv(self):
        return self._argv


def cmd(argv, **kw):
    base = dict(
        name="c",
        http=None,
        command=Spec(argv),
        expect_output=None,
        retries=0,
        interval=0.0,
        timeout=5.0,
    )
    return SimpleNamespace(**{**base, **kw})


def run(checks, version="v7", redact=Redactor()):
    return run_checks(
        checks,
        version=version,
        transport=LocalTransport(),
        cwd=None,
        env={},
        redact=redact,
        sleep=lambda s: None,
    )


def test_http_pass_with_version_substitution(server):
    [r] = run(
        [http(server + "/health", body_contains='"version": "{version}"', body_matches=r"^\{")]
    )
    assert r.ok, r.summary
    assert r.evidence["attempts"][0]["status"] == 200


def test_http_wrong_version_fails_with_evidence(server):
    [r] = run([http(server + "/health", body_contains='"version": "{version}"')], version="v8")
    assert not r.ok
    assert "does not contain" in r.summary
    assert r.evidence["attempts"][0]["status"] == 200


def test_http_retries_until_it_answers(server):
    Handler.fail_first = 2
    [r] = run([http(server + "/health", retries=3)])
    assert r.ok and len(r.evidence["attempts"]) == 3
    assert [a["status"] for a in r.evidence["attempts"]] == [503, 503, 200]


def test_http_status_mismatch_after_retries(server):
    [r] = run([http(server + "/nope", retries=1)])
    assert not r.ok and "status 503, expected 200" in r.summary
    assert len(r.evidence["attempts"]) == 2


def test_http_latency_budget(server):
    Handler.delay = 0.2
    [r] = run([http(server + "/health", latency_ms=50)])
    assert not r.ok and "budget 50 ms" in r.summary


def test_http_connection_refused():
    [r] = run([http("http://127.0.0.1:9/health")])
    assert not r.ok and "ConnectError" in r.summary


def test_http_overall_timeout_bounds_attempts(server):
    Handler.delay = 0.3
    [r] = run([http(server + "/nope", timeout=0.5, retries=10)])
    assert not r.ok
    # 11 attempts were allowed, but the 0.5 s budget leaves room for two at most
    assert len(r.evidence["attempts"]) <= 2


def test_command_check_and_redaction():
    red = Redactor(["s3cr3t-value"])
    [ok, bad] = run(
        [
            cmd(["sh", "-c", "echo ready s3cr3t-value"], expect_output="ready"),
            cmd(["sh", "-c", "exit 3"], retries=1),
        ],
        redact=red,
    )
    assert ok.ok and "s3cr3t-value" not in json.dumps(ok.evidence)
    assert not bad.ok and bad.evidence["attempts"][-1]["exit_code"] == 3
    assert len(bad.evidence["attempts"]) == 2


def test_a_warmed_client_is_reused_and_left_open(server):
    source = HttpClientSource()
    checks = [http(server + "/health")]
    source.warm(checks)
    results = run_checks(
        checks,
        version="v7",
        transport=LocalTransport(),
        cwd=None,
        env={},
        redact=Redactor(),
        sleep=lambda s: None,
        clients=source,
    )
    assert results[0].ok, results[0].summary
    client = source.get(checks)
    assert not client.is_closed  # the run's owner closes it, not run_checks
    assert results[0].evidence["duration_s"] >= 0
    source.close()
    assert client.is_closed


def test_warm_does_nothing_without_http_checks():
    source = HttpClientSource()
    source.warm([cmd(["true"])])
    assert source._thread is None and source._client is None


def test_a_plain_http_client_is_rebuilt_for_https_checks(server):
    source = HttpClientSource()
    plain = source.get([http(server)])
    assert source.get([http(server)]) is plain
    tls = source.get([http("https://127.0.0.1:1/")])
    assert tls is not plain and plain.is_closed
    source.close()


# ---- hostile endpoints: one deadline per attempt, a capped body, masked URLs -------------------


class Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sent = 0

    def do_GET(self):
        try:
            self._answer()
        except OSError:  # the client hung up, as it should
            pass

    def _answer(self):
        if self.path.startswith("/trickle-headers"):
            for b in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
                self.wfile.write(bytes([b]))
                self.wfile.flush()
                time.sleep(0.2)
        elif self.path.startswith("/trickle"):
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)
        elif self.path.startswith("/gzip-bomb"):
            import gzip

            data = gzip.compress(b"a" * (64 * 1024 * 1024))
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path.startswith("/echo"):
            data = f"you asked for {self.path} as {self.headers.get('Authorization')}".encode()
            self.send_response(503)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:  # a long answer, the version near its start
            self.send_response(200)
            self.send_header("Content-Length", str(64 * 1024 * 1024))
            self.end_headers()
            self.wfile.write(b'{"version": "v7"}')
            for _ in range(1024):
                self.wfile.write(b"a" * 65536)
                type(self).sent += 65536

    def log_message(self, *a):
        pass


@pytest.fixture()
def hostile():
    Hostile.sent = 0
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def run_async_checks(checks, version="v7"):
    """The fleet's path: the same programs awaited with an httpx.AsyncClient."""
    import asyncio

    import httpx

    from releasegate.ops import run_async
    from releasegate.smoke import check_program

    async def main():
        async with httpx.AsyncClient(trust_env=False) as client:
            return [
                await run_async(
                    check_program(c, version=version, redact=Redactor()), None, client=client
                )
                for c in checks
            ]

    return asyncio.run(main())


@pytest.mark.parametrize("runner", [run, run_async_checks], ids=["sync", "async"])
@pytest.mark.parametrize("path", ["/trickle", "/trickle-headers"])
def test_a_trickling_answer_fails_at_the_attempts_deadline(hostile, runner, path):
    started = time.monotonic()
    [r] = runner([http(hostile + path, timeout=1.5)])
    took = time.monotonic() - started
    assert not r.ok and "no complete answer within 1.5 s" in r.summary, r.summary
    assert took < 1.5 + 1.0, took  # the bound: timeout + 1 s


@pytest.mark.parametrize("runner", [run, run_async_checks], ids=["sync", "async"])
def test_a_long_body_is_read_up_to_the_cap(hostile, runner):
    [r] = runner([http(hostile + "/long", body_contains='"version": "{version}"')])
    assert r.ok, r.summary
    assert r.evidence["attempts"][0]["body_truncated_at"] == 1024 * 1024
    [r] = runner([http(hostile + "/long", body_contains="never there", max_body_bytes=1000)])
    assert not r.ok and "(in its first 1000 bytes)" in r.summary
    assert Hostile.sent < 32 * 1024 * 1024  # the client hung up; the rest was never sent


def test_a_compressed_answer_expands_only_up_to_the_cap(hostile):
    [r] = run([http(hostile + "/gzip-bomb", body_contains="b", max_body_bytes=4096)])
    assert not r.ok and "(in its first 4096 bytes)" in r.summary
    assert r.evidence["attempts"][0]["body"] == "a" * 300


def test_credentials_in_the_url_are_masked_in_summary_evidence_and_echoes(hostile):
    url = hostile.replace("http://", "http://ops:s3cret-pw@") + "/echo?token=abc123&page=2"
    [r] = run([http(url)])
    text = json.dumps([r.summary, r.evidence])
    assert "s3cret-pw" not in text and "abc123" not in text, text
    assert "http://ops:***@127.0.0.1" in r.summary and "token=***&page=2" in r.summary
    assert "/echo?token=***" in r.evidence["attempts"][0]["body"]
