"""Who and where: the user, host and process that the ledger and locks record."""

from __future__ import annotations

import getpass
import os
import re
import socket
from dataclasses import dataclass

from releasegate import names
from releasegate.errors import BadInput

# The machine this process runs on, as the ledger and the locks record it: the hostname, or
# RELEASEGATE_HOST_ID where hostnames are not unique (containers, CI runners that all say
# `runner`) and in the tests that play several machines on one.
HOST_ID_ENV = "RELEASEGATE_HOST_ID"
_HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


@dataclass(frozen=True)
class Actor:
    user: str
    host: str
    pid: int
    pid_start: str


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat from field 3 (state) on; [] if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return []
    # Fields are counted after the parenthesised command name, which may hold spaces.
    return stat.rsplit(")", 1)[1].split()


def process_start(pid: int) -> str:
    """A token for when process `pid` started ('' if it does not exist).

    A pid alone can be reused after the holder died; pid + start time cannot.
    """
    fields = _stat_fields(pid)
    return fields[19] if fields else ""  # field 22: starttime


def pid_alive(pid: int, start: str = "") -> bool:
    """Is `pid` running (and, given `start`, still the same process)?

    A zombie counts as dead: a SIGKILLed deploy that its parent has not reaped yet
    must not keep holding the stack's lock.
    """
    fields = _stat_fields(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return not start or fields[19] == start


def current_actor() -> Actor:
    user = os.environ.get("RELEASEGATE_USER") or getpass.getuser()
    names.check("user", user)
    pid = os.getpid()
    return Actor(user=user, host=host_id(), pid=pid, pid_start=process_start(pid))


def host_id() -> str:
    """RELEASEGATE_HOST_ID if set (checked: it reaches the ledger and messages), else the
    hostname. Two machines must never share one: a lock's holder on "this host" is judged
    by its pid, which means nothing on another machine."""
    given = os.environ.get(HOST_ID_ENV)
    if given is None:
        return socket.gethostname()
    if not _HOST_RE.fullmatch(given):
        raise BadInput(
            f"{HOST_ID_ENV}={given[:80]!r} is not a host name",
            hint="letters, digits, '.', ':', '-' and '_', at most 128, starting with a "
            "letter or digit",
        )
    return given
