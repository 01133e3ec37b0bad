"""Release artifacts are untrusted input: inspected on the controller before anything is
written, hashed so a version is bound to its content.

`inspect_artifact` reads a `<version>.tar.gz` as a stream (Python's tarfile, mode "r|"),
with a budget on what it decompresses, and refuses what an unpack could turn against the
host: devices, FIFOs and other special entries, absolute names, `..`, links that lead out
of the release (symlink chains resolved through the archive's own links), entries that
would be written through one of the archive's symlinks, releasegate's own file names, and
archives past the size, file-count or compression-ratio limits. The limits are checked on
each header's declared size, before its data is decompressed: a 1 MB archive declaring
1 GiB is refused at that header. setuid, setgid and sticky bits are stripped, not refused
(`tar --no-same-permissions` and `chmod` do it; the inspection returns a notice).

A folder artifact `<version>/` is walked (never following a symlink) under the same rules
and hashed as a tree. Nothing here writes a file or prints.
"""

from __future__ import annotations

import hashlib
import os
import stat
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tarfile

from releasegate.errors import Refused

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
MAX_NOTICES = 10  # named one by one; the rest are counted

# Names releasegate writes inside a release (runtimes.releases_commands.MARKER and the
# temporary files beside it): an artifact that ships one is refused.
RESERVED_PREFIX = ".releasegate-"

# Below this expanded size the ratio is not judged: a small, very repetitive text file
# compresses 300:1 and hurts nobody.
RATIO_FLOOR = 64 * MIB
# Symlink hops followed while resolving one link (Linux's own limit is 40).
MAX_HOPS = 40
# Bytes of tar headers (and pax records) allowed per entry, on top of the file data.
_HEADER_ALLOWANCE = 4 * KIB
_CHUNK = 1 << 20
_SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX


@dataclass(frozen=True)
class Limits:
    """How big an artifact may get once unpacked (`artifact_limits:` in the config)."""

    max_bytes: int = 4 * GIB  # file data, summed
    max_files: int = 200_000  # entries of any kind
    max_ratio: float = 200.0  # expanded / compressed, judged past RATIO_FLOOR


class ArtifactRefused(Refused):
    """The artifact breaks a rule: nothing was written."""


@dataclass(frozen=True)
class Inspection:
    """What an accepted artifact holds, and how to unpack it."""

    kind: str  # "tar.gz" | "dir"
    sha256: str  # the file's sha256, or the folder's tree digest (artifact_digest)
    files: int  # entries (directories and links included)
    bytes: int  # file data once unpacked
    strip: int = 0  # leading name components tar drops (--strip-components)
    top: str = ""  # the single top folder those components name ("" when none)
    notices: tuple[str, ...] = ()

    def facts(self) -> dict[str, Any]:
        """For the ledger and the record."""
        return {
            "kind": self.kind,
            "sha256": self.sha256,
            "files": self.files,
            "bytes": self.bytes,
            **({"stripped_top_folder": self.top} if self.top else {}),
            **({"notices": list(self.notices)} if self.notices else {}),
        }


# ---- digests --------------------------------------------------------------------------------


def artifact_digest(path: Path) -> str:
    """sha256 of an artifact: of the file for a tarball, of the tree for a folder (sorted
    relative paths, each with its type, permission bits and content or link target)."""
    if path.is_dir():
        return _walk_tree(path, Limits(max_bytes=1 << 62, max_files=1 << 62)).sha256
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def inspect_artifact(path: Path, limits: Limits | None = None) -> Inspection:
    """Inspect a `.tar.gz` file or a folder; raise ArtifactRefused naming the first rule it
    breaks."""
    limits = limits or Limits()
    try:
        if path.is_dir():
            return _walk_tree(path, limits)
        return inspect_tarball(path, limits)
    except OSError as exc:  # vanished or unreadable while being read
        raise _refuse(f"artifact {path.name}: could not read it ({exc})") from exc


_inspected: dict[tuple[str, str, Limits], Inspection | ArtifactRefused] = {}


def inspect_for_run(path: Path, limits: Limits, run: str) -> Inspection:
    """`inspect_artifact` once per run (`run`: its token): a stack's hosts share one
    inspection (or refusal) of the artifact they all receive."""
    key = (run, str(path), limits)
    if key not in _inspected:
        try:
            _inspected[key] = inspect_artifact(path, limits)
        except ArtifactRefused as exc:
            _inspected[key] = exc
    found = _inspected[key]
    if isinstance(found, ArtifactRefused):
        raise found
    return found


# ---- the rules, on names and types alone -----------------------------------------------------


class _Tree:
    """The release as the entries build it, to judge links against the whole archive."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.kinds: dict[PurePosixPath, str] = {}  # path -> "file" | "dir" | "symlink" | "hardlink"
        self.links: dict[PurePosixPath, str] = {}  # symlink path -> its target
        self.hard: dict[PurePosixPath, PurePosixPath] = {}  # hard link -> the entry it joins
        self.stripped: list[str] = []

    def add(self, path: PurePosixPath, kind: str, raw: str) -> None:
        if path.parts and path.parts[0].startswith(RESERVED_PREFIX):
            raise _refuse(
                f"{self.what} holds {raw!r}: releasegate writes that name in a release",
                "remove it from the artifact",
            )
        before = self.kinds.get(path)
        if before is not None and "symlink" in (before, kind) and before != kind:
            raise _refuse(f"{self.what} holds {raw!r} twice, once as a symlink")
        self.kinds[path] = kind

    def check(self) -> None:
        """Every link stays inside; no entry lies beyond one of the archive's symlinks."""
        for link, target in self.links.items():
            if target.startswith("/"):
                raise _refuse(
                    f"{self.what}: symlink {link} points outside the release ({target})",
                    "make the link relative to a file inside the artifact",
                )
            if self._resolve(link.parent, target, 0) is None:
                raise _refuse(
                    f"{self.what}: symlink {link} -> {target} leads outside the release (or loops)",
                    "make the link point at a file inside the artifact",
                )
        for path in self.kinds:
            for parent in list(path.parents)[:-1]:
                if parent in self.links:
                    raise _refuse(
                        f"{self.what}: {path} would be written through the symlink {parent}",
                        "ship the folder itself, not a link to it",
                    )
        for link, joined in self.hard.items():
            if self.kinds.get(joined) != "file":
                raise _refuse(
                    f"{self.what}: hard link {link} joins {joined}, "
                    "which is not a file of the artifact"
                )

    def _resolve(self, base: PurePosixPath, target: str, hops: int) -> PurePosixPath | None:
        """Where `target`, relative to folder `base`, lands; None when above the release.
        The archive's own symlinks along the way are followed, as the kernel would."""
        if hops > MAX_HOPS:
            return None
        parts = list(base.parts)
        for name in target.split("/"):
            if name in ("", "."):
                continue
            if name == "..":
                if not parts:
                    return None
                parts.pop()
                continue
            parts.append(name)
            here = PurePosixPath(*parts)
            if here in self.links:
                inner = self.links[here]
                if inner.startswith("/"):
                    return None
                landed = self._resolve(here.parent, inner, hops + 1)
                if landed is None:
                    return None
                parts = list(landed.parts)
        return PurePosixPath(*parts)


def _refuse(message: str, hint: str = "") -> ArtifactRefused:
    return ArtifactRefused(message, hint=hint)


def clean_name(raw: str, what: str) -> PurePosixPath:
    """An entry's name as a path inside the release; refuses absolute names and `..`."""
    if raw.startswith("/"):
        raise _refuse(f"{what}: absolute name {raw!r}", "pack names relative to the release")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(f"{what}: name {raw!r} climbs out with '..'")
    if any("\x00" in p for p in parts):
        raise _refuse(f"{what}: name {raw!r} holds a NUL byte")
    return PurePosixPath(*parts)


def strip_plan(names: Iterable[str]) -> tuple[int, str]:
    """(components tar drops, the folder) when every entry lies under one top folder written
    the same way (`app-1.2/...` or `./app-1.2/...`); (0, "") otherwise. The release is that
    folder's content: a tarball of `app-1.2/` unpacks without the `app-1.2` level."""
    prefix: tuple[str, ...] | None = None
    deeper = False
    for raw in names:
        parts = [p for p in raw.split("/") if p]
        lead = 0
        while lead < len(parts) and parts[lead] == ".":
            lead += 1
        if lead == len(parts):
            continue  # "./": the release folder itself
        head = tuple(parts[: lead + 1])
        if prefix is None:
            prefix = head
        elif head != prefix:
            return 0, ""
        deeper = deeper or len(parts) > lead + 1
    if prefix is None or not deeper:
        return 0, ""  # empty, or one top file / an empty folder: nothing to strip
    return len(prefix), prefix[-1]


# ---- tarballs --------------------------------------------------------------------------------


class _Budget:
    """A file-like reader over the decompressed stream that refuses to go past a budget:
    tarfile never holds or skips more than the limits allow (a pax header of 1 GiB, say)."""

    def __init__(self, raw: IO[bytes], compressed: int, limits: Limits, what: str) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.inflate = zlib.decompressobj(wbits=31)  # gzip, one or more members
        self.pending = b""
        self.out = 0
        self.compressed = max(compressed, 1)
        self.cap = limits.max_bytes + limits.max_files * _HEADER_ALLOWANCE + MIB
        self.limits = limits
        self.what = what

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = _CHUNK
        while len(self.pending) < size:
            more = self._inflate(max(size - len(self.pending), 64 * KIB))
            if not more:
                break
            self.pending += more
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def _inflate(self, want: int) -> bytes:
        while True:
            if self.inflate.unconsumed_tail:
                chunk = self.inflate.decompress(self.inflate.unconsumed_tail, want)
            elif self.inflate.eof:
                rest = self.inflate.unused_data
                if not rest:
                    rest = self._raw()
                    if not rest:
                        return b""
                self.inflate = zlib.decompressobj(wbits=31)  # the next gzip member
                chunk = self.inflate.decompress(rest, want)
            else:
                raw = self._raw()
                if not raw:
                    if self.out == 0 or not self.inflate.eof:
                        raise _refuse(f"{self.what}: the gzip stream ends early (truncated?)")
                    return b""
                chunk = self.inflate.decompress(raw, want)
            if chunk:
                self.out += len(chunk)
                if self.out > self.cap:
                    raise _refuse(
                        f"{self.what}: expands past {_size(self.cap)} of tar data",
                        "raise artifact_limits.max_bytes if this is expected",
                    )
                return chunk

    def _raw(self) -> bytes:
        data = self.raw.read(_CHUNK)
        self.digest.update(data)
        return data

    def drain(self) -> str:
        """Hash the rest of the file (bytes after the archive's end) and return the digest."""
        while self._raw():
            pass
        return self.digest.hexdigest()


def inspect_tarball(path: Path, limits: Limits | None = None) -> Inspection:
    import tarfile  # here: a folder artifact (and every reuse) never needs it

    limits = limits or Limits()
    what = f"artifact {path.name}"
    compressed = path.stat().st_size
    tree = _Tree(what)
    names: list[str] = []
    notices: list[str] = []
    total = files = 0
    with path.open("rb") as raw:
        stream = _Budget(raw, compressed, limits, what)
        try:
            with tarfile.open(fileobj=stream, mode="r|") as archive:  # type: ignore[call-overload]
                for member in archive:
                    files += 1
                    if files > limits.max_files:
                        raise _refuse(
                            f"{what}: more than {limits.max_files} entries",
                            "raise artifact_limits.max_files if this is expected",
                        )
                    if member.isreg():
                        total += member.size
                        _check_size(what, total, compressed, limits)
                    names.append(member.name)
                    _entry(tree, member, what, notices)
        except (tarfile.TarError, zlib.error, EOFError, OSError) as exc:
            raise _refuse(f"{what}: not a readable .tar.gz ({exc})") from exc
        digest = stream.drain()
    strip, top = strip_plan(names)
    if strip:
        tree = _restrip(tree, what)
        notices.insert(0, f"unpacked without its single top folder {top}/")
    tree.check()
    return Inspection("tar.gz", digest, files, total, strip, top, _bounded(notices))


def _check_size(what: str, total: int, compressed: int, limits: Limits) -> None:
    if total > limits.max_bytes:
        raise _refuse(
            f"{what}: expands to more than {_size(limits.max_bytes)}",
            "raise artifact_limits.max_bytes if this is expected",
        )
    if total > RATIO_FLOOR and total > limits.max_ratio * compressed:
        raise _refuse(
            f"{what}: {_size(compressed)} expands past {_size(total)} "
            f"(more than {limits.max_ratio:g} times: a compression bomb?)",
            "raise artifact_limits.max_ratio if this is expected",
        )


def _entry(tree: _Tree, member: tarfile.TarInfo, what: str, notices: list[str]) -> None:
    raw = member.name
    path = clean_name(raw, what)
    if member.ischr() or member.isblk() or member.isfifo():
        kind = "character device" if member.ischr() else "block device"
        kind = "FIFO" if member.isfifo() else kind
        raise _refuse(f"{what}: {raw} is a {kind}", "an artifact holds files, folders and links")
    if member.mode & _SPECIAL_BITS and not member.issym():
        notices.append(f"{raw}: setuid/setgid/sticky bits stripped")
    if not path.parts and not member.isdir():
        raise _refuse(f"{what}: {raw!r} names the release folder itself but is not a folder")
    if member.issym():
        tree.add(path, "symlink", raw)
        tree.links[path] = member.linkname
    elif member.islnk():
        tree.add(path, "hardlink", raw)
        tree.hard[path] = clean_name(member.linkname, what)
    elif member.isdir():
        tree.add(path, "dir", raw)
    elif member.isreg():
        tree.add(path, "file", raw)
    else:
        raise _refuse(f"{what}: {raw} is of unknown tar type {member.type!r}")


def _restrip(tree: _Tree, what: str) -> _Tree:
    """The tree as tar writes it with --strip-components (hard link targets are stripped
    too; symlink targets are text and stay)."""
    out = _Tree(what)

    def cut(p: PurePosixPath, drop: int) -> PurePosixPath:
        return PurePosixPath(*p.parts[drop:])

    # Cleaned paths hold no "." components: their first part is the top folder, whatever
    # number of components tar drops for it (`strip` counts a leading "./" too).
    drop = 1
    for path, kind in tree.kinds.items():
        if not path.parts[drop:]:
            continue  # the top folder itself: tar skips it
        out.kinds[cut(path, drop)] = kind
    out.links = {cut(p, drop): t for p, t in tree.links.items() if p.parts[drop:]}
    out.hard = {cut(p, drop): cut(t, drop) for p, t in tree.hard.items() if p.parts[drop:]}
    for path in out.kinds:
        if path.parts and path.parts[0].startswith(RESERVED_PREFIX):
            raise _refuse(
                f"{what} holds {path}: releasegate writes that name in a release",
                "remove it from the artifact",
            )
    return out


# ---- folders ---------------------------------------------------------------------------------


def _walk_tree(root: Path, limits: Limits) -> Inspection:
    what = f"artifact {root.name}/"
    tree = _Tree(what)
    notices: list[str] = []
    entries: list[tuple[str, str, int, bytes]] = []  # (path, type, mode, content digest)
    total = files = 0
    for folder, dirs, names in os.walk(root):  # never follows a symlinked folder
        dirs.sort()
        base = Path(folder)
        for name in sorted([*dirs, *names]):
            full = base / name
            rel = PurePosixPath(full.relative_to(root).as_posix())
            st = full.lstat()
            files += 1
            if files > limits.max_files:
                raise _refuse(
                    f"{what}: more than {limits.max_files} entries",
                    "raise artifact_limits.max_files if this is expected",
                )
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(full)
                tree.add(rel, "symlink", str(rel))
                tree.links[rel] = target
                entries.append((str(rel), "l", 0, target.encode("utf-8", "surrogateescape")))
                continue
            if mode & _SPECIAL_BITS:
                notices.append(f"{rel}: setuid/setgid/sticky bits stripped")
            if stat.S_ISDIR(st.st_mode):
                tree.add(rel, "dir", str(rel))
                entries.append((str(rel), "d", mode & 0o777, b""))
            elif stat.S_ISREG(st.st_mode):
                tree.add(rel, "file", str(rel))
                total += st.st_size
                if total > limits.max_bytes:
                    raise _refuse(
                        f"{what}: holds more than {_size(limits.max_bytes)}",
                        "raise artifact_limits.max_bytes if this is expected",
                    )
                entries.append((str(rel), "f", mode & 0o777, _file_digest(full)))
            else:
                raise _refuse(
                    f"{what}: {rel} is a {_kind(st.st_mode)}",
                    "an artifact holds files, folders and links",
                )
    tree.check()
    digest = hashlib.sha256(b"releasegate-tree-v1\n")
    for name, kind, mode, content in sorted(entries):
        digest.update(_frame(name.encode("utf-8", "surrogateescape")))
        digest.update(f"{kind} {mode:o} ".encode())
        digest.update(_frame(content))
    return Inspection("dir", digest.hexdigest(), files, total, notices=_bounded(notices))


def _bounded(notices: list[str]) -> tuple[str, ...]:
    if len(notices) <= MAX_NOTICES:
        return tuple(notices)
    return (*notices[:MAX_NOTICES], f"and {len(notices) - MAX_NOTICES} more like these")


def _frame(data: bytes) -> bytes:
    # Length-prefixed, so no two different trees hash the same bytes.
    return len(data).to_bytes(8, "big") + data


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.digest()


def _kind(mode: int) -> str:
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover (the loop returns)


__all__ = [
    "ArtifactRefused",
    "Inspection",
    "Limits",
    "artifact_digest",
    "clean_name",
    "inspect_artifact",
    "inspect_for_run",
    "inspect_tarball",
    "strip_plan",
]
