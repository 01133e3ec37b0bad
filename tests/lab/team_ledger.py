"""A team on one shared ledger (issue 20): several processes on this machine, each playing an
operator on one of several machines (RELEASEGATE_HOST_ID), deploying the same small
`releases` stacks at once through the real CLI, with the ledger on the lab's PostgreSQL.

Used by tests/e2e_db/test_team_locks.py (small counts) and benchmarks/ledger_pg.py (the
issue's full 8 processes x 4 stacks x 20 deploys). Each deploy is tiny (a one-file release,
no commands, no smoke checks), so what is exercised is the ledger: the locks, the chain
head, the heartbeats.

`check_team` reads the ledger's own rows (SQL on the entries table) and returns what broke:
- every attempt is one top-level deploy action (none lost, none twice), closed `success`
  (exit 0) or `refused` at the lock (exit 5), by the host and user that ran it;
- on each stack, the runs that held the lock (the ones with steps) never overlap in the
  chain: each run's rows lie between its open and close rows, and no other holder's run of
  that stack opened or closed in between (two holders at once would interleave there);
- nothing is left `running`, and no lock is left held.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.cli import RELEASEGATE

VERSIONS = ("v1", "v2", "v3")

STACK = """\
  {name}:
    env: staging
    runtime: releases
    dir: ./srv/{name}
    artifacts: ./artifacts
    keep_releases: 3
"""

# One operator: wait for the start file, then `attempts` deploys, round-robin over the
# stacks (starting at its own offset), printing one JSON line per attempt.
WORKER = """
import json, subprocess, sys, time
from pathlib import Path
rg, start, attempts, offset, stacks = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), \\
    int(sys.argv[4]), sys.argv[5].split(",")
versions = sys.argv[6].split(",")
deadline = time.monotonic() + 120
while not start.exists() and time.monotonic() < deadline:
    time.sleep(0.01)
for i in range(attempts):
    stack = stacks[(offset + i) % len(stacks)]
    version = versions[(offset + i) % len(versions)]
    t0 = time.monotonic()
    done = subprocess.run([rg, "deploy", stack, "staging", version], capture_output=True,
                          text=True, timeout=300)
    print(json.dumps({"stack": stack, "version": version, "rc": done.returncode,
                      "s": round(time.monotonic() - t0, 3),
                      "err": done.stderr[-2000:] if done.returncode not in (0, 5) else ""}),
          flush=True)
"""


@dataclass(frozen=True)
class Operator:
    user: str
    host: str


def write_workspace(root: Path, state_url: str, *, stacks: int = 4, lease_s: float = 10) -> Path:
    """A workspace of `stacks` stacks (s1..sN) whose ledger is `state_url` (no password)."""
    root.mkdir(parents=True, exist_ok=True)
    for version in VERSIONS:
        art = root / "artifacts" / version
        art.mkdir(parents=True, exist_ok=True)
        (art / "version.txt").write_text(f"{version}\n")
    text = f"state: {state_url}\nlock_lease: {lease_s:g}\nstacks:\n"
    text += "".join(STACK.format(name=f"s{i + 1}") for i in range(stacks))
    (root / "releasegate.yaml").write_text(text)
    return root


def stack_names(count: int = 4) -> list[str]:
    return [f"s{i + 1}" for i in range(count)]


def cli_env(ws: Path, password: str, op: Operator, **extra: str) -> dict[str, str]:
    """The environment of one operator's CLI: its machine, its name, the ledger's password
    (never in the config or on argv)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELEASEGATE_", "PG"))}
    env.update(
        RELEASEGATE_CONFIG=str(ws / "releasegate.yaml"),
        RELEASEGATE_HOST_ID=op.host,
        RELEASEGATE_USER=op.user,
        RELEASEGATE_STATE_PASSWORD=password,
        PGPASSFILE="/dev/null",
        NO_COLOR="1",
        COLUMNS="200",
    )
    env.update(extra)
    return env


def rg(
    ws: Path, password: str, op: Operator, *args: str, timeout: float = 180, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RELEASEGATE, *args],
        cwd=ws,
        env=cli_env(ws, password, op, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def operators(processes: int, machines: int) -> list[Operator]:
    """`processes` operators spread over `machines` host identities (m1..mN)."""
    return [Operator(user=f"op{p + 1}", host=f"m{p % machines + 1}") for p in range(processes)]


def run_team(
    ws: Path, password: str, ops: list[Operator], attempts: int, stacks: list[str]
) -> dict[Operator, list[dict[str, object]]]:
    """Every operator's attempts, all started at once; each attempt's stack, version, exit
    code and wall time."""
    start = ws / "start"
    start.unlink(missing_ok=True)
    procs = []
    for n, op in enumerate(ops):
        argv = [
            sys.executable, "-c", WORKER, RELEASEGATE, str(start), str(attempts), str(n),
            ",".join(stacks), ",".join(VERSIONS),
        ]  # fmt: skip
        procs.append(
            (
                op,
                subprocess.Popen(
                    argv,
                    cwd=ws,
                    env=cli_env(ws, password, op),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
        )
    time.sleep(0.5)  # every worker is polling for the start file
    start.write_text("go")
    results: dict[Operator, list[dict[str, object]]] = {}
    for op, proc in procs:
        out, err = proc.communicate(timeout=60 + 60 * attempts)
        if proc.returncode != 0:
            raise AssertionError(f"worker {op} exited {proc.returncode}: {err[-2000:]}")
        results[op] = [json.loads(line) for line in out.splitlines() if line.strip()]
    return results


Rows = Callable[[str], list[list[str]]]


def check_team(rows: Rows, results: dict[Operator, list[dict[str, object]]]) -> list[str]:
    """What the ledger says against what the operators saw; [] when all holds."""
    problems: list[str] = []
    for op, attempts in results.items():
        for a in attempts:
            if a["rc"] not in (0, 5):
                problems.append(f"{op.user}@{op.host}: deploy {a['stack']} exited {a['rc']}: "
                                f"{a['err']}")  # fmt: skip
    # Top-level deploys: open row seq, close row seq, stack, host, user, status, steps.
    found = rows(
        'SELECT o.seq, COALESCE(c.seq, -1), o.stack, o.host, o."user",'
        " COALESCE(c.status, 'running'),"
        " (SELECT count(*) FROM entries s WHERE s.parent_id = o.action_id AND s.kind = 'open')"
        " FROM entries o LEFT JOIN entries c ON c.action_id = o.action_id AND c.kind = 'close'"
        " WHERE o.kind = 'open' AND o.parent_id IS NULL AND o.action = 'deploy' ORDER BY o.seq"
    )
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    for _open, _close, stack, host, user, status, _steps in found:
        seen[(host, user)].append(f"{stack}:{status}")
    for op, attempts in results.items():
        expected = sorted(
            f"{a['stack']}:{'success' if a['rc'] == 0 else 'refused'}" for a in attempts
        )
        got = sorted(seen.pop((op.host, op.user), []))
        if got != expected:
            problems.append(f"{op.user}@{op.host}: ledger has {got}, the CLI saw {expected}")
    if seen:
        problems.append(f"deploys no operator ran: {dict(seen)}")
    holders: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for open_seq, close_seq, stack, host, user, status, steps in found:
        if status == "running":
            problems.append(f"deploy at row {open_seq} on {stack} is still running")
        if int(steps) > 0:  # it held the lock (a refusal at the lock has no steps)
            holders[stack].append((int(open_seq), int(close_seq), f"{user}@{host}"))
    for stack, runs in holders.items():
        runs.sort()
        for (o1, c1, who1), (o2, c2, who2) in itertools.pairwise(runs):
            if o2 < c1:
                problems.append(
                    f"{stack} had two holders: {who1} (rows {o1}-{c1}) and {who2} (rows {o2}-{c2})"
                )
    left = rows("SELECT stack FROM locks")
    if left:
        problems.append(f"locks left held: {left}")
    return problems


def summary(results: dict[Operator, list[dict[str, object]]]) -> dict[str, float]:
    times = sorted(float(str(a["s"])) for attempts in results.values() for a in attempts)
    ok = sum(1 for attempts in results.values() for a in attempts if a["rc"] == 0)
    return {
        "attempts": len(times),
        "succeeded": ok,
        "refused_locked": len(times) - ok,
        "median_s": times[len(times) // 2] if times else 0.0,
    }
