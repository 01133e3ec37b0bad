"""The executor's half of the plan: each step of a release (prepare, migrate, switch,
restart, smoke, verify, cleanup) carried out on the stack's hosts, the same code for one
host and many. The deploy and rollback workflows walk their plan and call these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from releasegate.engine.base import EngineBase, RunOutcome
from releasegate.execution.hosts import HostOutcome, StackHosts
from releasegate.execution.rollout import Rollout, fd_limit, plan_rollout
from releasegate.model import CheckResult, Event, Plan, Step
from releasegate.plan import Facts

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig


def read_slot_facts(hosts: StackHosts) -> Any:
    """Stacks with `proxy:`: each host's proxy's live slot and each slot's version, as one
    (else None)."""
    if hosts.stack.proxy is None:
        return None
    from releasegate.workflows.slots import read_slot_facts as read

    return read(hosts)


StepBody = tuple[bool, str, list[CheckResult], dict[str, Any]]
ROLLOUT_KEYS = ("strategy", "batch", "canary", "pause", "max_failures", "parallel")


@dataclass
class Run:
    """One run of a plan: where it stands, so a failure or an interruption knows what to
    send back."""

    stack: StackConfig
    hosts: StackHosts
    plan: Plan
    out: RunOutcome
    previous: str | None  # what the hosts ran before (the survey's answer)
    rollout: Rollout
    switched: list[str] = field(default_factory=list)  # hosts whose version may have moved
    failed: list[str] = field(default_factory=list)  # hosts that failed a step
    lost: list[str] = field(default_factory=list)  # hosts that could not be reached


class StepsOps(EngineBase):
    def rollout_for(
        self, stack: StackConfig, hosts: list[str], overrides: dict[str, Any]
    ) -> Rollout:
        """The hosts in batches, with this run's overrides over the stack's `fleet:`."""
        cfg = stack.fleet
        unknown = set(overrides) - set(ROLLOUT_KEYS)
        if unknown:
            from releasegate.errors import BadInput

            raise BadInput(f"unknown rollout option(s): {', '.join(sorted(unknown))}")
        if stack.proxy is not None:  # slot steps act on every host at once (proxy.slots)
            from releasegate.proxy.slots import refused_rollout

            refused_rollout(overrides)
        return plan_rollout(
            hosts,
            strategy=overrides.get("strategy") or cfg.strategy,
            batch=overrides.get("batch") or cfg.batch,
            canary=overrides.get("canary") or cfg.canary,
            max_failures=(
                overrides["max_failures"] if "max_failures" in overrides else cfg.max_failures
            ),
            parallel=overrides.get("parallel") or cfg.parallel,
            pause_s=overrides["pause"] if "pause" in overrides else cfg.pause,
            open_files=fd_limit(),
        )

    def facts(
        self, stack: StackConfig, hosts: StackHosts, version: str, rollout: Rollout, *, exclude: str
    ) -> Facts:
        """Everything the plan needs from the hosts (one survey) and the ledger."""
        good = [v for v in self.ledger.good_versions(stack.name) if v != exclude]
        return Facts(
            running=hosts.running_version(),
            rollback_target=good[0] if good else None,
            artifact=hosts.describe_artifact(version),
            prepared=hosts.is_prepared(version),
            rollout=rollout,
            slots=read_slot_facts(hosts),
        )

    # -- steps on the hosts -------------------------------------------------------------------
    def _host_step(
        self, run: Run, step: Step, outcomes: dict[str, HostOutcome], *, switching: bool
    ) -> StepBody:
        """Judge a phase's per-host outcomes against the failure policy."""
        hosts: dict[str, Any] = run.out.details.setdefault("hosts", {})
        for host, outcome in outcomes.items():
            hosts[host] = {"version": run.out.version, **outcome.as_dict()}
            if switching and host not in run.switched:
                run.switched.append(host)
            if outcome.lost and host not in run.lost:
                run.lost.append(host)
            if not outcome.ok and host not in run.failed:
                run.failed.append(host)
        bad = [h for h, o in outcomes.items() if not o.ok]
        ok = len(run.failed) <= run.rollout.allowed_failures
        one = len(run.hosts.hosts) == 1
        checks = [
            c if one else CheckResult(f"{c.name}@{h}", c.ok, f"{h}: {c.summary}", c.evidence)
            for h, o in outcomes.items()
            for c in o.checks
        ]
        if one:
            only = next(iter(outcomes.values()))
            return ok, only.summary, checks, dict(only.evidence)
        summary = f"{len(outcomes) - len(bad)} of {len(outcomes)} host(s) passed"
        if bad:
            summary += "; failed: " + "; ".join(f"{h}: {outcomes[h].summary}" for h in bad)
        evidence = {"batch": list(outcomes), "hosts": {h: hosts[h] for h in outcomes}}
        return ok, summary, checks, evidence

    def _batch_hosts(self, run: Run, step: Step) -> list[str]:
        """The step's hosts that are still in the run (a failed host stops its pipeline)."""
        wanted = step.details.get("hosts") or run.hosts.active
        return [h for h in wanted if h in run.hosts.active and h not in run.failed]

    def _switch(self, run: Run, step: Step) -> StepBody:
        chosen = self._batch_hosts(run, step)
        if step.details.get("batch", 1) > 1 and run.rollout.pause_s:
            self.emit(Event("message", run.stack.name, message=f"pause {run.rollout.pause_s:g}s"))
            import time

            time.sleep(run.rollout.pause_s)
        outcomes = run.hosts.switch(run.out.version, chosen)
        return self._host_step(run, step, outcomes, switching=True)

    def _restart(self, run: Run, step: Step) -> StepBody:
        chosen = self._batch_hosts(run, step)
        outcomes = run.hosts.restart(run.out.version, run.previous, chosen)
        return self._host_step(run, step, outcomes, switching=False)

    def _smoke(self, run: Run, step: Step) -> StepBody:
        if not run.stack.smoke:
            return True, "no smoke checks configured", [], {}
        chosen = self._batch_hosts(run, step)
        outcomes = run.hosts.smoke(run.out.version, chosen)
        for outcome in outcomes.values():
            for check in outcome.checks:
                self.emit(
                    Event("check", run.stack.name, step="smoke", ok=check.ok, message=check.summary)
                )
        hosts = self._host_step(run, step, outcomes, switching=False)
        if run.plan.action != "deploy":  # going back changes the code, not the data
            return hosts
        return self._with_data_checks(run.stack, hosts)

    def _with_data_checks(self, stack: StackConfig, body: StepBody) -> StepBody:
        """The stack's `sql` checks (releasegate.datachecks), run once after the hosts'."""
        from releasegate.datachecks import run_data_checks, sql_checks, with_data

        if not sql_checks(stack):
            return body
        data = run_data_checks(stack, self._secrets(stack))
        for check in data:
            self.emit(Event("check", stack.name, step="smoke", ok=check.ok, message=check.summary))
        return with_data(body, data)

    def _cleanup(self, run: Run) -> StepBody:
        stack = run.stack
        protect = {run.out.version, *(v for v in [self.ledger.verified_version(stack.name)] if v)}
        protect.update(self.ledger.good_versions(stack.name)[:2])
        phase = run.hosts.cleanup(self.ledger.release_order(stack.name), protect)
        return phase.ok, phase.summary, [], phase.evidence()
