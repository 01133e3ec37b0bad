"""Backup sets: every source of a stack backed up together, tied to a release.

A set is `<root>/<stack>/<YYYYmmdd_HHMMSS>/` (the seed's layout; a second set in the same
second gets `_1`, `_2`, ...) holding one zstd file per source and `manifest.json`. It is
written as `.<name>.partial` and renamed once every source is done, so a failed or
interrupted backup never looks complete. Never prints; `progress` receives events.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from releasegate.backup.sources import (
    FilesSource,
    Source,
    SQLiteSource,
)
from releasegate.backup.stream import (
    DEFAULT_LEVEL,
    BackupFailed,
    fsync_dir,
    sha256_file,
)
from releasegate.errors import BadInput, Refused, ReleasegateError
from releasegate.private import private_dir
from releasegate.retention import keep_newest

FORMAT = "releasegate-backup/1"
MANIFEST = "manifest.json"
STAMP = "%Y%m%d_%H%M%S"
_STACK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SET_NAME = re.compile(r"^(\d{8}_\d{6})(?:_(\d+))?$")


@dataclass(frozen=True)
class BackupProgress:
    """What `take_backup` reports while it runs (the caller decides how to show it)."""

    source: str
    kind: str
    phase: str  # "start", "bytes" or "done"
    index: int  # 1-based position of the source
    total: int  # number of sources
    raw_bytes: int = 0
    compressed_bytes: int = 0


ProgressCallback = Callable[[BackupProgress], None]


@dataclass(frozen=True)
class BackupSet:
    id: str  # the folder name, e.g. 20260130_143022
    stack: str
    path: Path
    created_at: datetime
    manifest: dict[str, Any]  # empty when missing or unreadable
    complete: bool
    problem: str = ""  # why it is not complete

    @property
    def sources(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("sources", []))

    @property
    def release(self) -> str | None:
        value = self.manifest.get("release")
        return str(value) if value is not None else None

    @property
    def running_version(self) -> str | None:
        value = self.manifest.get("running_version")
        return str(value) if value is not None else None


@dataclass(frozen=True)
class SourceResult:
    """One source's verdict in a verify or a restore, with the evidence behind it."""

    name: str
    kind: str
    ok: bool
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VerifyReport:
    backup_id: str
    results: tuple[SourceResult, ...]

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)


@dataclass(frozen=True)
class RestoreReport:
    backup_id: str
    results: tuple[SourceResult, ...]

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)


# --- take -----------------------------------------------------------------------------------


def _check_sources(sources: Sequence[Source]) -> None:
    if not sources:
        raise BadInput("nothing to back up: no sources")
    names: set[str] = set()
    files: set[str] = set()
    for source in sources:
        if source.name in names:
            raise BadInput(f"two backup sources are named {source.name!r}")
        if source.file_name in files or source.file_name == MANIFEST:
            raise BadInput(f"backup source {source.name!r}: file name {source.file_name} clashes")
        names.add(source.name)
        files.add(source.file_name)


def _reserve(base: Path, stamp: str) -> tuple[Path, Path]:
    """The final folder name (not taken, nor being written) and its partial folder, made."""
    n = 0
    while True:
        name = stamp if n == 0 else f"{stamp}_{n}"
        final, tmp = base / name, base / f".{name}.partial"
        n += 1
        if final.exists():
            continue
        try:
            tmp.mkdir(mode=0o700)
        except FileExistsError:
            continue  # another run writes it now, or a crashed one left it: pick another
        return final, tmp


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def take_backup(
    *,
    stack: str,
    env: str,
    sources: Sequence[Source],
    root: Path,
    running_version: str | None,
    release: str | None,
    secrets: Mapping[str, str],
    now: datetime | None = None,
    progress: ProgressCallback | None = None,
) -> BackupSet:
    """Back up every source into a new set; all or nothing.

    `running_version` is what runs now (the data's version); `release` the version about
    to be deployed (the one this backup precedes), None for a manual backup. On any failure
    the partial folder is removed and the error names the source.
    """
    if not _STACK.match(stack):
        raise BadInput(f"stack name {stack!r} is not allowed in a backup path")
    _check_sources(sources)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.astimezone()
    base = Path(root) / stack
    # Backups hold config files and database dumps: only their owner may enter the folders
    # (a backups folder of the user's own that exists keeps its mode; the stack's is ours).
    if not Path(root).exists() or Path(root).parent.name == ".releasegate":
        private_dir(root)
    private_dir(base)
    final, tmp = _reserve(base, now.astimezone().strftime(STAMP))
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "id": final.name,
        "stack": stack,
        "env": env,
        "created_at": now.isoformat(),
        "finished_at": None,
        "running_version": running_version,
        "release": release,
        "compression": {"algorithm": "zstd", "level": DEFAULT_LEVEL},
        "sources": [],
    }
    total = len(sources)
    try:
        for index, source in enumerate(sources, 1):
            if progress is not None:
                progress(BackupProgress(source.name, source.kind, "start", index, total))

            def on_bytes(raw: int, packed: int, _s: Source = source, _i: int = index) -> None:
                if progress is not None:
                    progress(BackupProgress(_s.name, _s.kind, "bytes", _i, total, raw, packed))

            dest = tmp / source.file_name
            try:
                dumped = source.dump(dest, secrets=secrets, progress=on_bytes)
            except ReleasegateError:
                raise
            except OSError as exc:
                raise BackupFailed(
                    f"backup of {source.name!r} failed: {exc.strerror or exc}",
                    source=source.name,
                ) from None
            result = dumped.stream
            manifest["sources"].append(
                {
                    "name": source.name,
                    "kind": source.kind,
                    "file": source.file_name,
                    "raw_size": result.raw_bytes,
                    "compressed_size": result.compressed_bytes,
                    "sha256": result.sha256,
                    "duration_s": round(result.duration_s, 3),
                    "tool": dumped.tool,
                    "tool_version": dumped.tool_version,
                    **source.describe(),
                }
            )
            if progress is not None:
                progress(
                    BackupProgress(
                        source.name,
                        source.kind,
                        "done",
                        index,
                        total,
                        result.raw_bytes,
                        result.compressed_bytes,
                    )
                )
        manifest["finished_at"] = datetime.now(UTC).astimezone(now.tzinfo).isoformat()
        try:
            _write_json(tmp / MANIFEST, manifest)
            fsync_dir(tmp)
            os.rename(tmp, final)
            fsync_dir(base)
        except OSError as exc:
            full = exc.errno in {errno.ENOSPC, errno.EDQUOT}
            raise BackupFailed(
                f"backup set {final.name}: "
                + ("disk full writing the manifest" if full else "could not finish")
                + f": {exc.strerror or exc}; nothing was kept",
                disk_full=full,
            ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BackupSet(final.name, stack, final, now, manifest, True)


# --- list -----------------------------------------------------------------------------------


def _stamp_time(name: str) -> datetime | None:
    match = _SET_NAME.match(name)
    if not match:
        return None
    try:
        return datetime.strptime(match[1], STAMP).astimezone()  # written in local time
    except ValueError:
        return None


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.astimezone()


def load_set(path: Path, stack: str) -> BackupSet:
    """One set folder, judged: complete only if its manifest reads and names files that
    exist (sizes are compared; sha256 is for `verify_backup`)."""
    fallback = _stamp_time(path.name) or datetime.fromtimestamp(path.stat().st_mtime, UTC)

    def incomplete(problem: str, manifest: dict[str, Any] | None = None) -> BackupSet:
        created = _parse_time((manifest or {}).get("created_at")) or fallback
        return BackupSet(path.name, stack, path, created, manifest or {}, False, problem)

    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        return incomplete("manifest.json is missing (interrupted, or not made by releasegate)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return incomplete(f"manifest.json is corrupt: {exc}")
    if not isinstance(manifest, dict):
        return incomplete("manifest.json is corrupt: not an object")
    if manifest.get("format") != FORMAT:
        if "archives" in manifest:
            return incomplete("a config-file backup (no database sources)", manifest)
        return incomplete(f"manifest.json: unknown format {manifest.get('format')!r}", manifest)
    entries = manifest.get("sources")
    if not isinstance(entries, list) or not entries:
        return incomplete("manifest.json lists no sources", manifest)
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            return incomplete("manifest.json: a source entry is malformed", manifest)
        file = path / entry["file"]
        if Path(entry["file"]).name != entry["file"] or not file.is_file():
            return incomplete(f"{entry['file']} is missing", manifest)
        if file.stat().st_size != entry.get("compressed_size"):
            return incomplete(
                f"{entry['file']} is {file.stat().st_size} bytes, the manifest says "
                f"{entry.get('compressed_size')}",
                manifest,
            )
    created = _parse_time(manifest.get("created_at")) or fallback
    return BackupSet(path.name, stack, path, created, manifest, True)


def list_backups(root: Path, stack: str) -> list[BackupSet]:
    """The stack's sets, newest first; `.partial` folders (being written, or left by a
    crash) are not sets. Sets whose manifest is missing or corrupt come with
    complete=False and the problem."""
    base = Path(root) / stack
    if not base.is_dir():
        return []
    sets = [
        load_set(entry, stack)
        for entry in base.iterdir()
        if entry.is_dir() and not entry.name.startswith(".")
    ]
    sets.sort(key=lambda s: (s.created_at, _suffix(s.id)), reverse=True)
    return sets


def _suffix(name: str) -> int:
    """2 for `20260130_143022_2`: orders sets made in the same second."""
    match = _SET_NAME.match(name)
    return int(match[2]) if match and match[2] else 0


# --- retention ------------------------------------------------------------------------------


def select_retention(
    sets: Iterable[BackupSet],
    *,
    keep_days: int | None,
    keep_last: int | None,
    protect: set[str],
    now: datetime,
) -> tuple[list[BackupSet], list[BackupSet]]:
    """(keep, remove), each newest first. A set is kept if it is protected, or among the
    `keep_last` newest complete sets, or younger than `keep_days`. Incomplete sets do not
    count toward `keep_last` and are removed only by age. With neither limit: keep all."""
    for label, value in (("keep_days", keep_days), ("keep_last", keep_last)):
        if value is not None and value < 0:
            raise BadInput(f"{label} must be 0 or more, not {value}")
    ordered = sorted(sets, key=lambda s: (s.created_at, _suffix(s.id)), reverse=True)
    if keep_days is None and keep_last is None:
        return ordered, []
    if now.tzinfo is None:
        now = now.astimezone()
    keep_ids = {s.id for s in ordered if s.id in protect}
    if keep_last is not None:
        keep_ids |= keep_newest([s.id for s in ordered if s.complete], keep_last, ())
    if keep_days is not None:
        cutoff = now - timedelta(days=keep_days)
        keep_ids.update(s.id for s in ordered if s.created_at >= cutoff)
    else:
        keep_ids.update(s.id for s in ordered if not s.complete)
    keep = [s for s in ordered if s.id in keep_ids]
    remove = [s for s in ordered if s.id not in keep_ids]
    return keep, remove


# --- verify ---------------------------------------------------------------------------------


def _source_from_manifest(entry: Mapping[str, Any]) -> Source | None:
    """Sources that need no credentials can be rebuilt from the manifest (to restore-test
    a set whose source is no longer configured)."""
    try:
        if entry.get("kind") == "files":
            return FilesSource(
                name=str(entry["name"]),
                paths=tuple(entry["paths"]),
                base_dir=str(entry["base_dir"]),
            )
        if entry.get("kind") == "sqlite":
            return SQLiteSource(name=str(entry["name"]), path=str(entry["database"]))
    except (KeyError, TypeError, ReleasegateError):
        return None
    return None


def _sha_problem(backup: BackupSet, entry: Mapping[str, Any]) -> tuple[str, str | None]:
    """('' or what is wrong, the actual sha256)."""
    file = backup.path / str(entry.get("file"))
    if not file.is_file():
        return f"{file.name} is missing", None
    actual = sha256_file(file)
    if actual != entry.get("sha256"):
        return (
            f"sha256 mismatch for {file.name}: the file changed since the backup "
            f"(expected {str(entry.get('sha256'))[:12]}..., found {actual[:12]}...)",
            actual,
        )
    return "", actual


def verify_backup(
    backup_set: BackupSet, sources: Sequence[Source], secrets: Mapping[str, str]
) -> VerifyReport:
    """Prove the set restores: every sha256 checked; each source restored into a scratch
    database (or temporary file) that is dropped afterwards; its sanity checks run."""
    if not backup_set.complete:
        return VerifyReport(
            backup_set.id,
            (
                SourceResult(
                    "manifest",
                    "-",
                    False,
                    f"backup {backup_set.id} is incomplete: {backup_set.problem}",
                    {"path": str(backup_set.path)},
                ),
            ),
        )
    configured = {s.name: s for s in sources}
    results: list[SourceResult] = []
    for entry in backup_set.sources:
        name = str(entry.get("name"))
        source = configured.pop(name, None) or _source_from_manifest(entry)
        results.append(_verify_one(backup_set, entry, source, secrets))
    for name, source in configured.items():
        results.append(
            SourceResult(
                name,
                source.kind,
                False,
                f"{name}: not in backup {backup_set.id} (the source was added later?)",
            )
        )
    return VerifyReport(backup_set.id, tuple(results))


def _verify_one(
    backup: BackupSet,
    entry: Mapping[str, Any],
    source: Source | None,
    secrets: Mapping[str, str],
) -> SourceResult:
    name, kind = str(entry.get("name")), str(entry.get("kind"))
    started = time.monotonic()
    evidence: dict[str, Any] = {"file": entry.get("file"), "sha256": entry.get("sha256")}
    problem, actual = _sha_problem(backup, entry)
    evidence["sha256_ok"] = not problem
    if problem:
        evidence["sha256_found"] = actual
        return SourceResult(name, kind, False, f"{name}: {problem}", evidence)
    if source is None:
        return SourceResult(
            name,
            kind,
            False,
            f"{name}: sha256 ok, but not restore-tested: no source {name!r} is configured",
            evidence,
        )
    if source.kind != kind:
        return SourceResult(
            name,
            kind,
            False,
            f"{name}: the backup holds {kind}, the source is {source.kind}",
            evidence,
        )
    file = backup.path / str(entry["file"])
    scratch = None
    warning = ""
    try:
        scratch = source.restore_to_scratch(file, secrets=secrets)
        evidence["scratch"] = scratch.name
        evidence["restore"] = list(scratch.evidence)
        checks = source.run_checks(scratch, secrets=secrets)
    except (ReleasegateError, OSError) as exc:
        message = exc.message if isinstance(exc, ReleasegateError) else str(exc)
        evidence["error"] = message
        return SourceResult(name, kind, False, f"{name}: sha256 ok; {message}", evidence)
    finally:
        if scratch is not None:
            try:
                source.drop_scratch(scratch, secrets=secrets)
                evidence["scratch_dropped"] = True
            except ReleasegateError as exc:
                evidence["scratch_dropped"] = False
                warning = f" (WARNING: scratch {scratch.name} was not dropped: {exc.message})"
    evidence["checks"] = [
        {"query": c.query, "expect": c.expect, "ok": c.ok, "value": c.value, "detail": c.detail}
        for c in checks
    ]
    evidence["duration_s"] = round(time.monotonic() - started, 3)
    failed = [c for c in checks if not c.ok]
    restored = "; ".join(scratch.evidence) if scratch else ""
    if failed:
        detail = "; ".join(f"{c.query!r} {c.expect}: {c.detail}" for c in failed)
        return SourceResult(
            name,
            kind,
            False,
            f"{name}: restored, but {len(failed)} of {len(checks)} sanity check(s) failed: "
            f"{detail}{warning}",
            evidence,
        )
    passed = f"{len(checks)} sanity check(s) passed" if checks else "no sanity checks configured"
    return SourceResult(
        name, kind, True, f"{name}: sha256 ok; {restored}; {passed}{warning}", evidence
    )


# --- restore --------------------------------------------------------------------------------


def restore_backup(
    backup_set: BackupSet, sources: Sequence[Source], secrets: Mapping[str, str]
) -> RestoreReport:
    """Restore each given source over its live database/files, in order. Refuses (before
    touching anything) an incomplete set, a source the set lacks, or a file whose sha256
    does not match. Stopping writers and saving the current state first are the caller's
    job. A source that fails stops the restore; the report says which were restored."""
    if not sources:
        raise BadInput("nothing to restore: no sources")
    if not backup_set.complete:
        raise Refused(
            f"refusing to restore backup {backup_set.id}: it is incomplete "
            f"({backup_set.problem}); nothing was restored"
        )
    entries = {str(e.get("name")): e for e in backup_set.sources}
    problems: list[str] = []
    for source in sources:
        entry = entries.get(source.name)
        if entry is None:
            problems.append(f"{source.name}: not in this backup")
        elif entry.get("kind") != source.kind:
            problems.append(
                f"{source.name}: the backup holds {entry.get('kind')}, not {source.kind}"
            )
        else:
            problem, _ = _sha_problem(backup_set, entry)
            if problem:
                problems.append(f"{source.name}: {problem}")
    if problems:
        raise Refused(
            f"refusing to restore backup {backup_set.id}: "
            + "; ".join(problems)
            + "; nothing was restored",
            hint="pick another backup: releasegate backup list STACK",
        )
    results: list[SourceResult] = []
    failed: str | None = None
    for source in sources:
        entry = entries[source.name]
        if failed is not None:
            results.append(
                SourceResult(
                    source.name,
                    source.kind,
                    False,
                    f"{source.name}: not restored (stopped after {failed} failed)",
                )
            )
            continue
        started = time.monotonic()
        try:
            detail = source.restore_live(backup_set.path / str(entry["file"]), secrets=secrets)
        except (ReleasegateError, OSError) as exc:
            failed = source.name
            message = exc.message if isinstance(exc, ReleasegateError) else str(exc)
            results.append(
                SourceResult(
                    source.name,
                    source.kind,
                    False,
                    f"{source.name}: restore failed: {message}",
                    {"error": message, "file": entry["file"]},
                )
            )
            continue
        results.append(
            SourceResult(
                source.name,
                source.kind,
                True,
                f"{source.name}: {detail}",
                {
                    "file": entry["file"],
                    "sha256": entry["sha256"],
                    "duration_s": round(time.monotonic() - started, 3),
                },
            )
        )
    return RestoreReport(backup_set.id, tuple(results))
