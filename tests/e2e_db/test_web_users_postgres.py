"""Dashboard users and API tokens in a PostgreSQL state database (migration 0003 there too)."""

from __future__ import annotations

import pytest

from releasegate.identity import Actor
from releasegate.ledger import Ledger
from releasegate.users import Users
from tests.e2e_db.test_ledger_postgres import ledger_url
from tests.lab.db_fixtures import Database

pytestmark = pytest.mark.e2e
BY = Actor(user="root", host="h", pid=1, pid_start="")


def test_users_and_tokens_on_postgres(pg_database: Database) -> None:
    with Ledger.open(ledger_url(pg_database)) as ledger:
        users = Users(ledger)
        users.add("amy", "a long password", "approver", by=BY)
        assert users.authenticate("amy", "a long password") is not None
        assert users.authenticate("amy", "wrong password!") is None
        token = users.new_token("amy", "ci", by=BY)
        owner = users.token_user(token)
        assert owner is not None and owner.name == "amy"
        assert users.revoke_tokens("amy", by=BY) == 1
        assert users.token_user(token) is None
        users.remove("amy", by=BY)
        assert users.all() == []
        marks = ledger.database.execute(
            "SELECT action FROM entries WHERE stack = 'web' ORDER BY seq"
        )
        assert [m[0] for m in marks] == ["user-add", "token-add", "token-revoke", "user-remove"]
