"""Backups that belong to releases: take, list, retention, verify, restore."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from releasegate import names
from releasegate.engine.base import EngineBase, RunOutcome
from releasegate.errors import BadInput, ExitCode
from releasegate.execution.hosts import aggregate
from releasegate.model import CheckResult, Event, Plan, StepResult
from releasegate.plan import plan_restore
from releasegate.runtimes.base import PhaseResult

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig
    from releasegate.execution.hosts import StackHosts


def _phase(phase: PhaseResult) -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
    return phase.ok, phase.summary, [], phase.evidence()


class BackupOps(EngineBase):
    def _backup(
        self, stack: StackConfig, hosts: StackHosts, running: str | None, release: str | None = None
    ) -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
        """The deploy's backup: every source, with the config files as a `files` source."""
        sources = self._backup_sources(stack, hosts)
        if not sources:
            missing = ", ".join(stack.backup_files)
            return True, f"nothing to back up yet ({missing} missing)", [], {}
        return self._take_backup(stack, running, release, sources=sources)

    def _backup_sources(self, stack: StackConfig, hosts: StackHosts | None = None) -> list[Any]:
        """The configured sources, plus the stack's config files as a `files` source (an
        SSH host's: read there over the run's connection)."""
        from releasegate.backup.from_config import sources_for

        sources: list[Any] = sources_for(stack)
        return sources + self._config_sources(stack, hosts, present_only=True)

    def _backup_progress(self, stack: StackConfig, p: Any) -> None:
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
        stack: StackConfig,
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
        hosts = self._hosts(stack, token)
        try:
            return self._run_backup(stack, hosts, token, reason)
        finally:
            hosts.close()

    def _run_backup(
        self, stack: StackConfig, hosts: StackHosts, token: str, reason: str
    ) -> RunOutcome:
        with self._locked(stack, "backup", "", token):
            running = hosts.running_version()
            out = RunOutcome(
                "backup", stack.name, stack.env, running or "", "running", ExitCode.FAILED, ""
            )
            out.action_id = self._begin(stack, "backup", running or "", notes=reason)
            res = self._step(out, stack, "backup", lambda: self._backup(stack, hosts, running))
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

    def _protected_backups(self, stack: StackConfig, sets: list[Any]) -> set[str]:
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
        self, stack: StackConfig, *, dry_run: bool
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

    def _find_backup(self, stack: StackConfig, backup_id: str | None) -> Any:
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

    def _latest_verified(self, stack: StackConfig) -> tuple[Any, bool]:
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

    def _restore_request(self, name: str, env: str, backup_id: str, config: bool) -> Any:
        stack = self.stack(name, env)
        if not stack.backup.sources and not config:
            raise BadInput(
                f"stack {name} has no backup.sources: nothing to restore",
                hint="--config restores the config files the backup holds (backup.files)",
            )
        if config and not stack.backup_files:
            raise BadInput(f"stack {name} backs up no config files (backup.files is empty)")
        return stack, self._find_backup(stack, backup_id)

    def plan_restore(self, name: str, env: str, backup_id: str, *, config: bool = False) -> Plan:
        """What `restore` would run now (`--dry-run`): read-only."""
        stack, item = self._restore_request(name, env, backup_id, config)
        hosts = self._hosts(stack, "plan")
        try:
            running = hosts.running_version()
        finally:
            hosts.close()
        return plan_restore(stack, item.id, running, fresh_backup=True, start=True, config=config)

    def restore(self, name: str, env: str, backup_id: str, *, config: bool = False) -> RunOutcome:
        """Fresh backup first, stop writers, restore, start, smoke; all recorded. With
        `config`, the stack's config files (each host's own) are restored too."""
        stack, item = self._restore_request(name, env, backup_id, config)
        token = os.urandom(6).hex()
        hosts = self._hosts(stack, token)
        try:
            with self._locked(stack, "restore", "", token):
                return self._run_restore(
                    stack, hosts, item, start=True, fresh_backup=True, config=config
                )
        finally:
            hosts.close()

    def _config_sources(
        self, stack: StackConfig, hosts: StackHosts | None, *, present_only: bool = False
    ) -> list[Any]:
        """The config files as the backups name them: `config` on this machine,
        `config-<host>` for each SSH host (its own files, over the run's connection). To take
        a backup, only the files present (`present_only`); to restore one, whatever the
        archive holds comes back."""
        from releasegate.backup.sources import FilesSource

        paths = [f.rstrip("/") for f in stack.backup_files]
        if not paths:
            return []
        if hosts is None or all(rt.transport.name == "local" for rt in hosts.hosts.values()):
            if present_only:
                paths = [f for f in paths if (Path(str(stack.dir)) / f).exists()]
            if not paths:
                return []
            return [FilesSource(name="config", paths=tuple(paths), base_dir=str(stack.dir))]
        from releasegate.backup.host_files import HostFilesSource

        found: list[Any] = []
        taken: set[str] = set()
        for label, rt in hosts.hosts.items():
            name = "config-" + re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:50]
            while name in taken:  # two labels that read alike once cleaned
                name += "_"
            taken.add(name)
            found.append(
                HostFilesSource(
                    name=name,
                    host=label,
                    paths=tuple(paths),
                    base_dir=str(stack.dir),
                    transport=rt.transport,
                )
            )
        return found

    def _run_restore(
        self,
        stack: StackConfig,
        hosts: StackHosts,
        item: Any,
        *,
        start: bool,
        fresh_backup: bool,
        config: bool = False,
    ) -> RunOutcome:
        """Run the restore plan's steps in its order."""
        from releasegate.backup.from_config import sources_for

        running = hosts.running_version()
        plan = plan_restore(
            stack, item.id, running, fresh_backup=fresh_backup, start=start, config=config
        )
        sources: list[Any] = sources_for(stack)
        if config:  # after the survey: an SSH host's source uses the run's connection
            sources += self._config_sources(stack, hosts)
        out = RunOutcome(
            "restore", stack.name, stack.env, running or "", "running", ExitCode.FAILED, "",
            plan=plan,
        )  # fmt: skip
        out.details["backup"] = item.id
        out.action_id = self._begin(
            stack, "restore", running or "", notes=f"from backup {item.id}",
            details={"backup": item.id},
        )  # fmt: skip
        results: dict[str, StepResult] = {}

        def body(name: str) -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
            if name == "backup":
                taken = self._take_backup(
                    stack, running, None, sources=self._backup_sources(stack, hosts)
                )
                out.details["saved_as"] = taken[3].get("backup_id")
                return taken
            if name == "stop":
                return _phase(hosts.stop(stack.backup.stop))
            if name == "restore":
                return self._restore_sources(item, sources, stack)
            if name == "restart":
                return _phase(
                    aggregate("restart", hosts.restart(running or "", None, hosts.active))
                )
            outcomes = hosts.smoke(running or "")
            checks = [c for o in outcomes.values() for c in o.checks]
            failed = [o for o in outcomes.values() if not o.ok]
            summary = "; ".join(o.summary for o in failed) or f"{len(checks)} check(s) passed"
            return not failed, summary, checks, {}

        for step in plan.steps:
            if step.name == "lock":
                continue
            if step.name == "smoke" and not results["restore"].ok:
                break  # the data did not come back: nothing to smoke
            res = self._step(out, stack, step.name, partial(body, step.name))
            results[step.name] = res
            if res.ok:
                continue
            if step.name == "backup":
                return self._close(
                    out, "failed", ExitCode.FAILED, res.summary,
                    hint="nothing was restored: the current state could not be saved first",
                )  # fmt: skip
            if step.name == "stop":
                return self._close(
                    out, "failed", ExitCode.FAILED, res.summary, hint="nothing was restored"
                )
            if step.name in ("restart", "smoke"):
                return self._close(
                    out, "failed", ExitCode.FAILED, res.summary,
                    hint=f"the data was restored from {item.id}; the service needs attention",
                )  # fmt: skip
        restored = results["restore"]
        if not restored.ok:
            return self._close(
                out, "failed", ExitCode.FAILED, restored.summary,
                hint="the fresh backup taken first holds the state before this restore",
            )  # fmt: skip
        return self._close(out, "success", ExitCode.OK, restored.summary)

    def _restore_sources(
        self, item: Any, sources: list[Any], stack: StackConfig
    ) -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
        from releasegate.backup.sets import restore_backup
        from releasegate.errors import ReleasegateError

        try:
            report = restore_backup(item, sources, self._secrets(stack))
        except ReleasegateError as exc:
            return False, f"restore refused: {exc.message}", [], {}
        checks = [CheckResult(r.name, r.ok, r.summary, dict(r.evidence)) for r in report.results]
        bad = [c for c in checks if not c.ok]
        summary = (
            f"restored {len(checks)} source(s) from {item.id}"
            if not bad
            else "restore failed: " + "; ".join(c.summary for c in bad)
        )
        return not bad, summary, checks, {"backup": item.id}

    def _backup_before(self, stack: StackConfig, version: str | None) -> str | None:
        """The backup taken by the newest deploy of `version` (what its data was before)."""
        for rec in reversed(self.ledger.actions(stack=stack.name, action="deploy")):
            if rec.version == version and rec.details.get("backup"):
                return str(rec.details["backup"])
        return None
