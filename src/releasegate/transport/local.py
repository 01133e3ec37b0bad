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
        try:
            out, err = proc.communicate(input=stdin, timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            timed_out = True
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
