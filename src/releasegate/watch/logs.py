"""The watched logs on each host of a stack, read through the one executor (a local stack is
a set of one host): where each log ended at the switch (`mark_program`), then what it
gained since (`read_program`), one program per host, local and SSH alike. The bytes travel
through releasegate.hosttext's range reader (exact, bounded in bytes and time); this
module keeps each log's place and cuts what came into whole lines."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from releasegate.hosttext import HostRange, read_range_program
from releasegate.ops import Program

MAX_LINE = 64 * 1024  # a longer "line" is cut there: no regex over megabytes
READ_BUDGET_S = 10.0  # seconds a host's reads of one round may go on (then: next round)


@dataclass(frozen=True)
class Want:
    """One log to read on one host: from `offset` (None: not known yet, so only look where
    it ends now), on the file of `inode` (another inode there: rotated)."""

    path: str
    offset: int | None
    inode: int | None = None


def mark(found: HostRange) -> dict[str, Any]:
    """A log's place as the window's ledger row keeps it: its size and inode (0 and None for
    a log that does not exist yet: it is read from its start once it does)."""
    if not found.ok:
        return {"offset": None, "error": found.error[:300]}
    return {"offset": found.size or 0, "inode": found.inode}


def mark_program(paths: Sequence[str]) -> Program[dict[str, dict[str, Any]]]:
    """Where each log ends now on this host: taken just before the switch, so the window
    counts only what the new release (and the traffic it got) wrote."""
    found: dict[str, dict[str, Any]] = {}
    for path in paths:
        looked = yield from read_range_program(PurePosixPath(path), 0, 0)
        found[path] = mark(looked)
    return found


def read_program(
    wants: Sequence[Want],
    max_bytes: int,
    *,
    budget_s: float = READ_BUDGET_S,
    clock: Callable[[], float] = time.monotonic,
) -> Program[dict[str, HostRange]]:
    """What each log gained since its offset on this host, at most `max_bytes` of each;
    all of them within `budget_s` (checked between round trips: the rest waits)."""
    deadline = clock() + budget_s
    found: dict[str, HostRange] = {}
    for want in wants:
        path = PurePosixPath(want.path)
        if want.offset is None:  # its place at the switch is unknown: from here on
            found[want.path] = yield from read_range_program(path, 0, 0)
            continue
        found[want.path] = yield from read_range_program(
            path, want.offset, max_bytes, inode=want.inode, deadline=deadline, clock=clock
        )
    return found


@dataclass
class Tail:
    """One log on one host as the window has read it: the first byte not read yet, the file
    it is on, the times it was rotated, and an unfinished last line waiting for its end."""

    path: str
    offset: int | None
    inode: int | None = None
    rotated: int = 0
    missing: bool = False
    error: str = ""
    behind: int = 0  # bytes written but not read yet (more than a round's cap)
    _partial: bytes = field(default=b"", repr=False)

    @classmethod
    def from_mark(cls, path: str, place: Any) -> Tail:
        """A tail from the ledger's mark (anything else, e.g. a hand-edited row: unknown)."""
        offset = place.get("offset") if isinstance(place, dict) else None
        inode = place.get("inode") if isinstance(place, dict) else None
        ok = isinstance(offset, int) and offset >= 0 and not isinstance(offset, bool)
        return cls(path, offset if ok else None, inode if isinstance(inode, int) else None)

    def want(self) -> Want:
        return Want(self.path, self.offset, self.inode)

    def feed(self, got: HostRange) -> list[bytes]:
        """The complete lines `got` brings (each cut at MAX_LINE); its place moves on."""
        if not got.ok:
            self.error = got.error
            return []
        self.error = ""
        self.missing = got.size is None
        if self.offset is None:  # the first look: from here on
            self.offset, self.inode = got.size or 0, got.inode
            return []
        if got.rotated:
            self.rotated += 1
            self._partial = b""
        self.offset, self.inode = got.end, got.inode
        self.behind = max(0, (got.size or 0) - got.end)
        lines = (self._partial + got.data).split(b"\n")
        self._partial = lines.pop()[:MAX_LINE]  # an unfinished line waits for its end
        return [line[:MAX_LINE] for line in lines]

    def evidence(self) -> dict[str, Any]:
        found: dict[str, Any] = {"offset": self.offset}
        if self.rotated:
            found["rotated"] = self.rotated
        if self.missing:
            found["missing"] = True
        if self.behind:
            found["behind"] = self.behind
        if self.error:
            found["error"] = self.error[:300]
        return found
