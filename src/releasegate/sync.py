"""Compare a compose stack's source directory (what the team edits in git) with its run
directory (what the server runs): seed 001's sync_to_srv.sh, made visible and reversible.

Pure: reads both trees and returns what would change, with diffs. The run directory's
own `.env` is never overwritten (it holds the running version and the secrets).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from releasegate.redact import Redactor

NEVER_COPIED = (".env",)
SKIPPED_DIRS = (".git", ".releasegate", "__pycache__")
DIFF_LIMIT = 400  # lines per file; a longer diff is cut, the rest summarised


@dataclass
class FileChange:
    path: str  # relative, '/'-separated
    kind: str  # "new" | "changed"
    diff: list[str] = field(default_factory=list)
    binary: bool = False


@dataclass
class SyncPlan:
    source: Path
    target: Path
    changes: list[FileChange]
    unchanged: int
    only_in_target: list[str]
    kept: list[str]  # present in the source but never copied (.env)

    @property
    def replaced(self) -> list[str]:
        return [c.path for c in self.changes if c.kind == "changed"]


def _files(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in SKIPPED_DIRS for part in rel.parts) or path.is_dir():
            continue
        found[rel.as_posix()] = path
    return found


def _text(data: bytes) -> list[str] | None:
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def plan_sync(source: Path, target: Path, redact: Redactor) -> SyncPlan:
    src, dst = _files(source), _files(target) if target.is_dir() else {}
    changes: list[FileChange] = []
    unchanged = 0
    kept = [rel for rel in src if rel in NEVER_COPIED]
    for rel, path in src.items():
        if rel in NEVER_COPIED:
            continue
        new = path.read_bytes()
        if rel not in dst:
            changes.append(FileChange(rel, "new", binary=_text(new) is None))
            continue
        old = dst[rel].read_bytes()
        if old == new:
            unchanged += 1
            continue
        a, b = _text(old), _text(new)
        if a is None or b is None:
            changes.append(FileChange(rel, "changed", binary=True))
            continue
        lines = [
            redact(line.rstrip("\n"))
            for line in difflib.unified_diff(a, b, f"run/{rel}", f"source/{rel}")
        ]
        if len(lines) > DIFF_LIMIT:
            lines = [*lines[:DIFF_LIMIT], f"... {len(lines) - DIFF_LIMIT} more diff lines"]
        changes.append(FileChange(rel, "changed", lines))
    only = sorted(rel for rel in dst if rel not in src and rel not in NEVER_COPIED)
    return SyncPlan(source, target, changes, unchanged, only, kept)
