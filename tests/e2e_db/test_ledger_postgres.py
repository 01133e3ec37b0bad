"""The ledger's proofs on a real PostgreSQL (a team's shared ledger): gates refuse a forged
row, checkpoints are kept, anchors are checked, and a read-only open refuses a database that
holds no ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from releasegate.errors import BadInput
from releasegate.ledger import Ledger
from releasegate.ledger.anchor import check, write_anchor
from releasegate.ledger.trust import LedgerTampered
from tests.lab.db_fixtures import Database

pytestmark = pytest.mark.e2e
WHO = {"user": "alice", "host": "build1", "pid": 4242}


def ledger_url(db: Database) -> str:
    return db.url(with_password=True).replace("postgresql://", "postgresql+psycopg://", 1)


def test_gates_and_anchors_on_postgres(pg_database: Database, tmp_path: Path) -> None:
    url = ledger_url(pg_database)
    with pytest.raises(BadInput, match="no ledger at"):
        Ledger.open(url, create=False)  # an empty database is not a ledger
    with Ledger.open(url) as led:
        led.mark(stack="web-staging", env="staging", action="verify", version="v1", **WHO)
        assert led.verified_version("web-staging") == "v1"
        written = write_anchor(led, tmp_path)
        led.mark(stack="web-staging", env="staging", action="verify", version="v2", **WHO)
        assert led.verified_version("web-staging") == "v2"
        assert check(led, tmp_path).anchor == written.anchor
    assert pg_database.sql("SELECT count(*) FROM chain_checkpoints").strip() == "1"
    pg_database.sql("UPDATE entries SET version = 'v9' WHERE seq = 2")
    with Ledger.open(url, create=False) as led:
        with pytest.raises(LedgerTampered) as caught:
            led.verified_version("web-staging")
        assert caught.value.seq == 2
        assert not led.verify_chain().ok
