"""`releasegate migrate ...`: database migrations. For now `lint`, which judges SQL files
with releasegate's own rules, without a stack, a database or a releasegate.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from releasegate.migrations.sqlrules import Finding

# The rule list is written out here so `--help` does not import the rules module; a unit
# test checks that it matches sqlrules.RULES.
RULE_HELP: dict[str, str] = {
    "add-column-not-null-no-default": "HIGH    ADD COLUMN ... NOT NULL without DEFAULT",
    "drop-column": "HIGH    DROP COLUMN (the previous release still reads it: breaks rollback)",
    "drop-table": "HIGH    DROP TABLE (same)",
    "rename-column": "HIGH    RENAME COLUMN, MySQL CHANGE old new (same)",
    "rename-table": "HIGH    RENAME TO, MySQL RENAME TABLE (same)",
    "alter-column-type": "HIGH    ALTER COLUMN ... TYPE, MySQL MODIFY / CHANGE",
    "set-not-null": "MEDIUM  SET NOT NULL (PostgreSQL: full scan under lock)",
    "create-index-not-concurrently": (
        "MEDIUM  CREATE INDEX without CONCURRENTLY (PostgreSQL); LOW on MySQL (online)"
    ),
    "add-foreign-key-without-not-valid": "MEDIUM  ADD FOREIGN KEY without NOT VALID (PostgreSQL)",
}

_RULE_LIST = "\n".join(f"  {rule:<34} {text}" for rule, text in RULE_HELP.items())

LINT_HELP = f"""Check SQL migration files with releasegate's own rules: the previous release must
keep working on the new schema (that is what makes a rollback safe), and a migration must
not lock a busy table for long. No database is needed.

Backward-compatible migrations pass: new nullable columns (ADD COLUMN y text NULL) and new
tables. A finding on a table created earlier in the same file is LOW (the table is empty).

\b
Rules (risk, what they catch):
{_RULE_LIST}

Statements are split at `;` outside quotes, comments and dollar-quoted bodies; they are
matched by patterns, not parsed: dynamic SQL, function bodies and MySQL DELIMITER blocks
are not checked, and the current schema is unknown (MODIFY is reported as a type change).

\b
Examples:
  releasegate migrate lint --sql migrations/0042_add_email.sql
  releasegate migrate lint --sql a.sql --sql b.sql --dialect mysql
  releasegate migrate lint --sql m.sql --fail-on MEDIUM
  python manage.py sqlmigrate shop 0042 > m.sql && releasegate migrate lint --sql m.sql
  releasegate migrate lint --sql m.sql --json | jq -c 'select(.finding)'

\b
Output: `file:line: RISK rule: message`, then its hint; line is where the statement starts.
--json prints one {{"finding": {{...}}}} object per finding, then {{"summary": {{...}}}}.
Exit codes: 0 nothing at or above --fail-on, 3 a finding at or above --fail-on,
2 a file is missing or unreadable.
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def migrate() -> None:
    """Database migrations: lint (status, rehearse, resolve, rollback to come)."""


@migrate.command(help=LINT_HELP, short_help="Check SQL migration files for unsafe changes.")
@click.option(
    "--sql",
    "files",
    multiple=True,
    required=True,
    metavar="FILE",
    type=click.Path(path_type=Path),
    help="A SQL migration file (repeatable).",
)
@click.option(
    "--dialect",
    type=click.Choice(["postgresql", "mysql"]),
    default="postgresql",
    show_default=True,
    help="SQL dialect (mysql also covers MariaDB).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines: findings, then a summary.")
@click.option(
    "--fail-on",
    type=click.Choice(["LOW", "MEDIUM", "HIGH"], case_sensitive=False),
    default="HIGH",
    show_default=True,
    help="Exit 3 when a finding has this risk or higher.",
)
def lint(files: tuple[Path, ...], dialect: str, as_json: bool, fail_on: str) -> int:
    from releasegate.errors import ExitCode
    from releasegate.migrations.sqlrules import Risk, at_or_above, lint_file

    threshold = Risk(fail_on.upper())
    findings: list[Finding] = []
    for path in files:
        findings.extend(lint_file(path, "mysql" if dialect == "mysql" else "postgresql"))
    failing = at_or_above(findings, threshold)
    code = ExitCode.REFUSED if failing else ExitCode.OK

    if as_json:
        from releasegate.cli.app import print_json

        for f in findings:
            print_json({"finding": f})
        print_json(
            {
                "summary": {
                    "files": [str(p) for p in files],
                    "dialect": dialect,
                    "fail_on": threshold.value,
                    "findings": len(findings),
                    "by_risk": {r.value: sum(1 for f in findings if f.risk == r) for r in Risk},
                    "by_rule": _by_rule(findings),
                    "failing": len(failing),
                    "exit_code": int(code),
                }
            }
        )
        return int(code)

    for f in findings:
        click.echo(f"{f.file}:{f.line}: {f.risk.value} {f.rule}: {f.message}")
        click.echo(f"  hint: {f.hint}")
    names = ", ".join(str(p) for p in files)
    if findings:
        by_rule = ", ".join(f"{rule} {n}" for rule, n in _by_rule(findings).items())
        level = threshold.value
        verdict = f"{len(failing)} at or above {level}" if failing else f"none at {level}+"
        click.echo(
            f"{len(findings)} finding{'s' if len(findings) != 1 else ''} ({by_rule}); "
            f"{verdict} [{names}]"
        )
    else:
        click.echo(f"ok: no finding ({dialect}) [{names}]")
    return int(code)


def _by_rule(findings: list[Finding]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.rule] = counts.get(f.rule, 0) + 1
    return counts
