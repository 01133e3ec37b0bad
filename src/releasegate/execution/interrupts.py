"""Safe points: SIGINT (Ctrl-C) and SIGTERM end a run at a step boundary that the ledger
and the hosts agree on, instead of wherever the interpreter happened to be.

The first signal raises `Interrupted` in the main thread: the running step stops the
team's command (its process group), is recorded `aborted`, and the workflow brings back
the last good version if the run had switched. A second signal exits at once
(128 + signal), leaving what a SIGKILL leaves: the next deploy or rollback recovers.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from releasegate.errors import ExitCode


class Interrupted(BaseException):
    """The run was asked to stop (SIGINT or SIGTERM). A BaseException: no `except
    Exception` on the way may swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


class LockLost(Interrupted):
    """This run's stack lock is no longer its own: taken over from another machine once its
    heartbeat lapsed (the machine was suspended, the database away for longer than the
    lease), or released by force. The new holder owns the stack and has already recovered
    what this run left, so this run stops at its next step boundary and changes nothing
    more, not even a way back. Exit code 5, as for a stack locked by another run."""

    def __init__(self, stack: str, holder: str) -> None:
        BaseException.__init__(self, f"the lock of {stack} was {holder}")
        self.signum = 0
        self.stack = stack
        self.holder = holder  # "taken over by bob@m2 ..." or "released by force"

    @property
    def exit_code(self) -> int:
        return int(ExitCode.LOCKED)

    @property
    def name(self) -> str:
        return "a lock takeover"


@contextmanager
def safe_points() -> Iterator[None]:
    """Turn SIGINT/SIGTERM into `Interrupted` for the duration of a run (main thread only:
    Python delivers signals there; elsewhere this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        if seen:  # the second one: out now, as a SIGKILL would
            os._exit(128 + signum)
        seen.append(signum)
        from releasegate.transport import terminate_running

        terminate_running()  # the team's commands (local and on SSH hosts) stop with us
        raise Interrupted(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
