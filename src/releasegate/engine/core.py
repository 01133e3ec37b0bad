"""Runs plans: lock, steps, ledger rows before and after each step, rollback on failure,
recovery after a crash, status."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

from releasegate import locks, names
from releasegate.engine.base import RunOutcome, StackStatus
from releasegate.engine.compose_ops import ComposeOps
from releasegate.engine.fleet_ops import FleetOps, RolloutResult
from releasegate.engine.migrations import MigrationOps
from releasegate.errors import BadInput, ExitCode
from releasegate.gates import preflight as pf
from releasegate.gates.promotion import promotion_check
from releasegate.identity import pid_alive
from releasegate.model import ActionRecord, CheckResult, Event, Plan, StepResult
from releasegate.plan import Facts, plan_deploy, plan_rollback
from releasegate.runtimes.base import Runtime


class Engine(FleetOps, MigrationOps, ComposeOps):
    def facts(self, stack: Any, runtime: Runtime, version: str) -> Facts:
        running = runtime.running_version()
        good = [v for v in self.ledger.good_versions(stack.name) if v != version]
        return Facts(
            running=running,
            rollback_target=good[0] if good else None,
            artifact=runtime.describe_artifact(version),
            prepared=runtime.is_prepared(version),
            rollout=self.rollout_for(stack),
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
        rollout: dict[str, Any] | None = None,
    ) -> Plan:
        stack = self.stack(name, env)
        names.check("version", version)
        self.rollout_overrides = dict(rollout or {})
        runtime = self._runtime(stack, "plan")
        try:
            return self._plan(stack, runtime, version, force, reason, skip_backup)
        finally:
            self._release(runtime)

    def _plan(
        self, stack: Any, runtime: Runtime, version: str, force: bool, reason: str, skip: bool
    ) -> Plan:
        facts = self.facts(stack, runtime, version)
        return plan_deploy(stack, version, facts, forced=force, reason=reason, skip_backup=skip)

    def _preflight_checks(
        self, stack: Any, runtime: Runtime, version: str | None
    ) -> list[CheckResult]:
        if getattr(runtime, "is_fleet", False):  # every host probed at once
            checks: list[CheckResult] = runtime.preflight(version)  # type: ignore[attr-defined]
        else:
            checks = self._local_preflight(stack, runtime, version)
        for check in checks:
            self.emit(
                Event("check", stack.name, step="preflight", ok=check.ok, message=check.summary)
            )
        return checks

    def _local_preflight(
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
        return checks

    def deploy(
        self,
        name: str,
        env: str,
        version: str,
        *,
        force: bool = False,
        reason: str = "",
        skip_backup: bool = False,
        rollout: dict[str, Any] | None = None,
    ) -> RunOutcome:
        stack = self.stack(name, env)
        names.check("version", version)
        self.rollout_overrides = dict(rollout or {})
        if force and not reason.strip():
            raise BadInput("--force needs --reason TEXT: say why; it is recorded with your name")
        if skip_backup and not reason.strip():
            raise BadInput("--skip-backup needs --reason TEXT: say why; it is recorded")
        self.rollout_for(stack)  # a bad --strategy/--batch is refused before anything starts
        token = os.urandom(6).hex()
        with self._locked(stack, "deploy", version, token):
            runtime = self._runtime(stack, token)
            try:
                recovered = self._recover(stack, runtime)
                plan = self._plan(stack, runtime, version, force, reason, skip_backup)
                out = self._run_deploy(stack, runtime, plan)
            finally:
                self._release(runtime)
            out.followups[:0] = recovered
            return out

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

        # --- migration gate (issue 7; all logic in engine/migrate_gate.py) ---
        if getattr(stack, "migrations", None) is not None:
            from releasegate.engine.migrate_gate import migration_gate

            res = self._step(
                out, stack, "migration-gate",
                lambda: migration_gate(self, stack, version, forced=plan.forced),
            )  # fmt: skip
            if not res.ok:
                return self._close(
                    out, "refused", ExitCode.REFUSED, res.summary,
                    hint="releasegate migrate lint / rehearse; or --force --reason",
                    notes="refused: migration gate",
                )  # fmt: skip
        # --- end migration gate ---

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
            if getattr(stack, "migrations", None) is not None:
                from releasegate.engine.migrate_gate import run_migrations

                res = self._step(
                    out, stack, "migrate", lambda: run_migrations(self, stack, version)
                )
            else:
                res = self._step(
                    out, stack, "migrate", lambda: self._phase(runtime.migrate(version, previous))
                )
            if not res.ok:
                self._close(
                    out,
                    "failed",
                    ExitCode.FAILED,
                    res.summary,
                    ledger_status="fail",
                    notes="migrate failed",
                    hint="nothing was switched; check the database against the backup",
                )
                return self._restore_after_migrate(out, stack, runtime)
        failed: StepResult | None = None
        rolled: RolloutResult | None = None
        if "rollout" in steps:  # a fleet: batches of hosts, each switched, restarted, smoked
            rollout = self.rollout_for(stack)
            assert rollout is not None  # a plan has a rollout step only for a fleet
            rolled = self._roll_out(out, stack, runtime, rollout, previous)
            failed = rolled.failed
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
            if rolled is not None:  # the hosts that switched go back; lost ones are named
                back = [h for h in rolled.switched if h not in rolled.lost]
                runtime.narrow(back)  # type: ignore[attr-defined]
                if rolled.lost:
                    why += f"; unreachable, left as they are: {', '.join(rolled.lost)}"
                if not back:
                    out.message = f"{why}; no host had switched: nothing to roll back"
                    return out
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

    def _restore_after_migrate(self, out: RunOutcome, stack: Any, runtime: Runtime) -> RunOutcome:
        """A migration failed half way: the database goes back to the backup this deploy took
        (the service still runs the previous release, which expects the old schema)."""
        backup_id = out.details.get("backup")
        if getattr(stack, "migrations", None) is None or not backup_id:
            return out
        item = self._find_backup(stack, str(backup_id))
        restored = self._run_restore(stack, runtime, item, start=True, fresh_backup=False)
        out.followups.append(restored)
        if restored.status == "success":
            out.status, out.exit_code = "rolled_back", ExitCode.ROLLED_BACK
            out.message = f"{out.message}; the database was restored from {backup_id}"
            out.hint = "nothing was switched; the previous release runs on its own schema"
        else:
            out.message = f"{out.message}; restoring {backup_id} failed too: {restored.message}"
            out.hint = "the database needs attention: see the execution record"
        return out

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
            hosts: dict[str, str | None] | None = None
            try:
                if getattr(runtime, "is_fleet", False):
                    hosts = runtime.host_states()  # type: ignore[attr-defined]
                    seen = Counter(v for v in hosts.values() if v and v != "unreachable")
                    running = seen.most_common(1)[0][0] if seen else None
                else:
                    running = runtime.running_version()
            finally:
                self._release(runtime)
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
            mixed = hosts is not None and len(set(hosts.values())) > 1
            if hosts is not None and mixed:
                by_version: dict[str, list[str]] = {}
                for host, seen_version in hosts.items():
                    by_version.setdefault(seen_version or "no release", []).append(host)
                warnings.append(
                    "mixed fleet: "
                    + "; ".join(f"{v} on {', '.join(h)}" for v, h in sorted(by_version.items()))
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
                    hosts,
                    mixed,
                )
            )
        return rows
