from __future__ import annotations

import codecs
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# Output kept per stream; more is cut in the middle so both the start and the end survive.
OUTPUT_LIMIT = 16_000
# Seconds one of the team's commands may take when the config names no other bound (the
# config's `command_timeout` default, the runtimes' phases); plan and --dry-run show it.
DEFAULT_COMMAND_TIMEOUT_S = 900.0
# Once a command has exited, output still arriving (a background child that kept its stdout)
# is read for this long, then the step ends without it.
EXIT_GRACE_S = 0.5
# How to start a background process so that it does not hold the step's output.
DETACH_HINT = "start it detached: `nohup CMD >/dev/null 2>&1 &` or `setsid CMD >/dev/null 2>&1 &`"


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    exit_code: int  # -1 when the command could not start, timed out or was interrupted
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    error: str = ""  # why it could not start, if it could not
    interrupted: bool = False  # stopped by terminate_running (SIGINT/SIGTERM of releasegate)
    # What else is worth knowing: e.g. a process that still holds the output after the
    # command exited (its pid, its command line, how to detach it). May name command lines:
    # redact it like the output.
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.interrupted

    def describe(self) -> str:
        if self.error:
            return self.error
        if self.interrupted:
            return f"interrupted after {self.duration_s:.1f}s (its process group was stopped)"
        if self.timed_out:
            return f"timed out after {self.duration_s:.1f}s"
        return f"exit {self.exit_code} in {self.duration_s:.2f}s"


class Transport(Protocol):
    name: str

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        stdin: str | None = None,
    ) -> CommandResult: ...


def bound(text: str, limit: int = OUTPUT_LIMIT) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return _cut(text[:half], len(text) - limit, text[-half:])


def _cut(head: str, cut: int, tail: str) -> str:
    return f"{head}\n... [{cut} characters cut] ...\n{tail}"


class BoundedText:
    """A stream's output kept as it arrives, never more than about `limit` characters: the
    first and the last `limit // 2` survive, the middle is counted. `text()` equals
    `bound(everything, limit)`, without everything ever being held."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        self.limit = limit
        self._half = limit // 2
        self._head: list[str] = []
        self._head_len = 0
        self._tail = ""  # the last characters seen once the head is full
        self.total = 0  # characters seen

    def append(self, data: str) -> None:
        if not data:
            return
        self.total += len(data)
        # The head is filled up to `limit` (all of it is kept while the text is short).
        room = self.limit - self._head_len
        if room > 0:
            part = data[:room]
            self._head.append(part)
            self._head_len += len(part)
            data = data[room:]
            if not data:
                return
        self._tail += data
        if len(self._tail) > 2 * self.limit:  # trimmed in batches: amortised, not per chunk
            self._tail = self._tail[-self.limit :]

    def text(self) -> str:
        head = "".join(self._head)
        if self.total <= self.limit:
            return head
        # The tail's last `half` characters may begin inside the kept head.
        rest = head[self._half :] + self._tail
        return _cut(head[: self._half], self.total - self.limit, rest[-self._half :])


class StreamDecoder:
    """Bytes of a stream to text, chunk by chunk: UTF-8 (bad bytes replaced, a character
    split between chunks kept whole) and universal newlines, like `text=True` pipes."""

    def __init__(self, sink: Callable[[str], None]) -> None:
        self._sink = sink
        self._decoder = io.IncrementalNewlineDecoder(
            codecs.getincrementaldecoder("utf-8")("replace"), translate=True
        )

    def feed(self, data: bytes) -> None:
        self._sink(self._decoder.decode(data))

    def close(self) -> None:
        self._sink(self._decoder.decode(b"", final=True))


def tail_for_terminal(
    result: CommandResult,
    redact: Callable[[str], str],
    lines: int = 20,
    max_chars: int = 2000,
) -> str:
    """The end of a failed command's output for a terminal: stdout then stderr (each already
    bounded), masked by `redact`, the last `lines` lines and at most `max_chars` characters.
    Masking comes before cutting, so a secret cut in half cannot slip through. Control
    characters other than tab are dropped (a terminal must not obey the command's escapes).
    Empty when the command printed nothing."""
    parts = [p.rstrip("\n") for p in (result.stdout, result.stderr) if p.strip()]
    text = redact("\n".join(parts))
    text = "".join(c for c in text if c in "\n\t" or (c.isprintable()))
    kept = text.splitlines()[-lines:] if lines > 0 else []
    out = "\n".join(kept)
    if len(out) > max_chars:
        out = "..." + out[-(max_chars - 3) :] if max_chars > 3 else out[-max_chars:]
    return out
