"""Does a Caddy setting stop the connection resets of its admin API changes? (issue 17)

    python benchmarks/caddy_resets.py [--switches 60] [--repeat 3] [--candidates a,b] [--json]

Caddy 2.6 applies every admin API change as a config reload: the new server opens its own
SO_REUSEPORT socket on the port and the old one closes its socket, so a connection the kernel
had queued on the old socket, not yet accepted, is reset. The bare loop: Caddy in front of two
slot apps, 2 keep-alive clients and 2 clients that open a connection per request
(tests/lab/load.py), and N switches blue <-> green through releasegate's own adapter (PATCH
of the upstreams), 0.25 s apart. Counted: failed requests per kind of client.

Each run (a candidate, once) is a child process in a network namespace of its own
(`unshare --net`: root, its own loopback, nothing else): every candidate runs in the same
conditions, and the kernel candidate's sysctl never touches the machine's. Loopback only;
every process is started here and stopped by its pid; each child is bounded in time.

Candidates (--candidates, default all):
  baseline        the config tests/lab/proxies.py runs
  grace_period    apps.http.grace_period 10s (how long the old server waits for its connections)
  shutdown_delay  apps.http.shutdown_delay 2s (newer than 2.6: recorded if Caddy refuses it)
  lb_try          reverse_proxy load_balancing try_duration 2s, try_interval 50ms (the
                  Caddyfile's lb_try_duration / lb_try_interval: upstream retries)
  load            the switch as POST /load of the whole config, not a PATCH of the upstreams
  migrate_req     the kernel's net.ipv4.tcp_migrate_req=1 (Linux 5.14+) in the namespace: a
                  closing SO_REUSEPORT listener hands its queued connections to the group's
                  other listener instead of resetting them
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lab.load import Load  # noqa: E402
from tests.lab.proxies import (  # noqa: E402
    binary,
    caddy_config,
    free_port,
    get,
    start_app,
    stop_child,
    wait_port,
)

from releasegate.proxy import adapter_for  # noqa: E402
from releasegate.proxy.base import run_here  # noqa: E402
from releasegate.proxy.config import ProxyConfig  # noqa: E402

CANDIDATES = ("baseline", "grace_period", "shutdown_delay", "lb_try", "load", "migrate_req")
MIGRATE_REQ = Path("/proc/sys/net/ipv4/tcp_migrate_req")
CHILD_TIMEOUT_S = 240.0
GAP_S = 0.25  # between switches


def candidate_config(name: str, port: int, admin: int, upstream: str, log: Path) -> dict[str, Any]:
    config = caddy_config(port, admin, upstream, log)
    http = config["apps"]["http"]
    handler = http["servers"]["srv0"]["routes"][0]["handle"][0]
    if name == "grace_period":
        http["grace_period"] = "10s"
    elif name == "shutdown_delay":
        http["shutdown_delay"] = "2s"
    elif name == "lb_try":
        # The Caddyfile's lb_try_duration / lb_try_interval, in JSON.
        handler["load_balancing"] = {"try_duration": "2s", "try_interval": "50ms"}
    return config


def post_load(admin: str, config: dict[str, Any]) -> None:
    """The other config path: the whole config to /load (bounded, loopback)."""
    request = urllib.request.Request(
        admin + "/load", data=json.dumps(config).encode(), method="POST",
        headers={"Content-Type": "application/json", "Origin": admin},
    )  # fmt: skip
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as answer:
        answer.read(4096)


def one_run(name: str, switches: int, work: Path) -> dict[str, Any]:
    """In the child: Caddy, two slot apps, the load, the switch loop. Stops what it started."""
    exe = binary("caddy")
    slots = {"blue": f"127.0.0.1:{free_port()}", "green": f"127.0.0.1:{free_port()}"}
    apps = [
        start_app(work / slot, int(address.rsplit(":", 1)[1]), "v1", slot)
        for slot, address in slots.items()
    ]
    port, admin = free_port(), free_port()
    log = work / "access.log"
    config = candidate_config(name, port, admin, slots["blue"], log)
    (work / "caddy.json").write_text(json.dumps(config))
    env = {**os.environ, "HOME": str(work), "XDG_DATA_HOME": str(work / "data"),
           "XDG_CONFIG_HOME": str(work / "config")}  # fmt: skip
    out = work / "caddy.out"
    caddy = subprocess.Popen(
        [exe, "run", "--config", str(work / "caddy.json")], env=env, stdin=subprocess.DEVNULL,
        stdout=out.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while caddy.poll() is None and time.monotonic() < deadline:
            try:
                wait_port(port, timeout=0.5)
                wait_port(admin, timeout=0.5)
                break
            except TimeoutError:
                continue
        if caddy.poll() is not None or time.monotonic() >= deadline:
            said = out.read_bytes()[-2000:].decode("utf-8", "replace")
            why = [line for line in said.splitlines() if "rror" in line][-1:] or [said[-300:]]
            return {"candidate": name, "refused": why[0][:400]}
        cfg = ProxyConfig.model_validate(
            {"kind": "caddy", "slots": slots,
             "caddy": {"admin": f"http://127.0.0.1:{admin}",
                       "upstreams_path": "/id/releasegate/upstreams"}}
        )  # fmt: skip
        switch = adapter_for(cfg)
        url = f"http://127.0.0.1:{port}/"
        assert "slot blue" in get(url)[1]
        took: list[float] = []
        with (
            Load(url, clients=2, keepalive=True, max_s=180) as kept,
            Load(url, clients=2, keepalive=False, max_s=180) as new,
        ):
            time.sleep(0.5)
            for i in range(switches):
                to = "green" if i % 2 == 0 else "blue"
                started = time.monotonic()
                if name == "load":
                    config = candidate_config(name, port, admin, slots[to], log)
                    post_load(f"http://127.0.0.1:{admin}", config)
                else:
                    result = run_here(switch.switch(to))
                    if not result.ok:
                        raise SystemExit(f"switch to {to} failed: {result.summary}")
                took.append(time.monotonic() - started)
                time.sleep(GAP_S)
            time.sleep(0.5)
        took.sort()
        return {
            "candidate": name,
            "switches": switches,
            "new_conn": {"requests": new.result.ok + new.result.failed,
                         "failed": new.result.failed, "errors": new.result.errors},
            "keepalive": {"requests": kept.result.ok + kept.result.failed,
                          "failed": kept.result.failed, "errors": kept.result.errors,
                          "retries": kept.result.stale_retries},
            "both_slots_answered": all(
                any(f"slot {s}" in b for b in new.result.bodies) for s in slots
            ),
            "switch_ms_median": round(took[len(took) // 2] * 1000, 1),
        }  # fmt: skip
    finally:
        stop_child(caddy)
        for app in apps:
            stop_child(app)


def child(name: str, switches: int, parent_netns: str) -> dict[str, Any]:
    """Runs under `unshare --net`: bring up this namespace's loopback, set the kernel option
    for its candidate, and only after checking that this is not the parent's namespace."""
    if os.readlink("/proc/self/ns/net") == parent_netns:
        raise SystemExit("refusing: not in a network namespace of its own")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=10)
    if name == "migrate_req":
        MIGRATE_REQ.write_text("1\n")
    with tempfile.TemporaryDirectory(prefix="rg-caddy-resets-") as tmp:
        result = one_run(name, switches, Path(tmp))
    result["tcp_migrate_req"] = MIGRATE_REQ.read_text().strip() if MIGRATE_REQ.exists() else "-"
    return result


def spawn(name: str, switches: int) -> dict[str, Any]:
    netns = os.readlink("/proc/self/ns/net")
    argv = ["unshare", "--net", "--", sys.executable, __file__, "--child", name,
            "--switches", str(switches), "--parent-netns", netns]  # fmt: skip
    try:
        run = subprocess.run(argv, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"candidate": name, "error": f"no answer within {CHILD_TIMEOUT_S:g} s"}
    if run.returncode != 0:
        return {"candidate": name, "error": (run.stderr or run.stdout)[-600:]}
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--switches", type=int, default=60, choices=range(1, 301), metavar="N")
    parser.add_argument("--repeat", type=int, default=3, choices=range(1, 11), metavar="N")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", choices=CANDIDATES, help=argparse.SUPPRESS)
    parser.add_argument("--parent-netns", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.switches, args.parent_netns)))
        return 0
    names = [c for c in args.candidates.split(",") if c]
    if not names or not set(names) <= set(CANDIDATES):
        parser.error(f"--candidates: {', '.join(CANDIDATES)}")
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        raise SystemExit("needs root and unshare(1): each run gets a network namespace")
    binary("caddy")  # say what is missing before any run
    runs: list[dict[str, Any]] = []
    # Interleaved (a round of every candidate, then the next round): a busier minute on the
    # shared machine falls on every candidate alike.
    for round_ in range(args.repeat):
        for name in names:
            result = spawn(name, args.switches)
            result["round"] = round_ + 1
            runs.append(result)
            if not args.json:
                print(json.dumps(result), flush=True)
    if args.json:
        print(json.dumps(runs, indent=2))
        return 0
    print(f"\n{'candidate':<16} resets (new connection) per run   keep-alive failed   requests")
    for name in names:
        mine = [r for r in runs if r["candidate"] == name]
        if any("refused" in r or "error" in r for r in mine):
            print(f"{name:<16} {mine[0].get('refused') or mine[0].get('error')}")
            continue
        resets = " / ".join(str(r["new_conn"]["failed"]) for r in mine)
        kept = " / ".join(str(r["keepalive"]["failed"]) for r in mine)
        total = sum(r["new_conn"]["requests"] + r["keepalive"]["requests"] for r in mine)
        print(f"{name:<16} {resets:<34} {kept:<18} {total}")
    print(f"load average: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
