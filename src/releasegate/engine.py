"""Runs plans: lock, steps, ledger rows before and after each step, rollback on failure.

The engine never prints: it emits Events, and returns RunOutcomes that the CLI renders.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from releasegate import locks, names
from releasegate.errors import BadInput, ExitCode, LockHeld
from releasegate.gates import preflight as pf
from releasegate.gates.promotion import promotion_check
from releasegate.identity import Actor, pid_alive
from releasegate.model import ActionRecord, CheckResult, Event, Plan, StepResult
from releasegate.plan import Facts, plan_deploy, plan_rollback
from releasegate.redact import Redactor, read_env_file
from releasegate.runtimes.base import PhaseResult, Runtime
from releasegate.smoke import HttpClientSource, run_checks
from releasegate.transport import for_host

if TYPE_CHECKING:
    from releasegate.ledger import Ledger

Emit = Callable[[Event], None]


@dataclass
class RunOutcome:
    action: str
    stack: str
    env: str
    version: str
    status: str  # success | refused | rolled_back | failed
    exit_code: ExitCode
    message: str
    hint: str = ""
    action_id: str = ""
    plan: Plan | None = None
    steps: list[StepResult] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime | None = None
    followups: list[RunOutcome] = field(default_factory=list)  # automatic rollback, recovery
    record_path: Path | None = None
    notes: str = ""
    details: dict[str, Any] = field(default_factory=dict)  # kept on the ledger's close row


@dataclass
class StackStatus:
    stack: str
    env: str
    running: str | None
    last: ActionRecord | None
    verified: str | None
    promote_from: str | None
    lock: dict[str, Any] | None
    interrupted: list[ActionRecord]
    warnings: list[str]


def _evidence(step: StepResult) -> dict[str, Any]:
    return {"summary": step.summary, "checks": [asdict(c) for c in step.checks], **step.evidence}


class Engine:
    def __init__(
        self, config: Any, ledger: Ledger, *, actor: Actor, emit: Emit | None = None
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.actor = actor
        self.emit: Emit = emit or (lambda _e: None)
        self.http = HttpClientSource()  # smoke's HTTP client, built while commands run

    # -- setup -------------------------------------------------------------------------------
    def stack(self, name: str, env: str) -> Any:
        names.check("stack", name)
        names.check("env", env)
        stack = self.config.stack(name)
        if stack.env != env:
            raise BadInput(
                f"stack {name} is the {stack.env} environment, not {env}",
                hint=f"releasegate ... {name} {stack.env} ...",
            )
        return stack

    def _runtime(self, stack: Any, token: str) -> Runtime:
        transport = for_host(str(stack.hosts[0]) if stack.hosts else "local")
        if stack.runtime == "compose":
            from releasegate.runtimes.compose import ComposeRuntime

            return ComposeRuntime(stack, transport, self._redactor(stack), token)
        from releasegate.runtimes.releases import ReleasesRuntime

        return ReleasesRuntime(stack, transport, self._redactor(stack), token)

    def _env_sources(self, stack: Any) -> list[dict[str, str]]:
        """Where secrets come from: the environment, env_vars, the stack's .env files."""
        envs: list[dict[str, str]] = [
            dict(os.environ),
            {str(k): str(v) for k, v in stack.env_vars.items()},
        ]
        paths = [Path(str(stack.dir)) / "shared" / entry for entry in stack.shared]
        if stack.runtime == "compose":
            paths.append(Path(str(stack.dir)) / ".env")  # secrets beside the version var
        for path in paths:
            if path.name.startswith(".env") and path.is_file():
                envs.append(read_env_file(path.read_text(encoding="utf-8", errors="replace")))
        return envs

    def _redactor(self, stack: Any) -> Redactor:
        return Redactor.from_env(*self._env_sources(stack))

    def _secrets(self, stack: Any) -> dict[str, str]:
        """Values for `password_env` names: the stack's .env files win over the environment."""
        merged: dict[str, str] = {}
        for env in self._env_sources(stack):
            merged.update(env)
        return merged

    def facts(self, stack: Any, runtime: Runtime, version: str) -> Facts:
        running = runtime.running_version()
        good = [v for v in self.ledger.good_versions(stack.name) if v != version]
        return Facts(
            running=running,
            rollback_target=good[0] if good else None,
            artifact=runtime.describe_artifact(version),
            prepared=runtime.is_prepared(version),
        )

    def plan_deploy(
        self,
        name: str,
        env: str,
        version: str,
        *,
        force: bool = False,
        reason: str = "",
        skip_backup: bool = False,
    ) -> Plan:
        stack = self.stack(name, env)
        names.check("version", version)
        runtime = self._runtime(stack, "plan")
        return plan_deploy(
            stack,
            version,
            self.facts(stack, runtime, version),
            forced=force,
            reason=reason,
            skip_backup=skip_backup,
        )

    # -- ledger helpers ------------------------------------------------------------------------
    def _begin(
        self,
        stack: Any,
        action: str,
        version: str,
        *,
        parent: str | None = None,
        notes: str = "",
        forced: bool = False,
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> str:
        return self.ledger.begin_action(
            stack=stack.name,
            env=stack.env,
            action=action,
            version=version,
            parent_id=parent,
            notes=notes,
            forced=forced,
            reason=reason,
            details=details,
            user=self.actor.user,
            host=self.actor.host,
            pid=self.actor.pid,
        )

    def _step(
        self,
        out: RunOutcome,
        stack: Any,
        name: str,
        body: Callable[[], tuple[bool, str, list[CheckResult], dict[str, Any]]],
    ) -> StepResult:
        """Open the step's ledger row, run it, close the row with its outcome and evidence."""
        self.emit(Event("step_started", stack.name, step=name))
        started = datetime.now(UTC)
        step_id = self._begin(stack, name, out.version, parent=out.action_id)
        t0 = time.monotonic()
        try:
            ok, summary, checks, evidence = body()
        except Exception as exc:  # a bug or an OS error must still close the row
            ok, summary, checks, evidence = False, f"{type(exc).__name__}: {exc}", [], {}
        result = StepResult(name, ok, started, time.monotonic() - t0, summary, checks, evidence)
        self.ledger.end_action(
            step_id, "success" if ok else "fail", notes=summary[:500], details=_evidence(result)
        )
        out.steps.append(result)
        self.emit(
            Event(
                "step_finished",
                stack.name,
                step=name,
                ok=ok,
                message=summary,
                data={
                    "duration_s": round(result.duration_s, 3),
                    "checks": [asdict(c) for c in checks],
                },
            )
        )
        return result

    def _close(
        self,
        out: RunOutcome,
        status: str,
        exit_code: ExitCode,
        message: str,
        *,
        ledger_status: str | None = None,
        notes: str | None = None,
        hint: str = "",
    ) -> RunOutcome:
        out.status, out.exit_code, out.message, out.hint = status, exit_code, message, hint
        out.ended_at = datetime.now(UTC)
        if out.action_id:
            self.ledger.end_action(
                out.action_id,
                ledger_status or status,
                notes=notes,
                details={"message": message, **out.details},
            )
        self.emit(
            Event(
                "run_finished",
                out.stack,
                ok=status == "success",
                message=message,
                data={"status": status, "action": out.action},
            )
        )
        return out

    # -- step bodies ----------------------------------------------------------------------------
    @staticmethod
    def _phase(phase: PhaseResult) -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
        return phase.ok, phase.summary, [], phase.evidence()

    def _preflight_checks(
        self, stack: Any, runtime: Runtime, version: str | None
    ) -> list[CheckResult]:
        cfg = stack.preflight
        root = PurePosixPath(str(stack.dir))
        checks = [pf.disk_check(runtime.transport, runtime.disk_path(), cfg.disk_free_min_percent)]
        checks += [pf.command_present(runtime.transport, c) for c in cfg.require_commands]
        checks += runtime.preflight_checks(version)
        env = runtime.env_for(version or "", runtime.running_version())
        cwd = Path(str(root)) if Path(str(root)).is_dir() else None
        checks += [
            pf.custom_check(runtime.transport, c, cwd=cwd, env=env, redact=runtime.redact)
            for c in cfg.commands
        ]
        for check in checks:
            self.emit(
                Event("check", stack.name, step="preflight", ok=check.ok, message=check.summary)
            )
        return checks

    def _smoke(
        self, stack: Any, runtime: Runtime, version: str
    ) -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
        if not stack.smoke:
            return True, "no smoke checks configured", [], {}
        results = run_checks(
            list(stack.smoke),
            version=version,
            transport=runtime.transport,
            cwd=runtime.smoke_cwd(),
            env=runtime.env_for(version),
            redact=runtime.redact,
            on_result=lambda c: self.emit(
                Event("check", stack.name, step="smoke", ok=c.ok, message=c.summary)
            ),
            clients=self.http,
        )
        failed = [c for c in results if not c.ok]
        summary = (
            f"{len(results)} check(s) passed"
            if not failed
            else "smoke failed: " + "; ".join(f"{c.name}: {c.summary}" for c in failed)
        )
        return not failed, summary, results, {}

    # -- deploy --------------------------------------------------------------------------------
    def deploy(
        self,
        name: str,
        env: str,
        version: str,
        *,
        force: bool = False,
        reason: str = "",
        skip_backup: bool = False,
    ) -> RunOutcome:
        stack = self.stack(name, env)
        names.check("version", version)
        if force and not reason.strip():
            raise BadInput("--force needs --reason TEXT: say why; it is recorded with your name")
        if skip_backup and not reason.strip():
            raise BadInput("--skip-backup needs --reason TEXT: say why; it is recorded")
        token = os.urandom(6).hex()
        runtime = self._runtime(stack, token)
        with self._locked(stack, "deploy", version, token):
            recovered = self._recover(stack, runtime)
            plan = plan_deploy(
                stack,
                version,
                self.facts(stack, runtime, version),
                forced=force,
                reason=reason,
                skip_backup=skip_backup,
            )
            out = self._run_deploy(stack, runtime, plan)
            out.followups[:0] = recovered
            return out

    def _locked(self, stack: Any, action: str, version: str, token: str) -> _Lock:
        return _Lock(self, stack, action, version, token)

    def _run_deploy(self, stack: Any, runtime: Runtime, plan: Plan) -> RunOutcome:
        version = plan.version
        notes = ""
        if plan.forced:
            notes = f"FORCED: {plan.reason}"
        elif plan.reason:
            notes = plan.reason
        wanted_backup = bool(stack.backup_files or stack.backup.sources)
        if wanted_backup and "backup" not in {s.name for s in plan.steps}:
            notes = f"BACKUP SKIPPED: {plan.reason}" + (" (FORCED)" if plan.forced else "")
        previous = runtime.running_version()
        out = RunOutcome(
            "deploy",
            stack.name,
            stack.env,
            version,
            "running",
            ExitCode.FAILED,
            "",
            plan=plan,
            notes=notes,
        )
        out.action_id = self._begin(
            stack,
            "deploy",
            version,
            notes=notes,
            forced=plan.forced,
            reason=plan.reason,
            details={"previous": previous, "plan": [s.title for s in plan.steps]},
        )
        self.emit(
            Event(
                "run_started",
                stack.name,
                message=f"deploy {version} to {stack.name}",
                data={"action": "deploy", "version": version, "previous": previous},
            )
        )
        steps = {s.name for s in plan.steps}

        if "promotion" in steps:
            source = stack.promote_from
            check = promotion_check(
                stack=stack.name,
                source=source,
                version=version,
                verified_on_source=self.ledger.verified_version(source),
                forced=plan.forced,
            )
            res = self._step(
                out, stack, "promotion", lambda: (check.ok, check.summary, [check], {})
            )
            if not res.ok:
                return self._close(
                    out,
                    "refused",
                    ExitCode.REFUSED,
                    check.summary,
                    hint=check.hint,
                    notes="refused: not verified on " + source,
                )

        checks: list[CheckResult] = []

        def run_preflight() -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
            checks.extend(self._preflight_checks(stack, runtime, version))
            bad = [c for c in checks if not c.ok]
            return (
                not bad,
                "all preflight rules passed"
                if not bad
                else "preflight failed: " + "; ".join(c.summary for c in bad),
                checks,
                {},
            )

        res = self._step(out, stack, "preflight", run_preflight)
        if not res.ok:
            hint = next((c.hint for c in checks if not c.ok and c.hint), "")
            return self._close(
                out,
                "refused",
                ExitCode.REFUSED,
                res.summary,
                hint=hint,
                notes="refused: preflight failed",
            )
        self.http.warm(stack.smoke)

        if "backup" in steps:
            res = self._step(
                out, stack, "backup", lambda: self._backup(stack, runtime, previous, version)
            )
            if "backup_id" in res.evidence:  # the backup this release can go back to
                out.details["backup"] = res.evidence["backup_id"]
            if not res.ok:
                return self._close(
                    out,
                    "failed",
                    ExitCode.FAILED,
                    res.summary,
                    ledger_status="fail",
                    notes="backup failed",
                )

        res = self._step(
            out, stack, "prepare", lambda: self._phase(runtime.prepare(version, previous))
        )
        if not res.ok:
            return self._close(
                out,
                "failed",
                ExitCode.FAILED,
                res.summary,
                ledger_status="fail",
                notes="prepare failed",
                hint="nothing was switched; the running version is untouched",
            )
        if "migrate" in steps:
            res = self._step(
                out, stack, "migrate", lambda: self._phase(runtime.migrate(version, previous))
            )
            if not res.ok:
                return self._close(
                    out,
                    "failed",
                    ExitCode.FAILED,
                    res.summary,
                    ledger_status="fail",
                    notes="migrate failed",
                    hint="nothing was switched; check the database against the backup",
                )

        failed: StepResult | None = None
        for name, body in (
            ("switch", lambda: self._phase(runtime.switch(version))),
            ("restart", lambda: self._phase(runtime.restart(version, previous))),
            ("smoke", lambda: self._smoke(stack, runtime, version)),
        ):
            if name not in steps:
                continue
            res = self._step(out, stack, name, body)
            if "images" in res.evidence:  # compose: the digest goes next to the tag
                out.details["images"] = res.evidence["images"]
            if not res.ok:
                failed = res
                break

        if failed is not None:
            why = (
                failed.summary
                if failed.step == "smoke"
                else f"{failed.step} failed: {failed.summary}"
            )
            target = self._rollback_target(stack, exclude=version)
            if not target:
                return self._close(
                    out,
                    "failed",
                    ExitCode.FAILED,
                    why,
                    ledger_status="fail",
                    notes=why[:200],
                    hint="no earlier good version to roll back to",
                )
            self._close(out, "failed", ExitCode.FAILED, why, ledger_status="fail", notes=why[:200])
            rb = self._run_rollback(stack, runtime, target, from_version=version, automatic=True)
            out.followups.append(rb)
            if rb.status == "success":
                out.status, out.exit_code = "rolled_back", ExitCode.ROLLED_BACK
                out.message = f"{why}; rolled back to {target}"
            else:
                out.message = f"{why}; the rollback to {target} failed too: {rb.message}"
                out.hint = "the stack needs attention: see the execution record"
            return out

        self.ledger.mark(
            stack=stack.name,
            env=stack.env,
            action="verify",
            version=version,
            notes="smoke passed after deploy",
            details={"deploy": out.action_id, **out.details},
            user=self.actor.user,
            host=self.actor.host,
            pid=self.actor.pid,
        )
        self.emit(
            Event(
                "step_finished",
                stack.name,
                step="verify",
                ok=True,
                message=f"{version} marked verified",
            )
        )
        if "cleanup" in steps:
            self._step(out, stack, "cleanup", lambda: self._cleanup(stack, runtime, version))
        return self._close(
            out, "success", ExitCode.OK, f"{version} is live on {stack.name}", notes=notes
        )

    def _backup(
        self, stack: Any, runtime: Runtime, running: str | None, release: str | None = None
    ) -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
        if stack.backup.sources:
            return self._take_backup(stack, running, release)
        from releasegate.backup.configfiles import backup_config_files

        manifest = backup_config_files(
            transport=runtime.transport,
            stack=stack.name,
            env=stack.env,
            root=Path(str(stack.dir)),
            files=list(stack.backup_files),
            backups_dir=Path(self.config.backups_dir),
            running_version=running,
        )
        if not manifest["files"]:
            return (
                True,
                "nothing to back up yet (" + ", ".join(manifest["missing"]) + " missing)",
                [],
                manifest,
            )
        return True, f"backed up {', '.join(manifest['files'])} to {manifest['path']}", [], manifest

    def _backup_sources(self, stack: Any) -> list[Any]:
        """The configured sources, plus the stack's config files as a `files` source."""
        from releasegate.backup.from_config import sources_for
        from releasegate.backup.sources import FilesSource

        sources: list[Any] = sources_for(stack)
        present = [f for f in stack.backup_files if (Path(str(stack.dir)) / f.rstrip("/")).exists()]
        if present:
            sources.append(
                FilesSource(name="config", paths=tuple(present), base_dir=str(stack.dir))
            )
        return sources

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
        self, stack: Any, running: str | None, release: str | None
    ) -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
        from releasegate.backup.sets import take_backup
        from releasegate.errors import ReleasegateError

        try:
            taken = take_backup(
                stack=stack.name,
                env=stack.env,
                sources=self._backup_sources(stack),
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

    def _cleanup(
        self, stack: Any, runtime: Runtime, version: str
    ) -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
        order: list[str] = []
        for rec in reversed(self.ledger.actions(stack=stack.name)):
            if rec.action in ("deploy", "rollback") and rec.version not in order:
                order.append(rec.version)
        protect = {version, *(v for v in [self.ledger.verified_version(stack.name)] if v)}
        protect.update(self.ledger.good_versions(stack.name)[:2])
        return self._phase(runtime.cleanup(order, protect))

    def _rollback_target(self, stack: Any, exclude: str | None) -> str | None:
        good = [v for v in self.ledger.good_versions(stack.name) if v != exclude]
        return good[0] if good else None

    # -- rollback ------------------------------------------------------------------------------
    def rollback(
        self,
        name: str,
        env: str,
        *,
        to: str | None = None,
        reason: str = "",
        with_db: bool = False,
    ) -> RunOutcome:
        stack = self.stack(name, env)
        token = os.urandom(6).hex()
        runtime = self._runtime(stack, token)
        if to is not None:
            names.check("version", to)
        with self._locked(stack, "rollback", to or "", token):
            recovered = self._recover(stack, runtime)
            if recovered and to is None:
                # The recovery was itself the rollback to the last good version.
                return recovered[-1]
            running = runtime.running_version()
            if to is None:
                target = self._rollback_target(stack, exclude=running)
                if target is None:
                    raise BadInput(
                        f"{stack.name} has no earlier successful version to roll back to",
                        hint="`releasegate history --stack " + stack.name + "` shows what ran",
                    )
            else:
                deployed = set(self.ledger.good_versions(stack.name))
                if to not in deployed:
                    known = ", ".join(self.ledger.good_versions(stack.name)[:8]) or "none"
                    raise BadInput(
                        f"{to} was never deployed successfully on {stack.name}",
                        hint=f"versions that were: {known}",
                    )
                target = to
            restored: list[RunOutcome] = []
            if with_db:
                # The data as it was before the release being rolled back was deployed.
                backup_id = self._backup_before(stack, running)
                if backup_id is None:
                    raise BadInput(
                        f"no backup was taken before {running} was deployed on {stack.name}",
                        hint="roll back without --with-db, or restore a chosen backup: "
                        f"releasegate backup list {stack.name}",
                    )
                item = self._find_backup(stack, backup_id)
                db = self._run_restore(stack, runtime, item, start=False, fresh_backup=True)
                restored.append(db)
                if db.status != "success":
                    db.followups[:0] = recovered
                    return db
            out = self._run_rollback(
                stack, runtime, target, from_version=running, automatic=False, reason=reason
            )
            out.followups[:0] = [*recovered, *restored]
            return out

    def _run_rollback(
        self,
        stack: Any,
        runtime: Runtime,
        target: str,
        *,
        from_version: str | None,
        automatic: bool,
        reason: str = "",
        why: str = "",
    ) -> RunOutcome:
        facts = Facts(
            running=runtime.running_version(),
            rollback_target=None,
            artifact=runtime.describe_artifact(target),
            prepared=runtime.is_prepared(target),
        )
        plan = plan_rollback(stack, target, facts, reason=reason)
        notes = f"from {from_version or '(none)'}" + (", automatic" if automatic else "")
        if why:
            notes += f": {why}"
        elif reason:
            notes += f": {reason}"
        out = RunOutcome(
            "rollback",
            stack.name,
            stack.env,
            target,
            "running",
            ExitCode.FAILED,
            "",
            plan=plan,
            notes=notes,
        )
        out.action_id = self._begin(
            stack,
            "rollback",
            target,
            notes=notes,
            reason=reason,
            details={"from": from_version, "automatic": automatic},
        )
        self.emit(
            Event(
                "run_started",
                stack.name,
                message=f"roll back {stack.name} to {target}",
                data={"action": "rollback", "version": target, "from": from_version},
            )
        )
        previous = facts.running
        self.http.warm(stack.smoke)
        for name, body in (
            ("prepare", lambda: self._phase(runtime.prepare(target, previous))),
            ("switch", lambda: self._phase(runtime.switch(target))),
            ("restart", lambda: self._phase(runtime.restart(target, previous))),
            ("smoke", lambda: self._smoke(stack, runtime, target)),
        ):
            if name not in {s.name for s in plan.steps}:
                continue
            res = self._step(out, stack, name, body)
            if "images" in res.evidence:
                out.details["images"] = res.evidence["images"]
            if not res.ok:
                return self._close(
                    out,
                    "failed",
                    ExitCode.FAILED,
                    f"rollback to {target}: {res.summary}",
                    ledger_status="fail",
                    notes=f"{notes}; {name} failed"[:300],
                )
        return self._close(
            out, "success", ExitCode.OK, f"{stack.name} is back on {target}", notes=notes
        )

    # -- standalone gates and checks -----------------------------------------------------------
    def preflight(self, name: str, env: str, version: str | None = None) -> RunOutcome:
        stack = self.stack(name, env)
        if version is not None:
            names.check("version", version)
        runtime = self._runtime(stack, os.urandom(6).hex())
        out = RunOutcome(
            "preflight", stack.name, stack.env, version or "", "running", ExitCode.FAILED, ""
        )
        out.action_id = self._begin(stack, "preflight", version or "")
        if version is not None and stack.promote_from:
            check = promotion_check(
                stack=stack.name,
                source=stack.promote_from,
                version=version,
                verified_on_source=self.ledger.verified_version(stack.promote_from),
                forced=False,
            )
            self._step(out, stack, "promotion", lambda: (check.ok, check.summary, [check], {}))
        res = self._step(
            out,
            stack,
            "preflight",
            lambda: (
                lambda cs: (
                    all(c.ok for c in cs),
                    f"{sum(c.ok for c in cs)}/{len(cs)} rules passed",
                    cs,
                    {},
                )
            )(self._preflight_checks(stack, runtime, version)),
        )
        bad = [c for s in out.steps for c in s.checks if not c.ok]
        if bad:
            return self._close(
                out,
                "refused",
                ExitCode.REFUSED,
                "; ".join(c.summary for c in bad),
                hint=bad[0].hint,
                ledger_status="fail",
            )
        return self._close(out, "success", ExitCode.OK, res.summary)

    def smoke(self, name: str, env: str, version: str | None = None) -> RunOutcome:
        stack = self.stack(name, env)
        runtime = self._runtime(stack, os.urandom(6).hex())
        running = runtime.running_version()
        version = names.check("version", version) if version else (running or "")
        out = RunOutcome("smoke", stack.name, stack.env, version, "running", ExitCode.FAILED, "")
        out.action_id = self._begin(stack, "smoke", version, details={"running": running})
        res = self._step(out, stack, "smoke", lambda: self._smoke(stack, runtime, version))
        if not res.ok:
            return self._close(
                out,
                "failed",
                ExitCode.FAILED,
                res.summary,
                ledger_status="fail",
                notes=res.summary[:200],
            )
        if running and version != running:
            return self._close(
                out,
                "failed",
                ExitCode.FAILED,
                f"checks passed, but {stack.name} runs {running}, not {version}",
                ledger_status="fail",
            )
        return self._close(out, "success", ExitCode.OK, res.summary)

    # -- compose stacks: sync, prune, overview ------------------------------------------------
    def _compose_stack(self, name: str, command: str) -> Any:
        names.check("stack", name)
        stack = self.config.stack(name)
        if stack.runtime != "compose":
            raise BadInput(
                f"`releasegate {command}` works on compose stacks; {name} is a "
                f"{stack.runtime} stack"
            )
        return stack

    def sync(self, name: str, *, dry_run: bool = False) -> tuple[RunOutcome, Any]:
        """Copy the stack's source config into its run dir, backing up what it replaces."""
        from releasegate.sync import plan_sync

        stack = self._compose_stack(name, "sync")
        source = stack.compose.source
        if source is None:
            raise BadInput(
                f"stack {name} has no compose.source to sync from",
                hint="set compose.source: the folder the team edits (e.g. a git checkout)",
            )
        if not Path(source).is_dir():
            raise BadInput(f"source folder {source} of stack {name} does not exist")
        token = os.urandom(6).hex()
        runtime = self._runtime(stack, token)
        target = Path(str(stack.dir))
        plan = plan_sync(Path(source), target, runtime.redact)
        out = RunOutcome("sync", stack.name, stack.env, "", "running", ExitCode.FAILED, "")
        summary = (
            f"{sum(c.kind == 'new' for c in plan.changes)} new, {len(plan.replaced)} changed, "
            f"{plan.unchanged} unchanged"
        )
        if dry_run:
            out.status, out.exit_code, out.message = "success", ExitCode.OK, summary + " (dry run)"
            return out, plan
        with self._locked(stack, "sync", "", token):
            out.version = runtime.running_version() or ""
            out.action_id = self._begin(
                stack, "sync", out.version, details={"source": str(source), "target": str(target)}
            )
            changes = [{"path": c.path, "kind": c.kind, "binary": c.binary} for c in plan.changes]
            self._step(out, stack, "diff", lambda: (True, summary, [], {"changes": changes}))
            if not plan.changes:
                return self._close(out, "success", ExitCode.OK, "already in sync: " + summary), plan
            if plan.replaced:
                res = self._step(
                    out,
                    stack,
                    "backup",
                    lambda: self._backup_files(stack, runtime, out.version, plan.replaced),
                )
                if not res.ok:
                    return self._close(out, "failed", ExitCode.FAILED, res.summary), plan
            res = self._step(out, stack, "copy", lambda: self._copy(runtime, plan))
            if not res.ok:
                return self._close(
                    out,
                    "failed",
                    ExitCode.FAILED,
                    res.summary,
                    hint="files already copied stay; the backup holds what they replaced",
                ), plan
            return self._close(out, "success", ExitCode.OK, f"synced: {summary}"), plan

    def _backup_files(
        self, stack: Any, runtime: Runtime, running: str, files: list[str]
    ) -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
        from releasegate.backup.configfiles import backup_config_files

        manifest = backup_config_files(
            transport=runtime.transport,
            stack=stack.name,
            env=stack.env,
            root=Path(str(stack.dir)),
            files=files,
            backups_dir=Path(self.config.backups_dir),
            running_version=running or None,
        )
        return True, f"backed up {', '.join(manifest['files'])} to {manifest['path']}", [], manifest

    @staticmethod
    def _copy(runtime: Runtime, plan: Any) -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
        phase = PhaseResult(True, "")
        done: list[str] = []
        for change in plan.changes:
            src = PurePosixPath(str(plan.source)) / change.path
            dest = PurePosixPath(str(plan.target)) / change.path
            tmp = dest.parent / f".{dest.name}.rg-tmp"
            # Each file lands whole: copied aside, then renamed over the old one.
            for argv in (
                ["mkdir", "-p", "--", str(dest.parent)],
                ["cp", "-p", "--", str(src), str(tmp)],
                ["mv", "-T", "--", str(tmp), str(dest)],
            ):
                result = runtime.transport.run(argv, timeout=120)
                phase.commands.append({"argv": argv, "exit_code": result.exit_code})
                if not result.ok:
                    runtime.transport.run(["rm", "-f", "--", str(tmp)], timeout=30)
                    return (
                        False,
                        f"copy of {change.path} failed: {result.describe()}",
                        [],
                        {"copied": done, **phase.evidence()},
                    )
            done.append(change.path)
        return True, f"copied {len(done)} file(s)", [], {"copied": done}

    def prune(
        self, name: str, *, keep: int | None = None, dry_run: bool = False
    ) -> tuple[RunOutcome, Any]:
        """Remove the images of old releases: keep the last N, the running, the verified
        and the last good ones; tags releasegate never deployed are never touched."""
        from releasegate.prune import select_prunable
        from releasegate.runtimes import compose_commands as cc

        stack = self._compose_stack(name, "prune")
        token = os.urandom(6).hex()
        runtime = self._runtime(stack, token)
        keep_n = keep if keep is not None else stack.keep_releases
        out = RunOutcome("prune", stack.name, stack.env, "", "running", ExitCode.FAILED, "")
        with self._locked(stack, "prune", "", token):
            running = runtime.running_version()
            order: list[str] = []
            for rec in reversed(self.ledger.actions(stack=stack.name)):
                if rec.action in ("deploy", "rollback") and rec.version not in order:
                    order.append(rec.version)
            protect = {v for v in (running, self.ledger.verified_version(stack.name)) if v}
            protect.update(self.ledger.good_versions(stack.name)[:2])
            repos = self._version_repos(stack, runtime, running or (order[0] if order else ""))
            present: dict[str, list[str]] = {}
            for repo in repos:
                listed = runtime.transport.run(
                    ["docker", "image", "ls", "--format", "{{.Tag}}", "--", repo], timeout=60
                )
                for tag in listed.stdout.split() if listed.ok else []:
                    present.setdefault(tag, []).append(f"{repo}:{tag}")
            choice = select_prunable(present, order, keep_n, protect)
            out.details = {"remove": choice.remove, "keep": choice.keep, "unknown": choice.unknown}
            if dry_run:
                out.status, out.exit_code = "success", ExitCode.OK
                out.message = f"would remove {len(choice.remove)} version(s) (dry run)"
                return out, choice
            out.version = running or ""
            out.action_id = self._begin(stack, "prune", out.version, details={"keep": keep_n})

            def remove() -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
                phase = PhaseResult(True, "")
                refs = [ref for tag in choice.remove for ref in present[tag]]
                for ref in refs:
                    result = runtime.transport.run(cc.image_rm(ref), timeout=120)
                    output = (result.stdout + result.stderr)[-300:]
                    phase.commands.append(
                        {"argv": cc.image_rm(ref), "exit_code": result.exit_code, "output": output}
                    )
                    phase.ok &= result.ok
                return (
                    phase.ok,
                    f"removed {len(refs)} image(s)",
                    [],
                    {**phase.evidence(), **out.details},
                )

            res = self._step(out, stack, "remove", remove)
            status, code = ("success", ExitCode.OK) if res.ok else ("failed", ExitCode.FAILED)
            return self._close(out, status, code, res.summary), choice

    @staticmethod
    def _version_repos(stack: Any, runtime: Runtime, version: str) -> list[str]:
        """Repositories of the images that carry the version (tag stripped)."""
        from releasegate.runtimes import compose_commands as cc

        described = runtime.describe_artifact(version or "latest") or ""
        repos = []
        for ref in (r.strip() for r in described.split(",")):
            if ref and cc.image_tag(ref) == (version or "latest"):
                repos.append(ref.split("@", 1)[0].rsplit(":", 1)[0])
        return sorted(set(repos))

    def stacks_overview(self) -> list[dict[str, Any]]:
        """The seed's stack table: stack, run dir, source dir, health URL, versions."""
        rows = []
        for name, stack in self.config.stacks.items():
            runtime = self._runtime(stack, "stacks")
            compose = stack.compose if stack.runtime == "compose" else None
            rows.append(
                {
                    "stack": name,
                    "env": stack.env,
                    "runtime": stack.runtime,
                    "run_dir": str(stack.dir),
                    "source_dir": str(compose.source) if compose and compose.source else "",
                    "health_url": (compose.health_url if compose else None)
                    or next((c.http for c in stack.smoke if getattr(c, "http", None)), ""),
                    "running": runtime.running_version(),
                    "verified": self.ledger.verified_version(name),
                }
            )
        return rows

    # -- backups ------------------------------------------------------------------------------
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
        with self._locked(stack, "backup", "", token):
            running = runtime.running_version()
            out = RunOutcome(
                "backup", stack.name, stack.env, running or "", "running", ExitCode.FAILED, ""
            )
            out.action_id = self._begin(stack, "backup", running or "", notes=reason)
            if stack.backup.sources:
                res = self._step(
                    out, stack, "backup", lambda: self._take_backup(stack, running, None)
                )
            else:
                res = self._step(
                    out, stack, "backup", lambda: self._backup(stack, runtime, running)
                )
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
        protected = self._protected_backups(stack)
        rows = []
        for item in list_backups(Path(self.config.backups_dir), stack.name):
            manifest = item.manifest or {}
            rows.append(
                {
                    "id": item.id,
                    "complete": item.complete,
                    "created_at": manifest.get("created_at"),
                    "running_version": manifest.get("running_version"),
                    "release": manifest.get("release"),
                    "sources": [
                        {k: src.get(k) for k in ("name", "kind", "compressed_size", "sha256")}
                        for src in manifest.get("sources", [])
                    ],
                    "protected": item.id in protected,
                    "path": str(item.path),
                }
            )
        return rows

    def _protected_backups(self, stack: Any) -> set[str]:
        """The newest backup of the verified version and of the last good releases: the
        ones a database rollback would need."""
        from releasegate.backup.sets import list_backups

        versions = {v for v in [self.ledger.verified_version(stack.name)] if v}
        versions.update(self.ledger.good_versions(stack.name)[:2])
        keep: set[str] = set()
        seen: set[tuple[str, str]] = set()
        for item in list_backups(Path(self.config.backups_dir), stack.name):
            manifest = item.manifest or {}
            for key in ("release", "running_version"):
                value = manifest.get(key)
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
        protect = self._protected_backups(stack)
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

    def restore(self, name: str, env: str, backup_id: str) -> RunOutcome:
        """Fresh backup first, stop writers, restore, start, smoke; all recorded."""
        stack = self.stack(name, env)
        if not stack.backup.sources:
            raise BadInput(f"stack {name} has no backup.sources: nothing to restore")
        item = self._find_backup(stack, backup_id)
        token = os.urandom(6).hex()
        runtime = self._runtime(stack, token)
        with self._locked(stack, "restore", "", token):
            return self._run_restore(stack, runtime, item, start=True, fresh_backup=True)

    def _run_restore(
        self, stack: Any, runtime: Runtime, item: Any, *, start: bool, fresh_backup: bool
    ) -> RunOutcome:
        from releasegate.backup.from_config import sources_for
        from releasegate.backup.sets import restore_backup
        from releasegate.errors import ReleasegateError

        running = runtime.running_version()
        out = RunOutcome(
            "restore", stack.name, stack.env, running or "", "running", ExitCode.FAILED, ""
        )
        out.details["backup"] = item.id
        out.action_id = self._begin(
            stack, "restore", running or "", notes=f"from backup {item.id}",
            details={"backup": item.id},
        )  # fmt: skip
        if fresh_backup:
            res = self._step(out, stack, "backup", lambda: self._take_backup(stack, running, None))
            if not res.ok:
                return self._close(
                    out, "failed", ExitCode.FAILED, res.summary,
                    hint="nothing was restored: the current state could not be saved first",
                )  # fmt: skip
            out.details["saved_as"] = res.evidence.get("backup_id")
        res = self._step(out, stack, "stop", lambda: self._phase(runtime.stop(stack.backup.stop)))
        if not res.ok:
            return self._close(
                out, "failed", ExitCode.FAILED, res.summary, hint="nothing was restored"
            )

        def run_restore() -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
            try:
                report = restore_backup(item, sources_for(stack), self._secrets(stack))
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

    # -- crash recovery and status -------------------------------------------------------------
    def orphans(self, stack_name: str | None = None) -> list[ActionRecord]:
        """Actions opened by a process of this host that is gone: a crash (e.g. SIGKILL)."""
        live_locks = {
            (lk.stack, lk.pid)
            for lk in self.ledger.locks()
            if locks.holder_state(lk, self.actor.host) != "dead"
        }
        return [
            a
            for a in self.ledger.open_actions(stack_name)
            if a.host == self.actor.host
            and a.pid != self.actor.pid
            and (a.stack, a.pid) not in live_locks
            and not pid_alive(a.pid)
        ]

    def close_orphans(self, stack_name: str | None = None) -> list[ActionRecord]:
        found = self.orphans(stack_name)
        # Children first, so a parent is never closed while a step of it still looks open.
        for rec in sorted(found, key=lambda a: a.parent_id is None):
            self.ledger.end_action(
                rec.action_id,
                "interrupted",
                notes=f"interrupted: process {rec.pid} on {rec.host} died"
                + (f" ({rec.notes})" if rec.notes else ""),
            )
        return found

    def _recover(self, stack: Any, runtime: Runtime) -> list[RunOutcome]:
        """After a crash, bring the stack back to its last good version.

        Seed 001: the service answers on the old or the new version, never neither.
        """
        found = self.close_orphans(stack.name)
        runs = [a for a in found if a.parent_id is None and a.action in ("deploy", "rollback")]
        if not runs:
            return []
        self.emit(
            Event(
                "message", stack.name, message=f"found {len(runs)} interrupted run(s); recovering"
            )
        )
        good = self.ledger.good_versions(stack.name)
        if not good:
            return []
        running = runtime.running_version()
        if running == good[0]:
            ok, _summary, _c, _e = self._smoke(stack, runtime, running)
            if ok:
                return []
        why = f"recovery after interrupted {runs[-1].action} of {runs[-1].version}"
        return [
            self._run_rollback(
                stack, runtime, good[0], from_version=running, automatic=True, why=why
            )
        ]

    def status(self) -> list[StackStatus]:
        self.close_orphans()
        lock_by_stack = {lk.stack: lk for lk in self.ledger.locks()}
        rows = []
        for name, stack in self.config.stacks.items():
            runtime = self._runtime(stack, "status")
            running = runtime.running_version()
            last = self.ledger.last_deploy(name)
            verified = self.ledger.verified_version(name)
            interrupted = [
                a
                for a in self.ledger.actions(stack=name, status="interrupted", last=3)
                if last is None or a.seq >= last.seq
            ]
            warnings = []
            if last and last.status == "success" and running != last.version:
                warnings.append(
                    f"running {running or 'nothing'} but the last successful "
                    f"{last.action} was {last.version}: changed outside releasegate?"
                )
            if last and last.status != "success":
                warnings.append(f"last {last.action} of {last.version} ended {last.status}")
            if verified and running and running != verified:
                warnings.append(f"running {running} is not the verified version {verified}")
            lock = None
            if name in lock_by_stack:
                lk = lock_by_stack[name]
                state = locks.holder_state(lk, self.actor.host)
                lock = {
                    "user": lk.user,
                    "host": lk.host,
                    "pid": lk.pid,
                    "since": lk.since.isoformat(),
                    "state": state,
                }
                if state == "dead":
                    warnings.append(
                        f"lock held by a dead process ({locks.describe(lk)}); "
                        "the next deploy takes it over"
                    )
            for rec in interrupted:
                warnings.append(
                    f"{rec.action} of {rec.version} was interrupted; "
                    f"the next deploy or rollback recovers the stack"
                )
            rows.append(
                StackStatus(
                    name,
                    stack.env,
                    running,
                    last,
                    verified,
                    stack.promote_from,
                    lock,
                    interrupted,
                    warnings,
                )
            )
        return rows


class _Lock:
    """Context manager around the stack lock; a refusal is itself recorded."""

    def __init__(self, engine: Engine, stack: Any, action: str, version: str, token: str) -> None:
        self.engine, self.stack, self.action, self.version, self.run_id = (
            engine,
            stack,
            action,
            version,
            token,
        )

    def __enter__(self) -> None:
        e = self.engine
        try:
            locks.acquire(
                e.ledger,
                stack=self.stack.name,
                env=self.stack.env,
                run_id=self.run_id,
                actor=e.actor,
            )
        except LockHeld as exc:
            aid = e._begin(self.stack, self.action, self.version, notes=exc.message)
            e.ledger.end_action(aid, "refused", notes=exc.message)
            raise

    def __exit__(self, *exc: object) -> None:
        locks.release(self.engine.ledger, self.stack.name, self.run_id)
