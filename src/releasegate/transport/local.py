"""Commands on this machine: argv lists run with subprocess, no shell involved.

The output is read as it comes and bounded (`BoundedText`): a command that prints a
gigabyte costs releasegate a few dozen kilobytes. A step ends when its command exits, not
when every process holding its output has let go: a background child that kept the stdout
(a restart script that starts a daemon without redirecting it) gets `EXIT_GRACE_S` to
finish writing, keeps running, and is named in the result's `note`.

`terminate_running()` stops the commands running now (their process groups): the
executor's answer to SIGINT/SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from releasegate.transport.base import (
    DETACH_HINT,
    EXIT_GRACE_S,
    OUTPUT_LIMIT,
    BoundedText,
    CommandResult,
    StreamDecoder,
)

READ_CHUNK = 1 << 16
# After a timeout's SIGKILL, how long to wait for the command to be gone (a process stuck
# in the kernel cannot die at once); then the step ends without its exit status.
KILL_WAIT_S = 5.0


@dataclass
class _Running:
    proc: subprocess.Popen[bytes]
    interrupted: bool = False


_running: dict[int, _Running] = {}  # pid (= process group id) -> the run() waiting for it
# Re-entrant: terminate_running may run in a signal handler of a thread inside run().
_running_guard = threading.RLock()


class LocalTransport:
    """Runs argv lists on this machine with subprocess; no shell is involved."""

    name = "local"

    def __init__(self, *, exit_grace: float = EXIT_GRACE_S, limit: int = OUTPUT_LIMIT) -> None:
        self.exit_grace = exit_grace
        self.limit = limit

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        stdin: str | None = None,
    ) -> CommandResult:
        """Run argv; `stdin` is fed to the command (content that must not show in argv)."""
        args = tuple(argv)
        full_env = {**os.environ, **env} if env else None
        started = time.monotonic()
        try:
            # start_new_session: a timeout or an interruption stops the whole group (a
            # shell's children too), and a Ctrl-C in the terminal reaches releasegate
            # first, not the command.
            proc = subprocess.Popen(
                args,
                cwd=cwd,
                env=full_env,
                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            return CommandResult(
                args,
                -1,
                "",
                "",
                time.monotonic() - started,
                error=f"could not start {args[0]!r}: {exc.strerror or exc}",
            )
        running = _Running(proc)
        with _running_guard:
            _running[proc.pid] = running
        try:
            return self._collect(args, proc, running, stdin, timeout, started)
        finally:
            with _running_guard:
                _running.pop(proc.pid, None)

    def _collect(
        self,
        args: tuple[str, ...],
        proc: subprocess.Popen[bytes],
        running: _Running,
        stdin: str | None,
        timeout: float | None,
        started: float,
    ) -> CommandResult:
        assert proc.stdout is not None and proc.stderr is not None
        out, err = BoundedText(self.limit), BoundedText(self.limit)
        streams = {
            proc.stdout.fileno(): ("stdout", StreamDecoder(out.append)),
            proc.stderr.fileno(): ("stderr", StreamDecoder(err.append)),
        }
        pipes = _Pipes(proc, stdin)
        with selectors.DefaultSelector() as sel, pipes:
            for fd in streams:
                sel.register(fd, selectors.EVENT_READ, "out")
            if pipes.input_fd is not None:
                sel.register(pipes.input_fd, selectors.EVENT_WRITE, "in")
            if pipes.pidfd is not None:
                sel.register(pipes.pidfd, selectors.EVENT_READ, "exit")
            open_fds = set(streams)
            deadline = started + timeout if timeout is not None else None
            exited_at: float | None = None
            timed_out = False
            while True:
                now = time.monotonic()
                if exited_at is None and proc.poll() is not None:
                    exited_at = now
                if exited_at is not None and (not open_fds or now - exited_at >= self.exit_grace):
                    break
                if deadline is not None and now >= deadline:
                    if timed_out:  # killed, and still not gone: stop waiting for it
                        break
                    timed_out = True
                    _signal_group(proc.pid, signal.SIGKILL)
                    deadline = now + KILL_WAIT_S
                waits = [deadline - now] if deadline is not None else []
                if exited_at is not None:
                    waits.append(exited_at + self.exit_grace - now)
                elif pipes.pidfd is None:
                    waits.append(0.05)  # no pidfd: look at the process now and then
                for key, _ in sel.select(max(0.0, min(waits)) if waits else None):
                    fd = int(key.fd)
                    if key.data == "exit":
                        sel.unregister(fd)  # stays readable; proc.poll() reaps it above
                    elif key.data == "in":
                        if pipes.write_some():
                            sel.unregister(fd)
                            pipes.close_input()
                    elif data := os.read(fd, READ_CHUNK):
                        streams[fd][1].feed(data)
                    else:
                        sel.unregister(fd)
                        open_fds.discard(fd)
            for _, decoder in streams.values():
                decoder.close()
            note = ""
            if open_fds and exited_at is not None:
                held = [streams[fd][0] for fd in sorted(open_fds)]
                note = _held_note(held, _holders(open_fds))
                _hand_off(open_fds)
        code = proc.returncode
        interrupted = running.interrupted and not timed_out
        return CommandResult(
            args,
            -1 if (timed_out or interrupted or code is None) else code,
            out.text(),
            err.text(),
            time.monotonic() - started,
            timed_out=timed_out,
            interrupted=interrupted,
            note=note,
            error="" if code is not None or timed_out or interrupted else "no exit status",
        )


class _Pipes:
    """The command's stdin feed and its pidfd; closes every descriptor of the run."""

    def __init__(self, proc: subprocess.Popen[bytes], stdin: str | None) -> None:
        self.proc = proc
        self._data = memoryview(stdin.encode()) if stdin else memoryview(b"")
        self.input_fd: int | None = None
        if proc.stdin is not None:
            if self._data:
                self.input_fd = proc.stdin.fileno()
                os.set_blocking(self.input_fd, False)
            else:
                self.close_input()
        self.pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):  # Linux >= 5.3 only
            self.pidfd = os.pidfd_open(proc.pid)

    def write_some(self) -> bool:
        """Write what the pipe takes now; True when all is written (or nobody reads)."""
        assert self.input_fd is not None
        try:
            n = os.write(self.input_fd, self._data[:READ_CHUNK])
        except BlockingIOError:
            return False
        except (BrokenPipeError, OSError):
            return True
        self._data = self._data[n:]
        return not self._data

    def close_input(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        self.input_fd = None

    def __enter__(self) -> _Pipes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_input()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self.pidfd is not None:
            os.close(self.pidfd)


def terminate_running(grace: float = 5.0) -> list[int]:
    """Stop every command running now through LocalTransport: SIGTERM to its process
    group, up to `grace` seconds for the group to end, then SIGKILL. Each such `run()`
    returns at once with `interrupted=True` (exit -1). Returns the process groups signalled.

    Callable from a signal handler of the thread that is inside `run()` (it waits without
    that thread's help) or from another thread. A command that has already exited is left
    alone, and so is a background child it left holding its output (a started daemon)."""
    with _running_guard:
        runs = list(_running.values())
    groups: list[int] = []
    for run in runs:
        if _exited(run.proc):
            continue
        run.interrupted = True
        if _signal_group(run.proc.pid, signal.SIGTERM):
            groups.append(run.proc.pid)
    end = time.monotonic() + grace
    alive = list(groups)
    while alive and time.monotonic() < end:
        time.sleep(0.05)
        alive = [g for g in alive if _group_alive(g)]
    for group in alive:
        _signal_group(group, signal.SIGKILL)
    return groups


def running_groups() -> list[int]:
    """The process groups of the commands running now (for a status line or a test)."""
    with _running_guard:
        return sorted(_running)


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the command's own process has ended, without reaping it (its run() does)."""
    if proc.returncode is not None:
        return True
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _group_alive(pgid: int) -> bool:
    """A process of the group is still running (zombies do not count: an unreaped command
    would otherwise keep its group 'alive' until its run() reaps it)."""
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc: any member, zombie or not
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def _holders(fds: set[int]) -> list[tuple[int, str]]:
    """The processes (pid, command line) that hold the other end of these pipes, found in
    /proc/*/fd; best effort (another user's processes cannot be looked into)."""
    links = set()
    for fd in fds:
        with contextlib.suppress(OSError):
            links.add(f"pipe:[{os.fstat(fd).st_ino}]")
    me = str(os.getpid())
    found: list[tuple[int, str]] = []
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit() and e != me]
    except OSError:
        return found
    for entry in entries:
        try:
            fd_dir = f"/proc/{entry}/fd"
            if not any(os.readlink(f"{fd_dir}/{n}") in links for n in os.listdir(fd_dir)):
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.append((int(entry), cmdline[:200]))
    return sorted(found)


def _held_note(streams: list[str], holders: list[tuple[int, str]]) -> str:
    what = " and ".join(streams)
    if holders:
        who = ", ".join(f"pid {pid} ({cmd or '?'})" for pid, cmd in holders)
    else:
        who = "a process it started (not found in /proc)"
    return (
        f"the command exited but {who} still holds its {what}; the step did not wait for "
        f"it, it keeps running, and its further output is discarded. To run a process in "
        f"the background, {DETACH_HINT}"
    )


def _hand_off(fds: set[int]) -> None:
    """Give the read ends still held to a detached `cat >/dev/null` each: the background
    process keeps a reader (closing ours would kill it with SIGPIPE at its next line), and
    no child of ours is left behind (the shell exits at once; cat is adopted by init). The
    pipe comes as the shell's stdin: an `&` command's own stdin would be /dev/null."""
    for fd in sorted(fds):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["sh", "-c", "exec 3<&0; cat <&3 3<&- >/dev/null 2>&1 &"],
                stdin=fd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                timeout=5,
                check=False,
            )
