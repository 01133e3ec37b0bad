"""The fleet's part of a deploy: batches of hosts switched, restarted and smoked, the failure
policy, and which hosts go back when the fleet does."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from releasegate.engine.base import EngineBase, RunOutcome
from releasegate.errors import BadInput
from releasegate.fleet.strategy import Rollout, fd_limit, plan_rollout
from releasegate.model import CheckResult, Event, StepResult

ROLLOUT_KEYS = ("strategy", "batch", "canary", "pause", "max_failures", "parallel")


@dataclass
class RolloutResult:
    failed: StepResult | None = None  # the batch step that broke the failure policy
    switched: list[str] = field(default_factory=list)  # hosts whose `current` may have moved
    lost: list[str] = field(default_factory=list)  # hosts that could not be reached
    failed_hosts: list[str] = field(default_factory=list)


class FleetOps(EngineBase):
    def rollout_for(self, stack: Any) -> Rollout | None:
        """The stack's rollout, with this run's overrides; None for a stack on one local host."""
        if not stack.is_fleet:
            return None
        cfg = stack.fleet
        over = self.rollout_overrides
        unknown = set(over) - set(ROLLOUT_KEYS)
        if unknown:
            raise BadInput(f"unknown rollout option(s): {', '.join(sorted(unknown))}")
        return plan_rollout(
            [h.label for h in stack.hosts],
            strategy=over.get("strategy") or cfg.strategy,
            batch=over.get("batch") or cfg.batch,
            canary=over.get("canary") or cfg.canary,
            max_failures=over["max_failures"] if "max_failures" in over else cfg.max_failures,
            parallel=over.get("parallel") or cfg.parallel,
            pause_s=over["pause"] if "pause" in over else cfg.pause,
            open_files=fd_limit(),
        )

    def _roll_out(
        self, out: RunOutcome, stack: Any, runtime: Any, rollout: Rollout, previous: str | None
    ) -> RolloutResult:
        """Batch by batch; stop at the first batch after which more hosts have failed than the
        policy allows. Every host's outcome goes to the step's evidence and the run's details."""
        result = RolloutResult()
        hosts: dict[str, Any] = out.details.setdefault("hosts", {})
        total = len(rollout.batches)
        for index, batch in enumerate(rollout.batches, start=1):
            if index > 1 and rollout.pause_s:
                self.emit(Event("message", stack.name, message=f"pause {rollout.pause_s:g}s"))
                time.sleep(rollout.pause_s)

            def body(batch: tuple[str, ...] = batch, index: int = index) -> Any:
                outcomes = runtime.rollout(batch, out.version, previous)
                for host, outcome in outcomes.items():
                    hosts[host] = {"version": out.version, **outcome.as_dict()}
                    if outcome.switched:
                        result.switched.append(host)
                    if outcome.lost:
                        result.lost.append(host)
                    if not outcome.ok:
                        result.failed_hosts.append(host)
                bad = [h for h in batch if not outcomes[h].ok]
                checks = [
                    CheckResult(f"{c.name}@{h}", c.ok, f"{h}: {c.summary}", c.evidence, c.hint)
                    for h in batch
                    for c in outcomes[h].checks
                ]
                summary = (
                    f"batch {index}/{total}: {len(batch) - len(bad)} of {len(batch)} host(s) live"
                )
                if bad:
                    summary += "; failed: " + "; ".join(f"{h}: {outcomes[h].summary}" for h in bad)
                ok = len(result.failed_hosts) <= rollout.allowed_failures
                evidence = {"batch": list(batch), "hosts": {h: hosts[h] for h in batch}}
                return ok, summary, checks, evidence

            step = self._step(out, stack, "rollout", body)
            if not step.ok:
                result.failed = step
                return result
        return result
