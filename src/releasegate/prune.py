"""Which image tags of a stack may go: pure selection, tested as data."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from releasegate.retention import keep_newest


@dataclass(frozen=True)
class PruneChoice:
    remove: list[str]
    keep: list[str]
    unknown: list[str]  # tags releasegate never deployed: never touched


def select_prunable(
    present: Iterable[str], newest_first: Sequence[str], keep_n: int, protect: Iterable[str]
) -> PruneChoice:
    """Keep the newest `keep_n` deployed versions (ledger order, never image dates) and
    every protected one (running, verified, last good); remove the other deployed ones."""
    present = sorted(set(present))
    recent = keep_newest(newest_first, keep_n, protect)
    known = set(newest_first)
    rank = {v: i for i, v in enumerate(newest_first)}
    remove = sorted((t for t in present if t in known and t not in recent), key=rank.__getitem__)
    keep = sorted((t for t in present if t in recent), key=lambda t: rank.get(t, len(rank)))
    unknown = [t for t in present if t not in known]
    return PruneChoice(remove, keep, unknown)
