"""The dry-run-equals-run check: the steps a `--dry-run` prints (as JSON) against the steps
the real run recorded, for any CLI runner."""

from __future__ import annotations

import json
from typing import Any


def last_json(stdout: str, key: str) -> Any:
    """The last JSON line of a `--json` output that holds `key`."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            data = json.loads(line)
            if key in data:
                return data[key]
    raise AssertionError(f"no {key!r} line in:\n{stdout}")


def planned(stdout: str) -> list[tuple[str, tuple[str, ...]]]:
    """(step, hosts) of every step of a dry run's plan(s), but the lock (taken before the
    run's record opens)."""
    data = None
    for line in stdout.splitlines():
        if line.startswith("{"):
            data = json.loads(line)
    assert data is not None, stdout
    plans = data["plans"] if "plans" in data else [data["plan"]]
    return [
        (s["name"], tuple(s["details"].get("hosts", ())))
        for p in plans
        for s in p["steps"]
        if s["name"] != "lock"
    ]


def recorded(result: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """(step, hosts) of every step the run recorded, with the hosts each host step ran on."""
    steps = []
    for s in result["steps"]:
        hosts = s.get("evidence", {}).get("batch") or ()
        steps.append((s["step"], tuple(hosts)))
    return steps


def same_steps(
    plan: list[tuple[str, tuple[str, ...]]], run: list[tuple[str, tuple[str, ...]]]
) -> bool:
    """Names in order; hosts where the run recorded them (one host records no batch)."""
    if [n for n, _ in plan] != [n for n, _ in run]:
        return False
    return all(not r or p == r for (_, p), (_, r) in zip(plan, run, strict=True))
