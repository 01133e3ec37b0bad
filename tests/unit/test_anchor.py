"""Anchor files as data: what is accepted, which anchor of a folder counts, and the proof
against a ledger (without signatures: those are in tests/e2e/test_ledger_audit.py)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from releasegate.errors import BadInput, Tampered
from releasegate.ledger import Ledger
from releasegate.ledger.anchor import (
    FORMAT,
    Anchor,
    anchor_after_run,
    check,
    check_configured_anchor,
    newest_in,
    read_anchor,
    to_text,
    write_anchor,
)

WHO = {"user": "alice", "host": "build1", "pid": 4242}
GOOD = {"format": FORMAT, "seq": 3, "hash": "a" * 64, "time": "2026-12-03T10:00:00Z"}


def mark(led: Ledger, version: str) -> None:
    led.mark(stack="web", env="staging", action="verify", version=version, **WHO)


def test_round_trip(tmp_path: Path) -> None:
    anchor = Anchor(7, "b" * 64, "2026-12-03T10:00:00Z")
    path = tmp_path / "a.json"
    path.write_text(to_text(anchor))
    assert read_anchor(path) == anchor


@pytest.mark.parametrize(
    "change",
    [
        {"format": "other/1"},
        {"seq": -1},
        {"seq": "3"},
        {"seq": True},
        {"hash": "A" * 64},
        {"hash": "a" * 63},
        {"time": 5},
    ],
)
def test_anything_else_is_not_an_anchor(tmp_path: Path, change: dict[str, object]) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps({**GOOD, **change}))
    with pytest.raises(BadInput, match="is not a releasegate anchor"):
        read_anchor(path)


def test_a_huge_or_broken_file_is_not_an_anchor(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps({**GOOD, "pad": "x" * 10_000}))
    with pytest.raises(BadInput):
        read_anchor(path)
    path.write_text("{not json")
    with pytest.raises(BadInput):
        read_anchor(path)


def test_the_newest_anchor_of_a_folder_has_the_highest_seq(tmp_path: Path) -> None:
    for seq in (5, 12, 9):
        (tmp_path / f"z{seq}.json").write_text(json.dumps({**GOOD, "seq": seq}))
    (tmp_path / "other.json").write_text("{}")
    assert newest_in(tmp_path).name == "z12.json"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInput, match="no releasegate anchor"):
        newest_in(empty)


def test_write_then_check_then_tamper(tmp_path: Path) -> None:
    folder = tmp_path / "anchors"
    folder.mkdir()
    with Ledger.open(str(tmp_path / "state.db")) as led:
        mark(led, "v1")
        first = write_anchor(led, folder)
        assert first.path.parent == folder and first.signature is None
        assert first.anchor.seq == 1 and oct(first.path.stat().st_mode)[-3:] == "644"
        mark(led, "v2")
        assert check(led, folder).anchor == first.anchor  # the ledger grew: it extends it
        with sqlite3.connect(tmp_path / "state.db") as conn:
            conn.execute("DELETE FROM entries WHERE seq = 1")
            conn.execute("UPDATE entries SET seq = 1, prev_hash = ? WHERE seq = 2", ("0" * 64,))
        with pytest.raises(Tampered, match="rewritten after the chain was anchored on"):
            check(led, folder)
        with pytest.raises(Tampered):  # and no new anchor blesses it
            write_anchor(led, folder)
    assert [p.name for p in folder.iterdir()] == [first.path.name]


def test_anchor_after_run_is_a_no_op_unless_configured(tmp_path: Path) -> None:
    class Audit:
        anchor: Path | None = None
        sign_key: Path | None = None

    class Config:
        audit = Audit()

    with Ledger.open(str(tmp_path / "state.db")) as led:
        mark(led, "v1")
        assert anchor_after_run(Config(), led) is None
        Config.audit.anchor = tmp_path / "head.json"
        assert (anchor_after_run(Config(), led) or "").startswith("ledger anchored: row 1 ")
        Config.audit.anchor = tmp_path / "missing" / "head.json"
        assert "could not anchor the ledger" in (anchor_after_run(Config(), led) or "")


def test_a_run_can_check_the_configured_anchor_first(tmp_path: Path) -> None:
    class Audit:
        anchor: Path | None = tmp_path / "head.json"
        sign_key: Path | None = None

    class Config:
        audit = Audit()

    with Ledger.open(str(tmp_path / "state.db")) as led:
        mark(led, "v1")
        assert check_configured_anchor(Config(), led) is None  # no anchor yet
        anchor_after_run(Config(), led)
        mark(led, "v2")
        checked = check_configured_anchor(Config(), led)
        assert checked is not None and checked.anchor.seq == 1
        with sqlite3.connect(tmp_path / "state.db") as conn:
            conn.execute("DELETE FROM entries")
            conn.execute("UPDATE ledger_head SET seq = 0, hash = ?", ("0" * 64,))
        with pytest.raises(Tampered, match="rows after 0 were removed"):
            check_configured_anchor(Config(), led)


def test_named_anchors_are_found_by_their_name(tmp_path: Path) -> None:
    for seq in (9, 120):
        name = f"anchor-{seq:08d}-2026-12-03T100000Z.json"
        (tmp_path / name).write_text(json.dumps({**GOOD, "seq": seq}))
    (tmp_path / "anchor-00000010-2026-12-03T100000Z.json").write_text("garbage: never read")
    (tmp_path / "hand-made.json").write_text(json.dumps({**GOOD, "seq": 50}))
    assert newest_in(tmp_path).name == "anchor-00000120-2026-12-03T100000Z.json"
    (tmp_path / "hand-made.json").write_text(json.dumps({**GOOD, "seq": 500}))
    assert newest_in(tmp_path).name == "hand-made.json"
