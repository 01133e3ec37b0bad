"""The closing word of a test run on the labs that were down: how many tests each one's
absence skipped, and the command that brings it up."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

# Every lab's skip says "<Name> lab unavailable: <why> (... bash scripts/lab/<x>.sh up)"
# (tests/lab/{docker,db,ssh}.py `unavailable`).
_LAB = re.compile(r"\b(?P<name>[\w-]+) lab unavailable:")
_UP = re.compile(r"bash scripts/lab/[\w-]+\.sh up")


def lab_skips(reasons: Iterable[str]) -> list[str]:
    """Summary lines for the skip reasons that name a lab; none when no lab was missed.
    A reason naming several commands (the docker hosts lab over the SSH lab) lists each."""
    counts: Counter[tuple[str, tuple[str, ...]]] = Counter()
    for reason in reasons:
        lab = _LAB.search(reason)
        if lab is None:
            continue
        ups = tuple(dict.fromkeys(_UP.findall(reason)))  # in order, once each
        counts[(lab["name"], ups)] += 1
    if not counts:
        return []
    total = sum(counts.values())
    lines = [f"{total} test(s) skipped because a lab was down:"]
    for (name, ups), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        how = " && ".join(ups) if ups else "see scripts/lab/"
        lines.append(f"  {n:>4}  {name} lab: bring it up with `{how}`")
    lines.append("(bash .ci/run brings every lab up, then runs this suite)")
    return lines
