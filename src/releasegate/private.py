"""Files at rest are for their owner only: the ledger (with its WAL and shared memory), the
execution records and the backups hold what was run where, its output and the config files.

Folders are made 0700 and files 0600 when they are created (os.open with a mode, never a
default then a chmod, so there is no moment they are readable by others). SQLite creates
its -wal and -shm files with the database file's mode, so the database file is created
here, 0600, before SQLite opens it. Folders and files left wider by an older releasegate
are tightened on the first write, and each function returns what it tightened as notices
for the command line to show (core never prints).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def tighten(path: Path | str, mode: int) -> list[str]:
    """Remove from `path` every permission bit `mode` does not have; a notice if any was."""
    try:
        now = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return []
    if not now & ~mode:
        return []
    try:
        os.chmod(path, now & mode)
    except OSError as exc:
        return [f"{path} is readable by others (mode {now:04o}) and could not be tightened: {exc}"]
    return [f"{path}: mode {now:04o} -> {now & mode:04o} (releasegate's files are private)"]


def private_dir(path: Path | str, *, tighten_files: bool = False) -> list[str]:
    """`path` as a folder only its owner can enter: made 0700 if missing (its parents as
    usual), tightened if wider. When it was, and `tighten_files`, so are the files in it."""
    path = Path(path)
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass  # made meanwhile by another run
    notices = tighten(path, DIR_MODE)
    if notices and tighten_files:
        for entry in os.scandir(path):
            if entry.is_file(follow_symlinks=False):
                notices += tighten(entry.path, FILE_MODE)
    return notices


def private_file(path: Path | str) -> list[str]:
    """Create `path` empty and 0600 unless it exists; an existing one is tightened."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    except FileExistsError:
        return tighten(path, FILE_MODE)
    os.close(fd)
    return []


def private_sqlite(file: Path | str, *, own_folder: bool) -> list[str]:
    """Prepare a SQLite database file before it is opened: its folder (made 0700 if missing;
    tightened too when `own_folder`, releasegate's own `.releasegate/`), the file 0600, and
    any WAL, shared-memory or journal file tightened."""
    folder = Path(file).parent
    notices = private_dir(folder) if own_folder or not folder.exists() else []
    notices += private_file(file)
    for suffix in SQLITE_SIDE_FILES:
        notices += tighten(f"{file}{suffix}", FILE_MODE)
    return notices


def write_private_text(path: Path, text: str) -> None:
    """Write `path` anew, 0600 from its creation (a leftover of a crashed run is replaced)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
