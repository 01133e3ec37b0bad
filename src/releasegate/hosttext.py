"""Files on a host read exactly through any transport: small text files (.env, compose
files, flag files) whole, and a byte range of a growing file (a log since an offset).

A transport keeps at most OUTPUT_LIMIT characters of a command's output and cuts the middle
of anything longer, so a plain `cat` of a big file would come back with a marker inside it,
and a writer that edits that text would write the cut back. Here a file travels in chunks,
each base64-encoded (exact bytes, no character split across two chunks) and well under the
bound, up to a size cap; a file past the cap is refused, never half read. A range read is
bounded the same way, and in time: what is left waits for the next read."""

from __future__ import annotations

import base64
import binascii
import re
import time
import zlib
from collections.abc import Callable
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


# $1 path, $2 the offset to read from (0-based), $3 the same + 1 (tail counts from 1: no
# arithmetic on an argument in the shell), $4 how many bytes, $5 the inode the offset was
# taken on ("" when unknown), $6 the most base64 characters a compressed answer may have (0:
# do not compress), $7 how many bytes to send plain when it would have more. The first line
# says "SIZE INODE FROM KIND": the file's size and inode now, where this read began (0 when
# the file shrank below the offset or is another file: rotated, truncated), and `z` (the $4
# bytes, gzip) or `b` (at most $7 bytes, plain); then the bytes as base64. Logs shrink to a
# fifth or less under gzip, so one round trip carries that much more; bytes that do not
# shrink come plain.
_RANGE = (
    'if [ -e "$1" ]; then '
    '[ -f "$1" ] && [ -r "$1" ] || { echo "not a readable file: $1" >&2; exit 1; }; '
    "st=$(stat -L -c '%s %i' -- \"$1\") || exit 1; "
    "size=${st%% *}; ino=${st##* }; from=$2; first=$3; "
    'if [ "$size" -lt "$2" ] || { [ -n "$5" ] && [ "$5" != "$ino" ]; }; then from=0; first=1; fi; '
    'if [ "$6" -gt 0 ] && command -v gzip >/dev/null 2>&1; then '
    'z=$(tail -c +"$first" -- "$1" | head -c "$4" | gzip -c | base64 -w0) || exit 1; '
    'if [ "${#z}" -le "$6" ]; then echo "$size $ino $from z"; echo "$z"; exit 0; fi; fi; '
    'echo "$size $ino $from b"; '
    'tail -c +"$first" -- "$1" | head -c "$7" | base64 -w0; exit $?; fi; '
    '[ -L "$1" ] && { echo "a dangling link: $1" >&2; exit 1; }; exit 3'
)
_RANGE_HEAD = re.compile(r"(\d{1,19}) (\d{1,20}) (\d{1,19}) ([zb])\n([A-Za-z0-9+/=]*)\n?")
Z_LIMIT = CHUNK * 4 // 3 + 4  # base64 characters of a compressed answer at most
Z_FIRST = 8 * CHUNK  # bytes a read asks for compressed first; then as its ratio allows
Z_MOST = 1024 * 1024  # ... up to this much per round trip
RANGE_TIMEOUT = 15.0  # seconds one round trip of a range read may take


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


@dataclass(frozen=True)
class HostRange:
    """Bytes of a host file from `start` on, as read. `size` is the file's size when it was
    last looked at (None: there is no such file), `inode` its inode; `rotated` when the read
    began at 0 instead of the offset asked for (the file shrank or was replaced); `error`
    when it could not be read, `lost` when the host stopped answering. `data` holds at most
    the bytes asked for: the rest of the file waits for the next read."""

    data: bytes = b""
    start: int = 0
    size: int | None = None
    inode: int | None = None
    rotated: bool = False
    error: str = ""
    lost: bool = False

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def missing(self) -> bool:
        return self.ok and self.size is None

    @property
    def end(self) -> int:
        """The first byte not read yet: where the next read starts."""
        return self.start + len(self.data)


def read_argv(path: PurePosixPath, start: int, count: int = CHUNK) -> list[str]:
    return ["sh", "-c", _READ, "sh", str(path), str(start), str(count)]


def range_argv(
    path: PurePosixPath,
    offset: int,
    count: int,
    inode: int | None = None,
    *,
    plain: int = CHUNK,
    packed: bool = True,
) -> list[str]:
    """One round trip of a range read: the file's size and inode, and `count` bytes from
    `offset` compressed, or at most `plain` bytes as they are when they do not shrink under
    the bound (from 0 when the file shrank below `offset` or its inode is not `inode`)."""
    if offset < 0 or count < 0 or plain < 0:
        raise ValueError("a range read needs a non-negative offset and counts")
    ino = "" if inode is None else str(int(inode))
    return [
        "sh", "-c", _RANGE, "sh", str(path), str(offset), str(offset + 1), str(count), ino,
        str(Z_LIMIT if packed else 0), str(min(count, plain)),
    ]  # fmt: skip


def parse_range(stdout: str, count: int) -> tuple[int, int, int, bool, bytes] | None:
    """(size, inode, from, compressed, bytes) of one range round trip's output that asked
    for `count` bytes; None when the output is not one (a hostile or broken host answers
    anything, a gzip bomb too: never more than `count` bytes are inflated)."""
    found = _RANGE_HEAD.fullmatch(stdout)
    if found is None:
        return None
    try:
        data = base64.b64decode(found[5], validate=True)
    except (binascii.Error, ValueError):
        return None
    packed = found[4] == "z"
    if packed:
        try:
            inflate = zlib.decompressobj(wbits=31)  # gzip
            data = inflate.decompress(data, count + 1)
        except zlib.error:
            return None
        if len(data) > count or inflate.unconsumed_tail or not inflate.eof:
            return None
    return int(found[1]), int(found[2]), int(found[3]), packed, data


def read_range_program(
    path: PurePosixPath,
    offset: int,
    max_bytes: int,
    *,
    inode: int | None = None,
    timeout: float = RANGE_TIMEOUT,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Program[HostRange]:
    """Read at most `max_bytes` of `path` from `offset`, in round trips of CHUNK bytes plain
    or more compressed, until the file's end, the byte cap, or `deadline` (a `clock()`
    value; checked between round trips, each bounded by `timeout`). A file that shrank below
    `offset` or is not the file of `inode` any more (rotated, truncated) is read from its
    start (`rotated`). `max_bytes` 0 only looks: its size and inode (where a later read
    starts)."""
    data = b""
    start: int | None = None
    size: int | None = None
    ino: int | None = None
    pos = offset
    span = Z_FIRST
    packing = True  # off once the smallest compressed try did not fit: the rest comes plain
    while True:
        want = min(span, max_bytes - len(data)) if packing else min(CHUNK, max_bytes - len(data))
        argv = range_argv(path, pos, want, inode, packed=packing)
        result: CommandResult = yield cmd(argv, timeout=timeout)
        if result.exit_code == MISSING and not result.error and start is None:
            return HostRange(start=0, rotated=offset > 0)
        if not result.ok:
            lost = result.exit_code == -1 and bool(result.error)
            why = result.stderr.strip()[-500:] or result.describe()
            if start is not None:  # what was read stands; the next read goes on from there
                break
            return HostRange(start=offset, error=f"cannot read {path}: {why}", lost=lost)
        parsed = parse_range(result.stdout, want)
        if parsed is None:
            if start is not None:
                break
            return HostRange(
                start=offset, error=f"cannot read {path}: the host's answer is not a range"
            )
        now_size, now_ino, began, packed, chunk = parsed
        asked = want if packed else min(want, CHUNK)
        if len(chunk) > asked or began not in (pos, 0):
            if start is not None:
                break
            return HostRange(
                start=offset, error=f"cannot read {path}: the host sent other bytes than asked for"
            )
        if start is None:
            start = began
        elif began != pos:  # rotated between two round trips: the next read sees it
            break
        size, ino = now_size, now_ino
        inode = ino  # the rest must come from the same file
        data += chunk
        pos = began + len(chunk)
        # The next round trip asks for as much as shrinks under the bound at this one's
        # ratio (with a tenth to spare); what came plain asks for less.
        if packed:
            span = want * Z_LIMIT * 9 // (10 * max(1, len(result.stdout)))
        else:
            packing = span > CHUNK
            span //= 4
        span = max(CHUNK, min(span, Z_MOST))
        if len(chunk) < asked or len(data) >= max_bytes or pos >= size:
            break
        if deadline is not None and clock() >= deadline:
            break
    return HostRange(data, start, size, ino, rotated=start != offset)


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
