"""The one retention rule behind release cleanup, image prune and backup retention: keep
the newest N (in an order the caller trusts: the ledger's, never file dates) and every
protected one (running, verified, last good, or a backup a release depends on)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def keep_newest(newest_first: Sequence[K], n: int, protect: Iterable[K]) -> set[K]:
    """The items to keep: the first `n` of `newest_first`, plus every protected one."""
    return set(newest_first[: max(0, n)]) | set(protect)
