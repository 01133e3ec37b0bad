"""LocalTransport with real processes: output bounded while it streams, a step that ends
when its command exits (a background child keeps running), interruptions that stop the
whole process group."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from releasegate.transport import terminate_running
from releasegate.transport.base import CommandResult, bound
from releasegate.transport.local import LocalTransport, running_groups

pytestmark = pytest.mark.e2e

GIB = 1 << 30

# Writes 1 GiB + 1024 newlines to stdout, then "the end" to stderr.
WRITE_1_GIB = """\
import sys
line = b"x" * (1 << 20) + b"\\n"
for _ in range(1024):
    sys.stdout.buffer.write(line)
sys.stdout.flush()
sys.stderr.write("the end\\n")
"""

MEASURE = """\
import json, resource, sys
from releasegate.transport.local import LocalTransport
r = LocalTransport().run([sys.executable, "-c", sys.argv[1]])
print(json.dumps({
    "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "exit": r.exit_code, "stdout": r.stdout, "stderr": r.stderr,
}))
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _wait_gone(pid: int, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture()
def pids_to_kill() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_gibibyte_of_output_keeps_memory_bounded() -> None:
    # In a process of its own, so that ru_maxrss is this run's and nothing else's.
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, WRITE_1_GIB],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    got = json.loads(done.stdout)
    assert got["exit"] == 0
    assert got["maxrss_kib"] < 200 * 1024, f"held {got['maxrss_kib'] / 1024:.0f} MiB"
    assert got["stdout"].startswith("x" * 1000)
    assert got["stdout"].endswith("x" * 1000 + "\n")
    assert f"[{GIB + 1024 - 16_000} characters cut]" in got["stdout"]
    assert len(got["stdout"]) < 16_100
    assert got["stderr"] == "the end\n"


def test_stdin_larger_than_a_pipe_goes_through_while_output_is_read() -> None:
    data = "".join(f"{i:07d}\n" for i in range(200_000))  # 1.6 MB: both pipes fill up
    r = LocalTransport().run(["cat"], stdin=data, timeout=60)
    assert r.ok, r
    assert r.stdout == bound(data)
    assert r.stdout.startswith(data[:8000]) and r.stdout.endswith(data[-8000:])


def test_background_child_holding_stdout_ends_the_step_at_the_exit(
    tmp_path: Path, pids_to_kill: list[int]
) -> None:
    pidfile = tmp_path / "child.pid"
    script = 'sleep 300 & echo "$!" > "$1"; echo started; echo warn >&2'
    started = time.monotonic()
    r = LocalTransport().run(["sh", "-c", script, "sh", str(pidfile)], timeout=120)
    elapsed = time.monotonic() - started
    child = int(pidfile.read_text())
    pids_to_kill.append(child)
    assert elapsed < 10, f"the step waited {elapsed:.1f}s for the background child"
    assert (r.exit_code, r.stdout, r.stderr, r.timed_out) == (0, "started\n", "warn\n", False)
    assert r.ok
    assert f"pid {child} (sleep 300)" in r.note
    assert "stdout and stderr" in r.note
    assert "nohup CMD >/dev/null 2>&1 &" in r.note and "setsid" in r.note
    time.sleep(0.5)
    assert _alive(child), "the background child was killed"
    # The child still has a reader for its output: a write does not kill it (SIGPIPE).
    with open(f"/proc/{child}/fd/1", "w") as out:
        out.write("still here\n")
    time.sleep(0.2)
    assert _alive(child)


def test_output_closed_early_does_not_end_the_step_before_the_exit() -> None:
    # Not a background child: the command itself closed its output and goes on working.
    r = LocalTransport().run(["sh", "-c", "echo a; exec >&- 2>&-; sleep 1; exit 3"], timeout=30)
    assert (r.exit_code, r.stdout, r.note) == (3, "a\n", "")
    assert r.duration_s >= 1


def test_timeout_kills_the_whole_group(tmp_path: Path, pids_to_kill: list[int]) -> None:
    pidfile = tmp_path / "child.pid"
    r = LocalTransport().run(
        ["sh", "-c", 'sleep 300 & echo "$!" > "$1"; wait', "sh", str(pidfile)], timeout=1
    )
    child = int(pidfile.read_text())
    pids_to_kill.append(child)
    assert r.timed_out and r.exit_code == -1 and not r.interrupted
    assert _wait_gone(child)


def _run_in_thread(argv: list[str]) -> tuple[threading.Thread, list[CommandResult]]:
    results: list[CommandResult] = []
    thread = threading.Thread(target=lambda: results.append(LocalTransport().run(argv)))
    thread.start()
    return thread, results


def _wait_for(path: Path) -> None:
    end = time.monotonic() + 10
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.02)


def test_terminate_running_stops_a_shell_and_its_child(
    tmp_path: Path, pids_to_kill: list[int]
) -> None:
    pidfile = tmp_path / "pids"
    # The shell waits on a child; both ignore nothing: SIGTERM ends them.
    script = 'sleep 300 & echo "$$ $!" > "$1"; wait'
    thread, results = _run_in_thread(["sh", "-c", script, "sh", str(pidfile)])
    _wait_for(pidfile)
    shell, child = map(int, pidfile.read_text().split())
    pids_to_kill += [shell, child]
    assert shell in running_groups()
    stopped = terminate_running(grace=5.0)
    thread.join(10)
    assert not thread.is_alive(), "run() did not return after terminate_running"
    assert stopped == [f"local {shell}"]
    (r,) = results
    assert r.interrupted and r.exit_code == -1 and not r.ok and not r.timed_out
    assert _wait_gone(child) and _wait_gone(shell)
    assert running_groups() == []


def test_terminate_running_kills_what_ignores_sigterm(
    tmp_path: Path, pids_to_kill: list[int]
) -> None:
    pidfile = tmp_path / "pids"
    script = 'trap \'\' TERM; sleep 300 & echo "$$ $!" > "$1"; wait'
    thread, results = _run_in_thread(["sh", "-c", script, "sh", str(pidfile)])
    _wait_for(pidfile)
    shell, child = map(int, pidfile.read_text().split())
    pids_to_kill += [shell, child]
    started = time.monotonic()
    terminate_running(grace=1.0)
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - started >= 1.0  # it had its grace before SIGKILL
    assert results[0].interrupted
    assert _wait_gone(child) and _wait_gone(shell)


def test_terminate_running_from_a_signal_handler_of_the_running_thread(
    tmp_path: Path, pids_to_kill: list[int]
) -> None:
    # The executor's case: SIGTERM arrives while the main thread is inside run().
    pidfile = tmp_path / "pids"
    old = signal.signal(signal.SIGALRM, lambda *_: terminate_running(grace=5.0))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        r = LocalTransport().run(
            ["sh", "-c", 'sleep 300 & echo "$$ $!" > "$1"; wait', "sh", str(pidfile)],
            timeout=60,
        )
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    shell, child = map(int, pidfile.read_text().split())
    pids_to_kill += [shell, child]
    assert r.interrupted and r.exit_code == -1
    assert r.duration_s < 30
    assert _wait_gone(child)


def test_terminate_running_with_nothing_running() -> None:
    assert terminate_running(grace=0.1) == []
