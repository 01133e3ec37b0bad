"""`releasegate migrate ...`: a stack's database migrations through the tool's own
commands (status, lint, rehearse, resolve, rollback), and `lint --sql FILE` for SQL files
without a stack."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from releasegate.cli.app import App, print_json
from releasegate.cli.term import echo, safe

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
    "table-rebuild": "MEDIUM  SQLite: table rebuilt (new__T, copy, drop, rename), as Django does",
}

_RULE_LIST = "\n".join(f"  {rule:<34} {text}" for rule, text in RULE_HELP.items())

LINT_HELP = f"""Check migrations for unsafe changes: the previous release must keep working on
the new schema (that is what makes a rollback safe), and a migration must not lock a busy
table for long.

With STACK: the SQL of the stack's pending migrations, as the tool prints it (Django
sqlmigrate, Alembic upgrade --sql, Prisma's migration.sql, the SQL files), checked by
Squawk (PostgreSQL; its rule ids map to a risk) and by releasegate's rules below for what
Squawk did not report, and alone for MySQL and SQLite (where Django's table rebuild is
read as one change). With --sql FILE: releasegate's rules on files,
no stack and no database needed.

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
  releasegate migrate lint shop-prod
  releasegate migrate lint --sql migrations/0042_add_email.sql
  releasegate migrate lint --sql a.sql --sql b.sql --dialect mysql
  releasegate migrate lint --sql m.sql --fail-on MEDIUM
  python manage.py sqlmigrate shop 0042 > m.sql && releasegate migrate lint --sql m.sql
  releasegate migrate lint --sql m.sql --json | jq -c 'select(.finding)'

\b
Output: `file:line: RISK rule: message` (with STACK: `migration:line`), then its hint;
line is where the statement starts.
--json prints one {{"finding": {{...}}}} object per finding, then {{"summary": {{...}}}}.
Exit codes: 0 nothing at or above --fail-on, 3 a finding at or above --fail-on,
2 a file is missing or unreadable (or bad input), 1 the tool failed.
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def migrate() -> None:
    """A stack's database migrations, through the tool's own commands.

    \b
    releasegate migrate status STACK            applied / pending / failed, drift
    releasegate migrate lint STACK              pending migrations' SQL: Squawk + own rules
    releasegate migrate rehearse STACK          on a restored backup, in a scratch database
    releasegate migrate resolve STACK NAME --applied|--rolled-back --reason TEXT
    releasegate migrate rollback STACK --to NAME   the tool's own downgrade

    The stack's `migrations:` section names the tool (django, alembic, prisma, sql), where
    it runs, and the backup source whose database it migrates. The tool reads the database
    URL from the variable `url_env` (default DATABASE_URL), set by releasegate each run.
    """


@migrate.command(help=LINT_HELP, short_help="Check migrations for unsafe changes.")
@click.argument("stack", required=False)
@click.option(
    "--sql",
    "files",
    multiple=True,
    metavar="FILE",
    type=click.Path(path_type=Path),
    help="A SQL migration file (repeatable).",
)
@click.option(
    "--dialect",
    type=click.Choice(["postgresql", "mysql", "sqlite"]),
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
@click.pass_context
def lint(
    cctx: click.Context,
    stack: str | None,
    files: tuple[Path, ...],
    dialect: str,
    as_json: bool,
    fail_on: str,
) -> int:
    from releasegate.errors import BadInput, ExitCode
    from releasegate.migrations.sqlrules import Risk, at_or_above, lint_file

    if (stack is None) == (not files):
        raise BadInput("give a STACK or --sql FILE (not both)", hint="releasegate migrate lint -h")
    threshold = Risk(fail_on.upper())
    if stack is not None:
        return _lint_stack(cctx.find_object(App), stack, threshold, as_json)
    findings: list[Finding] = []
    for path in files:
        findings.extend(lint_file(path, dialect))  # type: ignore[arg-type]
    failing = at_or_above(findings, threshold)
    code = ExitCode.REFUSED if failing else ExitCode.OK

    if as_json:
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
        echo(f"{f.file}:{f.line}: {f.risk.value} {f.rule}: {f.message}")
        echo(f"  hint: {f.hint}")
    names = ", ".join(str(p) for p in files)
    if findings:
        by_rule = ", ".join(f"{rule} {n}" for rule, n in _by_rule(findings).items())
        level = threshold.value
        verdict = f"{len(failing)} at or above {level}" if failing else f"none at {level}+"
        echo(
            f"{len(findings)} finding{'s' if len(findings) != 1 else ''} ({by_rule}); "
            f"{verdict} [{names}]"
        )
    else:
        echo(f"ok: no finding ({dialect}) [{names}]")
    return int(code)


def _by_rule(findings: list[Finding]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.rule] = counts.get(f.rule, 0) + 1
    return counts


pass_app = click.make_pass_decorator(App)


def _ops(app: App) -> Any:
    from releasegate.engine.migrations import MigrationOps

    return MigrationOps(app.config, app.ledger, actor=app.actor, emit=app.render_event)


def _lint_stack(app: App | None, stack: str, threshold: Any, as_json: bool) -> int:
    from releasegate.errors import ExitCode

    assert app is not None
    status, report = _ops(app).migrate_lint(stack)
    failing = report.at_or_above(threshold)
    code = ExitCode.REFUSED if failing else ExitCode.OK
    if as_json:
        for f in report.findings:
            print_json({"finding": f})
        print_json(
            {
                "summary": {
                    "stack": stack,
                    "tool": status.tool,
                    "migrations": list(report.migrations),
                    "fail_on": threshold.value,
                    "findings": len(report.findings),
                    "failing": len(failing),
                    "notes": list(report.notes),
                    "exit_code": int(code),
                }
            }
        )
        return int(code)
    for f in report.findings:
        echo(f"{f.migration}:{f.line}: {f.risk.value} {f.rule} [{f.source}]: {f.message}")
        if f.hint:
            echo(f"  hint: {f.hint}")
    for note in report.notes:
        echo(f"note: {note}")
    pending = ", ".join(report.migrations) or "none"
    verdict = (
        f"{len(failing)} at or above {threshold.value}"
        if failing
        else f"none at {threshold.value}+"
    )
    echo(f"{len(report.findings)} finding(s) in pending migrations ({pending}); {verdict}")
    return int(code)


@migrate.command()
@click.argument("stack")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: migrations and drift.")
@pass_app
def status(app: App, stack: str, as_json: bool) -> int:
    """Applied, pending and failed migrations of STACK's database, and drift.

    Drift is seed 002's case: a pending migration whose tables, columns or indexes the
    database already has (the history lacks a record the schema reflects). It is shown
    with its evidence: the information_schema rows and the history table's lookup.

    \b
    Examples:
      releasegate migrate status shop-prod
      releasegate migrate status shop-prod --json | jq '.pending'

    Exit codes: 0 clean, 3 pending, failed or drift found, 1 the tool failed, 2 bad input.
    """
    from releasegate.engine.migrations import status_evidence
    from releasegate.errors import ExitCode

    st = _ops(app).migrate_status(stack)
    code = ExitCode.OK if st.clean else ExitCode.REFUSED
    if as_json:
        print_json(
            {
                "stack": stack,
                **status_evidence(st),
                "head": st.head,
                "migrations": [{"name": m.name, "state": m.state, "detail": m.detail}
                               for m in st.migrations],
                "evidence": list(st.evidence),
                "clean": st.clean,
            }
        )  # fmt: skip
        return int(code)
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for col in ("migration", "state", "detail"):
        table.add_column(col)
    drifted = {d.migration for d in st.drift}
    style = {"applied": "green", "pending": "yellow", "failed": "red"}
    for m in st.migrations:
        state = "DRIFT" if m.name in drifted else m.state
        table.add_row(safe(m.name), f"[{style.get(m.state, 'red')}]{state}[/]", safe(m.detail))
    app.console.print(table)
    for d in st.drift:
        app.console.print(f"[red]drift[/]: {safe(d.migration)}: {safe(d.verdict)}")
        for line in d.evidence:
            app.console.print(f"  evidence: {line}", markup=False)
        app.console.print(f"  hint: {d.hint}", markup=False)
    for note in st.notes:
        app.console.print(f"note: {note}", markup=False)
    app.console.print(
        f"{st.tool} on {st.database}: {len(st.applied)} applied, {len(st.pending)} pending, "
        f"{len(st.failed)} failed, {len(st.drift)} drift",
        markup=False,
    )
    return int(code)


@migrate.command()
@click.argument("stack")
@click.argument("name")
@click.option("--applied", "mark", flag_value="applied", help="Record NAME as applied.")
@click.option("--rolled-back", "mark", flag_value="rolled-back", help="Record NAME as not applied.")
@click.option("--reason", default="", help="Why (required for env prod); kept in the ledger.")
@click.option("--force", is_flag=True, help="--applied although the evidence cannot show it.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def resolve(
    app: App, stack: str, name: str, mark: str | None, reason: str, force: bool, as_json: bool
) -> int:
    """Repair the migration history (seed 002): record NAME as applied or rolled back.

    First the evidence is captured and kept in the ledger: the migration's state, the
    information_schema rows of what it creates, the history table's row. --applied is
    refused unless the database already has everything the migration creates (drift
    "applied-without-record"), or the migration failed; --force overrides that after a
    check by hand. Then the tool's own command does it (prisma migrate resolve, Django
    migrate APP NAME --fake, alembic stamp; the history row for SQL files) and the status
    is read again to confirm.

    \b
    Examples:
      releasegate migrate resolve shop-prod 20250821015630_add_shipment_file_field \\
          --applied --reason "column added by hand in INC-42"
      releasegate migrate resolve shop-staging shop.0003_order_region --rolled-back

    Exit codes: 0 resolved, 3 refused (prod without --reason, or the evidence does not
    support it; nothing changed), 1 the tool failed, 2 bad input.
    """
    from releasegate.errors import BadInput

    if mark is None:
        raise BadInput("say --applied or --rolled-back")
    app.json = as_json
    out = _ops(app).migrate_resolve(
        stack, name, applied=mark == "applied", reason=reason, force=force
    )
    return app.finish(out)


@migrate.command()
@click.argument("stack")
@click.option("--version", "version", default="", help="The release these migrations ship in.")
@click.option("--backup", "backup_id", default=None, help="Backup id (default: the newest).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def rehearse(app: App, stack: str, version: str, backup_id: str | None, as_json: bool) -> int:
    """Run the pending migrations on a restored copy of the data first (seed 004).

    The newest complete backup (or --backup) of the migration's database is restored into
    a scratch database; the tool's own command migrates it there (timed); the result must
    be clean (nothing pending or failed, no drift) and pass the source's sanity checks;
    then `migrations.previous_smoke`, if set, runs against the migrated copy: the previous
    release must still work on the new schema, or a rollback of the code alone would fail
    (verdict rollback-unsafe). The scratch database is dropped; the verdict is recorded
    for this stack, --version and the migration head, where a deploy gate finds it.

    \b
    Examples:
      releasegate backup shop-prod prod && releasegate migrate rehearse shop-prod --version v42
      releasegate migrate rehearse shop-prod --backup 20260130_143022 --json

    Exit codes: 0 pass, 1 fail or rollback-unsafe, 2 bad input (no backup, no source).
    """
    app.json = as_json
    out = _ops(app).migrate_rehearse(stack, version=version, backup_id=backup_id)
    return app.finish(out)


@migrate.command()
@click.argument("stack")
@click.option("--to", "to", default=None, help="Django APP.NAME (or APP.zero), Alembic REV.")
@click.option(
    "--to-release",
    "release",
    default=None,
    metavar="VERSION",
    help="The migrations VERSION ran on when it was last deployed here (the ledger's record).",
)
@click.option("--reason", default="", help="Why (required for env prod).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def rollback(
    app: App, stack: str, to: str | None, release: str | None, reason: str, as_json: bool
) -> int:
    """Undo migrations with the tool's own downgrade, after a backup of the database.

    Django: migrate APP NAME (APP.zero undoes the app's migrations, seed 003); Alembic:
    downgrade REV. --to-release VERSION goes back to what VERSION's deploy recorded (per
    Django app its last migration, or zero); it only goes back, never forward. Prisma and
    SQL files have no down migrations: refused, with the hint to restore the backup taken
    before the deploy (rollback --with-db, or restore).

    \b
    Examples:
      releasegate migrate rollback shop-staging --to shop.0002_order_note
      releasegate migrate rollback taizhang-prod --to supplier_eval.zero --reason "seed 003"
      releasegate migrate rollback taizhang-prod --to-release v41 --reason "v42 reverted"
      releasegate migrate rollback billing-prod --to a1b2c3d4e5f6 --reason "INC-7"

    Exit codes: 0 rolled back, 3 refused, 1 the tool failed, 2 bad input.
    """
    app.json = as_json
    return app.finish(_ops(app).migrate_rollback(stack, to, reason=reason, release=release))
