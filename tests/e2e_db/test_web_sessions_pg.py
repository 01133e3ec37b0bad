"""Dashboard sessions on a team's ledger in the lab's PostgreSQL, through both adapters
(psycopg, what the CLI and `serve` use, and SQLAlchemy): revision 0005's table, a token good
across two connections (two servers), sign-out and idle sessions deleted, the table
bounded, and a sign-in recorded as a ledger action."""

from __future__ import annotations

import pytest

from releasegate.ledger import Ledger
from releasegate.web.sessions import SessionPolicy, Sessions, token_hash
from releasegate.web.signins import SIGN_IN, record
from tests.e2e_db.test_team_ledger import url_of
from tests.lab.db_fixtures import Database

pytestmark = pytest.mark.e2e


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("adapter", ["psycopg", "sqlalchemy"])
def test_sessions_on_postgres(
    pg_database: Database, monkeypatch: pytest.MonkeyPatch, adapter: str
) -> None:
    monkeypatch.setenv("RELEASEGATE_STATE_PASSWORD", pg_database.server.password)
    monkeypatch.setenv("PGPASSFILE", "/dev/null")
    clock = Clock()
    policy = SessionPolicy(lifetime_s=3600, idle_s=600, limit=3, clock=clock)
    url = url_of(pg_database)
    sqlalchemy = adapter == "sqlalchemy"
    with Ledger.open(url, force_sqlalchemy=sqlalchemy) as first:
        token, made = Sessions(first.database, policy).create("amy", 2)
        record(first, host="h", pid=1, action=SIGN_IN, status="success", user="amy",
               peer="127.0.0.1", notes="amy signed in from 127.0.0.1")  # fmt: skip
    with Ledger.open(url, force_sqlalchemy=sqlalchemy) as second:
        sessions = Sessions(second.database, policy)
        found = sessions.get(token)
        assert found is not None and (found.user, found.generation) == ("amy", 2)
        assert found.csrf == made.csrf
        assert pg_database.sql("SELECT token_hash FROM web_sessions") == token_hash(token)
        clock.now += 120  # used again: `seen` moves on
        assert sessions.get(token) is not None
        assert sessions.drop(token) and sessions.get(token) is None
        idle, _ = sessions.create("amy", 2)
        clock.now += 601
        assert sessions.get(idle) is None
        for i in range(5):
            clock.now += 1
            sessions.create(f"u{i}", 1)
        assert sessions.count() == 3
        [rec] = second.actions(stack="web", action=SIGN_IN)
        assert (rec.status, rec.user, rec.details["peer"]) == ("success", "amy", "127.0.0.1")
