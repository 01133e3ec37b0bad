"""The hash chain: canonical JSON, row hashes, and the verifier.

Each row's hash covers its own content and the previous row's hash, so editing,
removing or reordering any row breaks the chain from that row on; ``ledger_head``
(updated in the same transaction as each append) catches rows removed at the end.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from releasegate.model import ChainReport

ZERO_HASH = "0" * 64

# Column order of the hashed content; the SELECT in store.py returns exactly these,
# followed by prev_hash and hash.
HASHED_COLUMNS = (
    "seq",
    "ts",
    "kind",
    "action_id",
    "parent_id",
    "stack",
    "env",
    "action",
    "version",
    "status",
    "notes",
    '"user"',
    "host",
    "pid",
    "forced",
    "reason",
    "details",
)
CHAIN_SELECT = f"SELECT {', '.join(HASHED_COLUMNS)}, prev_hash, hash FROM entries ORDER BY seq"  # noqa: S608
# The rows lo..hi, for walks that start from a checkpoint or an anchor.
CHAIN_RANGE = (
    f"SELECT {', '.join(HASHED_COLUMNS)}, prev_hash, hash FROM entries"  # noqa: S608
    " WHERE seq >= :lo AND seq <= :hi ORDER BY seq"
)


# One encoder reused: json.dumps() with options builds a new encoder per call (slow for
# verify_chain over 100k rows).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    return _CANONICAL.encode(value)


def row_hash(prev_hash: str, content: Sequence[Any]) -> str:
    """sha256 of [prev_hash, seq, ts, ..., details]; ``content`` is in HASHED_COLUMNS order."""
    import hashlib  # only writes and verify hash; read-only commands skip the import

    payload = canonical_json([prev_hash, *content])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _describe(row: Sequence[Any]) -> str:
    """'deploy web-prod v2, 2026-01-30 10:00:00 UTC' for messages a person reads."""
    ts, kind, stack, action, version, status = row[1], row[2], row[5], row[7], row[8], row[9]
    what = " ".join(p for p in (str(action), str(stack), str(version)) if p)
    if kind == "close":
        what += f" → {status}"
    when = str(ts).replace("T", " ")[:19] + " UTC"
    return f"{what}, {when}"


def verify_rows(
    rows: Iterable[Sequence[Any]],
    head_seq: int,
    head_hash: str,
    seqs_with_hash: Callable[[str], list[int]],
    *,
    after: tuple[int, str] = (0, ZERO_HASH),
    end: str = "the ledger head",
    on_row: Callable[[int, str], None] | None = None,
) -> ChainReport:
    """Walk ``rows`` (CHAIN_SELECT order) and report the first break of the chain.

    ``seqs_with_hash`` is only called once a row is already known to be bad, to tell
    a row moved from elsewhere (reordered) from a row whose content was changed.
    ``after`` is the (seq, hash) the first row must follow: a verified checkpoint, or
    the start of the chain; ``head_seq``/``head_hash`` are what ``end`` (the ledger head,
    a checkpoint, an anchor) says the walk must end on. ``on_row`` sees each good row.
    """
    checked = 0
    prev_seq, prev_hash = after
    bad: Sequence[Any] | None = None
    for row in rows:
        content, stored_prev, stored_hash = row[:-2], row[-2], row[-1]
        seq = int(content[0])
        content_ok = row_hash(stored_prev, content) == stored_hash
        link_ok = stored_prev == prev_hash
        if not (content_ok and link_ok and seq == prev_seq + 1):
            bad = row
            break
        checked += 1
        prev_seq, prev_hash = seq, stored_hash
        if on_row is not None:
            on_row(seq, stored_hash)

    def report(problem: str, first_bad: int, message: str) -> ChainReport:
        return ChainReport(
            ok=False,
            rows_checked=checked,
            head_seq=head_seq,
            head_hash=head_hash,
            first_bad_seq=first_bad,
            problem=problem,
            message=message,
        )

    if bad is not None:
        content, stored_prev, stored_hash = bad[:-2], bad[-2], bad[-1]
        seq = int(content[0])
        desc = _describe(content)
        content_ok = row_hash(stored_prev, content) == stored_hash
        if content_ok and seq != prev_seq + 1:
            missing = _span(prev_seq + 1, seq - 1)
            return report(
                "removed",
                prev_seq + 1,
                f"{missing} removed: row {seq} ({desc}) points to a row that is no longer there",
            )
        if content_ok:
            return report(
                "reordered",
                seq,
                f"row {seq} ({desc}) is out of order: it does not follow row {prev_seq}",
            )
        if stored_prev != prev_hash:
            origin = [s for s in seqs_with_hash(str(stored_prev)) if s != prev_seq]
            if origin:
                return report(
                    "reordered",
                    seq,
                    f"row {seq} ({desc}) was moved: it was written right after "
                    f"the row now at {origin[0]}",
                )
        return report("edited", seq, f"row {seq} was edited after it was written ({desc})")

    if prev_seq < head_seq:
        return report(
            "truncated",
            prev_seq + 1,
            f"{_span(prev_seq + 1, head_seq)} at the end removed: "
            f"{end} says the last row is {head_seq}, the table ends at {prev_seq}",
        )
    if prev_seq > head_seq:
        return report(
            "edited",
            head_seq + 1,
            f"{_span(head_seq + 1, prev_seq)} added outside releasegate: "
            f"{end} says the last row is {head_seq}",
        )
    if prev_hash != head_hash:
        return report(
            "edited",
            prev_seq,
            f"row {prev_seq} was replaced after it was written: "
            f"its hash is not the one recorded in {end}",
        )
    return ChainReport(
        ok=True,
        rows_checked=checked,
        head_seq=head_seq,
        head_hash=head_hash,
        message=f"all {checked} rows verified; the chain ends at row {head_seq} "
        f"(hash {head_hash[:12]}…)",
    )


def _span(first: int, last: int) -> str:
    return f"row {first} was" if first == last else f"rows {first}-{last} were"
