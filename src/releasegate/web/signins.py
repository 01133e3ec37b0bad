"""Sign-in and sign-out on the dashboard, as ledger actions (stack "web", env "-", like the
user changes of users.py): `sign-in` closed `success`, `fail` (wrong user or password) or
`refused` (throttled), and `sign-out`. Each names the user and the peer's address, never
a password.

A name typed at a failed sign-in is recorded only when it is a dashboard user: anything
else may be a password typed into the wrong field, so it is not kept. Recording is
bounded, so a flood of wrong passwords cannot fill the ledger: failures and refusals
share a budget per window (past it they are counted, and the count is recorded with the
next one), and a throttled (user, peer) is recorded once per block, not per attempt.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from releasegate.users import LEDGER_ENV, LEDGER_STACK

if TYPE_CHECKING:
    from releasegate.ledger import Ledger

SIGN_IN = "sign-in"
SIGN_OUT = "sign-out"
AUTH_ACTIONS = (SIGN_IN, SIGN_OUT)
UNKNOWN_USER = "-"  # the ledger's user for a failed sign-in under a name nobody has
FAILURES_RECORDED = 100  # failed or refused sign-ins recorded one by one per window
BUDGET_WINDOW_S = 300.0
MAX_KEYS = 10_000
MAX_PEER = 64


@dataclass
class RecordBudget:
    """At most `allowed` records per window; what is past it is counted and handed to the
    next record that fits, so the ledger says how many were not written one by one."""

    allowed: int = FAILURES_RECORDED
    window_s: float = BUDGET_WINDOW_S
    clock: Callable[[], float] = time.monotonic
    _start: float = field(default=float("-inf"))
    _used: int = 0
    _skipped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> tuple[bool, int]:
        """(record this one?, how many were skipped before it)."""
        now = self.clock()
        with self._lock:
            if now - self._start >= self.window_s:
                self._start, self._used = now, 0
            if self._used >= self.allowed:
                self._skipped += 1
                return False, 0
            self._used += 1
            skipped, self._skipped = self._skipped, 0
            return True, skipped


@dataclass
class OncePer:
    """True the first time a key is seen in a window (a throttled peer: recorded once per
    block). Bounded: the oldest keys are forgotten."""

    window_s: float
    limit: int = MAX_KEYS
    clock: Callable[[], float] = time.monotonic
    _seen: OrderedDict[tuple[str, str], float] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def first(self, key: tuple[str, str]) -> bool:
        now = self.clock()
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last < self.window_s:
                return False
            self._seen[key] = now
            self._seen.move_to_end(key)
            while len(self._seen) > self.limit:
                self._seen.popitem(last=False)
            return True


def peer_text(peer: str | None) -> str:
    """The peer's address as recorded: what the socket says, bounded."""
    return (peer or "?")[:MAX_PEER]


def record(
    ledger: Ledger,
    *,
    host: str,
    pid: int,
    action: str,
    status: str,
    user: str,
    peer: str | None,
    notes: str,
    details: dict[str, Any] | None = None,
) -> str:
    """One sign-in or sign-out: opened and closed at once (nothing runs in between), under
    `user`, from the server's `host` and `pid`."""
    row = ledger.begin_action(
        stack=LEDGER_STACK,
        env=LEDGER_ENV,
        action=action,
        version="",
        notes=notes,
        details={"peer": peer_text(peer), **(details or {})},
        user=user,
        host=host,
        pid=pid,
    )
    ledger.end_action(row, status, notes=notes)
    return row
