"""Gates act only on verified rows: prove a row is on the hash chain, cheaply.

A checkpoint (seq, hash) is a head the chain was verified up to. Its hash commits to every
row before it, so a row at or before a checkpoint is proven by re-hashing it and the rows
after it up to that checkpoint; rows after the newest checkpoint are verified up to the
ledger head, which becomes the next checkpoint. One checkpoint is kept per block of
BLOCK rows (the newest in it), so proving an old row re-hashes about a block, and a deploy
re-hashes only what was written since the last one.

The checkpoints live in the database: they make a gate fast, and catch a rewrite of rows
that were already checked, but someone who can rewrite the whole database can rewrite
them too. That is what an anchor outside the database is for (anchor.py).
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Collection
from contextlib import closing
from datetime import UTC, datetime

from releasegate.errors import Tampered
from releasegate.ledger.chain import CHAIN_RANGE, ZERO_HASH, verify_rows
from releasegate.ledger.db import Database
from releasegate.model import ChainReport

BLOCK = 256
_HEAD = "SELECT seq, hash FROM ledger_head WHERE id = 1"
_HINT = (
    "run `releasegate audit verify` (with --anchor FILE if you keep anchors) and restore the "
    "ledger from a copy you trust; nothing was changed"
)


class LedgerTampered(Tampered):
    """A row a gate relies on is not on the verified hash chain (exit 6)."""

    def __init__(self, seq: int | None, message: str, *, hint: str = _HINT) -> None:
        super().__init__(message, hint=hint)
        self.seq = seq


def read_head(db: Database) -> tuple[int, str]:
    """The ledger head; its absence is tampering (it is never deleted by releasegate)."""
    rows = db.execute(_HEAD)
    if not rows:
        raise LedgerTampered(
            None,
            "the ledger head row is missing (table ledger_head): rows removed at the end "
            "could not be detected, so the ledger is not trusted",
        )
    return int(rows[0][0]), str(rows[0][1])


def checkpoints(db: Database) -> list[tuple[int, str, str]]:
    """(seq, hash, ts) oldest first."""
    rows = db.execute("SELECT seq, hash, ts FROM chain_checkpoints ORDER BY seq")
    return [(int(s), str(h), str(t)) for s, h, t in rows]


def ensure_trusted(db: Database, seqs: Collection[int]) -> None:
    """Raise LedgerTampered unless the rows `seqs` and every row after the newest checkpoint
    are on the hash chain that ends at the ledger head; then checkpoint the head."""
    with db.read_transaction():
        head = read_head(db)
        marks = checkpoints(db)
        newest = (marks[-1][0], marks[-1][1]) if marks else (0, ZERO_HASH)
        when = marks[-1][2] if marks else ""
        block_ends = ensure_extends(db, newest, f"verified on {when}")
        for start, (cp_seq, cp_hash, cp_when) in _walks(seqs, marks):
            _check_span(db, start, (cp_seq, cp_hash), cp_when)
    if head[0] > newest[0]:
        save_checkpoints(db, [*block_ends, head])


def save_checkpoints(db: Database, verified: list[tuple[int, str]]) -> None:
    """Record verified heads, the newest of each block kept (a cache: a read-only database
    simply keeps none)."""
    ts = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        with db.write_transaction():
            for seq, hash_ in verified:
                if seq <= 0:
                    continue
                db.execute(
                    "DELETE FROM chain_checkpoints WHERE seq >= :lo AND seq <= :seq",
                    {"lo": seq - seq % BLOCK, "seq": seq},
                )
                db.execute(
                    "INSERT INTO chain_checkpoints (seq, hash, ts) VALUES (:seq, :hash, :ts)",
                    {"seq": seq, "hash": hash_, "ts": ts},
                )
    except _db_errors():
        pass


def check_checkpoints(db: Database, report: ChainReport) -> ChainReport:
    """After a full walk that passed: the chain must still hold every checkpoint's hash
    (a rewrite with recomputed hashes passes the walk but not this)."""
    if not report.ok:
        return report
    for seq, hash_, ts in checkpoints(db):
        if seq > report.head_seq:
            message = _cut(report.head_seq, seq, f"verified on {ts}")
            return _failed(report, "truncated", report.head_seq + 1, message)
        rows = db.execute("SELECT hash FROM entries WHERE seq = :seq", {"seq": seq})
        if not rows or str(rows[0][0]) != hash_:
            return _failed(report, "edited", seq, _rewritten(seq, f"verified on {ts}"))
    return report


def _walks(
    seqs: Collection[int], marks: list[tuple[int, str, str]]
) -> list[tuple[int, tuple[int, str, str]]]:
    """For rows at or before a checkpoint: (first row, checkpoint) walks, one per checkpoint."""
    starts: dict[int, int] = {}
    by_seq = {m[0]: m for m in marks}
    ordered = [m[0] for m in marks]
    for seq in seqs:
        target = next((cp for cp in ordered if cp >= seq), None)
        if target is not None:
            starts[target] = min(seq, starts.get(target, seq))
    return [(start, by_seq[cp]) for cp, start in sorted(starts.items())]


def ensure_extends(db: Database, point: tuple[int, str], what: str) -> list[tuple[int, str]]:
    """Raise LedgerTampered unless row point[0] still has hash point[1] and the chain from it
    verifies up to the ledger head. `what` says where the point came from ("verified on
    <time>", "anchored on <time>"). Returns the last row of each block passed."""
    head = read_head(db)
    seq, hash_ = point
    if seq > 0:
        if head[0] < seq:
            raise LedgerTampered(head[0] + 1, _cut(head[0], seq, what))
        rows = db.execute("SELECT hash FROM entries WHERE seq = :seq", {"seq": seq})
        if not rows:
            raise LedgerTampered(seq, f"row {seq} was removed after the chain was {what}")
        if str(rows[0][0]) != hash_:
            raise LedgerTampered(seq, _rewritten(seq, what))
    block_ends: list[tuple[int, str]] = []

    def keep(row_seq: int, row_hash: str) -> None:
        if row_seq % BLOCK == BLOCK - 1:
            block_ends.append((row_seq, row_hash))

    _raise_if_bad(_walk(db, seq + 1, head[0], (seq, hash_), head, "the ledger head", keep))
    return block_ends


def _check_span(db: Database, start: int, checkpoint: tuple[int, str], when: str) -> None:
    rows = db.execute("SELECT prev_hash FROM entries WHERE seq = :seq", {"seq": start})
    if not rows:
        raise LedgerTampered(
            start, f"row {start} was removed after the chain was verified on {when}"
        )
    after = (start - 1, str(rows[0][0]))
    end = f"the checkpoint verified on {when}"
    _raise_if_bad(_walk(db, start, checkpoint[0], after, checkpoint, end))


def _walk(
    db: Database,
    lo: int,
    hi: int,
    after: tuple[int, str],
    end: tuple[int, str],
    label: str,
    on_row: Callable[[int, str], None] | None = None,
) -> ChainReport:
    def seqs_with_hash(value: str) -> list[int]:
        rows = db.execute("SELECT seq FROM entries WHERE hash = :h ORDER BY seq", {"h": value})
        return [int(r[0]) for r in rows]

    with closing(db.stream(CHAIN_RANGE, {"lo": lo, "hi": hi})) as rows:
        return verify_rows(
            rows, end[0], end[1], seqs_with_hash, after=after, end=label, on_row=on_row
        )


def _raise_if_bad(report: ChainReport) -> None:
    if not report.ok:
        raise LedgerTampered(
            report.first_bad_seq, report.message or f"ledger row {report.first_bad_seq} is bad"
        )


def _cut(head_seq: int, seq: int, what: str) -> str:
    return (
        f"rows after {head_seq} were removed: the chain up to row {seq} was {what}, "
        f"and the ledger now ends at row {head_seq}"
    )


def _rewritten(seq: int, what: str) -> str:
    return (
        f"rows up to {seq} were rewritten after the chain was {what}: "
        f"row {seq}'s hash is not the one recorded then"
    )


def _failed(report: ChainReport, problem: str, seq: int, message: str) -> ChainReport:
    return ChainReport(
        ok=False,
        rows_checked=report.rows_checked,
        head_seq=report.head_seq,
        head_hash=report.head_hash,
        first_bad_seq=seq,
        problem=problem,
        message=message,
    )


def _db_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [sqlite3.Error]
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None:
        errors.append(sa_exc.SQLAlchemyError)
    return tuple(errors)
