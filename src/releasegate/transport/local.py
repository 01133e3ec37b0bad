from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from releasegate.transport.base import CommandResult, bound


class LocalTransport:
    """Runs argv lists on this machine with subprocess; no shell is involved."""

    name = "local"

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
            # start_new_session: a timeout kills the whole group (a shell's children too),
            # and a Ctrl-C in the terminal reaches releasegate first, not the command.
            proc = subprocess.Popen(
                args,
                cwd=cwd,
                env=full_env,
                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
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
        _running[proc.pid] = proc
        try:
            out, err = proc.communicate(input=stdin, timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            timed_out = True
        finally:
            _running.pop(proc.pid, None)
        return CommandResult(
            args,
            -1 if timed_out else proc.returncode,
            bound(out),
            bound(err),
            time.monotonic() - started,
            timed_out=timed_out,
        )


def _kill_group(proc: subprocess.Popen[str]) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


_running: dict[int, subprocess.Popen[str]] = {}  # pid -> a command in flight (own group)


def terminate_running(grace: float = 5.0) -> list[int]:
    """Stop every command in flight (its whole process group): SIGTERM, then SIGKILL
    after `grace` seconds. For a run that is being interrupted."""
    import signal

    pids = list(_running)
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for pid in pids:
        proc = _running.get(pid)
        if proc is None:
            continue
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
    return pids
