"""The engine's side of scheduled jobs: the deploy's and the rollback's `cron` step, and
`cron list|verify` (read-only), on every host of the stack through the one executor."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from releasegate.cron.install import (
    Target,
    expected_block,
    install_ops,
    saved_block_ops,
    verify_ops,
)
from releasegate.engine.base import EngineBase
from releasegate.execution.hosts import HostOutcome, aggregate
from releasegate.ops import Program
from releasegate.runtimes.base import PhaseResult

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig
    from releasegate.execution.hosts import StackHosts
    from releasegate.runtimes.base import HostRuntime
    from releasegate.workflows.steps import Run, StepBody


@dataclass
class CronReport:
    """`cron list|verify`: each host's installed jobs against the expected ones."""

    stack: str
    env: str
    running: str | None
    target: str
    ok: bool
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        bad = [h for h, v in self.hosts.items() if not v["ok"]]
        if not bad:
            return (
                next(iter(self.hosts.values()))["summary"]
                if len(self.hosts) == 1
                else (f"{len(self.hosts)} host(s) as expected")
            )
        return "; ".join(
            (f"{h}: " if len(self.hosts) > 1 else "") + self.hosts[h]["summary"] for h in bad
        )


def _outcome(host: str, program: Program[PhaseResult]) -> Program[HostOutcome]:
    phase = yield from program
    return HostOutcome(host, phase.ok, phase.summary, phase.evidence())


class CronOps(EngineBase):
    def _cron_expected(self, stack: StackConfig, rt: HostRuntime, version: str) -> str | None:
        assert stack.cron is not None
        target = Target.of(stack.name, stack.cron)
        return expected_block(
            target, stack.cron, workdir=str(rt.smoke_dir()), env=rt.env_for(version)
        )

    def _cron(self, run: Run, *, rollback: bool = False) -> StepBody:
        """Install the release's jobs on the hosts that run it. A rollback puts back the
        block installed with its target when that release kept one; else the config's."""
        stack, version = run.stack, run.out.version
        assert stack.cron is not None
        target = Target.of(stack.name, stack.cron)
        redact = run.hosts.redact

        def one(host: str, rt: HostRuntime) -> Program[HostOutcome]:
            block = self._cron_expected(stack, rt, version)
            source = "config"
            if rollback:
                saved = yield from saved_block_ops(rt.root, version, stack.name)
                if saved is not None:
                    block, source = saved or None, f"kept with {version}"
            # A rollback keeps the deploy's own backup of `version` and adds its own.
            backup = "crontab.before-rollback" if rollback else "crontab.before"
            phase = yield from install_ops(
                target, block, root=rt.root, version=version, redact=redact, backup_name=backup
            )
            phase.facts["block_from"] = source
            return HostOutcome(host, phase.ok, phase.summary, phase.evidence())

        hosts = [h for h in run.hosts.active if h not in run.failed]
        result = aggregate("cron", run.hosts.fan_out("cron", one, hosts=hosts))
        return result.ok, result.summary, [], result.evidence()

    # -- read-only ---------------------------------------------------------------------------
    def cron_report(self, name: str, env: str) -> CronReport:
        """What each host has installed, against what its running release should have."""
        stack = self.stack(name, env)
        hosts = self._hosts(stack, os.urandom(6).hex())
        try:
            return self._cron_report(stack, hosts)
        finally:
            hosts.close()

    def _cron_report(self, stack: StackConfig, hosts: StackHosts) -> CronReport:
        from releasegate.config.schedules import CronConfig

        cfg = stack.cron or CronConfig()
        target = Target.of(stack.name, cfg)
        versions = hosts.versions()
        running = hosts.running_version()

        def one(host: str, rt: HostRuntime) -> Program[HostOutcome]:
            version = versions.get(host)
            expected = None
            if version and stack.cron is not None:
                expected = self._cron_expected(stack, rt, version)
            return (yield from _outcome(host, verify_ops(target, expected)))

        outcomes = hosts.fan_out("cron", one, report=False)
        report = CronReport(
            stack.name, stack.env, running, target.describe(), all(o.ok for o in outcomes.values())
        )
        for host, outcome in outcomes.items():
            report.hosts[host] = {
                "version": versions.get(host),
                **outcome.as_dict(),
            }
            report.hosts[host].pop("commands", None)
        return report

    def cron_check(self, stack: StackConfig, hosts: StackHosts) -> PhaseResult:
        """`releasegate check`'s part: the report as one result."""
        report = self._cron_report(stack, hosts)
        return PhaseResult(report.ok, report.summary, facts={"hosts": report.hosts})
