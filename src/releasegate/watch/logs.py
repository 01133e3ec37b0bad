"""Reading what a log gained since an offset: bounded per read, whole lines only, and a
file that shrank (rotated or truncated) read again from its start."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

MAX_LINE = 64 * 1024  # a longer "line" is cut there: no regex over megabytes


def size_of(path: Path) -> int:
    """The file's size now (0 when it does not exist yet): where the window starts."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


@dataclass
class LogTail:
    path: Path
    offset: int  # the first byte not read yet
    rotated: int = 0  # times the file shrank under us
    _partial: bytes = field(default=b"", repr=False)

    def read(self, max_bytes: int) -> list[bytes]:
        """The complete lines written since the last read, at most `max_bytes` of them (the
        rest waits for the next read)."""
        try:
            with open(self.path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size < self.offset:  # rotated or truncated: the new file from its start
                    self.offset, self._partial = 0, b""
                    self.rotated += 1
                if size == self.offset:
                    return []
                handle.seek(self.offset)
                data = handle.read(min(max_bytes, size - self.offset))
        except OSError:
            return []  # not there (yet): nothing was written
        self.offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()[:MAX_LINE]  # an unfinished line waits for its end
        return [line[:MAX_LINE] for line in lines]
