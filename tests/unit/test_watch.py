"""The watch window's pure parts as data: the verdicts, the checks since the offsets, the
loop (with a fake clock), the config, and the Prometheus query against a server on
loopback. The logs on each host and the access-log parser: test_watch_hosts.py."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError

from releasegate.model import CheckResult
from releasegate.ops import run_sync
from releasegate.transport.local import LocalTransport
from releasegate.watch.config import PrometheusCheck, WatchConfig
from releasegate.watch.logs import mark_program, read_program
from releasegate.watch.verdicts import (
    log_verdict,
    prometheus_verdict,
    round_verdict,
    share_verdict,
)
from releasegate.watch.window import Checks, prometheus_query, run_window

COMMON = b'10.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326'
COMBINED = b'127.0.0.1 - - [03/Dec/2026:17:00:00 +0000] "POST /api HTTP/1.1" 502 157 "-" "curl/8"'


@pytest.mark.parametrize(
    ("total", "errors", "ok", "words"),
    [
        (3, 3, True, "fewer than 5, no verdict yet"),
        (10, 1, True, "5xx share 10.0% of 10 request(s)"),
        (10, 2, True, "20.0%"),
        (10, 3, False, "above 20.0%"),
        (100, 100, False, "100.0%"),
    ],
)
def test_share_verdict(total, errors, ok, words):
    check = share_verdict(total, errors, max_share=0.2, min_requests=5)
    assert check.ok is ok and words in check.summary


def test_log_verdict_quotes_the_first_line():
    assert log_verdict(0, [], pattern="(?i)error", max_matches=0).ok
    bad = log_verdict(2, ["ERROR: db gone", "error 2"], pattern="(?i)error", max_matches=1)
    assert not bad.ok and "2 line(s)" in bad.summary and "ERROR: db gone" in bad.summary
    assert bad.evidence["samples"] == ["ERROR: db gone", "error 2"]


def _vector(*values):
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, str(v)]}
                                                    for v in values]},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("answer", "ok", "words"),
    [
        (_vector(0.1, 0.2), True, "0.1, 0.2"),
        (_vector(0.1, 0.9), False, "value 0.9 is not <= 0.5"),
        (_vector("NaN"), False, "nan"),
        (_vector(), False, "no sample"),
        ({"status": "success", "data": {"resultType": "scalar", "result": [1, "0.3"]}}, True, ""),
        ({"status": "success", "data": {"resultType": "matrix", "result": []}}, False, "matrix"),
        ({"status": "error", "error": "parse error"}, False, "parse error"),
        ("not json", False, "no answer"),
        ({"status": "success", "data": {"resultType": "vector", "result": [{"value": [1]}]}},
         False, "without a number"),
    ],
)  # fmt: skip
def test_prometheus_verdict(answer, ok, words):
    check = prometheus_verdict(answer, low=None, high=0.5)
    assert check.ok is ok and words.lower() in check.summary.lower()


def test_prometheus_min_bound():
    assert not prometheus_verdict(_vector(1), low=5, high=None).ok
    assert prometheus_verdict(_vector(7), low=5, high=None).ok


def test_round_verdict():
    good, bad = CheckResult("a", True, "fine"), CheckResult("log", False, "2 lines")
    assert round_verdict([good]) == (True, "fine")
    assert round_verdict([good, bad]) == (False, "log: 2 lines")


def test_checks_count_only_since_the_offsets(tmp_path: Path):
    app, access = tmp_path / "app.log", tmp_path / "access.log"
    app.write_bytes(b"ERROR before the switch\n")
    access.write_bytes(COMBINED + b"\n")
    cfg = WatchConfig.model_validate(
        {
            "duration": 2,
            "interval": 1,
            "smoke": False,
            "log": {"path": str(app)},
            "access_log": {"path": str(access), "min_requests": 2, "max_5xx_share": 0.5},
        }
    )
    marks = run_sync(mark_program([str(app), str(access)]), LocalTransport())

    def here(wants):
        return {h: run_sync(read_program(w, 1024), LocalTransport()) for h, w in wants.items()}

    checks = Checks(cfg, ["local"], {"local": marks}, read_logs=here, redact=str.upper)
    assert all(c.ok for c in checks.round())
    with open(access, "ab") as f:
        f.write(COMMON + b"\n" + COMMON + b"\n" + COMBINED + b"\n")
    assert all(c.ok for c in checks.round())  # 1 of 3: below the half
    with open(app, "ab") as f:
        f.write(b"boot ok\nan Error: token=abc\n")
    [log, access_check] = checks.round()
    assert not log.ok and access_check.ok
    assert checks.samples == ["AN ERROR: TOKEN=ABC"]  # through the redactor
    assert checks.evidence()["requests"] == 3


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def test_window_passes_after_its_duration_with_a_last_round_at_the_end():
    clock = Clock()
    result = run_window(
        lambda: [CheckResult("smoke", True, "ok")],
        duration=1.0,
        interval=0.4,
        accepted=lambda: None,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result.outcome == "passed" and result.rounds == 4
    assert clock.sleeps == pytest.approx([0.4, 0.4, 0.2])


def test_window_fails_at_the_first_failing_round():
    clock = Clock()
    rounds = iter([[CheckResult("a", True, "ok")], [CheckResult("log", False, "1 line")]])
    result = run_window(
        lambda: next(rounds), duration=10, interval=1, accepted=lambda: None,
        clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert (result.outcome, result.rounds, result.summary) == ("failed", 2, "log: 1 line")


def test_window_accepted_between_rounds():
    clock = Clock()
    answers = iter([None, "bob: fine"])
    result = run_window(
        lambda: [CheckResult("a", True, "ok")], duration=10, interval=1,
        accepted=lambda: next(answers), clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert result.outcome == "accepted" and result.accepted_by == "bob: fine"
    assert result.rounds == 2


@pytest.mark.parametrize(
    "bad",
    [
        {"duration": 0},
        {"duration": 5, "interval": 10},
        {"duration": 5, "smoke": False},
        {"duration": 5, "log": {"path": "x", "pattern": "("}},
        {"duration": 5, "prometheus": {"url": "http://127.0.0.1:9090", "query": "up"}},
        {"duration": 5, "access_log": {"path": "x", "max_5xx_share": 2}},
        {"duration": 5, "nope": 1},
    ],
)
def test_config_refuses(bad):
    with pytest.raises(ValidationError):
        WatchConfig.model_validate(bad)


def test_config_describes_its_checks():
    cfg = WatchConfig.model_validate(
        {
            "duration": 60,
            "log": {"path": "/var/log/app.log"},
            "prometheus": {"url": "http://127.0.0.1:9090", "query": "up", "min": 1},
        }
    )
    assert cfg.describe() == [
        "smoke checks",
        "lines matching '(?i)error' in /var/log/app.log <= 0",
        "prometheus 'up' >= 1",
    ]


@pytest.fixture()
def prometheus():
    answers: list[tuple[int, bytes]] = []
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            code, body = answers.pop(0)
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", answers, seen
    server.shutdown()
    server.server_close()


def test_prometheus_query_on_loopback(prometheus):
    url, answers, seen = prometheus
    check = PrometheusCheck(url=url, query='sum(rate(x{code=~"5.."}[1m]))', max=0.5,
                            max_body_bytes=2048)  # fmt: skip
    answers.append((200, json.dumps(_vector(0.7)).encode()))
    verdict = prometheus_verdict(prometheus_query(check), low=None, high=0.5)
    assert not verdict.ok and "0.7" in verdict.summary
    assert seen[0].startswith("/api/v1/query?query=sum%28rate%28x%7Bcode")
    answers.append((400, b'{"status":"error","error":"bad query"}'))
    assert "bad query" in prometheus_verdict(prometheus_query(check), low=None, high=1).summary
    answers.append((200, b"[" * 5000))  # longer than the cap: refused, never parsed
    with pytest.raises(ValueError, match="longer than 2048"):
        prometheus_query(check)


def test_the_plan_watches_after_verify_and_before_cleanup(tmp_path: Path):
    from releasegate.config import load_config
    from releasegate.plan import Facts, plan_deploy, plan_rollback

    (tmp_path / "releasegate.yaml").write_text(
        "stacks:\n  web:\n    env: staging\n    runtime: releases\n    dir: srv\n"
        "    artifacts: artifacts\n    smoke: [{http: 'http://127.0.0.1:8000/health'}]\n"
        "    watch: {duration: 120, interval: 5, log: {path: srv/shared/logs/app.log}}\n"
    )
    stack = load_config(tmp_path / "releasegate.yaml").stack("web")
    plan = plan_deploy(stack, "v2", Facts(running="v1", rollback_target="v1", artifact="a"))
    names = [s.name for s in plan.steps]
    assert names[-3:] == ["verify", "watch", "cleanup"]
    title = plan.steps[-2].title
    assert title.startswith("watch v2 for 120s, every 5s: smoke checks; lines matching")
    assert title.endswith("a failing check rolls back to v1")
    # a rollback is not watched: it goes to a version that ran well before
    back = plan_rollback(stack, "v1", Facts(running="v2", rollback_target=None, artifact="a"))
    assert "watch" not in [s.name for s in back.steps]
