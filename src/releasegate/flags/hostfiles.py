"""The flag files on a host, read and written by programs of operations (releasegate.ops),
so one host and a fleet over SSH take the same path through the one executor.

A read is bounded; a write puts the new text (on stdin: a .env holds secrets, argv shows in
`ps`) into a fresh file beside the target, gives it the old file's mode, and renames it
over the target: a reader sees the old file or the new one, never half of one. A path that
is a link (a release's `.env` linked to `shared/.env`) is written where it points, so the
link stays."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from releasegate import hosttext
from releasegate.ops import Program, cmd
from releasegate.runtimes.base import PhaseResult
from releasegate.transport.base import CommandResult

# A flag file larger than this is refused (releasegate.hosttext reads it exactly, in chunks).
MAX_BYTES = 15_000

read_argv = hosttext.read_argv
write_argv = hosttext.write_argv


@dataclass
class HostFiles:
    """One host's flag files as read: store -> text (None: no such file)."""

    ok: bool
    error: str = ""
    texts: dict[str, str | None] = field(default_factory=dict)
    lost: bool = False


def read_program(paths: dict[str, PurePosixPath]) -> Program[HostFiles]:
    """Each store's file on the host (store -> path)."""
    found = HostFiles(True)
    for store, path in paths.items():
        read = yield from hosttext.read_program(path, max_bytes=MAX_BYTES)
        if not read.ok:
            found.ok, found.lost, found.error = False, read.lost, read.error
            return found
        found.texts[store] = read.text
    return found


def write_program(
    phase: PhaseResult, redact: object, writes: dict[PurePosixPath, str]
) -> Program[PhaseResult]:
    """Write each file (path -> new text); the evidence names the file, never its text."""
    for path, text in writes.items():
        result: CommandResult = yield cmd(write_argv(path), stdin=text, timeout=30)
        # Recorded as the short argv that shows what was done: the script is the same each time.
        shown = ["write", str(path)]
        phase.record(redact, shown, result)  # type: ignore[arg-type]
        if not result.ok:
            phase.summary = f"could not write {path}: {result.describe()}"
            return phase
    return phase
