"""Gates read only rows proven on the hash chain: forged rows raise LedgerTampered (exit 6)
naming the row, and a checkpoint keeps the proof to the rows written since the last one."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from releasegate.errors import BadInput, ExitCode
from releasegate.ledger import Ledger, chain
from releasegate.ledger.chain import HASHED_COLUMNS, row_hash
from releasegate.ledger.trust import BLOCK, LedgerTampered

WHO = {"user": "alice", "host": "build1", "pid": 4242}


@pytest.fixture(params=["sqlite3", "sqlalchemy"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    path = tmp_path / "state.db"
    return str(path) if request.param == "sqlite3" else f"sqlite+pysqlite:///{path}"


@pytest.fixture
def ledger(url: str) -> Iterator[Ledger]:
    with Ledger.open(url) as led:
        yield led


def db_file(url: str) -> str:
    return url.removeprefix("sqlite+pysqlite:///")


def verify(led: Ledger, stack: str, version: str) -> int:
    led.mark(stack=stack, env="staging", action="verify", version=version, **WHO)
    return led.head()[0]


def deploy(led: Ledger, stack: str, version: str) -> int:
    aid = led.begin_action(stack=stack, env="prod", action="deploy", version=version, **WHO)
    led.end_action(aid, "success")
    return led.head()[0]


def sql(url: str, statement: str, *params: object) -> None:
    with sqlite3.connect(db_file(url)) as conn:
        conn.execute(statement, params)


def rewrite_from(url: str, seq: int, **changes: Any) -> None:
    """Edit row `seq` and recompute every hash after it and the head: a forger who knows
    the hashing (issue 16, case 16)."""
    cols = ", ".join(HASHED_COLUMNS)
    with sqlite3.connect(db_file(url)) as conn:
        for key, value in changes.items():
            conn.execute(f"UPDATE entries SET {key} = ? WHERE seq = ?", (value, seq))
        prev = conn.execute("SELECT prev_hash FROM entries WHERE seq = ?", (seq,)).fetchone()[0]
        rows = conn.execute(f"SELECT {cols} FROM entries WHERE seq >= ? ORDER BY seq", (seq,))
        for content in rows.fetchall():
            new = row_hash(prev, content)
            conn.execute(
                "UPDATE entries SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, new, content[0])
            )
            prev = new
        last = conn.execute("SELECT MAX(seq) FROM entries").fetchone()[0]
        conn.execute("UPDATE ledger_head SET seq = ?, hash = ? WHERE id = 1", (last, prev))


def test_untouched_rows_are_returned_and_the_head_checkpointed(ledger: Ledger, url: str) -> None:
    deploy(ledger, "web-staging", "v1")
    verify(ledger, "web-staging", "v1")
    assert ledger.verified_version("web-staging") == "v1"
    assert ledger.good_versions("web-staging") == ["v1"]
    with sqlite3.connect(db_file(url)) as conn:
        assert conn.execute("SELECT seq, hash FROM chain_checkpoints").fetchall() == [ledger.head()]


@pytest.mark.parametrize("checkpoint_after", [False, True])
def test_an_edited_verify_row_is_named(ledger: Ledger, url: str, checkpoint_after: bool) -> None:
    ledger.verified_version("web-staging")  # a checkpoint before the row
    seq = verify(ledger, "web-staging", "v1")
    deploy(ledger, "web-staging", "v1")
    if checkpoint_after:  # the row is older than the newest checkpoint
        assert ledger.verified_version("web-staging") == "v1"
    sql(url, "UPDATE entries SET version = 'v2' WHERE seq = ?", seq)
    with pytest.raises(LedgerTampered) as caught:
        ledger.verified_version("web-staging")
    assert caught.value.seq == seq
    assert caught.value.exit_code == ExitCode.TAMPERED
    assert f"row {seq} was edited after it was written (verify web-staging v2" in str(caught.value)


def test_a_rewrite_with_recomputed_hashes_is_caught_by_the_checkpoint(
    ledger: Ledger, url: str
) -> None:
    seq = verify(ledger, "web-staging", "v1")
    deploy(ledger, "web-prod", "v1")
    assert ledger.verified_version("web-staging") == "v1"  # checkpoint at the head
    rewrite_from(url, seq, version="v9")
    with pytest.raises(LedgerTampered, match="rewritten after the chain was verified"):
        ledger.verified_version("web-staging")
    report = ledger.verify_chain()  # every link holds; the checkpoint does not
    assert not report.ok and "rewritten" in report.message


def test_a_cut_tail_below_the_checkpoint_is_caught(ledger: Ledger, url: str) -> None:
    verify(ledger, "web-staging", "v1")
    cut_from = verify(ledger, "web-staging", "v2")
    assert ledger.verified_version("web-staging") == "v2"
    sql(url, "DELETE FROM entries WHERE seq >= ?", cut_from)
    with sqlite3.connect(db_file(url)) as conn:
        prev = conn.execute("SELECT hash FROM entries WHERE seq = ?", (cut_from - 1,)).fetchone()
        conn.execute("UPDATE ledger_head SET seq = ?, hash = ?", (cut_from - 1, prev[0]))
    with pytest.raises(LedgerTampered, match=f"rows after {cut_from - 1} were removed"):
        ledger.verified_version("web-staging")  # would otherwise answer v1


def test_a_missing_head_row_is_tampering(ledger: Ledger, url: str) -> None:
    verify(ledger, "web-staging", "v1")
    sql(url, "DELETE FROM ledger_head")
    report = ledger.verify_chain()
    assert not report.ok and "ledger head row is missing" in report.message
    with pytest.raises(LedgerTampered):
        ledger.head()
    with pytest.raises(LedgerTampered):
        ledger.verified_version("web-staging")


def test_only_new_rows_and_about_a_block_are_rehashed(
    ledger: Ledger, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = verify(ledger, "web-staging", "v0")
    for i in range(700):  # 1401 rows: several blocks
        deploy(ledger, "web-prod", f"v{i}")
    calls = {"n": 0}
    real = chain.row_hash

    def counting(prev: str, content: Any) -> str:
        calls["n"] += 1
        return real(prev, content)

    monkeypatch.setattr(chain, "row_hash", counting)
    ledger.verified_version("web-prod")  # first check: the whole chain, once
    assert calls["n"] >= 1401
    calls["n"] = 0
    for i in range(5):
        deploy(ledger, "web-prod", f"w{i}")
    assert ledger.good_versions("web-prod", limit=2) == ["w4", "w3"]
    assert calls["n"] <= 12  # the 10 rows written since, not the ledger again
    calls["n"] = 0
    assert ledger.verified_version("web-staging") == "v0"  # row 1: proven up to its block's end
    assert old == 1 and calls["n"] <= BLOCK + 1


def test_read_only_open_refuses_a_missing_ledger(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "state.db"
    with pytest.raises(BadInput, match="no ledger at"):
        Ledger.open(str(missing), create=False)
    assert not missing.parent.exists()
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(BadInput, match="no ledger at"):
        Ledger.open(str(tmp_path / "empty.db"), create=False)
    Ledger.open(str(missing)).close()  # a writer creates it
    Ledger.open(str(missing), create=False).close()
