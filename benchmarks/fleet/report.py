"""The pure part of the fleet benchmark: medians, ratios to releasegate, the issue's targets
and the side-by-side table (no I/O; tested in tests/unit/test_fleet_bench_report.py)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

REFERENCE = "releasegate"
FLOOR = "floor"  # no tool: one ssh and one curl per host, the least work there is
# Issue 6: at the largest fleet releasegate takes <= 0.5x pyinfra's wall time and <= 0.2x
# ansible-core's; its largest fleet takes <= 2x the time of its smallest.
PEER_TARGETS = {"pyinfra": 0.5, "ansible": 0.2}
SCALE_TARGET = 2.0

# times[tool][hosts] = wall seconds of each run; errors[tool][hosts] = why a cell has none.
Times = Mapping[str, Mapping[int, Sequence[float]]]
Errors = Mapping[str, Mapping[int, str]]


@dataclass(frozen=True)
class Target:
    name: str
    value: float | None  # None: not measured (a tool or host count left out, or failed)
    limit: float
    allowed_s: float | None = None  # the wall time the target leaves releasegate
    floor_s: float | None = None  # what the floor took there: no tool can do it faster

    @property
    def ok(self) -> bool | None:
        return None if self.value is None else self.value <= self.limit

    @property
    def reachable(self) -> bool | None:
        """False when the target asks for less time than the floor took on this machine."""
        if self.allowed_s is None or self.floor_s is None:
            return None
        return self.allowed_s >= self.floor_s

    @property
    def floor_note(self) -> str:
        if self.reachable is None:
            return ""
        assert self.allowed_s is not None and self.floor_s is not None
        where = "above" if self.reachable else "BELOW"
        tail = "" if self.reachable else ": no tool can meet it on this machine"
        return f"it allows {self.allowed_s:.2f} s, {where} the floor's {self.floor_s:.2f} s{tail}"

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: "not measured"}[self.ok]


def median(times: Sequence[float]) -> float | None:
    return statistics.median(times) if times else None


def medians(times: Times, errors: Errors | None = None) -> dict[str, dict[int, float]]:
    """The median of every (tool, hosts) cell that has runs and no error: a cell where one
    run failed has no figure, whatever its other runs took."""
    errors = errors or {}
    out: dict[str, dict[int, float]] = {}
    for tool, cells in times.items():
        for hosts, runs in cells.items():
            if hosts in errors.get(tool, {}):
                continue
            value = median(runs)
            if value is not None:
                out.setdefault(tool, {})[hosts] = value
    return out


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def targets(med: Mapping[str, Mapping[int, float]], host_counts: Sequence[int]) -> list[Target]:
    """The issue's targets at the largest host count measured (and its smallest, for scale)."""
    if not host_counts:
        return []
    largest, smallest = max(host_counts), min(host_counts)
    ours = med.get(REFERENCE, {})
    floor = med.get(FLOOR, {}).get(largest)

    def target(name: str, base: float | None, limit: float) -> Target:
        """releasegate at the largest fleet against `limit` times `base`."""
        allowed = None if base is None else limit * base
        return Target(name, ratio(ours.get(largest), base), limit, allowed, floor)

    found = [
        target(f"{REFERENCE}/{peer} at {largest} hosts", med.get(peer, {}).get(largest), limit)
        for peer, limit in PEER_TARGETS.items()
    ]
    if largest != smallest:
        plural = "s" if smallest > 1 else ""
        name = f"{REFERENCE} {largest} hosts / {smallest} host{plural}"
        found.append(target(name, ours.get(smallest), SCALE_TARGET))
    return found


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def times_x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def table(
    times: Times,
    tools: Sequence[str],
    host_counts: Sequence[int],
    errors: Errors | None = None,
    with_targets: bool = True,
) -> list[str]:
    """hosts | one median per tool | releasegate / each peer; then the targets and the
    errors, unless with_targets is false (a second table of the same runs)."""
    errors = errors or {}
    med = medians(times, errors)
    peers = [t for t in tools if t != REFERENCE]
    header = ["hosts", *tools]
    if REFERENCE in tools:
        header += [f"rg/{peer}" for peer in peers]
    rows = [header]
    for hosts in host_counts:
        row = [str(hosts)]
        for tool in tools:
            if hosts in errors.get(tool, {}):
                row.append("ERROR")
            else:
                row.append(seconds(med.get(tool, {}).get(hosts)))
        if REFERENCE in tools:
            ours = med.get(REFERENCE, {}).get(hosts)
            row += [times_x(ratio(ours, med.get(peer, {}).get(hosts))) for peer in peers]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.rjust(width) if i else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if REFERENCE in tools and with_targets:
        lines.append("")
        for target in targets(med, host_counts):
            note = f"; {target.floor_note}" if target.floor_note else ""
            lines.append(
                f"{target.name}: {times_x(target.value)} (target <= {target.limit:g}x) "
                f"{target.verdict}{note}"
            )
    for tool in tools if with_targets else ():
        for hosts, why in sorted(errors.get(tool, {}).items()):
            lines.append(f"ERROR {tool} at {hosts} hosts: {why}")
    return lines
