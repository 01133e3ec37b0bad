"""Rollback, and recovery after a crash: the hosts that moved go back to a version that
ran well before, through the same release steps as a deploy (prepare, switch, restart,
smoke), never a migration.

A crashed or killed run leaves its rows `running`. The stack then *needs recovery* until a
deploy or rollback recovers it: read-only commands only report it. An interrupted
rollback is completed to its own target; an interrupted deploy goes back to the last good
version."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from releasegate import locks, names
from releasegate.cron.flow import CronOps
from releasegate.engine.base import HostOptions, RunOutcome
from releasegate.engine.compose_ops import ComposeOps
from releasegate.errors import BadInput, ExitCode
from releasegate.execution.hosts import StackHosts
from releasegate.execution.interrupts import Interrupted, LockLost, safe_points
from releasegate.identity import pid_alive
from releasegate.model import ActionRecord, Event, Plan, Step
from releasegate.plan import Facts, plan_restore, plan_rollback
from releasegate.workflows.flags import restore_release_flags
from releasegate.workflows.slots import SlotOps
from releasegate.workflows.steps import Run, StepBody, read_slot_facts

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig


def _verified(steps: list[ActionRecord]) -> bool:
    return any(s.action == "verify" and s.status == "success" for s in steps)


@dataclass(frozen=True)
class RollbackRequest:
    """One `releasegate rollback`."""

    stack: str
    env: str
    to: str | None = None  # None: the last good version that is not running
    reason: str = ""
    with_db: bool = False  # restore the backup taken before the current release first
    hosts: HostOptions = field(default_factory=HostOptions)


class RollbackFlow(SlotOps, ComposeOps, CronOps):
    # -- planning -------------------------------------------------------------------------------
    def _rollback_target(self, stack: StackConfig, exclude: str | None) -> str | None:
        good = [v for v in self.ledger.good_versions(stack.name) if v != exclude]
        return good[0] if good else None

    def _choose_target(
        self, stack: StackConfig, request: RollbackRequest, running: str | None
    ) -> str:
        if request.to is not None:
            deployed = self.ledger.good_versions(stack.name)
            if request.to not in deployed:
                known = ", ".join(deployed[:8]) or "none"
                raise BadInput(
                    f"{request.to} was never deployed successfully on {stack.name}",
                    hint=f"versions that were: {known}",
                )
            return request.to
        pending = self.needs_recovery(stack.name)
        if pending is not None and pending.action == "rollback":
            return pending.version  # finish the interrupted rollback, not a new one
        target = self._rollback_target(stack, exclude=running)
        if target is None:
            raise BadInput(
                f"{stack.name} has no earlier successful version to roll back to",
                hint="`releasegate history --stack " + stack.name + "` shows what ran",
            )
        return target

    def _rollback_plan(
        self, stack: StackConfig, hosts: StackHosts, target: str, reason: str
    ) -> Plan:
        rollout = self.rollout_for(stack, hosts.active, {"strategy": "all"})
        facts = Facts(
            running=hosts.running_version(),
            rollback_target=None,
            artifact=hosts.describe_artifact(target),
            prepared=hosts.is_prepared(target),
            rollout=rollout,
            slots=read_slot_facts(hosts),
        )
        return plan_rollback(stack, target, facts, reason=reason)

    def plan_rollback(self, request: RollbackRequest) -> list[Plan]:
        """What `rollback` would run now (`--dry-run`): the database restore first if asked,
        then the rollback. Read-only."""
        stack = self.stack(request.stack, request.env)
        if request.to is not None:
            names.check("version", request.to)
        hosts = self._hosts(stack, "plan", request.hosts)
        try:
            running = hosts.running_version()
            target = self._choose_target(stack, request, running)
            plans = []
            if request.with_db:
                item = self._find_backup(stack, self._db_backup_for(stack, running))
                plans.append(plan_restore(stack, item.id, running, fresh_backup=True, start=False))
            plans.append(self._rollback_plan(stack, hosts, target, request.reason))
            return plans
        finally:
            hosts.close()

    # -- running --------------------------------------------------------------------------------
    def rollback(self, request: RollbackRequest) -> RunOutcome:
        stack = self.stack(request.stack, request.env)
        if request.to is not None:
            names.check("version", request.to)
        token = os.urandom(6).hex()
        with safe_points(), self._locked(stack, "rollback", request.to or "", token):
            hosts = self._hosts(stack, token, request.hosts)
            try:
                return self._rollback(stack, hosts, request)
            finally:
                hosts.close()

    def _rollback(
        self, stack: StackConfig, hosts: StackHosts, request: RollbackRequest
    ) -> RunOutcome:
        recovered = self._recover(stack, hosts)
        if recovered and request.to is None:
            return recovered[-1]  # the recovery was itself the rollback that was asked for
        hosts.forget()
        running = hosts.running_version()
        target = self._choose_target(stack, request, running)
        restored: list[RunOutcome] = []
        if request.with_db:
            # The data as it was before the release being rolled back was deployed.
            item = self._find_backup(stack, self._db_backup_for(stack, running))
            db = self._run_restore(stack, hosts, item, start=False, fresh_backup=True)
            restored.append(db)
            if db.status != "success":
                db.followups[:0] = recovered
                return db
        out = self._run_rollback(
            stack, hosts, target, from_version=running, automatic=False, reason=request.reason
        )
        out.followups[:0] = [*recovered, *restored]
        return out

    def _db_backup_for(self, stack: StackConfig, running: str | None) -> str:
        backup_id = self._backup_before(stack, running)
        if backup_id is None:
            raise BadInput(
                f"no backup was taken before {running} was deployed on {stack.name}",
                hint="roll back without --with-db, or restore a chosen backup: "
                f"releasegate backup list {stack.name}",
            )
        return backup_id

    def _run_rollback(
        self,
        stack: StackConfig,
        hosts: StackHosts,
        target: str,
        *,
        from_version: str | None,
        automatic: bool,
        reason: str = "",
        why: str = "",
    ) -> RunOutcome:
        plan = self._rollback_plan(stack, hosts, target, reason)
        notes = f"from {from_version or '(none)'}" + (", automatic" if automatic else "")
        if why or reason:
            notes += f": {why or reason}"
        out = RunOutcome(
            "rollback", stack.name, stack.env, target, "running", ExitCode.FAILED, "",
            plan=plan, notes=notes,
        )  # fmt: skip
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
        self.http.warm(stack.smoke)
        previous = hosts.running_version()
        rollout = self.rollout_for(stack, hosts.active, {"strategy": "all"})
        run = Run(stack, hosts, plan, out, previous, rollout)
        bodies: dict[str, Callable[[Step], StepBody]] = {
            "prepare": lambda s: self._prepare_target(run),
            "switch": lambda s: self._switch(run, s),
            "restart": lambda s: self._restart(run, s),
            "smoke": lambda s: self._smoke(run, s),
            "cron": lambda s: self._cron(run, rollback=True),
            "flags": lambda s: restore_release_flags(self, run),
            **self.slot_bodies(run),  # stacks with `proxy:` (workflows/slots.py)
        }
        try:
            for step in plan.steps:
                if step.name == "lock":
                    continue
                res = self._step(out, stack, step.name, partial(bodies[step.name], step))
                if "images" in res.evidence:
                    out.details["images"] = res.evidence["images"]
                if not res.ok:
                    return self._close(
                        out, "failed", ExitCode.FAILED, f"rollback to {target}: {res.summary}",
                        ledger_status="fail", notes=f"{notes}; {step.name} failed"[:300],
                    )  # fmt: skip
        except LockLost as lost:  # the stack is another run's now: no completing it
            return self._lock_lost(out, lost)
        except Interrupted as stop:
            why = f"interrupted by {stop.name} during {out.steps[-1].step if out.steps else ''}"
            self._close(out, "aborted", ExitCode(stop.exit_code), why)
            if run.switched:  # half way between two versions: finish going to the good one
                again = self._run_rollback(
                    stack, hosts, target, from_version=from_version, automatic=True, why=why
                )
                out.followups.append(again)
                out.message = f"{why}; " + (
                    f"completed: {stack.name} is back on {target}"
                    if again.status == "success"
                    else f"completing it failed: {again.message}"
                )
            return out
        return self._close(
            out, "success", ExitCode.OK, f"{stack.name} is back on {target}", notes=notes
        )

    def _prepare_target(self, run: Run) -> StepBody:
        # A rollback brings back the release that ran, whatever its artifact holds now.
        phase = run.hosts.prepare(run.out.version, run.previous, as_is=True)
        return phase.ok, phase.summary, [], phase.evidence()

    # -- crashes ---------------------------------------------------------------------------------
    def orphans(self, stack_name: str | None = None) -> list[ActionRecord]:
        """Actions opened by a process of this host that is gone: a crash (e.g. SIGKILL).
        Read-only: finding them changes nothing."""
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

    def needs_recovery(self, stack_name: str) -> ActionRecord | None:
        """The deploy or rollback whose crash was not recovered yet: the newest top-level
        run, if its process died (`running` with a dead pid, or closed `interrupted`) after
        it had started to switch. One that died before the switch changed nothing that runs:
        its half-made release is rebuilt by the next prepare."""
        last = self.ledger.last_deploy(stack_name)
        if last is None:
            return None
        dead = last.status == "interrupted" or (
            last.status == "running"
            and any(o.action_id == last.action_id for o in self.orphans(stack_name))
        )
        if not dead:
            return None
        steps = self.ledger.children(last.action_id)
        if _verified(steps):  # it died after the release was live and verified
            return None
        return last if any(s.action == "switch" for s in steps) else None

    def _close_orphans(self, stack_name: str) -> list[ActionRecord]:
        found = self.orphans(stack_name)
        # Children first, so a parent is never closed while a step of it still looks open.
        for rec in sorted(found, key=lambda a: a.parent_id is None):
            died = f"process {rec.pid} on {rec.host} died"
            if rec.parent_id is None and _verified(self.ledger.children(rec.action_id)):
                # Live and verified before its process died (in cleanup): a success.
                notes = f"{rec.version} was live and verified; {died} after that"
                self.ledger.end_action(rec.action_id, "success", notes=notes)
                continue
            self.ledger.end_action(
                rec.action_id,
                "interrupted",
                notes=f"interrupted: {died}" + (f" ({rec.notes})" if rec.notes else ""),
            )
        return found

    def _recover(self, stack: StackConfig, hosts: StackHosts) -> list[RunOutcome]:
        """After a crash, bring the stack to a known good version before anything else.

        Seed 001: the service answers on the old or the new version, never neither. An
        interrupted rollback is completed to its target; after an interrupted deploy the
        last good version comes back, unless it already runs and passes its smoke checks.
        """
        pending = self.needs_recovery(stack.name)
        self._close_orphans(stack.name)
        if pending is None:
            return []
        self.emit(
            Event(
                "message",
                stack.name,
                message=f"the {pending.action} of {pending.version} was interrupted; recovering",
            )
        )
        if pending.action == "rollback":
            target: str | None = pending.version
        else:
            target = self._rollback_target(stack, exclude=pending.version)
        if not target:
            return []
        running = hosts.running_version()
        why = f"recovery after interrupted {pending.action} of {pending.version}"
        return [
            self._run_rollback(stack, hosts, target, from_version=running, automatic=True, why=why)
        ]
