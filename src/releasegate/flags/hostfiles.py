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

from releasegate.ops import Program, cmd
from releasegate.runtimes.base import PhaseResult
from releasegate.transport.base import OUTPUT_LIMIT, CommandResult

# A flag file larger than this is refused, never read whole: it stays under the transports'
# output bound (OUTPUT_LIMIT characters), past which the middle of an output is cut.
MAX_BYTES = 15_000
assert MAX_BYTES < OUTPUT_LIMIT
MISSING = 3  # the read's exit status when the file does not exist

_READ = 'if [ -e "$1" ]; then exec head -c "$2" -- "$1"; fi; [ -L "$1" ] && exit 1; exit 3'

_WRITE = """\
target=$(readlink -f -- "$1") || { echo "cannot resolve $1" >&2; exit 1; }
dir=${target%/*}
[ -d "$dir" ] || { echo "no folder $dir" >&2; exit 1; }
tmp=$(mktemp -- "$dir/.releasegate-flags.XXXXXX") || exit 1
if cat > "$tmp" && { [ ! -e "$target" ] || chmod --reference="$target" -- "$tmp"; } \\
   && mv -f -T -- "$tmp" "$target"; then exit 0; fi
rm -f -- "$tmp"; exit 1
"""


def read_argv(path: PurePosixPath) -> list[str]:
    """Print at most MAX_BYTES + 1 bytes of `path` (one more tells a file that is too big);
    exit 3 when there is no such file."""
    return ["sh", "-c", _READ, "sh", str(path), str(MAX_BYTES + 1)]


def write_argv(path: PurePosixPath) -> list[str]:
    """Replace `path` (or what it links to) atomically with stdin."""
    return ["sh", "-c", _WRITE, "sh", str(path)]


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
        result: CommandResult = yield cmd(read_argv(path), timeout=30)
        if result.exit_code == MISSING and not result.error:
            found.texts[store] = None
            continue
        if not result.ok:
            found.ok, found.lost = False, result.exit_code == -1 and bool(result.error)
            found.error = f"cannot read {path}: {result.describe()}"
            return found
        if len(result.stdout.encode("utf-8", "replace")) > MAX_BYTES:
            found.ok, found.error = False, f"{path} is larger than {MAX_BYTES} bytes"
            return found
        found.texts[store] = result.stdout
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
