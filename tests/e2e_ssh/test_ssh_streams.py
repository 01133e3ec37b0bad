"""The SSH transport's output and interruptions against the SSH lab's real sshd hosts:
bounded output while it streams, a step that ends when its command exits (a background
child keeps running), terminate_running stopping a remote process group."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from releasegate.transport import terminate_running
from releasegate.transport.base import CommandResult
from releasegate.transport.ssh import AsyncSshHost, SshOptions, SshTarget, SshTransport
from tests.lab.ssh import SshLab

pytestmark = pytest.mark.e2e

MIB = 1 << 20

MEASURE = """\
import json, resource, sys
from pathlib import Path
from releasegate.transport.ssh import SshOptions, SshTransport
url, known, key, size = sys.argv[1:5]
writer = (
    "import sys\\nline = b'x' * (1 << 20) + b'\\\\n'\\n"
    f"for _ in range({size}): sys.stdout.buffer.write(line)\\n"
)
options = SshOptions(known_hosts=Path(known), config=(), client_keys=(Path(key),))
with SshTransport(url, options) as t:
    r = t.run(["python3", "-c", writer], timeout=300)
print(json.dumps({
    "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "exit": r.exit_code, "stdout": r.stdout, "error": r.error,
}))
"""


@pytest.fixture()
def host(ssh_lab: SshLab, ssh_options: SshOptions) -> Iterator[SshTransport]:
    with SshTransport(SshTarget.parse(ssh_lab.url(1)), ssh_options) as t:
        yield t


def _alive(t: SshTransport, pid: int) -> bool:
    state = t.run(["sh", "-c", 'cat "/proc/$1/stat" 2>/dev/null || true', "sh", str(pid)])
    return bool(state.stdout) and state.stdout.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _wait_gone(t: SshTransport, pid: int, seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not _alive(t, pid):
            return True
        time.sleep(0.1)
    return False


def test_large_output_keeps_memory_bounded(ssh_lab: SshLab, ssh_options: SshOptions) -> None:
    size = 512  # MiB: held whole, it would be far above the bound asserted
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            MEASURE,
            ssh_lab.url(2),
            str(ssh_options.known_hosts),
            str(ssh_options.client_keys[0]) if ssh_options.client_keys else "",
            str(size),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    got = json.loads(done.stdout)
    assert (got["exit"], got["error"]) == (0, "")
    assert got["maxrss_kib"] < 200 * 1024, f"held {got['maxrss_kib'] / 1024:.0f} MiB"
    assert f"[{size * (MIB + 1) - 16_000} characters cut]" in got["stdout"]
    assert got["stdout"].endswith("x" * 1000 + "\n") and len(got["stdout"]) < 16_100


def test_background_child_holding_output_ends_the_step_at_the_exit(
    host: SshTransport,
) -> None:
    started = time.monotonic()
    r = host.run(["sh", "-c", 'sleep 301 & echo "$!"; echo warn >&2'], timeout=120)
    elapsed = time.monotonic() - started
    child = int(r.stdout.split()[0])
    try:
        assert elapsed < 10, f"the step waited {elapsed:.1f}s for the background child"
        assert (r.exit_code, r.stderr, r.timed_out, r.error) == (0, "warn\n", False, "")
        assert f"pid {child} (sleep 301)" in r.note
        assert "nohup CMD >/dev/null 2>&1 &" in r.note
        assert _alive(host, child), "the background child was killed"
        assert host.run(["true"]).ok  # the connection goes on
        assert host.connections_opened == 1
    finally:
        host.run(["kill", "-KILL", str(child)])


def _run_in_thread(
    t: SshTransport, argv: list[str]
) -> tuple[threading.Thread, list[CommandResult]]:
    results: list[CommandResult] = []
    thread = threading.Thread(target=lambda: results.append(t.run(argv, timeout=120)))
    thread.start()
    return thread, results


def _pids(t: SshTransport, path: str) -> tuple[int, int]:
    end = time.monotonic() + 10
    while time.monotonic() < end:
        r = t.run(["cat", path])
        if len(r.stdout.split()) == 2:
            shell, child = map(int, r.stdout.split())
            return shell, child
        time.sleep(0.1)
    raise AssertionError(f"{path} never appeared")


@pytest.mark.parametrize("ignore_term", [False, True])
def test_terminate_running_stops_the_remote_group(host: SshTransport, ignore_term: bool) -> None:
    path = f"/tmp/rg-terminate-{ignore_term}"
    trap = "trap '' TERM; " if ignore_term else ""
    script = f'{trap}sleep 302 & echo "$$ $!" > "$1"; wait'
    host.run(["rm", "-f", path])
    thread, results = _run_in_thread(host, ["sh", "-c", script, "sh", path])
    shell, child = _pids(host, path)
    started = time.monotonic()
    stopped = terminate_running(grace=1.0)  # the package's: local and SSH hosts
    thread.join(20)
    try:
        assert not thread.is_alive(), "run() did not return after terminate_running"
        assert stopped == [f"{host.target} {shell}"]
        (r,) = results
        assert r.interrupted and r.exit_code == -1 and not r.ok and not r.timed_out
        if ignore_term:
            assert time.monotonic() - started >= 1.0  # its grace, then SIGKILL
        assert _wait_gone(host, child) and _wait_gone(host, shell)
        assert host.run(["true"]).ok
    finally:
        host.run(
            [
                "sh",
                "-c",
                'kill -KILL "$1" "$2" 2>/dev/null; rm -f "$3"',
                "sh",
                str(shell),
                str(child),
                path,
            ]
        )


def test_async_host_terminate_running_from_its_own_loop(
    ssh_lab: SshLab, ssh_options: SshOptions
) -> None:
    async def main() -> tuple[CommandResult, list[int], bool]:
        host = AsyncSshHost(SshTarget.parse(ssh_lab.url(3)), ssh_options)
        try:
            task = asyncio.ensure_future(host.run(["sh", "-c", "echo go; exec sleep 303"]))
            while not host._running or next(iter(host._running.values())).err.pid is None:
                await asyncio.sleep(0.05)
            stopped = await host.terminate_running(grace=2.0)
            result = await asyncio.wait_for(task, 10)
            left = await host.run(["sh", "-c", "pgrep -f '[s]leep 303' || true"])
            return result, stopped, left.stdout.strip() == ""
        finally:
            await host.close()

    result, stopped, gone = asyncio.run(main())
    assert result.interrupted and result.stdout == "go\n"
    assert len(stopped) == 1
    assert gone, "the remote command still runs"
