"""The deploy's migration gate (issue 7): before the backup and the switch, the pending
migrations of a stack with a `migrations:` section are linted, and production refuses
HIGH-risk findings, drift, failed migrations, and pending migrations that were not
rehearsed (`migrate rehearse --version V`) on the same version and migration head,
unless the deploy is `--force --reason`. Elsewhere the findings are evidence only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from releasegate.model import CheckResult

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig
    from releasegate.engine.migrations import MigrationOps

StepBody = tuple[bool, str, list[CheckResult], dict[str, Any]]


def migration_gate(
    ops: MigrationOps, stack: StackConfig, version: str, *, forced: bool
) -> StepBody:
    from releasegate.engine.migrations import status_evidence
    from releasegate.migrations.service import lint_pending, status_with_drift
    from releasegate.migrations.sqlrules import Risk

    adapter = ops.adapter(stack)
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


def run_migrations(ops: MigrationOps, stack: StackConfig, version: str) -> StepBody:
    """The deploy's migrate step for a stack with `migrations:`: the tool's own migrate on the
    live database (between the backup and the switch), then its status must be clean."""
    from releasegate.engine.migrations import status_evidence
    from releasegate.migrations.service import status_with_drift

    adapter = ops.adapter(stack)
    before = status_with_drift(adapter)
    if not before.pending:
        # what this release runs on, for `migrate rollback --to-release` later
        return True, "no pending migrations", [], {"head": before.head, "applied": before.applied}
    redact = ops._redactor(stack)
    result = adapter.apply()
    output = redact((result.stdout + result.stderr).strip()[-2000:])
    evidence: dict[str, Any] = {
        "pending": list(before.pending),
        "exit_code": result.exit_code,
        "duration_s": round(result.duration_s, 3),
        "output": output,
    }
    if not result.ok:
        return (
            False,
            f"{stack.migration_settings.tool} migrate failed: {result.describe()}",
            [],
            evidence,
        )
    after = status_with_drift(adapter)
    evidence["status"] = status_evidence(after)
    if after.pending or after.failed:
        left = ", ".join([*after.pending, *after.failed])
        return False, f"migrations still pending or failed after migrate: {left}", [], evidence
    return True, f"applied {len(before.pending)} migration(s); head {after.head}", [], evidence
