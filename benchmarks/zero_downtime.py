"""Zero downtime through a real proxy, against today's in-place restart (releases runtime).

    python benchmarks/zero_downtime.py [--runs N] [--proxies nginx,caddy,haproxy] [--json]

Loopback only, bounded: each proxy is started by this script on free ports (tests/lab/
proxies.py; `bash scripts/lab/proxy.sh up` installs them) and stopped by its pid.

For each proxy: a blue/green releases stack (keep_old: the old slot stays warm), under load
from 2 keep-alive clients and 2 clients that close each connection, through N deploys (v1 and
v2 in turn) and N rollbacks (each a switch back to the warm slot). Measured: failed requests
(and keep-alive retries, see tests/lab/load.py), p50/p99 latency in steady state and during
the runs, the `releasegate rollback` wall time, and the time from the proxy's switch back
(the call a failing watch check makes) to the old version answering through the proxy.

Baseline: the same app as a releases stack with no proxy, whose restart stops the app and
starts the new one on the same port (today's in-place restart), under the same load.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e_proxy.slots import START, STOP, SlotStack, make_stack  # noqa: E402
from tests.lab.load import Load, LoadResult  # noqa: E402
from tests.lab.proxies import free_port, get  # noqa: E402

from releasegate.proxy import adapter_for  # noqa: E402
from releasegate.proxy.config import ProxyConfig  # noqa: E402

CLIENTS = 2  # per kind of client (keep-alive, close)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def summary(results: list[LoadResult]) -> dict[str, Any]:
    lat = sorted(x for r in results for x in r.latencies)
    merged = LoadResult(latencies=lat)
    return {
        "requests": sum(r.ok + r.failed for r in results),
        "failed": sum(r.failed for r in results),
        "errors": {k: sum(r.errors.get(k, 0) for r in results) for r in results for k in r.errors},
        "keepalive_retries": sum(r.stale_retries for r in results),
        "p50_ms": ms(merged.percentile(50)),
        "p99_ms": ms(merged.percentile(99)),
    }


def loads(url: str) -> tuple[Load, Load]:
    return Load(url, clients=CLIENTS, keepalive=True), Load(url, clients=CLIENTS, keepalive=False)


def steady(url: str, seconds: float = 2.0) -> dict[str, Any]:
    kept, new = loads(url)
    with kept, new:
        time.sleep(seconds)
    return summary([kept.result, new.result])


def must(run: Any) -> None:
    if run.returncode != 0:
        raise SystemExit(f"releasegate failed:\n{run.stdout}\n{run.stderr}")


def switch_back_ms(stack: SlotStack, target: str) -> float:
    """The watch window's rollback: adapter.switch(old slot), until the old version answers
    through the proxy (polled every 5 ms)."""
    cfg = ProxyConfig.model_validate(stack.proxy.config())
    switch = adapter_for(cfg)
    back = cfg.other(switch.current() or "blue")
    started = time.monotonic()
    result = switch.switch(back)
    if not result.ok:
        raise SystemExit(f"switch back failed: {result.summary}")
    deadline = started + 10
    while time.monotonic() < deadline:
        if f"version {target}" in get(stack.proxy.url, timeout=2)[1]:
            return ms(time.monotonic() - started)
        time.sleep(0.005)
    raise SystemExit(f"{target} never answered after the switch back")


def bench_proxy(kind: str, runs: int, work: Path) -> dict[str, Any]:
    stack = make_stack(work / kind, kind, drain_s=0.5, keep_old=True)
    url = stack.proxy.url + "/"
    try:
        must(stack.rg("deploy", "web", "staging", "v1"))
        base = steady(url)
        kept_d, new_d, kept_r, new_r = LoadResult(), LoadResult(), LoadResult(), LoadResult()
        rollback_s: list[float] = []
        switch_ms: list[float] = []
        for _ in range(runs):
            # v1 is live; v2 starts in the free slot and takes the traffic; v1 stays warm.
            version, other = "v2", "v1"
            with (
                Load(url, clients=CLIENTS, keepalive=True) as k,
                Load(url, clients=CLIENTS, keepalive=False) as n,
            ):
                time.sleep(0.2)
                must(stack.rg("deploy", "web", "staging", version))
                time.sleep(0.2)
            _merge(kept_d, k.result)
            _merge(new_d, n.result)
            # Its rollback: back to v1, which still runs in the other slot (a switch).
            with (
                Load(url, clients=CLIENTS, keepalive=True) as k,
                Load(url, clients=CLIENTS, keepalive=False) as n,
            ):
                time.sleep(0.2)
                started = time.monotonic()
                must(stack.rg("rollback", "web", "staging", "--to", other))
                rollback_s.append(time.monotonic() - started)
                time.sleep(0.2)
            _merge(kept_r, k.result)
            _merge(new_r, n.result)
        # The watch window's primitive, alone: switch to the warm slot and back, timed.
        for _ in range(runs):
            live = "v1" if "version v1" in get(url)[1] else "v2"
            switch_ms.append(switch_back_ms(stack, "v2" if live == "v1" else "v1"))
        return {
            "proxy": kind,
            "steady": base,
            "deploys": {"runs": runs, **summary([kept_d, new_d])},
            "rollbacks": {
                "runs": runs,
                **summary([kept_r, new_r]),
                "cli_median_s": round(statistics.median(rollback_s), 2),
                "cli_max_s": round(max(rollback_s), 2),
            },
            "switch_back_to_old_answering_ms": {
                "median": statistics.median(switch_ms),
                "max": max(switch_ms),
            },
        }
    finally:
        stack.stop_apps()
        stack.proxy.stop()


def _merge(into: LoadResult, part: LoadResult) -> None:
    into.ok += part.ok
    into.failed += part.failed
    into.stale_retries += part.stale_retries
    into.latencies.extend(part.latencies)
    for key, count in part.errors.items():
        into.errors[key] = into.errors.get(key, 0) + count


def bench_in_place(runs: int, work: Path) -> dict[str, Any]:
    """Today: no proxy; the restart stops the app and starts the new one on its port."""
    stack = make_stack(work / "in-place", "nginx")  # the proxy only to reuse the workspace
    stack.proxy.stop()
    port = free_port()
    config = json.loads(stack.config.read_text())
    web = config["stacks"]["web"]
    del web["proxy"]
    restart = f"export PORT={port} RELEASEGATE_SLOT=only; ( {STOP} ); {START}"
    web["commands"] = {"restart": ["sh", "-c", restart]}
    web["smoke"][0]["http"] = f"http://127.0.0.1:{port}/health"
    stack.config.write_text(json.dumps(config))
    url = f"http://127.0.0.1:{port}/"
    try:
        must(stack.rg("deploy", "web", "staging", "v1"))
        base = steady(url)
        kept, new = LoadResult(), LoadResult()
        rollback_s: list[float] = []
        for i in range(runs):
            version = "v2" if i % 2 == 0 else "v1"
            with (
                Load(url, clients=CLIENTS, keepalive=True) as k,
                Load(url, clients=CLIENTS, keepalive=False) as n,
            ):
                time.sleep(0.2)
                started = time.monotonic()
                must(stack.rg("deploy", "web", "staging", version))
                rollback_s.append(time.monotonic() - started)
                time.sleep(0.2)
            _merge(kept, k.result)
            _merge(new, n.result)
        return {
            "proxy": "none (in-place restart)",
            "steady": base,
            "deploys": {"runs": runs, **summary([kept, new])},
            "cli_median_s": round(statistics.median(rollback_s), 2),
        }
    finally:
        for pidfile in (stack.root / "srv" / "web").glob("slot-*.pid"):
            from tests.lab.proxies import stop_pid

            try:
                stop_pid(int(pidfile.read_text().strip()))
            except ValueError:
                pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, choices=range(1, 51), metavar="N")
    parser.add_argument("--proxies", default="nginx,caddy,haproxy")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    kinds = [k for k in args.proxies.split(",") if k]
    if not set(kinds) <= {"nginx", "caddy", "haproxy"}:
        parser.error("--proxies: nginx, caddy, haproxy")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rg-zero-") as tmp:
        results.append(bench_in_place(args.runs, Path(tmp)))
        for kind in kinds:
            results.append(bench_proxy(kind, args.runs, Path(tmp)))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        print(f"== {r['proxy']}")
        print(f"  steady state: {r['steady']}")
        print(f"  deploys: {r['deploys']}")
        if "rollbacks" in r:
            print(f"  rollbacks: {r['rollbacks']}")
            print(
                "  switch back -> old version answering (ms):",
                r["switch_back_to_old_answering_ms"],
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
