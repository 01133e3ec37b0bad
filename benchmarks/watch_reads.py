"""How fast the watch window reads a host's log (releasegate.hosttext.read_range_program).

    python benchmarks/watch_reads.py [--mib N] [--runs N] [--json]

Writes an nginx-style access log of --mib MiB (varied addresses, paths, sizes: about 5x
under gzip, like a real one) and a file of random bytes of the same size (nothing shrinks:
the worst case) on SSH lab host h1 (`bash scripts/lab/ssh.sh up` first) and reads each
whole over one SSH connection, and on this machine through the local transport. Reports
the median MB/s of --runs reads and the round trips one read took. Loopback only; each
read is bounded (the reader's own byte cap and round-trip timeout).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lab.ssh import host_dir, require_ssh_lab  # noqa: E402

from releasegate.hosttext import read_range_program  # noqa: E402
from releasegate.ops import Cmd, Program, run_sync  # noqa: E402
from releasegate.transport.local import LocalTransport  # noqa: E402
from releasegate.transport.ssh import LoopRunner, SshOptions, SshTarget, SshTransport  # noqa: E402


def access_log(size: int, seed: int = 1) -> bytes:
    rnd = random.Random(seed)
    paths = ["/", "/api/orders", "/api/users/{n}", "/static/app.{h}.js", "/health", "/login"]
    agents = ['"Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0"', '"curl/8.4.0"', '"kube-probe/1.29"']
    lines: list[str] = []
    total = i = 0
    while total < size:
        path = rnd.choice(paths).format(n=rnd.randint(1, 99_999), h=f"{rnd.getrandbits(32):08x}")
        status = rnd.choice([200] * 30 + [304, 404, 500, 502])
        line = (
            f"10.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)} - - "
            f'[03/Dec/2026:17:{(i // 60) % 60:02d}:{i % 60:02d} +0000] "GET {path} HTTP/1.1" '
            f'{status} {rnd.randint(0, 50_000)} "-" {rnd.choice(agents)}\n'
        )
        lines.append(line)
        total += len(line)
        i += 1
    return "".join(lines).encode()[:size]


def counted(program: Program[Any], trips: list[int]) -> Program[Any]:
    """The program as it is, counting its round trips."""
    answer: Any = None
    try:
        op = next(program)
        while True:
            if isinstance(op, Cmd):
                trips[0] += 1
            answer = yield op
            op = program.send(answer)
    except StopIteration as stop:
        return stop.value


def measure(transport: Any, path: PurePosixPath, size: int, runs: int) -> dict[str, Any]:
    times: list[float] = []
    trips = [0]
    for _ in range(runs):
        trips[0] = 0
        started = time.monotonic()
        got = run_sync(counted(read_range_program(path, 0, size), trips), transport)
        times.append(time.monotonic() - started)
        assert got.ok and len(got.data) == size, got.error
    median = statistics.median(times)
    return {"seconds": round(median, 3), "mb_s": round(size / median / 1e6, 2), "trips": trips[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    size = min(max(1, args.mib), 64) * 1024 * 1024
    lab = require_ssh_lab(1)
    name = f"watch-bench-{os.getpid()}"
    folder = host_dir(1) / "srv" / name  # h1's /srv/NAME, seen from here
    folder.mkdir(parents=True)
    results: dict[str, Any] = {}
    runner = LoopRunner()
    try:
        (folder / "access.log").write_bytes(access_log(size))
        (folder / "random.bin").write_bytes(os.urandom(size))
        options = SshOptions(
            known_hosts=lab.known_hosts, config=(), client_keys=(lab.key,), connect_timeout=10
        )
        target = SshTarget(address=lab.addresses[0], user=lab.user, port=lab.port)
        ssh = SshTransport(target, options, runner=runner)
        for kind in ("access.log", "random.bin"):
            remote = PurePosixPath(f"/srv/{name}/{kind}")
            run_sync(read_range_program(remote, 0, 0), ssh)  # connected before the clock
            results[f"ssh {kind}"] = measure(ssh, remote, size, args.runs)
            here = PurePosixPath(str(folder / kind))
            results[f"local {kind}"] = measure(LocalTransport(), here, size, args.runs)
    finally:
        runner.close()
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps({"mib": size // 1024 // 1024, "runs": args.runs, "results": results}))
        return 0
    print(f"read {size // 1024 // 1024} MiB whole, median of {args.runs} run(s):")
    for key, r in results.items():
        print(
            f"  {key:<18} {r['seconds']:7.2f} s  {r['mb_s']:6.2f} MB/s  {r['trips']:4d} round trips"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
