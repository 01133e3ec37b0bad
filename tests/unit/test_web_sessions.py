"""Dashboard sessions in the state database (web/sessions.py) over a real SQLite ledger:
only the token's hash is stored, a token is good across two stores on the same state (a
restart), sign-out deletes the row, lifetime and idle timeout end a session, ended rows are
pruned, the table stays bounded; and the sign-in records' budgets (web/signins.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from releasegate.identity import Actor
from releasegate.ledger import Ledger
from releasegate.web.sessions import SessionPolicy, Sessions, csrf_for, token_hash
from releasegate.web.signins import SIGN_IN, OncePer, RecordBudget, record


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def state(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture()
def ledger(state: Path) -> Iterator[Ledger]:
    led = Ledger.open(str(state))
    try:
        yield led
    finally:
        led.close()


def rows(state: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(state) as db:
        return db.execute("SELECT * FROM web_sessions").fetchall()


def test_a_token_is_good_across_two_servers_on_the_same_state(state: Path) -> None:
    clock = Clock()
    policy = SessionPolicy(lifetime_s=3600, idle_s=600, clock=clock)
    first = Ledger.open(str(state))
    token, made = Sessions(first.database, policy).create("amy", 3)
    first.close()  # the server stops
    second = Ledger.open(str(state))  # another process on the same state
    try:
        found = Sessions(second.database, policy).get(token)
        assert found is not None
        assert (found.user, found.generation, found.sso) == ("amy", 3, False)
        assert found.csrf == made.csrf == csrf_for(token) != token
    finally:
        second.close()
    stored = rows(state)
    assert len(stored) == 1 and stored[0][0] == token_hash(token)
    assert not any(token in str(v) or made.csrf in str(v) for v in stored[0])


def test_sign_out_deletes_the_row_and_the_token_is_refused(ledger: Ledger, state: Path) -> None:
    sessions = Sessions(ledger.database, SessionPolicy(lifetime_s=3600, idle_s=600))
    token, _ = sessions.create("amy", 1)
    other, _ = sessions.create("bob", 1)
    assert sessions.drop(token) is True
    assert sessions.get(token) is None
    assert sessions.drop(token) is False
    assert [r[1] for r in rows(state)] == ["bob"]
    assert sessions.get(other) is not None
    for bad in (None, "", "x" * 500, other + "0"):
        assert sessions.get(bad) is None


def test_lifetime_and_idle_timeout_end_a_session(ledger: Ledger, state: Path) -> None:
    clock = Clock()
    sessions = Sessions(ledger.database, SessionPolicy(lifetime_s=3600, idle_s=600, clock=clock))
    token, _ = sessions.create("amy", 1)
    for _ in range(6):  # used every 9 minutes: never idle, until its lifetime ends
        clock.now += 540
        assert sessions.get(token) is not None
    clock.now += 540  # 63 minutes after sign-in: past the hour
    assert sessions.get(token) is None
    assert rows(state) == []  # deleted when met
    idle, _ = sessions.create("amy", 1)
    clock.now += 601
    assert sessions.get(idle) is None


def test_ended_sessions_are_pruned_and_the_table_is_bounded(ledger: Ledger, state: Path) -> None:
    clock = Clock()
    policy = SessionPolicy(lifetime_s=3600, idle_s=600, limit=3, clock=clock)
    sessions = Sessions(ledger.database, policy)
    old = [sessions.create(f"u{i}", 1)[0] for i in range(3)]
    clock.now += 700  # all idle now
    assert sessions.prune() == 3 and sessions.count() == 0
    tokens = []
    for i in range(5):
        clock.now += 1
        tokens.append(sessions.create(f"v{i}", 1)[0])
    assert sessions.count() == 3  # the least recently used went
    assert sessions.get(tokens[0]) is None and sessions.get(tokens[-1]) is not None
    assert all(sessions.get(t) is None for t in old)


def test_the_failure_budget_counts_what_it_skips() -> None:
    clock = Clock()
    budget = RecordBudget(allowed=2, window_s=100, clock=clock)
    assert budget.take() == (True, 0)
    assert budget.take() == (True, 0)
    assert budget.take() == (False, 0)
    assert budget.take() == (False, 0)
    clock.now += 101
    assert budget.take() == (True, 2)  # the next one says how many were not written
    assert budget.take() == (True, 0)


def test_once_per_window_and_bounded() -> None:
    clock = Clock()
    once = OncePer(window_s=300, limit=2, clock=clock)
    assert once.first(("amy", "10.0.0.1"))
    assert not once.first(("amy", "10.0.0.1"))
    assert once.first(("amy", "10.0.0.2"))
    clock.now += 301
    assert once.first(("amy", "10.0.0.1"))
    once.first(("a", "b"))
    once.first(("c", "d"))
    assert len(once._seen) == 2


def test_a_sign_in_record_is_an_action_with_the_peer(ledger: Ledger) -> None:
    actor = Actor(user="x", host="h", pid=1, pid_start="")
    record(ledger, host=actor.host, pid=actor.pid, action=SIGN_IN, status="fail", user="-",
           peer="10.0.0.9" * 20, notes="unknown user name")  # fmt: skip
    [rec] = ledger.actions(stack="web", action=SIGN_IN)
    assert (rec.status, rec.user, rec.env) == ("fail", "-", "-")
    assert rec.details["peer"] == ("10.0.0.9" * 20)[:64]
