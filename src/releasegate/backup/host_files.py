"""A fleet's files, backed up from each of its hosts: `tar` runs on the host, the archive
comes back over the run's own SSH connection and is compressed here, into the same backup
set as the stack's databases. Verified like local files (`tar --list` of the archive)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from releasegate.backup.sources import (
    DEFAULT_TIMEOUT,
    DumpResult,
    FilesSource,
    SanityCheck,
    Scratch,
)
from releasegate.backup.stream import (
    BackupFailed,
    ProgressFn,
    StreamResult,
    ZstdFileWriter,
    last_line,
)

# The entries that exist on the host, archived from its `base`; an empty archive when none
# does (a first deploy). Every path is a positional parameter, never part of the script.
_TAR = """\
base=$1; shift; n=$#
for p in "$@"; do [ -e "$base/$p" ] && set -- "$@" "$p"; done
shift "$n"
if [ "$#" -eq 0 ]; then exec tar --create --file=- --files-from=/dev/null; fi
exec tar --create --file=- --numeric-owner -C "$base" -- "$@"
"""


@dataclass(frozen=True, kw_only=True)
class HostFilesSource:
    """`paths` under `base_dir` on one host, reached through `transport` (an SshTransport
    whose connection the run already holds)."""

    name: str
    host: str  # the host's label, as output names it
    paths: tuple[str, ...]
    base_dir: str
    transport: Any
    timeout: float = DEFAULT_TIMEOUT
    checks: tuple[SanityCheck, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", tuple(self.paths))
        self._local()  # the same checks of names and paths as files on this machine

    @property
    def kind(self) -> str:
        return "files"

    @property
    def file_name(self) -> str:
        return f"{self.name}.tar.zst"

    def describe(self) -> dict[str, Any]:
        return {"host": self.host, "base_dir": self.base_dir, "paths": list(self.paths),
                "format": "tar"}  # fmt: skip

    def dump_argv(self) -> list[str]:
        return ["sh", "-c", _TAR, "sh", self.base_dir, *self.paths]

    def dump(
        self, dest: Path, *, secrets: Mapping[str, str], progress: ProgressFn | None = None
    ) -> DumpResult:
        started = time.monotonic()
        writer = ZstdFileWriter(dest)
        failed: list[OSError] = []

        def take(chunk: bytes) -> None:  # on the SSH event loop's thread
            if failed:
                return
            try:
                writer.write(chunk)
            except OSError as exc:  # the disk here, not the host: the rest is dropped
                failed.append(exc)

        result = self.transport.run(self.dump_argv(), timeout=self.timeout, stdout=take)
        if failed or not result.ok:
            writer.discard()
            if failed:
                why = f"writing {dest.parent}: {failed[0].strerror or failed[0]}"
            else:
                why = result.error or f"tar on the host: {result.describe()}"
                if result.stderr.strip():
                    why += f": {last_line(result.stderr)}"
            raise BackupFailed(f"backup of {self.name!r} ({self.host}) failed: {why}",
                               source=self.name, stderr=result.stderr)  # fmt: skip
        digest, size = writer.finish()
        if progress is not None:
            progress(writer.raw, size)
        stream = StreamResult(
            dest, writer.raw, size, digest, time.monotonic() - started, result.stderr
        )
        return DumpResult(stream, "tar", f"tar on {self.host}")

    def _local(self) -> FilesSource:
        """The archive read here (verify): the same as a local files source's."""
        return FilesSource(name=self.name, paths=self.paths, base_dir=self.base_dir)

    def restore_to_scratch(self, file: Path, *, secrets: Mapping[str, str]) -> Scratch:
        return self._local().restore_to_scratch(file, secrets=secrets)

    def run_checks(self, scratch: Scratch, *, secrets: Mapping[str, str]) -> tuple[Any, ...]:
        return ()

    def drop_scratch(self, scratch: Scratch, *, secrets: Mapping[str, str]) -> None:
        return None

    def restore_live(self, file: Path, *, secrets: Mapping[str, str]) -> str:
        """Extract the archive into `base_dir` on the host (files not in it are left alone)."""
        with tempfile.NamedTemporaryFile(prefix="releasegate-", suffix=".tar") as plain:
            with file.open("rb") as packed:
                zstandard.ZstdDecompressor().copy_stream(packed, plain)
            plain.flush()
            argv = ["sh", "-c", 'mkdir -p -- "$1" && exec tar --extract --file=- '
                    '--numeric-owner -C "$1"', "sh", self.base_dir]  # fmt: skip
            result = self.transport.run(argv, timeout=self.timeout, stdin=Path(plain.name))
        if not result.ok:
            raise BackupFailed(
                f"restore of {self.name!r} on {self.host} failed: "
                f"{result.error or result.describe()}: {last_line(result.stderr)}",
                source=self.name,
                stderr=result.stderr,
            )
        return f"extracted into {self.base_dir} on {self.host} (files not in it left alone)"
