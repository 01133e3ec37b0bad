"""Status with drift, and lint of the pending migrations: the tools' adapters put together,
without the ledger (the engine records; this module only finds out)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from releasegate.migrations.drift import find_drift, schema_facts
from releasegate.migrations.model import Status
from releasegate.migrations.sqlrules import Dialect, Risk, lint_sql
from releasegate.migrations.tools.base import Adapter


def status_with_drift(adapter: Adapter) -> Status:
    """The tool's status plus drift: pending migrations whose objects already exist."""
    status = adapter.status()
    if not status.pending:
        return status
    sql = adapter.migration_sql(status.pending)
    facts = schema_facts(adapter.ctx.client, adapter.ctx.database)
    history = {name: adapter.history_evidence(name) for name in status.pending}
    drift = find_drift(sql, facts, history, resolve_hint=adapter.resolve_hint())
    return dataclasses.replace(status, drift=tuple(drift))


@dataclass(frozen=True)
class LintFinding:
    rule: str
    risk: Risk
    migration: str
    line: int  # in the migration's SQL (as the tool prints it for generated SQL)
    message: str
    hint: str
    source: str  # "squawk" or "releasegate"


@dataclass(frozen=True)
class LintReport:
    migrations: tuple[str, ...]
    findings: tuple[LintFinding, ...]
    notes: tuple[str, ...] = ()

    def at_or_above(self, risk: Risk) -> list[LintFinding]:
        return [f for f in self.findings if f.risk.rank >= risk.rank]


def lint_sql_by_migration(
    sql_by_name: list[tuple[str, str]], dialect: Dialect, *, use_squawk: bool = True
) -> LintReport:
    """Squawk for PostgreSQL, then releasegate's rules for what Squawk did not report on
    the same line; releasegate's rules alone for MySQL."""
    from releasegate.migrations.squawk import COVERED_BY, SquawkMissing, run_squawk

    notes: list[str] = []
    squawked: dict[str, list[LintFinding]] = {}
    if dialect == "postgresql" and use_squawk:
        try:
            for name, found in run_squawk(sql_by_name).items():
                squawked[name] = [
                    LintFinding(f.rule, f.risk, name, f.line, f.message, f.hint, "squawk")
                    for f in found
                ]
        except SquawkMissing as exc:
            notes.append(f"{exc}: only releasegate's own rules were applied")
    findings: list[LintFinding] = []
    for name, sql in sql_by_name:
        theirs = squawked.get(name, [])
        findings.extend(theirs)
        seen = {(f.rule, f.line) for f in theirs}
        for f in lint_sql(sql, file=name, dialect=dialect):
            if any((rule, f.line) in seen for rule in COVERED_BY.get(f.rule, ())):
                continue
            findings.append(
                LintFinding(f.rule, f.risk, name, f.line, f.message, f.hint, "releasegate")
            )
    findings.sort(key=lambda f: ([n for n, _ in sql_by_name].index(f.migration), f.line))
    return LintReport(tuple(n for n, _ in sql_by_name), tuple(findings), tuple(notes))


def lint_pending(adapter: Adapter, status: Status) -> LintReport:
    dialect: Dialect = {"postgresql": "postgresql", "sqlite": "sqlite"}.get(
        adapter.dialect, "mysql"
    )  # type: ignore[assignment]
    return lint_sql_by_migration(adapter.migration_sql(status.pending), dialect)
