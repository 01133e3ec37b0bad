"""Notifications as data: the events a run raises, what a message says (and never), the
`notify:` config, and deliveries that cannot succeed."""

from __future__ import annotations

import socket
import time

import pytest
from pydantic import ValidationError

from releasegate.notify.config import NotifyConfig
from releasegate.notify.deliver import send, target_name
from releasegate.notify.message import Notice, outcome_event, render, start_event
from releasegate.redact import Redactor


@pytest.mark.parametrize(
    ("action", "status", "watch", "event"),
    [
        ("deploy", "success", False, "live"),
        ("deploy", "refused", False, "refused"),
        ("deploy", "failed", False, "failed"),
        ("deploy", "aborted", False, "failed"),
        ("deploy", "rolled_back", False, "rolled_back"),
        ("deploy", "rolled_back", True, "watch_failed"),
        ("rollback", "success", False, "rolled_back"),
        ("rollback", "failed", False, "failed"),
        ("restore", "success", False, None),
        ("deploy", "running", False, None),
    ],
)
def test_outcome_events(action, status, watch, event):
    assert outcome_event(action, status, watch_failed=watch) == event


def test_start_event_says_forced():
    assert start_event(forced=True) == "forced"
    assert start_event(forced=False) == "started"


def _notice(**kw):
    base = dict(
        event="live", action="deploy", stack="web-prod", env="prod", version="v2",
        user="alice", outcome="success", message="v2 is live", record="/r/x.md", action_id="ab12",
    )  # fmt: skip
    return Notice(**{**base, **kw})


def test_render_names_stack_env_version_who_outcome_and_record():
    title, body = render(_notice(), Redactor())
    assert title == "releasegate: deploy v2 on web-prod (prod): LIVE"
    assert body.splitlines() == [
        "Stack: web-prod",
        "Environment: prod",
        "Action: deploy",
        "Version: v2",
        "By: alice",
        "Outcome: success",
        "Message: v2 is live",
        "Record: /r/x.md",
        "Ledger action: ab12",
    ]


def test_render_masks_secrets_and_marks_forced():
    notice = _notice(
        event="rolled_back",
        forced=True,
        message="smoke failed: https://bob:hunter22@db.internal/x and s3cr3tvalue",
    )
    title, body = render(notice, Redactor(["s3cr3tvalue"]))
    assert title.endswith("ROLLED BACK (FORCED)")
    assert "hunter22" not in body and "s3cr3tvalue" not in body
    assert "***" in body


def test_config_urls_are_secret_and_checked():
    cfg = NotifyConfig.model_validate({"urls": ["json://127.0.0.1:9/tok123"], "timeout": 2})
    assert "tok123" not in repr(cfg)
    assert cfg.wants("live") and cfg.timeout == 2
    assert not NotifyConfig.model_validate({"urls": ["json://x"], "events": ["refused"]}).wants(
        "live"
    )
    for bad in (
        {"urls": []},
        {"urls": ["no-scheme-secret"]},
        {"urls": ["json://a b"]},
        {"urls": ["json://x"], "timeout": 0},
        {"urls": ["json://x"], "timeout": 500},
        {"urls": ["json://x"], "events": ["live", "live"]},
        {"urls": ["json://x"], "events": ["nope"]},
    ):
        with pytest.raises(ValidationError) as err:
            NotifyConfig.model_validate(bad)
        assert all("secret" not in e["msg"] for e in err.value.errors())  # what errors.py shows


def test_target_names_hide_everything_but_the_scheme():
    assert target_name(0, "mailto://u:pw@host?to=x") == "#1 mailto"
    assert target_name(2, "slack://T0/B0/token") == "#3 slack"
    assert target_name(1, "we!rd://x") == "#2 ?"


def test_failed_deliveries_are_outcomes_within_the_timeout():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        started = time.monotonic()
        results = send(
            [f"json://127.0.0.1:{port}/hook/tok-abcdef", "nosuchscheme://x/tok-abcdef"],
            "t",
            "b",
            timeout=5,
        ).wait()
    assert time.monotonic() - started < 30  # generous: bounded by the 5 s deadline
    assert [(r.target, r.ok) for r in results] == [("#1 json", False), ("#2 nosuchscheme", False)]
    assert results[1].detail == "not a URL Apprise knows"
    assert all("tok-abcdef" not in r.detail for r in results)


def test_a_hanging_target_times_out():
    with socket.socket() as server:  # accepts the connection (backlog) and never answers
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        started = time.monotonic()
        [result] = send([f"json://127.0.0.1:{port}/h"], "t", "b", timeout=1).wait()
        took = time.monotonic() - started
    assert not result.ok and result.detail.startswith("timed out after 1s")
    assert took < 10  # the deadline (1 s) with slack


def test_url_env_entries_are_read_from_the_environment_and_named_only():
    from releasegate.notify.targets import missing_env, resolve

    cfg = NotifyConfig.model_validate(
        {"urls": ["json://h/tok-a", {"url_env": "RG_HOOK"}, {"url_env": "RG_GONE"},
                  {"url_env": "RG_BAD"}, {"url_env": "RG_HOOK"}]}
    )  # fmt: skip
    assert cfg.env_names() == ["RG_HOOK", "RG_GONE", "RG_BAD", "RG_HOOK"]
    env = {"RG_HOOK": "slack://T0/B0/sEcReTvAlUe", "RG_BAD": "not a url sEcReTbAd"}
    targets = resolve([cfg], env)
    assert [(t.name, t.url) for t in targets] == [
        ("#1 json", "json://h/tok-a"),
        ("#2 slack from $RG_HOOK", "slack://T0/B0/sEcReTvAlUe"),
        ("#3 $RG_GONE", None),
        ("#4 $RG_BAD", None),
    ]
    assert targets[2].problem == "the environment variable RG_GONE is not set"
    assert targets[3].problem.startswith("the environment variable RG_BAD is not an Apprise URL")
    config = type("C", (), {"notify": cfg, "stacks": {}})()
    said = missing_env(config, "web", env)
    assert len(said) == 2 and "RG_GONE" in said[0] and "RG_BAD" in said[1]
    assert not any("sEcReT" in line for line in said)
    assert missing_env(config, "web", {**env, "RG_GONE": "json://x", "RG_BAD": "json://y"}) == []


def test_url_env_config_errors_name_one_problem():
    for bad, where in (
        ({"urls": [{"url_env": "bad name"}]}, "url_env"),
        ({"urls": [{"url": "json://x"}]}, "url"),
    ):
        with pytest.raises(ValidationError) as err:
            NotifyConfig.model_validate(bad)
        # One branch's errors only (the shape picks it), never the URL's value.
        assert {e["loc"][2] for e in err.value.errors()} == {"env"}
        assert any(e["loc"][-1] == where for e in err.value.errors())


def test_undeliverable_targets_are_failed_deliveries_by_name(monkeypatch):
    from releasegate.identity import Actor
    from releasegate.notify.hooks import Notifier

    class FakeLedger:  # only what Notifier writes: the rows it opens and closes
        def __init__(self):
            self.rows = {}

        def begin_action(self, **kw):
            self.rows["r1"] = kw
            return "r1"

        def end_action(self, row, status, *, notes, details):
            self.rows[row] = {**self.rows[row], "status": status, "notes": notes, **details}

    monkeypatch.delenv("RG_GONE", raising=False)
    cfg = NotifyConfig.model_validate({"urls": [{"url_env": "RG_GONE"}], "timeout": 1})
    config = type("C", (), {"notify": cfg, "stacks": {}})()
    ledger = FakeLedger()
    notifier = Notifier(config, ledger, Actor(user="amy", host="h", pid=1, pid_start=""))
    notifier.notify(_notice())
    results = notifier._reap(block=True)
    assert [(r.target, r.ok, r.detail) for r in results] == [
        ("#1 $RG_GONE", False, "the environment variable RG_GONE is not set")
    ]
    assert ledger.rows["r1"]["status"] == "fail"
    assert "RG_GONE" in ledger.rows["r1"]["notes"]
