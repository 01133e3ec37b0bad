"""Backup benchmark on the real PostgreSQL lab (`bash scripts/lab/db.sh up` first).

    python benchmarks/backup.py [--scale N] [--runs N] [--json]

A pgbench database (scale 35: about 520 MB) is backed up three ways, side by side:
  raw         pg_dump -Fc -f FILE                    (PostgreSQL's own compression, zlib)
  seed        pg_dump DB | gzip > FILE               (seed 001's backup.sh)
  releasegate releasegate backup STACK ENV           (pg_dump -Fc -Z0 streamed through zstd)
Wall time (median of --runs) and size of each; then `releasegate backup verify` (a full
restore into a scratch database plus a check query). Targets (issue 4): releasegate
faster than raw and seed, and no more than 10% larger than the smaller of the two.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lab.db import DbServer, postgres, problems  # noqa: E402

BIN = Path(sys.executable).parent / "releasegate"


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def sh(argv: list[str], env: dict[str, str], **kw: Any) -> None:
    subprocess.run(argv, env=env, check=True, **kw)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=35, help="pgbench scale (35: ~520 MB)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    missing = problems("postgres")
    if missing:
        raise SystemExit("the PostgreSQL lab is not up: " + "; ".join(missing))
    server: DbServer = postgres()
    name = server.new_name("bench")
    env = server.env(name)
    results: dict[str, Any] = {}
    server.sql(f'CREATE DATABASE "{name}"')
    try:
        print(f"… pgbench -i -s {args.scale} into {name}", file=sys.stderr)
        init_s = timed(lambda: sh(["pgbench", "-i", "-q", "-s", str(args.scale)], env,
                                  capture_output=True))  # fmt: skip
        size = int(server.sql(f"SELECT pg_database_size('{name}')").strip())
        results["database"] = {
            "scale": args.scale,
            "size_mb": round(size / 1e6),
            "init_s": round(init_s, 1),
        }
        with tempfile.TemporaryDirectory(prefix="rg-bench-backup-") as tmp:
            work = Path(tmp)
            (work / "srv").mkdir()
            (work / "releasegate.yaml").write_text(
                "stacks:\n  bench:\n    env: prod\n    runtime: releases\n    dir: srv\n"
                "    artifacts: srv\n    backup:\n      sources:\n        - name: db\n"
                f"          kind: postgres\n          database: {name}\n"
                f"          host: {server.host}\n          port: {server.port}\n"
                f"          user: {server.user}\n          password_env: BENCH_PG_PASSWORD\n"
                "          checks: [{query: 'SELECT count(*) FROM pgbench_accounts', "
                "expect: '>0'}]\n"
            )
            rg_env = {
                **os.environ,
                "BENCH_PG_PASSWORD": server.password,
                "RELEASEGATE_USER": "bench",
            }
            raw_file, seed_file = work / "raw.dump", work / "seed.sql.gz"

            def raw() -> None:
                sh(["pg_dump", "-Fc", "-f", str(raw_file), name], env)

            def seed() -> None:
                with seed_file.open("wb") as out:
                    dump = subprocess.Popen(["pg_dump", name], env=env, stdout=subprocess.PIPE)
                    subprocess.run(["gzip"], stdin=dump.stdout, stdout=out, check=True)
                    assert dump.stdout is not None
                    dump.stdout.close()
                    if dump.wait() != 0:
                        raise SystemExit("pg_dump | gzip failed")

            def ours() -> None:
                done = subprocess.run([str(BIN), "backup", "bench", "prod"], cwd=work, env=rg_env,
                                      capture_output=True, text=True, check=False)  # fmt: skip
                if done.returncode != 0:
                    raise SystemExit(f"releasegate backup failed: {done.stdout}{done.stderr}")

            times: dict[str, list[float]] = {"raw": [], "seed": [], "releasegate": []}
            for i in range(args.runs):
                for label, fn in (("raw", raw), ("seed", seed), ("releasegate", ours)):
                    print(f"… run {i + 1}/{args.runs}: {label}", file=sys.stderr)
                    times[label].append(timed(fn))
            newest = sorted((work / ".releasegate/backups/bench").iterdir())[-1]
            ours_size = sum(p.stat().st_size for p in newest.iterdir() if p.name != "manifest.json")
            sizes = {"raw": raw_file.stat().st_size, "seed": seed_file.stat().st_size,
                     "releasegate": ours_size}  # fmt: skip
            med = {k: statistics.median(v) for k, v in times.items()}
            print("… releasegate backup verify", file=sys.stderr)
            verify_s = timed(
                lambda: subprocess.run(
                    [str(BIN), "backup", "verify", "bench"],
                    cwd=work,
                    env=rg_env,
                    capture_output=True,
                    check=True,
                )
            )
            smaller = min(sizes["raw"], sizes["seed"])
            results["backup"] = {
                "runs": args.runs,
                "wall_median_s": {k: round(v, 2) for k, v in med.items()},
                "size_mb": {k: round(v / 1e6, 1) for k, v in sizes.items()},
                "ratio_time_vs_raw": round(med["releasegate"] / med["raw"], 2),
                "ratio_time_vs_seed": round(med["releasegate"] / med["seed"], 2),
                "ratio_size_vs_smaller": round(ours_size / smaller, 3),
                "verify_s": round(verify_s, 1),
                "ok": med["releasegate"] < min(med["raw"], med["seed"])
                and ours_size <= 1.10 * smaller,
            }
    finally:
        server.drop_database(name)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for part, figures in results.items():
            print(f"\n{part}")
            for key, value in figures.items():
                print(f"  {key:<24} {value}")
    return 0 if results["backup"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
