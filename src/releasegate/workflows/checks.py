"""Read-mostly workflows: `preflight`, `smoke` and `status`. None of them changes a host or
closes a crashed run's rows (a stack that needs recovery says so until a deploy or
rollback recovers it)."""

from __future__ import annotations

import os
from collections import Counter
from typing import TYPE_CHECKING, Any

from releasegate import locks, names
from releasegate.engine.base import RunOutcome, StackStatus
from releasegate.errors import ExitCode
from releasegate.gates.promotion import promotion_check
from releasegate.model import CheckResult, Event
from releasegate.workflows.deploy import DeployFlow

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig


class ChecksFlow(DeployFlow):
    def preflight(self, name: str, env: str, version: str | None = None) -> RunOutcome:
        stack = self.stack(name, env)
        if version is not None:
            names.check("version", version)
        hosts = self._hosts(stack, os.urandom(6).hex())
        try:
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

            def run() -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
                checks = hosts.preflight(version)
                for c in checks:
                    self.emit(
                        Event("check", stack.name, step="preflight", ok=c.ok, message=c.summary)
                    )
                passed = sum(c.ok for c in checks)
                return passed == len(checks), f"{passed}/{len(checks)} rules passed", checks, {}

            res = self._step(out, stack, "preflight", run)
        finally:
            hosts.close()
        bad = [c for s in out.steps for c in s.checks if not c.ok]
        if bad:
            return self._close(
                out, "refused", ExitCode.REFUSED, "; ".join(c.summary for c in bad),
                hint=bad[0].hint, ledger_status="fail",
            )  # fmt: skip
        return self._close(out, "success", ExitCode.OK, res.summary)

    def smoke(self, name: str, env: str, version: str | None = None) -> RunOutcome:
        stack = self.stack(name, env)
        hosts = self._hosts(stack, os.urandom(6).hex())
        try:
            running = hosts.running_version()
            version = names.check("version", version) if version else (running or "")
            out = RunOutcome(
                "smoke", stack.name, stack.env, version, "running", ExitCode.FAILED, ""
            )
            out.action_id = self._begin(stack, "smoke", version, details={"running": running})

            def run() -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
                if not stack.smoke:
                    return True, "no smoke checks configured", [], {}
                outcomes = hosts.smoke(version or "")
                checks = [c for o in outcomes.values() for c in o.checks]
                for c in checks:
                    self.emit(Event("check", stack.name, step="smoke", ok=c.ok, message=c.summary))
                failed = [o for o in outcomes.values() if not o.ok]
                summary = "; ".join(o.summary for o in failed) or f"{len(checks)} check(s) passed"
                return self._with_data_checks(stack, (not failed, summary, checks, {}))

            res = self._step(out, stack, "smoke", run)
        finally:
            hosts.close()
        if not res.ok:
            return self._close(
                out, "failed", ExitCode.FAILED, res.summary, ledger_status="fail",
                notes=res.summary[:200],
            )  # fmt: skip
        if running and version != running:
            return self._close(
                out, "failed", ExitCode.FAILED,
                f"checks passed, but {stack.name} runs {running}, not {version}",
                ledger_status="fail",
            )  # fmt: skip
        return self._close(out, "success", ExitCode.OK, res.summary)

    def _dead(self, run: Any) -> bool:
        if run.status == "interrupted":
            return True
        return any(o.action_id == run.action_id for o in self.orphans(run.stack))

    def status(self) -> list[StackStatus]:
        lock_by_stack = {lk.stack: lk for lk in self.ledger.locks()}
        return [
            self._stack_status(name, stack, lock_by_stack.get(name))
            for name, stack in self.config.stacks.items()
        ]

    def _stack_status(self, name: str, stack: StackConfig, lk: Any) -> StackStatus:
        hosts = self._hosts(stack, "status")
        try:
            states = hosts.host_states()
            services = next(
                (s.details["services"] for s in hosts.survey().values() if "services" in s.details),
                None,
            )
            seen = Counter(v for v in states.values() if v and v != "unreachable")
            running = seen.most_common(1)[0][0] if seen else None
            health = hosts.health_flags(running)  # what runs: still there, answering?
        finally:
            hosts.close()
        many = len(states) > 1 or "local" not in states
        last = self.ledger.last_deploy(name)
        verified = self.ledger.verified_version(name)
        # Only rows from the last deploy on (seq >= last.seq): a bounded scan, not the
        # stack's whole history (the dashboard's stacks page on a 100,000-action ledger).
        interrupted = self.ledger.actions(
            stack=name,
            status="interrupted",
            last=3,
            since_seq=last.seq - 1 if last is not None else None,
        )
        warnings = []
        pending = self.needs_recovery(name)
        if pending is not None:
            warnings.append(
                f"needs recovery: the {pending.action} of {pending.version} "
                f"(pid {pending.pid}) was interrupted after it started to switch; "
                "the next deploy or rollback recovers the stack"
            )
        elif last and last.status in ("running", "interrupted") and self._dead(last):
            warnings.append(
                f"the {last.action} of {last.version} was interrupted (process {last.pid} "
                "died) before it switched: nothing that runs changed"
            )
        elif last and last.status == "success" and running != last.version:
            warnings.append(
                f"running {running or 'nothing'} but the last successful "
                f"{last.action} was {last.version}: changed outside releasegate?"
            )
        if last and last.status not in ("success", "running", "interrupted"):
            warnings.append(f"last {last.action} of {last.version} ended {last.status}")
        if verified and running and running != verified:
            warnings.append(f"running {running} is not the verified version {verified}")
        lock = None
        if lk is not None:
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
        warnings += [flag.message for flag in health]
        mixed = many and len(set(states.values())) > 1
        if mixed:
            by_version: dict[str, list[str]] = {}
            for host, seen_version in states.items():
                by_version.setdefault(seen_version or "no release", []).append(host)
            warnings.append(
                "mixed fleet: "
                + "; ".join(f"{v} on {', '.join(h)}" for v, h in sorted(by_version.items()))
            )
        return StackStatus(
            name,
            stack.env,
            running,
            last,
            verified,
            stack.promote_from,
            lock,
            interrupted,
            warnings,
            states if many else None,
            mixed,
            services,
        )
