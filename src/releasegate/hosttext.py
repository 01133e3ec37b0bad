"""Small text files on a host (.env, compose files, flag files), read whole and exactly
through any transport.

A transport keeps at most OUTPUT_LIMIT characters of a command's output and cuts the middle
of anything longer, so a plain `cat` of a big file would come back with a marker inside it,
and a writer that edits that text would write the cut back. Here a file travels in chunks,
each base64-encoded (exact bytes, no character split across two chunks) and well under the
bound, up to a size cap; a file past the cap is refused, never half read."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import PurePosixPath

from releasegate.ops import Program, cmd
from releasegate.transport.base import OUTPUT_LIMIT, CommandResult

CHUNK = 11_000  # bytes per round trip: base64 makes 14,668 characters
assert CHUNK * 4 // 3 + 4 < OUTPUT_LIMIT
MAX_BYTES = 1_000_000  # the default cap: a compose file or an .env is far smaller
MISSING = 3  # the read's exit status when there is no such file

# $1 path, $2 the first byte to read (1-based), $3 how many. `tail | head | base64` would
# hide a failing `tail` (a pipeline's status is its last command's), so readability is
# checked first; a dangling link is an error, not a missing file.
_READ = (
    'if [ -e "$1" ]; then '
    '[ -f "$1" ] && [ -r "$1" ] || { echo "not a readable file: $1" >&2; exit 1; }; '
    'tail -c +"$2" -- "$1" | head -c "$3" | base64 -w0; exit $?; fi; '
    '[ -L "$1" ] && { echo "a dangling link: $1" >&2; exit 1; }; exit 3'
)


# $1 path. The new text comes on stdin (an .env holds secrets; argv shows in `ps`) into a
# fresh file beside the target, takes the old file's mode, and is renamed over it: a reader
# sees the old file or the new one, never half of one. A link (a release's `.env` linked to
# `shared/.env`) is written where it points, so the link stays.
_WRITE = """\
target=$(readlink -f -- "$1") || { echo "cannot resolve $1" >&2; exit 1; }
dir=${target%/*}
[ -d "$dir" ] || { echo "no folder $dir" >&2; exit 1; }
tmp=$(mktemp -- "$dir/.releasegate-write.XXXXXX") || exit 1
if cat > "$tmp" && { [ ! -e "$target" ] || chmod --reference="$target" -- "$tmp"; } \\
   && mv -f -T -- "$tmp" "$target"; then exit 0; fi
rm -f -- "$tmp"; exit 1
"""


@dataclass(frozen=True)
class HostText:
    """A file as read: its text, or None when there is no such file; `error` when it could
    not be read (too big, not UTF-8, unreadable), `lost` when the host stopped answering."""

    text: str | None = None
    error: str = ""
    lost: bool = False

    @property
    def ok(self) -> bool:
        return not self.error


def read_argv(path: PurePosixPath, start: int, count: int = CHUNK) -> list[str]:
    return ["sh", "-c", _READ, "sh", str(path), str(start), str(count)]


def write_argv(path: PurePosixPath) -> list[str]:
    """Replace `path` (or what it links to) atomically with stdin."""
    return ["sh", "-c", _WRITE, "sh", str(path)]


def read_program(
    path: PurePosixPath, *, max_bytes: int = MAX_BYTES, timeout: float = 30
) -> Program[HostText]:
    """Read `path` whole (at most `max_bytes`), one chunk per round trip."""
    data = b""
    while True:
        result: CommandResult = yield cmd(read_argv(path, len(data) + 1), timeout=timeout)
        if result.exit_code == MISSING and not result.error and not data:
            return HostText(None)
        if not result.ok:
            lost = result.exit_code == -1 and bool(result.error)
            why = result.stderr.strip() or result.describe()
            return HostText(error=f"cannot read {path}: {why}", lost=lost)
        try:
            chunk = base64.b64decode(result.stdout.strip(), validate=True)
        except (binascii.Error, ValueError):
            return HostText(error=f"cannot read {path}: the host's answer is not base64")
        data += chunk
        if len(data) > max_bytes:
            return HostText(error=f"{path} is larger than {max_bytes} bytes: refused")
        if len(chunk) < CHUNK:
            break
    try:
        return HostText(data.decode("utf-8"))
    except UnicodeDecodeError:
        return HostText(error=f"{path} is not UTF-8 text")
