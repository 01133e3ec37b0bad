"""releasegate's benchmarks, side by side in one run.

    python benchmarks/run.py [--runs N] [--events N] [--deploys N] [--json]

1. startup:  `releasegate --version` against a bare `python -c pass` (the floor).
2. history:  `history --last 20` and `history --stack S --format log` on a ledger of
             --events recorded actions, against the seed's own way of reading its log
             (`grep "| S |" deploy-history.log`, on the same events as a text file).
3. deploy:   a real deploy of the demo app; its own overhead is the wall time minus the
             time of the team's commands (install/migrate/restart) and smoke checks.

Medians are reported with the targets from issue 2; the script exits non-zero when one
is missed, so a regression is visible, but the test suite never asserts on timings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from timing import BIN, deploy_times, median_ms, overheads, ratio, timed

from releasegate.demo import workspace
from releasegate.ledger import Ledger
from releasegate.ledger.chain import canonical_json, row_hash
from releasegate.ledger.export import format_log_line
from releasegate.model import ActionRecord

STACKS = [
    f"{app}-{env}" for app in ("web", "api", "shop", "crm", "jobs") for env in ("staging", "prod")
]
TARGETS = {"startup": 0.150, "history_last20": 0.300, "history_log": 0.300, "deploy_overhead": 0.5}


# -- 1. startup ------------------------------------------------------------------------


def bench_startup(root: Path, runs: int) -> dict[str, Any]:
    floor = timed([sys.executable, "-c", "pass"], root, runs)
    ours = timed([str(BIN), "--version"], root, runs)
    return {
        "python -c pass": median_ms(floor),
        "releasegate --version": median_ms(ours),
        "ratio": ratio(ours, floor),
        "target_ms": TARGETS["startup"] * 1000,
        "ok": statistics.median(ours) <= TARGETS["startup"],
    }


# -- 2. history ------------------------------------------------------------------------


def fill_ledger(db_path: Path, events: int) -> list[ActionRecord]:
    """Write `events` closed actions (open + close rows, a valid hash chain) in one
    transaction, much faster than the Ledger API's one-transaction-per-row, and return
    them as records for the seed-format log file."""
    Ledger.open(f"sqlite:///{db_path}").close()  # the schema, through the real migrations
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    seq, prev = conn.execute("SELECT seq, hash FROM ledger_head WHERE id = 1").fetchone()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    actions = ("deploy", "deploy", "deploy", "rollback", "preflight", "smoke")
    statuses = ("success",) * 8 + ("fail", "refused")
    rows, records = [], []
    for i in range(events):
        stack = STACKS[i % len(STACKS)]
        env = stack.rsplit("-", 1)[1]
        action = actions[i % len(actions)]
        status = statuses[(i // 7) % len(statuses)]
        version = f"sha-{i:07x}"
        forced = int(i % 97 == 0)
        reason = "hotfix INC-42" if forced else ""
        notes = "smoke failed: health" if status == "fail" else ""
        opened = start + timedelta(seconds=60 * i)
        closed = opened + timedelta(seconds=20)
        action_id = f"{i:032x}"
        for kind, ts, st in (("open", opened, "running"), ("close", closed, status)):
            seq += 1
            content = (seq, ts.isoformat(timespec="microseconds"), kind, action_id, None,
                       stack, env, action, version, st, notes, "bench", "bench-host", 4242,
                       forced, reason, canonical_json({}))  # fmt: skip
            digest = row_hash(prev, content)
            rows.append((*content, prev, digest))
            prev = digest
        records.append(ActionRecord(
            action_id=action_id, parent_id=None, seq=seq - 1, started_at=opened, ended_at=closed,
            stack=stack, env=env, action=action, version=version, status=status, notes=notes,
            user="bench", host="bench-host", pid=4242, forced=bool(forced), reason=reason,
            details={},
        ))  # fmt: skip
    conn.executemany(
        "INSERT INTO entries (seq, ts, kind, action_id, parent_id, stack, env, action, version,"
        ' status, notes, "user", host, pid, forced, reason, details, prev_hash, hash)'
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.execute("UPDATE ledger_head SET seq = ?, hash = ? WHERE id = 1", (seq, prev))
    conn.execute("COMMIT")
    conn.close()
    return records


def bench_history(root: Path, runs: int, events: int) -> dict[str, Any]:
    ws = workspace.create(root / "history")
    db = ws.root / ".releasegate" / "state.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    records = fill_ledger(db, events)
    fill_s = time.perf_counter() - started
    # The seed's way: a text log, read with grep.
    log = ws.root / "deploy-history.log"
    log.write_text("".join(format_log_line(r, UTC) + "\n" for r in records))
    stack = STACKS[3]
    env = {**os.environ, "TZ": "UTC"}
    last20 = timed([str(BIN), "history", "--last", "20"], ws.root, runs, env)
    as_log = timed([str(BIN), "history", "--stack", stack, "--format", "log"], ws.root, runs, env)
    as_json = timed([str(BIN), "history", "--stack", stack, "--json"], ws.root, runs, env)
    grep = shutil.which("grep")
    seed = timed([grep, "-F", f"| {stack} |", str(log)], ws.root, runs, env) if grep else []
    verify = timed([str(BIN), "audit", "verify"], ws.root, max(1, runs // 4), env)
    out = subprocess.run(
        [str(BIN), "history", "--stack", stack, "--format", "log"],
        cwd=ws.root, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    expected = [line for line in log.read_text().splitlines() if f"| {stack} |" in line]
    return {
        "events": events,
        "ledger rows": 2 * events,
        "fill_s": round(fill_s, 1),
        "history --last 20": median_ms(last20),
        f"history --stack {stack} --format log ({len(expected)} lines)": median_ms(as_log),
        f"history --stack {stack} --json": median_ms(as_json),
        f"seed: grep '| {stack} |' deploy-history.log": median_ms(seed) if seed else None,
        "log ratio to grep": ratio(as_log, seed) if seed else None,
        "audit verify (whole chain)": median_ms(verify),
        "log output identical to the seed file": out.stdout.splitlines() == expected,
        "target_ms": TARGETS["history_log"] * 1000,
        "ok": max(statistics.median(last20), statistics.median(as_log)) <= TARGETS["history_log"],
    }


# -- 3. deploy overhead ----------------------------------------------------------------


def bench_deploy(root: Path, deploys: int) -> dict[str, Any]:
    walls, externals = deploy_times(workspace.create(root / "deploy"), deploys)
    own = overheads(walls, externals)
    return {
        "deploys": deploys,
        "wall": median_ms(walls),
        "commands + smoke checks": median_ms(externals),
        "releasegate's own overhead": median_ms(own),
        "target_ms": TARGETS["deploy_overhead"] * 1000,
        "ok": statistics.median(own) <= TARGETS["deploy_overhead"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command")
    parser.add_argument("--events", type=int, default=100_000, help="actions in the ledger")
    parser.add_argument("--deploys", type=int, default=8)
    parser.add_argument("--only", default="", help="comma-separated parts: startup,history,deploy")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    if not BIN.exists():
        raise SystemExit(f"{BIN} not found: pip install -e . in this interpreter's environment")
    parts: dict[str, Callable[[Path], dict[str, Any]]] = {
        "startup": lambda root: bench_startup(root, args.runs),
        "history": lambda root: bench_history(root, args.runs, args.events),
        "deploy": lambda root: bench_deploy(root, args.deploys),
    }
    # An editable install never writes releasegate's own .pyc files when
    # PYTHONDONTWRITEBYTECODE is set; `pip install releasegate` compiles them, so do the same.
    import compileall

    import releasegate

    compileall.compile_dir(Path(releasegate.__file__).parent, quiet=1)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rg-bench-") as tmp:
        for name, fn in parts.items():
            if args.only and name not in args.only.split(","):
                continue
            print(f"… {name}", file=sys.stderr)
            results[name] = fn(Path(tmp))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for name, figures in results.items():
            print(f"\n{name}")
            for key, value in figures.items():
                unit = (
                    " ms"
                    if isinstance(value, float)
                    and key not in ("ratio", "fill_s")
                    and "ratio" not in key
                    else ""
                )
                print(f"  {key:<58} {value}{unit}")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
