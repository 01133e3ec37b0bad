"""The dashboard's server times on a 100,000-action ledger (issue 19: under 300 ms).

    python benchmarks/web_pages.py [--events N] [--runs N] [--json]

The ledger is filled the way benchmarks/run.py fills it (bulk inserts that keep the hash
chain valid), in the demo's workspace; the app runs in-process (Starlette's TestClient), so
what is timed is the server's work for each page: routing, auth, the ledger queries, the
template. Medians; the script exits non-zero when a page misses the target.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from releasegate.config.loader import load_config
from releasegate.demo import workspace
from releasegate.identity import current_actor
from releasegate.ledger import Ledger
from releasegate.users import Users
from releasegate.web.app import create_app
from releasegate.web.views import Site

sys.path.insert(0, str(Path(__file__).parent))
from run import fill_ledger

TARGET_S = 0.300


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="actions in the ledger")
    parser.add_argument("--runs", type=int, default=9, help="timed requests per page")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rg-web-bench-") as tmp:
        ws = workspace.create(Path(tmp) / "ws")
        db = ws.root / ".releasegate" / "state.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        fill_ledger(db, args.events)
        fill_s = time.perf_counter() - started
        with Ledger.open(str(db)) as ledger:
            token = Users(ledger).new_token(
                Users(ledger).add("bench", "benchmark password", "viewer", by=current_actor()).name,
                "bench",
                by=current_actor(),
            )
            mid = ledger.head()[0] // 2
            some_run = ledger.page(limit=1, before_seq=mid)[0].action_id
        config = load_config(ws.config)
        app = create_app(Site(config, ws.config))
        client = TestClient(app, headers={"Authorization": f"Bearer {token}"})
        pages = {
            "stacks (/api/stacks)": "/api/stacks",
            "history, newest page": "/api/history",
            "history, page at the middle (keyset)": f"/api/history?before={mid}",
            "history, stack + action filter": "/api/history?stack=web-prod&action=rollback",
            "history, status=fail": "/api/history?status=fail",
            "history, forced": "/api/history?forced=1",
            "history, user with no actions": "/api/history?user=nobody",
            "a run's page data": f"/api/runs/{some_run}",
        }
        cold_start = time.perf_counter()
        assert client.get("/api/stacks").status_code == 200  # first: checkpoints the chain
        cold_s = time.perf_counter() - cold_start
        results: dict[str, Any] = {}
        for name, path in pages.items():
            times = []
            for i in range(args.runs + 1):
                start = time.perf_counter()
                resp = client.get(path)
                elapsed = time.perf_counter() - start
                if resp.status_code != 200:
                    raise SystemExit(f"{path}: {resp.status_code} {resp.text[:200]}")
                if i:  # the first is a warm-up
                    times.append(elapsed)
            median = statistics.median(times)
            results[name] = {"median_ms": round(median * 1000, 1), "ok": median <= TARGET_S}
        # The HTML pages too (the same data through the templates), signed in by session.
        html = TestClient(app, follow_redirects=False)
        login = html.get("/login").text
        csrf = login.split('name="csrf" value="')[1].split('"')[0]
        html.post("/login", data={"csrf": csrf, "user": "bench", "password": "benchmark password"})
        for name, path in {"HTML stacks page": "/", "HTML history page": "/history",
                           "HTML run page": f"/runs/{some_run}"}.items():  # fmt: skip
            times = []
            for i in range(args.runs + 1):
                start = time.perf_counter()
                resp = html.get(path)
                elapsed = time.perf_counter() - start
                if resp.status_code != 200:
                    raise SystemExit(f"{path}: {resp.status_code}")
                if i:
                    times.append(elapsed)
            median = statistics.median(times)
            results[name] = {"median_ms": round(median * 1000, 1), "ok": median <= TARGET_S}
        # The share of the stacks page that is `releasegate status`'s own work (Engine.status).
        site = Site(config, ws.config)
        times = []
        for _ in range(args.runs):
            with site.ledger() as ledger:
                start = time.perf_counter()
                site.engine(ledger, "bench").status()
                times.append(time.perf_counter() - start)
        engine_ms = round(statistics.median(times) * 1000, 1)
    report = {
        "events": args.events,
        "fill_s": round(fill_s, 1),
        "first stacks request (chain checkpointed) ms": round(cold_s * 1000, 1),
        "target_ms": TARGET_S * 1000,
        "Engine.status() alone ms": engine_ms,
        "pages": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.events} actions ({2 * args.events} ledger rows), filled in {fill_s:.1f} s")
        print(
            f"first stacks request (proves the chain, then checkpoints it): {cold_s * 1000:.0f} ms"
        )
        print(
            f"  (of the stacks page, Engine.status(), as `releasegate status`: {engine_ms} ms)"
        )
        for name, r in results.items():
            mark = "ok" if r["ok"] else "MISSED"
            print(f"  {name:<40} {r['median_ms']:>8.1f} ms  {mark} (target {TARGET_S * 1000:.0f})")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
