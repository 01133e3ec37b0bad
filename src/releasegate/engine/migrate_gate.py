"""The deploy's migration gate (issue 7): before the backup and the switch, the pending
migrations of a stack with a `migrations:` section are linted, and production refuses
HIGH-risk findings, drift, failed migrations, and pending migrations that were not
rehearsed (`migrate rehearse --version V`) on the same version and migration head,
unless the deploy is `--force --reason`. Elsewhere the findings are evidence only."""

from __future__ import annotations

from typing import Any

from releasegate.model import CheckResult

StepBody = tuple[bool, str, list[CheckResult], dict[str, Any]]


def migration_gate(engine: Any, stack: Any, version: str, *, forced: bool) -> StepBody:
    from releasegate.engine.migrations import MigrationOps, status_evidence
    from releasegate.migrations.service import lint_pending, status_with_drift
    from releasegate.migrations.sqlrules import Risk

    ops = MigrationOps(engine.config, engine.ledger, actor=engine.actor, emit=engine.emit)
    adapter = ops._adapter(stack)
    status = status_with_drift(adapter)
    evidence: dict[str, Any] = {"status": status_evidence(status), "head": status.head}
    if not status.pending and not status.failed:
        return True, "no pending migrations", [], evidence
    checks: list[CheckResult] = []
    problems: list[str] = []
    if status.failed:
        problems.append(f"failed migration(s) {', '.join(status.failed)}: resolve them first")
    for d in status.drift:
        problems.append(f"drift: {d.migration} {d.verdict}")
    report = lint_pending(adapter, status)
    high = report.at_or_above(Risk.HIGH)
    for f in report.findings:
        checks.append(
            CheckResult(
                f"lint {f.rule}",
                f.risk != Risk.HIGH,
                f"{f.migration}:{f.line}: {f.risk.value} {f.rule}: {f.message}",
                hint=f.hint,
            )
        )
    if high:
        problems.append(f"{len(high)} HIGH-risk lint finding(s) in pending migrations")
    rehearsal = ops.last_rehearsal(stack, version=version, head=status.head)
    evidence["rehearsal"] = rehearsal.action_id if rehearsal else None
    if rehearsal is None:
        problems.append(
            f"not rehearsed on {version} (head {status.head}): "
            f"releasegate migrate rehearse {stack.name} --version {version}"
        )
    pending = f"{len(status.pending)} pending migration(s)"
    if not problems:
        return (
            True,
            f"{pending}: lint clean of HIGH, rehearsed ({rehearsal.action_id})",
            checks,
            evidence,
        )
    if stack.env != "prod":
        return (
            True,
            f"{pending}; not required outside prod: " + "; ".join(problems),
            checks,
            evidence,
        )
    if forced:
        return True, "FORCED past the migration gate: " + "; ".join(problems), checks, evidence
    return False, "migration gate: " + "; ".join(problems), checks, evidence
