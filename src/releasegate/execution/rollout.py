"""Pure rollout planning for a stack's hosts (one host is one batch): which hosts go in
which batch, how many may fail, how many are worked on at once. Tested as data."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from releasegate.errors import BadInput

# Descriptors kept free per run for the ledger, logs, pipes and the HTTP client's pool.
RESERVED_FDS = 64
# Each host in flight holds its SSH socket and, while smoked, an HTTP socket.
FDS_PER_HOST = 2


@dataclass(frozen=True)
class Rollout:
    strategy: str
    batches: tuple[tuple[str, ...], ...]
    allowed_failures: int  # hosts that may fail before the whole fleet goes back
    parallel: int  # hosts worked on at once
    pause_s: float

    def describe(self) -> str:
        sizes = "+".join(str(len(b)) for b in self.batches)
        pause = (
            f", {self.pause_s:g}s between batches" if self.pause_s and len(self.batches) > 1 else ""
        )
        return (
            f"{self.strategy}: {len(self.batches)} batch(es) of {sizes} host(s), "
            f"{self.parallel} at once{pause}; the whole fleet goes back after "
            f"{self.allowed_failures + 1} failed host(s)"
        )


# A share of the hosts: 0% to 100% (the config's schema and the command line use this too).
SHARE_PATTERN = r"(100|[1-9]?[0-9])%"


def parse_share(text: str) -> int | str:
    """Text "3" -> 3 and "25%" -> "25%"; anything else is a ValueError."""
    text = text.strip()
    if re.fullmatch(r"\d{1,6}", text):
        return int(text)
    if re.fullmatch(SHARE_PATTERN, text):
        return text
    raise ValueError(f"{text!r}: expected a number of hosts or a share like 25%")


def share(value: int | str, total: int) -> int:
    """3 -> 3; "10%" -> 10% of total, rounded down (so "10%" of 5 hosts is 0)."""
    if isinstance(value, int):
        return value
    try:
        parsed = parse_share(value)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    if isinstance(parsed, int):
        return parsed
    return math.floor(total * int(parsed[:-1]) / 100)


def batch_size(value: int | str, total: int) -> int:
    """A batch is at least one host; "25%" of 10 hosts is 2 (rounded down, at least 1)."""
    return max(1, min(total, share(value, total))) if total else 0


def batches(
    hosts: Sequence[str], strategy: str, *, batch: int | str = 1, canary: int = 1
) -> list[list[str]]:
    """`all`: one batch; `rolling`: batches of `batch` hosts (or a share); `canary`: the first
    `canary` hosts, then every other host at once."""
    hosts = list(hosts)
    if not hosts:
        return []
    if strategy == "all":
        return [hosts]
    if strategy == "canary":
        first = max(1, min(canary, len(hosts)))
        return [hosts[:first], hosts[first:]] if hosts[first:] else [hosts]
    if strategy == "rolling":
        size = batch_size(batch, len(hosts))
        return [hosts[i : i + size] for i in range(0, len(hosts), size)]
    raise BadInput(f"unknown strategy {strategy!r}: expected all, rolling or canary")


def parallel_cap(wanted: int, fd_limit: int) -> int:
    """`--parallel`, capped so the open hosts never exhaust the open-file limit."""
    room = max(1, (fd_limit - RESERVED_FDS) // FDS_PER_HOST)
    return max(1, min(wanted, room))


def fd_limit() -> int:
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def plan_rollout(
    hosts: Sequence[str],
    *,
    strategy: str,
    batch: int | str,
    canary: int,
    max_failures: int | str,
    parallel: int,
    pause_s: float,
    open_files: int | None = None,
) -> Rollout:
    return Rollout(
        strategy=strategy,
        batches=tuple(tuple(b) for b in batches(hosts, strategy, batch=batch, canary=canary)),
        allowed_failures=min(share(max_failures, len(hosts)), max(0, len(hosts) - 1)),
        parallel=parallel_cap(parallel, open_files if open_files is not None else fd_limit()),
        pause_s=pause_s,
    )
