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

`--runtimes compose` (default: releases,compose; needs `bash scripts/lab/docker.sh up`): the
same for the compose runtime on the Docker lab, through each of `--proxies`: each slot its own
compose project (tests/e2e_proxy/compose_stack.py), against a plain `docker compose up -d` in
place.
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

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e_proxy.slots import START, STOP, SlotStack, make_stack  # noqa: E402
from tests.lab.load import Load, LoadResult  # noqa: E402
from tests.lab.proxies import binary, free_port, get  # noqa: E402

from tests.e2e_proxy.compose_stack import ComposeSlots, make  # noqa: E402  # isort: skip

from releasegate.proxy import adapter_for  # noqa: E402
from releasegate.proxy.base import run_here  # noqa: E402
from releasegate.proxy.config import ProxyConfig  # noqa: E402

CLIENTS = 2  # per kind of client (keep-alive, close)


def installed(kind: str) -> bool:
    try:
        binary(kind)
    except (pytest.skip.Exception, pytest.fail.Exception):  # what the lab helper raises
        return False
    return True


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def summary(results: list[LoadResult]) -> dict[str, Any]:
    """`results`: the keep-alive clients' then the new-connection clients'."""
    lat = sorted(x for r in results for x in r.latencies)
    merged = LoadResult(latencies=lat)
    kept, new = results
    return {
        "requests": sum(r.ok + r.failed for r in results),
        "failed": sum(r.failed for r in results),
        "failed_keepalive": kept.failed,
        "failed_new_conn": new.failed,
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


def switch_back_ms(stack: SlotStack, target: str, url: str = "", expect: str = "") -> float:
    """The watch window's rollback: adapter.switch(old slot), until the old version answers
    through the proxy at `url` (polled every 5 ms): its body holds `expect` (the releases
    app's `version V` unless given; the compose image's /health has `"version": "V"`)."""
    url = url or stack.proxy.url
    expect = expect or f"version {target}"
    cfg = ProxyConfig.model_validate(stack.proxy.config())
    switch = adapter_for(cfg)
    current = run_here(switch.current())
    back = cfg.other(current or "blue")
    started = time.monotonic()
    result = run_here(switch.switch(back))
    if not result.ok:
        raise SystemExit(f"switch back failed: {result.summary}")
    # Generous: on the shared machine nginx's `-t` and reload alone took seconds at load 60+.
    deadline = started + 30
    answer = ""
    while time.monotonic() < deadline:
        answer = get(url, timeout=2)[1]
        if expect in answer:
            return ms(time.monotonic() - started)
        time.sleep(0.005)
    raise SystemExit(
        f"{target} never answered within 30 s of the switch back from slot {current} to slot "
        f"{back} through {cfg.kind}: the proxy answered {answer[:120]!r}"
    )


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
        # The watch window's primitive, alone: switch to the warm slot and back, timed. The
        # last rollback left v1 live, and each switch flips the slots: the target alternates.
        # (Not read through the proxy: right after nginx's reload an old worker may still
        # answer a new connection with the version it switched away from.)
        for i in range(runs):
            switch_ms.append(switch_back_ms(stack, "v2" if i % 2 == 0 else "v1"))
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


def bench_compose(runs: int, work: Path, *, in_place: bool, kind: str = "nginx") -> dict[str, Any]:
    """The compose runtime: slots through the `kind` proxy (deploy v2, rollback to the warm
    v1, then the watch window's switch back alone), or (`in_place`) no proxy and
    `docker compose up -d` recreating the one project."""
    from tests.lab.docker import require_docker
    from tests.lab.fixtures import DockerLab

    try:
        require_docker()
    except BaseException as exc:  # pytest's skip outside pytest: say what is missing
        raise SystemExit(f"the Docker lab is needed for --runtimes compose: {exc}") from None
    stack: ComposeSlots = make(work / ("compose-in-place" if in_place else f"compose-{kind}"),
                               DockerLab(), keep_old=True, kind=kind)  # fmt: skip
    url = stack.proxy.url + "/health"
    if in_place:
        port = free_port()
        config = json.loads(stack.config.read_text())
        web = config["stacks"]["web"]
        del web["proxy"]
        web["smoke"][0]["http"] = f"http://127.0.0.1:{port}/health"
        stack.config.write_text(json.dumps(config))
        (stack.root / "srv" / "web" / ".env").write_text(
            f"IMAGE_TAG={stack.v1}\nRELEASEGATE_SLOT_PORT={port}\n"
        )
        url = f"http://127.0.0.1:{port}/health"
    v1, v2 = stack.v1, stack.v2
    try:
        must(stack.rg("deploy", "web", "staging", v1))
        base = steady(url)
        deploys, rollbacks = [LoadResult(), LoadResult()], [LoadResult(), LoadResult()]
        deploy_s: list[float] = []
        rollback_s: list[float] = []
        for i in range(runs):
            with (
                Load(url, clients=CLIENTS, keepalive=True) as k,
                Load(url, clients=CLIENTS, keepalive=False) as n,
            ):
                time.sleep(0.2)
                started = time.monotonic()
                version = (v2 if i % 2 == 0 else v1) if in_place else v2
                must(stack.rg("deploy", "web", "staging", version))
                deploy_s.append(time.monotonic() - started)
                time.sleep(0.2)
            _merge(deploys[0], k.result)
            _merge(deploys[1], n.result)
            if in_place:
                continue
            with (
                Load(url, clients=CLIENTS, keepalive=True) as k,
                Load(url, clients=CLIENTS, keepalive=False) as n,
            ):
                time.sleep(0.2)
                started = time.monotonic()
                must(stack.rg("rollback", "web", "staging", "--to", v1))
                rollback_s.append(time.monotonic() - started)
                time.sleep(0.2)
            _merge(rollbacks[0], k.result)
            _merge(rollbacks[1], n.result)
        switch_ms: list[float] = []
        if not in_place:
            # The watch window's primitive alone: switch to the warm slot and back, timed.
            # v1 is live after the last rollback; each switch flips the slots (see above).
            for i in range(runs):
                old = v2 if i % 2 == 0 else v1
                switch_ms.append(switch_back_ms(stack, old, url, f'"version": "{old}"'))
        result: dict[str, Any] = {
            "proxy": "compose: none (docker compose up -d in place)"
            if in_place
            else f"compose: {kind} (a project per slot)",
            "steady": base,
            "deploys": {"runs": runs, **summary(deploys)},
            "deploy_cli_median_s": round(statistics.median(deploy_s), 2),
        }
        if not in_place:
            result["rollbacks"] = {
                "runs": runs,
                **summary(rollbacks),
                "cli_median_s": round(statistics.median(rollback_s), 2),
                "cli_max_s": round(max(rollback_s), 2),
            }
            result["switch_back_to_old_answering_ms"] = {
                "median": statistics.median(switch_ms),
                "max": max(switch_ms),
            }
        return result
    finally:
        stack.down()
        if in_place:
            from tests.lab.docker import compose

            compose(stack.project, "down", "-v", "-t", "2", check=False)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", type=int, default=10, choices=range(1, 51), metavar="N",
        help="deploys and rollbacks per proxy and runtime, 1 to 50 (default 10)",
    )  # fmt: skip
    parser.add_argument(
        "--proxies", default="nginx,caddy,haproxy",
        help="comma-separated: nginx, caddy, haproxy (default all three); those not installed "
        "are skipped with a line saying so",
    )  # fmt: skip
    parser.add_argument(
        "--runtimes", default="releases,compose",
        help="comma-separated: releases, compose (default both; compose needs the Docker lab)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one JSON document instead of tables")
    args = parser.parse_args()
    kinds = [k for k in args.proxies.split(",") if k]
    if not set(kinds) <= {"nginx", "caddy", "haproxy"}:
        parser.error("--proxies: nginx, caddy, haproxy")
    runtimes = [r for r in args.runtimes.split(",") if r]
    if not runtimes or not set(runtimes) <= {"releases", "compose"}:
        parser.error("--runtimes: releases, compose")
    results: list[dict[str, Any]] = []
    missing = [k for k in kinds if not installed(k)]
    for kind in missing:
        print(f"{kind}: not installed, skipped (bash scripts/lab/proxy.sh up)", file=sys.stderr)
    kinds = [k for k in kinds if k not in missing]
    with tempfile.TemporaryDirectory(prefix="rg-zero-") as tmp:
        if "releases" in runtimes:
            results.append(bench_in_place(args.runs, Path(tmp)))
            for kind in kinds:
                results.append(bench_proxy(kind, args.runs, Path(tmp)))
        if "compose" in runtimes:
            results.append(bench_compose(args.runs, Path(tmp), in_place=True))
            for kind in kinds:
                # A row that fails (a refused smoke on the shared Docker lab) is recorded
                # with its reason; the other proxies' rows still run.
                try:
                    results.append(bench_compose(args.runs, Path(tmp), in_place=False, kind=kind))
                except SystemExit as exc:
                    results.append({"proxy": f"compose: {kind} (a project per slot)",
                                    "error": str(exc)[-1500:]})  # fmt: skip
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        print(f"== {r['proxy']}")
        if "error" in r:
            print(f"  FAILED: {r['error']}")
            continue
        print(f"  steady state: {r['steady']}")
        print(f"  deploys: {r['deploys']}")
        if "deploy_cli_median_s" in r:
            print(f"  deploy CLI median: {r['deploy_cli_median_s']} s")
        if "rollbacks" in r:
            print(f"  rollbacks: {r['rollbacks']}")
        if "switch_back_to_old_answering_ms" in r:
            print(
                "  switch back -> old version answering (ms):",
                r["switch_back_to_old_answering_ms"],
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
