"""The hash chain names the first row that was edited, removed, reordered or cut off."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from releasegate.ledger import Ledger
from releasegate.ledger.chain import ZERO_HASH, canonical_json, row_hash
from releasegate.ledger.schema import HEAD_REVISION, alembic_config

WHO = {"user": "alice", "host": "build1", "pid": 4242}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    """A ledger of 6 rows: three deploys, each an open and a close row."""
    path = tmp_path / "state.db"
    with Ledger.open(str(path)) as led:
        for version in ("v1", "v2", "v3"):
            aid = led.begin_action(stack="web", env="prod", action="deploy", version=version, **WHO)
            led.end_action(aid, "success")
    yield path


def sql(path: Path, statement: str, *params: object) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(statement, params)
    conn.close()


def verify(path: Path):  # type: ignore[no-untyped-def]
    with Ledger.open(str(path)) as led:
        return led.verify_chain()


def test_untouched_chain_verifies(db: Path) -> None:
    report = verify(db)
    assert report.ok and report.rows_checked == 6 and report.first_bad_seq is None


def test_edited_row_is_named(db: Path) -> None:
    sql(db, "UPDATE entries SET version = 'v9' WHERE seq = 3")
    report = verify(db)
    assert not report.ok
    assert (report.problem, report.first_bad_seq, report.rows_checked) == ("edited", 3, 2)
    assert "row 3 was edited" in report.message


def test_edited_status_is_caught_too(db: Path) -> None:
    sql(db, "UPDATE entries SET status = 'fail' WHERE seq = 6")
    report = verify(db)
    assert (report.problem, report.first_bad_seq) == ("edited", 6)


def test_rehashing_the_edited_row_breaks_the_next_link(db: Path) -> None:
    # A careful forger recomputes the edited row's own hash; the next row still
    # points at the old one.
    conn = sqlite3.connect(db)
    cols = (
        'seq, ts, kind, action_id, parent_id, stack, env, action, version, status, notes, "user",'
        " host, pid, forced, reason, details, prev_hash"
    )
    row = list(conn.execute(f"SELECT {cols} FROM entries WHERE seq = 3").fetchone())
    row[8] = "v9"
    digest = row_hash(row[-1], row[:-1])
    with conn:
        conn.execute("UPDATE entries SET version = 'v9', hash = ? WHERE seq = 3", (digest,))
    conn.close()
    report = verify(db)
    assert not report.ok and report.first_bad_seq == 4


def test_removed_row_is_named(db: Path) -> None:
    sql(db, "DELETE FROM entries WHERE seq = 4")
    report = verify(db)
    assert (report.problem, report.first_bad_seq) == ("removed", 4)
    assert "row 4 was removed" in report.message


def test_removed_rows_at_the_end_are_caught_by_the_head(db: Path) -> None:
    sql(db, "DELETE FROM entries WHERE seq >= 5")
    report = verify(db)
    assert (report.problem, report.first_bad_seq) == ("truncated", 5)
    assert "rows 5-6 were" in report.message


def test_reordered_rows_are_named(db: Path) -> None:
    # Swap rows 3 and 5 by renumbering them.
    sql(db, "UPDATE entries SET seq = -3 WHERE seq = 3")
    sql(db, "UPDATE entries SET seq = 3 WHERE seq = 5")
    sql(db, "UPDATE entries SET seq = 5 WHERE seq = -3")
    report = verify(db)
    assert not report.ok and report.first_bad_seq == 3
    assert report.problem in ("reordered", "edited")


def test_a_row_added_outside_releasegate_is_caught(db: Path) -> None:
    conn = sqlite3.connect(db)
    last = conn.execute("SELECT hash FROM entries WHERE seq = 6").fetchone()[0]
    content = [7, "2026-01-30T10:00:00+00:00", "mark", "x" * 32, None, "web", "prod", "verify",
               "v9", "success", "", "mallory", "h", 1, 0, "", canonical_json({})]  # fmt: skip
    with conn:
        conn.execute(
            "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*content, last, row_hash(last, content)),
        )
    conn.close()
    report = verify(db)
    assert not report.ok and report.first_bad_seq == 7


def test_row_hash_is_stable_and_sensitive() -> None:
    content = [1, "t", "open", "a", None, "web", "prod", "deploy", "v1", "running", "", "u", "h",
               1, 0, "", "{}"]  # fmt: skip
    first = row_hash(ZERO_HASH, content)
    assert first == row_hash(ZERO_HASH, list(content)) and len(first) == 64
    assert row_hash(ZERO_HASH, [*content[:8], "v2", *content[9:]]) != first
    assert row_hash("1" * 64, content) != first


def test_schema_head_matches_the_migrations() -> None:
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION
