"""The timing loops benchmarks/run.py and benchmarks/ledger_pg.py share: a command's wall
times, the demo app's deploys with releasegate's own share of each, medians and ratios."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from releasegate.demo import workspace

BIN = Path(sys.executable).parent / "releasegate"


def timed(
    argv: Sequence[str], cwd: Path, runs: int, env: dict[str, str] | None = None
) -> list[float]:
    """Wall times of `runs` runs of argv (one unmeasured warm-up run first)."""
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()}")
        if i:
            times.append(elapsed)
    return times


def median_ms(times: list[float]) -> float:
    return round(statistics.median(times) * 1000, 1)


def ratio(times: list[float], base: list[float]) -> float:
    """Median to median, two decimals."""
    return round(statistics.median(times) / statistics.median(base), 2)


def deploy_once(ws_root: Path, version: str) -> tuple[float, float]:
    """(wall seconds, seconds spent in the team's commands and smoke checks)."""
    start = time.perf_counter()
    done = subprocess.run(
        [str(BIN), "deploy", "web-staging", "staging", version, "--json"],
        cwd=ws_root, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"deploy {version} failed ({done.returncode}): {done.stdout}{done.stderr}")
    external = 0.0
    for line in done.stdout.splitlines():
        event = json.loads(line)
        if event.get("event") != "step_finished":
            continue
        data = event.get("data", {})
        if event["step"] in ("install", "migrate", "restart"):
            external += data.get("duration_s", 0.0)
        elif event["step"] == "smoke":
            external += sum(c["evidence"].get("duration_s", 0.0) for c in data.get("checks", []))
    return wall, external


def deploy_times(ws: workspace.Workspace, deploys: int) -> tuple[list[float], list[float]]:
    """(walls, commands + smoke checks) of `deploys` deploys of the demo's web-staging, v2
    and v1 in turn, after an unmeasured warm-up (first prepare, first start, the schema);
    the demo's services are stopped at the end."""
    try:
        deploy_once(ws.root, "v1")
        walls, externals = [], []
        for i in range(deploys):
            wall, external = deploy_once(ws.root, ("v2", "v1")[i % 2])
            walls.append(wall)
            externals.append(external)
        return walls, externals
    finally:
        workspace.stop_services(ws)


def overheads(walls: list[float], externals: list[float]) -> list[float]:
    """releasegate's own share of each deploy: its wall time minus the commands and checks."""
    return [w - e for w, e in zip(walls, externals, strict=True)]
