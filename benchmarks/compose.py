"""Compose runtime benchmarks on the real Docker lab (`bash scripts/lab/docker.sh up` first).

    python benchmarks/compose.py [--runs N] [--json]

1. rollback time: a release whose containers turn unhealthy is rolled back automatically;
   measured from the failed step (the event releasegate prints) to the previous version
   answering /health again, polled every 20 ms from a second thread. Target: median <= 5 s.
2. failed requests during a normal deploy: a bounded load loop (one client, loopback,
   keep-alive off) hits /health for the whole of a v1 -> v2 deploy; failures are counted.
   This is the baseline a later zero-downtime switch must bring to 0.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lab.compose_workspace import ComposeWorkspace, make_workspace  # noqa: E402
from tests.lab.docker import compose, problems  # noqa: E402
from tests.lab.images import PREFIX, build_web_image, cleanup, sha_version  # noqa: E402

V1, V2, V3 = sha_version("bench-v1"), sha_version("bench-v2"), sha_version("bench-v3")
TARGET_ROLLBACK_S = 5.0


def get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except (OSError, http.client.HTTPException) as exc:  # a connection cut mid-answer too
        return -1, type(exc).__name__


def deploy_events(ws: ComposeWorkspace, version: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "releasegate",
            "deploy",
            "web-staging",
            "staging",
            version,
            "--json",
        ],
        cwd=ws.root,
        env={**os.environ, "RELEASEGATE_USER": "bench"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def run_ok(ws: ComposeWorkspace, version: str) -> None:
    out = ws.rg("deploy", "web-staging", "staging", version)
    if out.returncode != 0:
        raise SystemExit(f"deploy {version} failed: {out.stdout}{out.stderr}")


def rollback_once(ws: ComposeWorkspace) -> dict[str, float]:
    """Deploy the broken v3 on top of v2; seconds from the failure to v2 answering."""
    run_ok(ws, V2)
    url = ws.url("web-staging")
    failed_at: list[float] = []
    back_at: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            status, body = get(url, timeout=0.5)
            if failed_at and status == 200 and V2 in body:
                back_at.append(time.monotonic())
                return
            time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    started = time.monotonic()
    proc = deploy_events(ws, V3)
    assert proc.stdout is not None
    for line in proc.stdout:
        event = json.loads(line)
        if event.get("event") == "step_finished" and event.get("ok") is False and not failed_at:
            failed_at.append(time.monotonic())
    code = proc.wait()
    poller.join(timeout=30)
    stop.set()
    if code != 4 or not failed_at or not back_at:
        raise SystemExit(f"expected an automatic rollback (exit 4), got {code}")
    return {
        "failure_to_v2_answering_s": back_at[0] - failed_at[0],
        "whole_failed_deploy_s": time.monotonic() - started,
    }


def load_during_deploy(ws: ComposeWorkspace, version: str) -> dict[str, Any]:
    """Requests sent and failed while releasegate deploys `version` (bounded loop)."""
    url = ws.url("web-staging")
    stop = threading.Event()
    counts = {"sent": 0, "failed": 0}
    errors: dict[str, int] = {}

    def load() -> None:
        while not stop.is_set() and counts["sent"] < 100_000:  # bounded
            status, body = get(url, timeout=1.0)
            counts["sent"] += 1
            if status != 200:
                counts["failed"] += 1
                key = str(status) if status > 0 else body
                errors[key] = errors.get(key, 0) + 1

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    started = time.monotonic()
    run_ok(ws, version)
    wall = time.monotonic() - started
    stop.set()
    worker.join(timeout=10)
    return {**counts, "errors": errors, "deploy_s": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    missing = problems()
    if missing:
        raise SystemExit("the Docker lab is not up: " + "; ".join(missing))
    for version, broken in ((V1, False), (V2, False), (V3, True)):
        build_web_image(version, broken=broken)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rg-bench-compose-") as tmp:
        ws = make_workspace(Path(tmp), "127.0.0.1:5000", PREFIX)
        try:
            run_ok(ws, V1)
            rollbacks = [rollback_once(ws) for _ in range(args.runs)]
            times = [r["failure_to_v2_answering_s"] for r in rollbacks]
            results["rollback"] = {
                "runs": args.runs,
                "median_s": round(statistics.median(times), 2),
                "max_s": round(max(times), 2),
                "whole_failed_deploy_median_s": round(
                    statistics.median(r["whole_failed_deploy_s"] for r in rollbacks), 2
                ),
                "target_s": TARGET_ROLLBACK_S,
                "ok": statistics.median(times) <= TARGET_ROLLBACK_S,
            }
            loads = [load_during_deploy(ws, (V1, V2)[i % 2]) for i in range(args.runs)]
            results["requests_during_deploy"] = {
                "deploys": args.runs,
                "sent_median": statistics.median(r["sent"] for r in loads),
                "failed_median": statistics.median(r["failed"] for r in loads),
                "failed_ratio_median": round(
                    statistics.median(r["failed"] / max(1, r["sent"]) for r in loads), 4
                ),
                "deploy_median_s": round(statistics.median(r["deploy_s"] for r in loads), 2),
                "errors": loads[-1]["errors"],
                "note": "baseline: containers are recreated in place, so requests fail "
                "while the new one starts",
            }
        finally:
            for project in ws.projects.values():
                compose(project, "down", "-v", "--remove-orphans", "-t", "2", check=False)
            cleanup(PREFIX)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for name, figures in results.items():
            print(f"\n{name}")
            for key, value in figures.items():
                print(f"  {key:<32} {value}")
    return 0 if results["rollback"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
