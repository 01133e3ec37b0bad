"""Deploy: build the plan from one survey of the hosts, then run exactly its steps, in its
order, each recorded before and after. What `--dry-run` prints is this plan."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from releasegate import names
from releasegate.engine.base import HostOptions, RunOutcome
from releasegate.engine.migrations import MigrationOps
from releasegate.errors import BadInput, ExitCode, Tampered
from releasegate.execution.interrupts import Interrupted, LockLost, safe_points
from releasegate.gates.promotion import promotion_check
from releasegate.ledger.store import LedgerWriteFailed
from releasegate.model import CheckResult, Event, Plan, Step
from releasegate.plan import plan_deploy
from releasegate.watch.flow import log_offsets, watch_failed, watch_step
from releasegate.workflows.flags import record_release_flags
from releasegate.workflows.rollback import RollbackFlow
from releasegate.workflows.steps import Run, StepBody

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig


@dataclass(frozen=True)
class DeployRequest:
    """One `releasegate deploy`: what to deploy where, and how."""

    stack: str
    env: str
    version: str
    force: bool = False
    reason: str = ""
    skip_backup: bool = False
    reprepare: bool = False  # prepare the release again even if it is there
    hosts: HostOptions = field(default_factory=HostOptions)

    def check(self) -> None:
        names.check("version", self.version)
        if self.force and not self.reason.strip():
            raise BadInput("--force needs --reason TEXT: say why; it is recorded with your name")
        if self.skip_backup and not self.reason.strip():
            raise BadInput("--skip-backup needs --reason TEXT: say why; it is recorded")


# A step's failure ends the run this way: (status, exit code, ledger notes, hint).
_STOPS: dict[str, tuple[str, ExitCode, str, str]] = {
    "window": ("refused", ExitCode.REFUSED, "refused: outside the deploy window", ""),
    "promotion": ("refused", ExitCode.REFUSED, "refused: not verified on the source stack", ""),
    "preflight": ("refused", ExitCode.REFUSED, "refused: preflight failed", ""),
    "migration-gate": (
        "refused",
        ExitCode.REFUSED,
        "refused: migration gate",
        "releasegate migrate lint / rehearse; or --force --reason",
    ),
    "content-gate": (
        "refused",
        ExitCode.REFUSED,
        "refused: not the content verified on the source stack",
        "",
    ),
    "backup": ("failed", ExitCode.FAILED, "backup failed", ""),
    "slot-facts": (  # stacks with `proxy:` (workflows/slots.py): before any host changes
        "failed",
        ExitCode.FAILED,
        "stopped: the proxies' slots cannot be read or disagree",
        "bring every host's proxy and slot files in line, then run again",
    ),
    "prepare": (
        "failed",
        ExitCode.FAILED,
        "prepare failed",
        "nothing was switched; the running version is untouched",
    ),
    "migrate": (
        "failed",
        ExitCode.FAILED,
        "migrate failed",
        "nothing was switched; check the database against the backup",
    ),
}


def _images(run: Run) -> dict[str, str]:
    """Each running image's registry digest (compose), keyed by its reference."""
    images = run.out.details.get("images") or {}
    return {
        f"image {info['image']}": str(info["digest"])
        for _svc, info in sorted(images.items())
        if isinstance(info, dict) and info.get("digest") and info.get("image")
    }


class DeployFlow(RollbackFlow, MigrationOps):
    def plan_deploy(self, request: DeployRequest) -> Plan:
        """The plan a deploy would run now (`--dry-run`): read-only."""
        stack = self.stack(request.stack, request.env)
        request.check()
        hosts = self._hosts(stack, "plan", request.hosts)
        try:
            return self._deploy_plan(stack, hosts, request)
        finally:
            hosts.close()

    def _deploy_plan(self, stack: StackConfig, hosts: Any, request: DeployRequest) -> Plan:
        rollout = self.rollout_for(stack, hosts.labels, request.hosts.rollout)
        facts = self.facts(stack, hosts, request.version, rollout, exclude=request.version)
        if request.reprepare:
            facts = type(facts)(**{**facts.__dict__, "prepared": False})
        if stack.windows is not None:
            from releasegate.gates.windows import judge, now

            facts = type(facts)(**{**facts.__dict__, "window": judge(stack.windows, now())})
        return plan_deploy(
            stack,
            request.version,
            facts,
            forced=request.force,
            reason=request.reason,
            skip_backup=request.skip_backup,
        )

    def deploy(self, request: DeployRequest) -> RunOutcome:
        stack = self.stack(request.stack, request.env)
        request.check()
        self.rollout_for(stack, [h.label for h in stack.hosts] or ["local"], request.hosts.rollout)
        token = os.urandom(6).hex()
        with safe_points(), self._locked(stack, "deploy", request.version, token):
            hosts = self._hosts(stack, token, request.hosts)
            try:
                recovered = self._recover(stack, hosts)
                hosts.forget()
                plan = self._deploy_plan(stack, hosts, request)
                out = self._run_deploy(stack, hosts, plan, request)
            finally:
                hosts.close()
            out.followups[:0] = recovered
            return out

    def _run_deploy(
        self, stack: StackConfig, hosts: Any, plan: Plan, request: DeployRequest
    ) -> RunOutcome:
        version = plan.version
        notes = f"FORCED: {plan.reason}" if plan.forced else plan.reason
        if (stack.backup_files or stack.backup.sources) and request.skip_backup:
            notes = f"BACKUP SKIPPED: {plan.reason}" + (" (FORCED)" if plan.forced else "")
        previous = hosts.running_version()  # the survey the plan was built from: no new look
        out = RunOutcome(
            "deploy", stack.name, stack.env, version, "running", ExitCode.FAILED, "", plan=plan,
            notes=notes,
        )  # fmt: skip
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
                data={
                    "action": "deploy",
                    "version": version,
                    "previous": previous,
                    "action_id": out.action_id,
                    "forced": plan.forced,
                    "reason": plan.reason,
                },
            )
        )
        rollout = self.rollout_for(stack, hosts.labels, request.hosts.rollout)
        run = Run(stack, hosts, plan, out, previous, rollout)
        bodies: dict[str, Callable[[Step], StepBody]] = {
            "window": lambda s: self._window(run),
            "promotion": lambda s: self._promotion(run),
            "preflight": lambda s: self._preflight(run),
            "migration-gate": lambda s: self._migration_gate(run),
            "backup": lambda s: self._deploy_backup(run),
            "prepare": lambda s: self._prepare(run, reprepare=request.reprepare),
            "content-gate": lambda s: self._content_gate(run),
            "migrate": lambda s: self._migrate(run),
            "switch": lambda s: self._switch(run, s),
            "restart": lambda s: self._restart(run, s),
            "smoke": lambda s: self._smoke(run, s),
            "cron": lambda s: self._cron(run),
            "verify": lambda s: self._verify(run),
            "watch": lambda s: watch_step(self, run),
            "cleanup": lambda s: self._cleanup(run),
            **self.slot_bodies(run),  # stacks with `proxy:` (workflows/slots.py)
        }
        try:
            for step in plan.steps:
                if step.name == "lock":  # taken before the run opened
                    continue
                if step.name == "switch" and "watch_from" not in out.details:
                    # the window reads each host's logs from here
                    out.details["watch_from"] = log_offsets(stack, hosts)
                res = self._step(out, stack, step.name, partial(bodies[step.name], step))
                if step.name == "backup" and "backup_id" in res.evidence:
                    out.details["backup"] = res.evidence["backup_id"]
                if "images" in res.evidence:  # compose: the digests go next to the tag
                    out.details["images"] = res.evidence["images"]
                if res.ok:
                    if step.name == "preflight":
                        self.http.warm(stack.smoke)
                    continue
                if step.name in _STOPS:
                    return self._stop(run, step.name, res.summary, res.checks)
                if step.name in ("switch", "restart", "smoke", "cron", "switch-traffic"):
                    return self._go_back(run, step.name, res.summary)
                if step.name in ("start-slot", "smoke-slot"):  # the traffic never moved
                    return self._slot_not_live(run, step.name, res.summary)
                if step.name in ("drain", "stop-old-slot"):  # live already: recorded, go on
                    continue
                if step.name == "verify":
                    return self._close(out, "failed", ExitCode.FAILED, res.summary)
                if step.name == "watch":  # a check failed: the release goes back
                    return watch_failed(self, run, res.summary)
            record_release_flags(self, run)  # the flags this release runs with, on its row
            return self._close(
                out, "success", ExitCode.OK, f"{version} is live on {stack.name}", notes=notes
            )
        except Interrupted as stop:
            return self._interrupted(run, stop)
        except LedgerWriteFailed as exc:
            return self._ledger_failed(run, exc)
        except Tampered as exc:  # read outside a gate's step (e.g. the way back's target)
            if out.ended_at is None:
                self._close(out, "refused", ExitCode.TAMPERED, exc.message, hint=exc.hint)
            out.status, out.exit_code, out.message = "refused", ExitCode.TAMPERED, exc.message
            return out

    # -- step bodies ------------------------------------------------------------------------------
    def _window(self, run: Run) -> StepBody:
        from datetime import datetime

        from releasegate.gates.windows import window_check

        step = next(s for s in run.plan.steps if s.name == "window")
        when = datetime.fromisoformat(step.details["verdict"]["now"])  # the plan's moment
        check = window_check(run.stack.windows, when, forced=run.plan.forced)
        return check.ok, check.summary, [check], {}

    def _promotion(self, run: Run) -> StepBody:
        check = self._promotion_check(run, lambda: run.hosts.first.content(run.out.version))
        return check.ok, check.summary, [check], {}

    def _promotion_check(self, run: Run, content: Callable[[], dict[str, str]]) -> CheckResult:
        """The version verified on the source stack, proven on the chain; `content` (read
        only when there is a verified version to compare with) against what it verified."""
        stack = run.stack
        assert stack.promote_from is not None  # the plan has these steps only then
        verified = self.ledger.verified_content(stack.promote_from)
        return promotion_check(
            stack=stack.name,
            source=stack.promote_from,
            version=run.out.version,
            verified_on_source=verified[0] if verified else None,
            forced=run.plan.forced,
            verified_content=verified[1] if verified else None,
            content=content() if verified else {},
        )

    def _preflight(self, run: Run) -> StepBody:
        checks = run.hosts.preflight(run.out.version)
        for check in checks:
            self.emit(
                Event("check", run.stack.name, step="preflight", ok=check.ok, message=check.summary)
            )
        bad = [c for c in checks if not c.ok]
        summary = (
            "all preflight rules passed"
            if not bad
            else "preflight failed: " + "; ".join(c.summary for c in bad)
        )
        return not bad, summary, checks, {}

    def _migration_gate(self, run: Run) -> StepBody:
        from releasegate.engine.migrate_gate import migration_gate

        return migration_gate(self, run.stack, run.out.version, forced=run.plan.forced)

    def _deploy_backup(self, run: Run) -> StepBody:
        return self._backup(run.stack, run.hosts, run.previous, run.out.version)

    def _prepare(self, run: Run, *, reprepare: bool) -> StepBody:
        phase = run.hosts.prepare(run.out.version, run.previous, reprepare=reprepare)
        return phase.ok, phase.summary, [], phase.evidence()

    def _content_gate(self, run: Run) -> StepBody:
        """Compose: the images just pulled must be the ones verified on the source stack (a
        tag can be pushed again with other content; its digest cannot)."""
        prepare = next(s for s in run.out.steps if s.step == "prepare")
        pulled: dict[str, str] = {}
        for value in [prepare.evidence, *prepare.evidence.get("hosts", {}).values()]:
            if isinstance(value, dict) and isinstance(value.get("content"), dict):
                pulled.update(value["content"])
        check = self._promotion_check(run, lambda: pulled)
        if check.ok and not pulled:
            check.summary = "no digest was read for the pulled images: nothing to compare"
        return check.ok, check.summary, [check], {"pulled": pulled}

    def _migrate(self, run: Run) -> StepBody:
        if run.stack.migrations is not None:
            from releasegate.engine.migrate_gate import run_migrations

            return run_migrations(self, run.stack, run.out.version)
        phase = run.hosts.migrate(run.out.version, run.previous)
        return phase.ok, phase.summary, [], phase.evidence()

    def _verify(self, run: Run) -> StepBody:
        self.ledger.mark(
            stack=run.stack.name,
            env=run.stack.env,
            action="verify",
            version=run.out.version,
            notes="smoke passed after deploy",
            details={
                "deploy": run.out.action_id,
                **run.out.details,
                # What was verified, so the next stage can refuse other content by that name.
                "content": {**run.hosts.first.content(run.out.version), **_images(run)},
            },
            user=self.actor.user,
            host=self.actor.host,
            pid=self.actor.pid,
        )
        return True, f"{run.out.version} marked verified", [], {}

    # -- ends -----------------------------------------------------------------------------------
    def _stop(self, run: Run, step: str, summary: str, checks: list[CheckResult]) -> RunOutcome:
        """A gate refused, or a step before the switch failed: nothing running changed."""
        status, code, notes, hint = _STOPS[step]
        if step == "promotion":
            notes = f"refused: not verified on {run.stack.promote_from}"
        if step in ("promotion", "preflight", "window"):
            hint = next((c.hint for c in checks if not c.ok and c.hint), hint)
        tampered = [c.evidence["tampered_row"] for c in checks if "tampered_row" in c.evidence]
        if tampered:  # a gate read a forged row: refused, and said to be tampering
            code = ExitCode.TAMPERED
            notes = f"refused: ledger row {tampered[0]} failed verification"
            hint = next(c.hint for c in checks if "tampered_row" in c.evidence)
        out = self._close(
            run.out, status, code, summary, ledger_status="fail" if status == "failed" else None,
            notes=notes, hint=hint,
        )  # fmt: skip
        if step == "migrate":
            return self._restore_after_migrate(out, run)
        return out

    def _way_back(self, run: Run) -> tuple[str | None, str]:
        """The version to go back to: the last good one by the ledger; if the ledger fails
        verification, what the hosts ran before this run (their own answer), said so."""
        try:
            return self._rollback_target(run.stack, exclude=run.out.version), ""
        except Tampered as exc:
            return (
                run.previous,
                f" (the ledger failed verification: {exc.message}; going back "
                "to what the hosts ran before)",
            )

    def _go_back(self, run: Run, step: str, summary: str) -> RunOutcome:
        """Switch, restart or smoke failed beyond the policy: every host that moved goes back
        to the last good version, and is smoked there."""
        out, stack = run.out, run.stack
        why = summary if step == "smoke" else f"{step} failed: {summary}"
        target, caveat = self._way_back(run)
        why += caveat
        if not target:
            return self._close(
                out, "failed", ExitCode.FAILED, why, ledger_status="fail", notes=why[:200],
                hint="no earlier good version to roll back to",
            )  # fmt: skip
        self._close(out, "failed", ExitCode.FAILED, why, ledger_status="fail", notes=why[:200])
        back = [h for h in run.switched if h not in run.lost]
        if run.lost:
            why += f"; unreachable, left as they are: {', '.join(run.lost)}"
        if not back:
            out.message = f"{why}; no host had switched: nothing to roll back"
            return out
        run.hosts.narrow(back)
        rb = self._run_rollback(stack, run.hosts, target, from_version=out.version, automatic=True)
        out.followups.append(rb)
        if rb.status == "success":
            out.status, out.exit_code = "rolled_back", ExitCode.ROLLED_BACK
            out.message = f"{why}; rolled back to {target}"
        else:
            out.message = f"{why}; the rollback to {target} failed too: {rb.message}"
            out.hint = "the stack needs attention: see the execution record"
        return out

    def _interrupted(self, run: Run, stop: Interrupted) -> RunOutcome:
        """Ctrl-C or SIGTERM: the step was recorded `aborted`; if any host had switched, the
        last good version comes back (a second signal exits at once: recovery then)."""
        out, stack = run.out, run.stack
        if isinstance(stop, LockLost):  # the stack is another run's now: hands off
            return self._lock_lost(out, stop)
        why = f"interrupted by {stop.name} during {out.steps[-1].step if out.steps else 'start'}"
        if any(s.step == "verify" and s.ok for s in out.steps) and out.ended_at is None:
            # Live and verified: only the housekeeping after it stopped; nothing goes back.
            self._close(out, "success", ExitCode(stop.exit_code),
                        f"{out.version} is live on {stack.name} (verified); {why}")  # fmt: skip
            return out
        if out.ended_at is None:  # else a follow-up (a restore, a rollback) was interrupted
            self._close(out, "aborted", ExitCode(stop.exit_code), why)
        else:
            out.status, out.exit_code = "aborted", ExitCode(stop.exit_code)
        target, _caveat = self._way_back(run)
        back = [h for h in run.switched if h not in run.lost]
        if back and target:
            run.hosts.narrow(back)
            rb = self._run_rollback(
                stack, run.hosts, target, from_version=out.version, automatic=True, why=why
            )
            out.followups.append(rb)
            out.message = (
                f"{why}; back on {target}"
                if rb.status == "success"
                else (f"{why}; bringing back {target} failed: {rb.message}")
            )
        else:
            out.message = f"{why}; nothing had switched: {run.previous or 'nothing'} still runs"
        return out

    def _ledger_failed(self, run: Run, exc: LedgerWriteFailed) -> RunOutcome:
        """The ledger cannot be written (a full disk). The hosts come first: any that had
        switched get the last good release back, unrecorded; then the record is tried again
        once. The message names the ledger and what was done."""
        out = run.out
        target, _caveat = self._way_back(run)
        back = [h for h in run.switched if h not in run.lost]
        done = f"nothing had switched: {run.previous or 'nothing'} still runs"
        if back and target:
            run.hosts.narrow(back)
            switched = run.hosts.switch(target, back)
            restarted = run.hosts.restart(target, out.version, back)
            smoked = run.hosts.smoke(target, back)
            ok = all(o.ok for r in (switched, restarted, smoked) for o in r.values())
            done = (
                f"{target} was brought back and answers its smoke checks"
                if ok
                else f"bringing back {target} failed: see the hosts"
            )
        elif back:
            done = "no earlier good version to bring back"
        message = f"{exc.message}; {done}"
        try:
            self._close(out, "failed", ExitCode.FAILED, message, ledger_status="fail")
        except LedgerWriteFailed:
            message += " (not recorded: the ledger is still full)"
        out.status, out.exit_code, out.message, out.hint = (
            "failed",
            ExitCode.FAILED,
            message,
            exc.hint,
        )
        return out

    def _restore_after_migrate(self, out: RunOutcome, run: Run) -> RunOutcome:
        """A migration failed half way: the database goes back to the backup this deploy took
        (the service still runs the previous release, which expects the old schema)."""
        stack = run.stack
        backup_id = out.details.get("backup")
        if stack.migrations is None or not backup_id:
            return out
        item = self._find_backup(stack, str(backup_id))
        restored = self._run_restore(stack, run.hosts, item, start=True, fresh_backup=False)
        out.followups.append(restored)
        if restored.status == "success":
            out.status, out.exit_code = "rolled_back", ExitCode.ROLLED_BACK
            out.message = f"{out.message}; the database was restored from {backup_id}"
            out.hint = "nothing was switched; the previous release runs on its own schema"
        else:
            out.message = f"{out.message}; restoring {backup_id} failed too: {restored.message}"
            out.hint = "the database needs attention: see the execution record"
        return out
