"""Stream a command's output through zstd into a file, and zstd files back into commands.

`stream_to_zstd` runs an argv (never a shell string), compresses its stdout on the fly into
`<dest>.partial` (no uncompressed temporary copy), hashes and counts the compressed bytes as
they are written, and renames the file to `dest` only once the command exited 0 and the
file is on disk (fsync). On a non-zero exit, a signal, a timeout or a full disk the partial
file is removed and `BackupFailed` names the source and the tool's last stderr line.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import zstandard

from releasegate.errors import ReleasegateError

DEFAULT_LEVEL = 3
# zstd worker threads. Measured on the 2-core lab machine, level 3, sha256 included:
# `pg_dump -Fc -Z0` of a 750 MB dump (pg_dump alone: 70-105 MB/s) went 42-54 MB/s with 0
# (compressing in the reading thread), 46-62 with 1, 53-61 with 2; a cheap producer (`cat`
# of a 1 GB file) 91, 122 and 180 MB/s. Seed 001's `pg_dump | gzip`: 25-30 MB/s, same size.
# Two workers at most, so a backup on a production host leaves other cores to the app.
DEFAULT_THREADS = 2
CHUNK = 1 << 20
STDERR_LIMIT = 64 * 1024
PROGRESS_EVERY_S = 0.5
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}

ProgressFn = Callable[[int, int], None]  # (raw bytes so far, compressed bytes so far)
Redact = Callable[[str], str]


class BackupFailed(ReleasegateError):
    """A backup, verify or restore step failed; `source` names the source concerned."""

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        hint: str = "",
        stderr: str = "",
        disk_full: bool = False,
    ) -> None:
        super().__init__(message, hint=hint)
        self.source = source
        self.stderr = stderr
        self.disk_full = disk_full


@dataclass(frozen=True)
class StreamResult:
    path: Path
    raw_bytes: int
    compressed_bytes: int
    sha256: str  # of the compressed file, as written
    duration_s: float
    stderr: str  # the tool's stderr, bounded and redacted


@dataclass(frozen=True)
class FeedResult:
    """A command that read a decompressed zstd file on its stdin."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str  # bounded (head and tail kept)
    stdout_lines: int  # counted over the whole output
    stderr: str  # bounded, redacted
    raw_bytes: int
    duration_s: float


def _identity(text: str) -> str:
    return text


_ERRORISH = re.compile(
    r"error|fatal|failed|denied|refused|cannot|could not|no such|not found|unknown|lost",
    re.IGNORECASE,
)


def last_line(text: str) -> str:
    """The line of a tool's stderr that says what went wrong: the last one that reads like
    an error (pg_dump ends with `detail: Command was: ...`), else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if _ERRORISH.search(line):
            return line
    return lines[-1] if lines else ""


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def tool_label(argv: Sequence[str]) -> str:
    """The tool an argv runs, looking through `docker exec [opts] CONTAINER tool ...`."""
    if len(argv) >= 2 and Path(argv[0]).name == "docker" and argv[1] == "exec":
        i = 2
        while i < len(argv) and argv[i].startswith("-"):
            i += 2 if argv[i] in {"-e", "--env", "-u", "--user", "-w", "--workdir"} else 1
        if i + 1 < len(argv):
            return f"{Path(argv[i + 1]).name} (in container {argv[i]})"
    return Path(argv[0]).name if argv else "?"


class _PipeReader(threading.Thread):
    """Drains a pipe in the background, keeping its head and tail within `limit` bytes."""

    def __init__(self, pipe: IO[bytes], limit: int = STDERR_LIMIT) -> None:
        super().__init__(daemon=True)
        self._pipe = pipe
        self._limit = limit
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0
        self.lines = 0

    def run(self) -> None:
        half = self._limit // 2
        while True:
            chunk = os.read(self._pipe.fileno(), 65536)
            if not chunk:
                break
            self.total += len(chunk)
            self.lines += chunk.count(b"\n")
            room = half - len(self._head)
            if room > 0:
                self._head += chunk[:room]
                chunk = chunk[room:]
            if chunk:
                self._tail += chunk
                if len(self._tail) > half:
                    del self._tail[: len(self._tail) - half]

    def text(self) -> str:
        self.join()
        head = self._head.decode("utf-8", "replace")
        if not self._tail:
            return head
        cut = self.total - len(self._head) - len(self._tail)
        tail = self._tail.decode("utf-8", "replace")
        if cut > 0:
            return f"{head}\n... [{cut} bytes cut] ...\n{tail}"
        return head + tail


class _Sink:
    """The `.partial` file: hashes and counts what is written, fsyncs on close."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # 0600 from creation: a dump or config archive is for its owner only.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._fh: IO[bytes] | None = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        assert self._fh is not None
        self._fh.write(data)
        self._hash.update(data)
        self.size += len(data)

    def finish(self) -> str:
        assert self._fh is not None
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        return self._hash.hexdigest()

    def discard(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass  # a failed flush on close (disk full): the file goes anyway
            self._fh = None
        self.path.unlink(missing_ok=True)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def partial_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".partial")


class ZstdFileWriter:
    """Bytes in, `dest` out: zstd-compressed (with its checksum) into `dest.partial`, which
    becomes `dest` only once complete and synced. For output that does not come from a
    local process (stream_to_zstd's case): a command's on an SSH host."""

    def __init__(
        self, dest: Path, *, level: int = DEFAULT_LEVEL, threads: int = DEFAULT_THREADS
    ) -> None:
        self.dest = dest
        self.tmp = partial_path(dest)
        self.raw = 0
        self._sink: _Sink | None = _Sink(self.tmp)
        self._cobj = zstandard.ZstdCompressor(
            level=level, threads=threads, write_checksum=True
        ).compressobj()

    @property
    def size(self) -> int:
        return self._sink.size if self._sink is not None else 0

    def write(self, chunk: bytes) -> None:
        assert self._sink is not None, "written after finish or discard"
        self.raw += len(chunk)
        self._sink.write(self._cobj.compress(chunk))

    def finish(self) -> tuple[str, int]:
        """(sha256 of the compressed file, its size): `dest` is in place."""
        assert self._sink is not None
        self._sink.write(self._cobj.flush())
        digest, size = self._sink.finish(), self._sink.size
        self._sink = None
        os.replace(self.tmp, self.dest)
        fsync_dir(self.dest.parent)
        return digest, size

    def discard(self) -> None:
        if self._sink is not None:
            self._sink.discard()
            self._sink = None
        self.tmp.unlink(missing_ok=True)


def _disk_full_error(source: str, dest: Path, exc: OSError) -> BackupFailed:
    return BackupFailed(
        f"backup of {source!r} failed: disk full writing {dest.parent} "
        f"({os.strerror(exc.errno or errno.ENOSPC)}); the partial file was removed",
        source=source,
        hint="free space on the backup disk (or prune old backups) and try again",
        disk_full=True,
    )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _child_env(env: Mapping[str, str] | None) -> dict[str, str] | None:
    return {**os.environ, **env} if env else None


def stream_to_zstd(
    argv: Sequence[str],
    dest: Path,
    *,
    source: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    level: int = DEFAULT_LEVEL,
    threads: int = DEFAULT_THREADS,
    timeout: float | None = None,
    redact: Redact = _identity,
    progress: ProgressFn | None = None,
) -> StreamResult:
    """Run `argv` and write its stdout, zstd-compressed, to `dest` (via `dest.partial`).

    `env` is added to the child's environment (how passwords reach it: never argv).
    """
    args = tuple(argv)
    tool = tool_label(args)
    tmp = partial_path(dest)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=_child_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a timeout kills the whole group
        )
    except OSError as exc:
        raise BackupFailed(
            f"backup of {source!r} failed: could not start {tool}: {exc.strerror or exc}",
            source=source,
        ) from None
    assert proc.stdout is not None and proc.stderr is not None
    errors = _PipeReader(proc.stderr)
    errors.start()
    timed_out = threading.Event()

    def on_timeout() -> None:
        timed_out.set()
        _kill_group(proc)

    timer = threading.Timer(timeout, on_timeout) if timeout else None
    if timer:
        timer.daemon = True
        timer.start()
    sink: ZstdFileWriter | None = None
    try:
        sink = ZstdFileWriter(dest, level=level, threads=threads)
        last_report = started
        while True:
            chunk = proc.stdout.read(CHUNK)
            if not chunk:
                break
            sink.write(chunk)
            if progress is not None and time.monotonic() - last_report >= PROGRESS_EVERY_S:
                last_report = time.monotonic()
                progress(sink.raw, sink.size)
        code = proc.wait()
        if timer:
            timer.cancel()
        stderr = redact(errors.text())
        if timed_out.is_set():
            raise BackupFailed(
                f"backup of {source!r} failed: {tool} timed out after {timeout:g}s" + _tail(stderr),
                source=source,
                stderr=stderr,
            )
        if code != 0:
            raise BackupFailed(
                f"backup of {source!r} failed: {tool} {describe_exit(code)}" + _tail(stderr),
                source=source,
                stderr=stderr,
            )
        raw = sink.raw
        digest, size = sink.finish()
        sink = None
    except OSError as exc:
        _kill_group(proc)
        if sink is not None:
            sink.discard()
        tmp.unlink(missing_ok=True)
        if exc.errno in _DISK_FULL:
            raise _disk_full_error(source, dest, exc) from None
        raise BackupFailed(
            f"backup of {source!r} failed writing {tmp}: {exc.strerror or exc}", source=source
        ) from None
    except BaseException:
        _kill_group(proc)
        if sink is not None:
            sink.discard()
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if timer:
            timer.cancel()
        proc.stdout.close()
        if proc.poll() is None:
            _kill_group(proc)
        proc.wait()
        errors.join()
        proc.stderr.close()
    if progress is not None:
        progress(raw, size)
    return StreamResult(dest, raw, size, digest, time.monotonic() - started, stderr)


def _tail(stderr: str) -> str:
    line = last_line(stderr)
    return f": {line}" if line else " (no error output)"


def compress_file(
    src: Path,
    dest: Path,
    *,
    source: str,
    level: int = DEFAULT_LEVEL,
    threads: int = DEFAULT_THREADS,
    progress: ProgressFn | None = None,
) -> StreamResult:
    """Compress a file (a private snapshot, e.g. an SQLite online backup) like a stream."""
    tmp = partial_path(dest)
    started = time.monotonic()
    sink: _Sink | None = None
    raw = 0
    try:
        sink = _Sink(tmp)
        cobj = zstandard.ZstdCompressor(
            level=level, threads=threads, write_checksum=True
        ).compressobj()
        with src.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                raw += len(chunk)
                sink.write(cobj.compress(chunk))
                if progress is not None:
                    progress(raw, sink.size)
        sink.write(cobj.flush())
        digest = sink.finish()
        size = sink.size
        sink = None
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except OSError as exc:
        if sink is not None:
            sink.discard()
        tmp.unlink(missing_ok=True)
        if exc.errno in _DISK_FULL:
            raise _disk_full_error(source, dest, exc) from None
        raise BackupFailed(
            f"backup of {source!r} failed: {exc.strerror or exc} ({exc.filename or src})",
            source=source,
        ) from None
    except BaseException:
        if sink is not None:
            sink.discard()
        tmp.unlink(missing_ok=True)
        raise
    return StreamResult(dest, raw, size, digest, time.monotonic() - started, "")


def iter_decompressed(src: Path) -> Iterator[bytes]:
    """The decompressed content of a zstd file, in chunks; a corrupt frame raises ZstdError."""
    with src.open("rb") as fh:
        reader = zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True)
        while chunk := reader.read(CHUNK):
            yield chunk


def decompress_to_file(src: Path, dest: Path) -> int:
    """Decompress `src` into `dest` (created 0600); the number of bytes written."""
    total = 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        for chunk in iter_decompressed(src):
            out.write(chunk)
            total += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return total


def feed_zstd(
    src: Path,
    argv: Sequence[str],
    *,
    source: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    redact: Redact = _identity,
) -> FeedResult:
    """Run `argv` with the decompressed content of `src` on its stdin (pg_restore, mysql,
    tar -x). Returns how it ended; raises BackupFailed only if it cannot start, times out
    or the file cannot be decompressed (a corrupt file)."""
    args = tuple(argv)
    tool = tool_label(args)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=_child_env(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise BackupFailed(
            f"{source!r}: could not start {tool}: {exc.strerror or exc}", source=source
        ) from None
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out = _PipeReader(proc.stdout)
    err = _PipeReader(proc.stderr)
    out.start()
    err.start()
    timed_out = threading.Event()

    def on_timeout() -> None:
        timed_out.set()
        _kill_group(proc)

    timer = threading.Timer(timeout, on_timeout) if timeout else None
    if timer:
        timer.daemon = True
        timer.start()
    raw = 0
    read_error: str = ""
    try:
        try:
            for chunk in iter_decompressed(src):
                raw += len(chunk)
                proc.stdin.write(chunk)
        except BrokenPipeError:
            pass  # the tool stopped reading; its exit status says why
        except zstandard.ZstdError as exc:
            read_error = f"{src.name} is corrupt ({exc})"
            _kill_group(proc)
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
        code = proc.wait()
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    finally:
        if timer:
            timer.cancel()
    stdout = out.text()
    stderr = redact(err.text())
    if read_error:
        raise BackupFailed(f"{source!r}: {read_error}", source=source, stderr=stderr)
    if timed_out.is_set():
        raise BackupFailed(
            f"{source!r}: {tool} timed out after {timeout:g}s" + _tail(stderr),
            source=source,
            stderr=stderr,
        )
    return FeedResult(args, code, stdout, out.lines, stderr, raw, time.monotonic() - started)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
