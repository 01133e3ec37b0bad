"""Hostile release artifacts built with tarfile, for the unit and end-to-end tests."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

# (name, type, extra): type "f" file (extra: bytes, or an int mode), "d" dir, "l" symlink
# (extra: target), "h" hard link (extra: target), "c"/"b"/"p" devices and FIFO.
Entry = tuple[str, str, object]


def make_tar(path: Path, entries: list[Entry]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, extra in entries:
            info = tarfile.TarInfo(name)
            data = b""
            if kind == "f":
                data = extra if isinstance(extra, bytes) else b"x"
                info.size = len(data)
                info.mode = extra if isinstance(extra, int) else 0o644
            elif kind == "d":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "l":
                info.type, info.linkname = tarfile.SYMTYPE, str(extra)
            elif kind == "h":
                info.type, info.linkname = tarfile.LNKTYPE, str(extra)
            else:
                types = {"c": tarfile.CHRTYPE, "b": tarfile.BLKTYPE, "p": tarfile.FIFOTYPE}
                info.type = types[kind]
                info.devmajor, info.devminor = 1, 3
            tar.addfile(info, io.BytesIO(data) if kind == "f" else None)
    return path


def bomb(path: Path, size: int, name: str = "zeros") -> Path:
    """A .tar.gz of one file of `size` zero bytes (a multiple of 1 MiB), about size/1000
    bytes on disk: gzip members concatenated (valid gzip), the 1 MiB block compressed once."""
    mib = 1 << 20
    assert size % mib == 0
    header = tarfile.TarInfo(name)
    header.size = size
    block = gzip.compress(bytes(mib), compresslevel=9, mtime=0)
    tail = bytes(2 * 512)
    tail += bytes(-(512 + size + len(tail)) % tarfile.RECORDSIZE)
    with path.open("wb") as out:
        out.write(gzip.compress(header.tobuf(tarfile.GNU_FORMAT), mtime=0))
        for _ in range(size // mib):
            out.write(block)
        out.write(gzip.compress(tail, mtime=0))
    return path


__all__ = ["Entry", "bomb", "make_tar"]
