"""Backups that belong to releases: take, list, retention, verify, restore."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from releasegate import names
from releasegate.engine.base import EngineBase, RunOutcome
from releasegate.errors import BadInput, ExitCode
from releasegate.model import CheckResult, Event
from releasegate.runtimes.base import Runtime


class BackupOps(EngineBase):
    def _backup(
        self, stack: Any, runtime: Runtime, running: str | None, release: str | None = None
    ) -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
        """The deploy's backup: every source, with the config files as a `files` source."""
        sources = self._backup_sources(stack, runtime)
        if not sources:
            missing = ", ".join(stack.backup_files)
            return True, f"nothing to back up yet ({missing} missing)", [], {}
        return self._take_backup(stack, running, release, sources=sources)

    def _backup_sources(self, stack: Any, runtime: Runtime | None = None) -> list[Any]:
        """The configured sources, plus the stack's config files as a `files` source (a
        fleet's: one per host, read there over the run's connection)."""
        from releasegate.backup.from_config import sources_for

        sources: list[Any] = sources_for(stack)
        return sources + self._config_sources(stack, runtime, present_only=True)

    @staticmethod
    def _host_sources(stack: Any, runtime: Runtime | None) -> list[Any]:
        from releasegate.backup.host_files import HostFilesSource

        hosts = getattr(runtime, "hosts", None)
        if not stack.backup_files or not hosts:
            return []
        found: list[Any] = []
        names: set[str] = set()
        for label, host_runtime in hosts.items():
            name = "config-" + re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:50]
            while name in names:  # two labels that read alike once cleaned
                name += "_"
            names.add(name)
            found.append(
                HostFilesSource(
                    name=name,
                    host=label,
                    paths=tuple(f.rstrip("/") for f in stack.backup_files),
                    base_dir=str(stack.dir),
                    transport=host_runtime.transport,
                )
            )
        return found

    def _backup_progress(self, stack: Any, p: Any) -> None:
        if p.phase == "done":
            self.emit(
                Event(
                    "check",
                    stack.name,
                    step="backup",
                    ok=True,
                    message=f"[{p.index}/{p.total}] {p.source} ({p.kind}): "
                    f"{p.raw_bytes / 1e6:.1f} MB -> {p.compressed_bytes / 1e6:.1f} MB",
                )
            )

    def _take_backup(
        self,
        stack: Any,
        running: str | None,
        release: str | None,
        *,
        sources: list[Any] | None = None,
    ) -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
        from releasegate.backup.sets import take_backup
        from releasegate.errors import ReleasegateError

        try:
            taken = take_backup(
                stack=stack.name,
                env=stack.env,
                sources=self._backup_sources(stack) if sources is None else sources,
                root=Path(self.config.backups_dir),
                running_version=running,
                release=release,
                secrets=self._secrets(stack),
                progress=lambda p: self._backup_progress(stack, p),
            )
        except ReleasegateError as exc:
            return False, f"backup failed: {exc.message}", [], {}
        parts = ", ".join(
            f"{s['name']} {s.get('compressed_size', 0) / 1e6:.1f} MB"
            for s in taken.manifest.get("sources", [])
        )
        return (
            True,
            f"backup {taken.id}: {parts}",
            [],
            {"backup_id": taken.id, "path": str(taken.path), "manifest": taken.manifest},
        )

    def backup(self, name: str, env: str, *, reason: str = "") -> RunOutcome:
        """Back up every source of the stack now, then apply its retention."""
        stack = self.stack(name, env)
        if not stack.backup.sources and not stack.backup_files:
            raise BadInput(
                f"stack {name} has nothing to back up",
                hint="add backup.sources (postgres, mysql, sqlite, files) to its config",
            )
        token = os.urandom(6).hex()
        runtime = self._runtime(stack, token)
        try:
            return self._run_backup(stack, runtime, token, reason)
        finally:
            self._release(runtime)  # a fleet's connections

    def _run_backup(self, stack: Any, runtime: Runtime, token: str, reason: str) -> RunOutcome:
        with self._locked(stack, "backup", "", token):
            running = runtime.running_version()
            out = RunOutcome(
                "backup", stack.name, stack.env, running or "", "running", ExitCode.FAILED, ""
            )
            out.action_id = self._begin(stack, "backup", running or "", notes=reason)
            res = self._step(out, stack, "backup", lambda: self._backup(stack, runtime, running))
            if not res.ok:
                return self._close(out, "failed", ExitCode.FAILED, res.summary, notes=res.summary)
            if "backup_id" in res.evidence:
                out.details["backup"] = res.evidence["backup_id"]
                self._step(out, stack, "retention", lambda: self._retention(stack, dry_run=False))
            return self._close(out, "success", ExitCode.OK, res.summary, notes=res.summary[:200])

    def backup_list(self, name: str) -> list[dict[str, Any]]:
        from releasegate.backup.sets import list_backups

        names.check("stack", name)
        stack = self.config.stack(name)
        sets = list_backups(Path(self.config.backups_dir), stack.name)
        protected = self._protected_backups(stack, sets)
        return [
            {
                "id": item.id,
                "complete": item.complete,
                "created_at": item.manifest.get("created_at"),
                "running_version": item.running_version,
                "release": item.release,
                "sources": [
                    {k: src.get(k) for k in ("name", "kind", "compressed_size", "sha256")}
                    for src in item.sources
                ],
                "protected": item.id in protected,
                "path": str(item.path),
            }
            for item in sets
        ]

    def _protected_backups(self, stack: Any, sets: list[Any]) -> set[str]:
        """The newest backup (of `sets`, newest first) of the verified version and of the
        last good releases: the ones a database rollback would need."""
        versions = {v for v in [self.ledger.verified_version(stack.name)] if v}
        versions.update(self.ledger.good_versions(stack.name)[:2])
        keep: set[str] = set()
        seen: set[tuple[str, str]] = set()
        for item in sets:
            for key, value in (("release", item.release), ("running", item.running_version)):
                if value in versions and (key, value) not in seen:
                    seen.add((key, value))
                    keep.add(item.id)
        return keep

    def _retention(
        self, stack: Any, *, dry_run: bool
    ) -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
        import shutil

        from releasegate.backup.sets import list_backups, select_retention

        cfg = stack.backup
        sets = list_backups(Path(self.config.backups_dir), stack.name)
        protect = self._protected_backups(stack, sets)
        keep, remove = select_retention(
            sets,
            keep_days=cfg.keep_days,
            keep_last=cfg.keep_last,
            protect=protect,
            now=datetime.now(UTC),
        )
        if not dry_run:
            for item in remove:
                shutil.rmtree(item.path)
        verb = "would remove" if dry_run else "removed"
        return (
            True,
            f"kept {len(keep)}, {verb} {len(remove)} backup(s)",
            [],
            {
                "kept": [k.id for k in keep],
                "removed": [r.id for r in remove],
                "protected": sorted(protect),
            },
        )

    def backup_prune(self, name: str, *, dry_run: bool = False) -> RunOutcome:
        names.check("stack", name)
        stack = self.config.stack(name)
        out = RunOutcome("backup-prune", stack.name, stack.env, "", "running", ExitCode.FAILED, "")
        if dry_run:
            _ok, summary, _c, evidence = self._retention(stack, dry_run=True)
            out.details = evidence
            out.status, out.exit_code, out.message = "success", ExitCode.OK, summary
            return out
        out.action_id = self._begin(stack, "backup-prune", "")
        res = self._step(out, stack, "retention", lambda: self._retention(stack, dry_run=False))
        out.details = dict(res.evidence)
        return self._close(out, "success", ExitCode.OK, res.summary)

    def _find_backup(self, stack: Any, backup_id: str | None) -> Any:
        from releasegate.backup.sets import list_backups

        sets = [s for s in list_backups(Path(self.config.backups_dir), stack.name) if s.complete]
        if backup_id is None:
            if not sets:
                raise BadInput(f"stack {stack.name} has no complete backup yet")
            return sets[0]
        for item in sets:
            if item.id == backup_id:
                return item
        known = ", ".join(s.id for s in sets[:8]) or "none"
        raise BadInput(f"no complete backup {backup_id} for {stack.name}", hint=f"backups: {known}")

    def _latest_verified(self, stack: Any) -> tuple[Any, bool]:
        """The newest complete backup that `backup verify` passed, and True; else the newest
        complete backup, and False (nothing has been verified yet)."""
        from releasegate.backup.sets import list_backups

        passed = {
            str(rec.details.get("backup"))
            for rec in self.ledger.actions(stack=stack.name, action="backup-verify")
            if rec.status == "success"
        }
        sets = [s for s in list_backups(Path(self.config.backups_dir), stack.name) if s.complete]
        verified = [s for s in sets if s.id in passed]
        if verified:
            return verified[0], True
        return self._find_backup(stack, None), False

    def backup_verify(self, name: str, backup_id: str | None = None) -> RunOutcome:
        """Check every sha256, restore each database into a scratch one, run the checks."""
        from releasegate.backup.from_config import sources_for
        from releasegate.backup.sets import verify_backup

        names.check("stack", name)
        stack = self.config.stack(name)
        item = self._find_backup(stack, backup_id)
        out = RunOutcome(
            "backup-verify", stack.name, stack.env, item.id, "running", ExitCode.FAILED, ""
        )
        out.action_id = self._begin(stack, "backup-verify", "", details={"backup": item.id})

        def run() -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
            report = verify_backup(item, sources_for(stack), self._secrets(stack))
            checks = [
                CheckResult(r.name, r.ok, r.summary, dict(r.evidence)) for r in report.results
            ]
            for check in checks:
                self.emit(
                    Event("check", stack.name, step="verify", ok=check.ok, message=check.summary)
                )
            bad = [c for c in checks if not c.ok]
            summary = (
                f"backup {item.id} restores: {len(checks)} check(s) passed"
                if not bad
                else f"backup {item.id} is NOT good: " + "; ".join(c.summary for c in bad)
            )
            return not bad, summary, checks, {"backup": item.id}

        res = self._step(out, stack, "verify", run)
        out.details["backup"] = item.id
        if not res.ok:
            return self._close(out, "failed", ExitCode.FAILED, res.summary, notes=res.summary[:200])
        return self._close(out, "success", ExitCode.OK, res.summary, notes=res.summary[:200])

    def restore(self, name: str, env: str, backup_id: str, *, config: bool = False) -> RunOutcome:
        """Fresh backup first, stop writers, restore, start, smoke; all recorded. With
        `config`, the stack's config files (each host's own, on a fleet) are restored too."""
        stack = self.stack(name, env)
        if not stack.backup.sources and not config:
            raise BadInput(
                f"stack {name} has no backup.sources: nothing to restore",
                hint="--config restores the config files the backup holds (backup.files)",
            )
        if config and not stack.backup_files:
            raise BadInput(f"stack {name} backs up no config files (backup.files is empty)")
        item = self._find_backup(stack, backup_id)
        token = os.urandom(6).hex()
        runtime = self._runtime(stack, token)
        try:
            with self._locked(stack, "restore", "", token):
                return self._run_restore(
                    stack, runtime, item, start=True, fresh_backup=True, config=config
                )
        finally:
            self._release(runtime)

    def _config_sources(
        self, stack: Any, runtime: Runtime | None, *, present_only: bool = False
    ) -> list[Any]:
        """The config files as the backups name them: `config` here, `config-<host>` for each
        host of a fleet. To take a backup, only the files present here (`present_only`); to
        restore one, whatever the archive holds comes back."""
        from releasegate.backup.sources import FilesSource

        if stack.is_fleet:
            # `dir` is a path on the hosts: whatever this machine has there is not theirs.
            return self._host_sources(stack, runtime)
        paths = [f.rstrip("/") for f in stack.backup_files]
        if present_only:
            paths = [f for f in paths if (Path(str(stack.dir)) / f).exists()]
        if not paths:
            return []
        return [FilesSource(name="config", paths=tuple(paths), base_dir=str(stack.dir))]

    def _run_restore(
        self,
        stack: Any,
        runtime: Runtime,
        item: Any,
        *,
        start: bool,
        fresh_backup: bool,
        config: bool = False,
    ) -> RunOutcome:
        from releasegate.backup.from_config import sources_for
        from releasegate.backup.sets import restore_backup
        from releasegate.errors import ReleasegateError

        running = runtime.running_version()
        sources: list[Any] = sources_for(stack)
        if config:  # after the survey: a fleet's host sources use its connections
            sources += self._config_sources(stack, runtime)
        out = RunOutcome(
            "restore", stack.name, stack.env, running or "", "running", ExitCode.FAILED, ""
        )
        out.details["backup"] = item.id
        out.action_id = self._begin(
            stack, "restore", running or "", notes=f"from backup {item.id}",
            details={"backup": item.id},
        )  # fmt: skip
        if fresh_backup:
            res = self._step(
                out,
                stack,
                "backup",
                lambda: self._take_backup(
                    stack, running, None, sources=self._backup_sources(stack, runtime)
                ),
            )
            if not res.ok:
                return self._close(
                    out, "failed", ExitCode.FAILED, res.summary,
                    hint="nothing was restored: the current state could not be saved first",
                )  # fmt: skip
            out.details["saved_as"] = res.evidence.get("backup_id")
        # Writers stop before a database is replaced under them. Config files alone are read
        # at start: the restart below is what makes them count.
        if stack.backup.sources:
            res = self._step(
                out, stack, "stop", lambda: self._phase(runtime.stop(stack.backup.stop))
            )
            if not res.ok:
                return self._close(
                    out, "failed", ExitCode.FAILED, res.summary, hint="nothing was restored"
                )

        def run_restore() -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
            try:
                report = restore_backup(item, sources, self._secrets(stack))
            except ReleasegateError as exc:
                return False, f"restore refused: {exc.message}", [], {}
            checks = [
                CheckResult(r.name, r.ok, r.summary, dict(r.evidence)) for r in report.results
            ]
            bad = [c for c in checks if not c.ok]
            summary = (
                f"restored {len(checks)} source(s) from {item.id}"
                if not bad
                else "restore failed: " + "; ".join(c.summary for c in bad)
            )
            return not bad, summary, checks, {"backup": item.id}

        restored = self._step(out, stack, "restore", run_restore)
        if start and running:
            res = self._step(
                out, stack, "restart", lambda: self._phase(runtime.restart(running, None))
            )
            if res.ok and restored.ok:
                res = self._step(out, stack, "smoke", lambda: self._smoke(stack, runtime, running))
            if not res.ok:
                return self._close(
                    out, "failed", ExitCode.FAILED, res.summary,
                    hint=f"the data was restored from {item.id}; the service needs attention",
                )  # fmt: skip
        if not restored.ok:
            return self._close(
                out, "failed", ExitCode.FAILED, restored.summary,
                hint="the fresh backup taken first holds the state before this restore",
            )  # fmt: skip
        return self._close(out, "success", ExitCode.OK, restored.summary)

    def _backup_before(self, stack: Any, version: str | None) -> str | None:
        """The backup taken by the newest deploy of `version` (what its data was before)."""
        for rec in reversed(self.ledger.actions(stack=stack.name, action="deploy")):
            if rec.version == version and rec.details.get("backup"):
                return str(rec.details["backup"])
        return None
