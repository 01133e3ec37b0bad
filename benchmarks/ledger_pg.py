"""The ledger on PostgreSQL beside SQLite, in one run (issue 20).

    bash scripts/lab/db.sh up
    python benchmarks/ledger_pg.py [--runs N] [--events N] [--deploys N] [--team] [--json]

1. history:  `history --last 20` on one ledger of --events recorded actions, held in a
             SQLite file and, copied by `releasegate state copy`, in the lab's PostgreSQL
             (the copy's own time is reported too).
2. deploy:   a real deploy of the demo app with each ledger; releasegate's own overhead is
             the wall time minus the team's commands and smoke checks (as benchmarks/run.py).
3. --team:   issue 20's full load: 8 processes as if on 4 machines, 4 stacks, 20 deploys
             each, at once, on one PostgreSQL ledger; then the checks of the e2e test (the
             chain verifies, no action lost, never two holders of a stack).

Medians, and PostgreSQL's ratio to SQLite. The PostgreSQL databases are made for the run
(named like the tests', `rgtest_<pid>_...`) and dropped at its end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from run import fill_ledger  # noqa: E402
from tests.lab import db as dblab  # noqa: E402
from tests.lab import team_ledger as team  # noqa: E402
from timing import BIN, deploy_times, median_ms, overheads, ratio, timed  # noqa: E402

from releasegate.demo import workspace  # noqa: E402


def pg_url(server: dblab.DbServer, name: str) -> str:
    return f"postgresql+psycopg://{server.user}@{server.host}:{server.port}/{name}"


def use_state(config: Path, url: str) -> None:
    config.write_text(f"state: {url}\n" + config.read_text())


def bench_history(root: Path, server: dblab.DbServer, name: str, runs: int, events: int) -> Any:
    ws = workspace.create(root / "history")
    db = ws.root / ".releasegate" / "state.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    fill_ledger(db, events)
    env = {**os.environ, "TZ": "UTC"}
    sqlite = timed([str(BIN), "history", "--last", "20"], ws.root, runs, env)
    url = pg_url(server, name)
    started = time.perf_counter()
    subprocess.run(
        [str(BIN), "state", "copy", "--to", url], cwd=ws.root, env=env, check=True,
        capture_output=True,
    )  # fmt: skip
    copy_s = time.perf_counter() - started
    use_state(ws.config, url)
    pg = timed([str(BIN), "history", "--last", "20"], ws.root, runs, env)
    return {
        "events": events,
        "ledger rows": 2 * events,
        "state copy SQLite -> PostgreSQL (s, verified)": round(copy_s, 1),
        "history --last 20, SQLite": median_ms(sqlite),
        "history --last 20, PostgreSQL": median_ms(pg),
        "ratio PostgreSQL / SQLite": ratio(pg, sqlite),
    }


def deploy_overheads(ws: workspace.Workspace, deploys: int) -> list[float]:
    return overheads(*deploy_times(ws, deploys))


def bench_deploy(root: Path, server: dblab.DbServer, name: str, deploys: int) -> Any:
    sqlite = deploy_overheads(workspace.create(root / "deploy-sqlite"), deploys)
    ws = workspace.create(root / "deploy-pg")
    use_state(ws.config, pg_url(server, name))
    pg = deploy_overheads(ws, deploys)
    return {
        "deploys": deploys,
        "deploy overhead, SQLite": median_ms(sqlite),
        "deploy overhead, PostgreSQL": median_ms(pg),
        "ratio PostgreSQL / SQLite": ratio(pg, sqlite),
    }


def bench_team(root: Path, server: dblab.DbServer, name: str) -> Any:
    ws = team.write_workspace(root / "team", pg_url(server, name), lease_s=10)
    ops = team.operators(processes=8, machines=4)
    started = time.perf_counter()
    results = team.run_team(ws, server.password, ops, 20, team.stack_names(4))
    wall = time.perf_counter() - started
    problems = team.check_team(lambda sql: server.rows(sql, database=name), results)
    verify = team.rg(ws, server.password, ops[0], "audit", "verify", "--json")
    report = json.loads(verify.stdout) if verify.returncode == 0 else {"ok": False}
    return {
        "processes x stacks x deploys": "8 x 4 x 20 (4 host identities)",
        **team.summary(results),
        "wall (s)": round(wall, 1),
        "chain verifies": report.get("ok"),
        "rows": report.get("head_seq"),
        "problems": problems,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs of history")
    parser.add_argument("--events", type=int, default=20_000, help="actions in the ledger")
    parser.add_argument("--deploys", type=int, default=8)
    parser.add_argument("--team", action="store_true", help="also the 8 x 4 x 20 team run")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    if not BIN.exists():
        raise SystemExit(f"{BIN} not found: pip install -e '.[postgres]' in this environment")
    missing = dblab.problems("postgres")
    if missing:
        raise SystemExit(f"the db lab is not up ({'; '.join(missing)}): {dblab.UP_HINT}")
    server = dblab.postgres()
    # The ledger's password reaches releasegate only through the environment.
    os.environ["RELEASEGATE_STATE_PASSWORD"] = server.password
    os.environ["PGPASSFILE"] = "/dev/null"
    made: list[str] = []
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="rg-bench-pg-") as tmp:
            parts = [("history", "history"), ("deploy", "deploy")]
            if args.team:
                parts.append(("team", "team"))
            for part, label in parts:
                name = server.create_database(f"bench_{label}")
                made.append(name)
                print(f"… {part}", file=sys.stderr)
                if part == "history":
                    results[part] = bench_history(Path(tmp), server, name, args.runs, args.events)
                elif part == "deploy":
                    results[part] = bench_deploy(Path(tmp), server, name, args.deploys)
                else:
                    results[part] = bench_team(Path(tmp), server, name)
    finally:
        for name in made:
            server.drop_database(name)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for part, figures in results.items():
            print(f"\n{part}")
            for key, value in figures.items():
                unit = (
                    " ms"
                    if isinstance(value, float)
                    and "ms" not in key
                    and "(" not in key
                    and "ratio" not in key
                    and "median_s" not in key
                    else ""
                )
                print(f"  {key:<50} {value}{unit}")
    team_ok = not results.get("team", {}).get("problems")
    return 0 if team_ok else 1


if __name__ == "__main__":
    sys.exit(main())
