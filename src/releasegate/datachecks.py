"""Data checks (seed 004's post-deploy SQL): a smoke check of kind `sql` runs one read-only
query on a database of the stack's `backup.sources` and holds its answer to an
expectation. They run on this machine, where backups connect from, once per smoke step.

Read-only, bounded: SQLite is opened with `mode=ro` and `PRAGMA query_only`, and a
progress handler stops a statement past its time; PostgreSQL runs the query inside `BEGIN
TRANSACTION READ ONLY` with `statement_timeout` (and `default_transaction_read_only` for
the session); MySQL/MariaDB inside `START TRANSACTION READ ONLY`. One statement only (no
`;` inside), at most `max_rows` rows and `max_bytes` bytes are judged, and the client
process is killed past the check's timeout. Credentials come from the source as for its
backups (PGPASSWORD in the child's environment, a 0600 option file for MySQL)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from contextlib import closing
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from releasegate.model import CheckResult
from releasegate.transport.local import LocalTransport

if TYPE_CHECKING:
    from releasegate.backup.from_config import Source
    from releasegate.config.schema import SqlCheck, StackConfig

Rows = list[list[str]]
EXCERPT_ROWS = 5


class QueryRefused(ValueError):
    pass


def one_statement(sql: str) -> str:
    """The query without its trailing `;`; more than one statement is refused (a second
    one could end the read-only transaction)."""
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise QueryRefused("the query is empty")
    if ";" in text:
        raise QueryRefused("one statement only: the query contains ';'")
    return text


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _cap(rows: Rows, max_rows: int, max_bytes: int) -> tuple[Rows, bool]:
    """At most `max_rows` rows and `max_bytes` bytes of cells; True if anything was cut."""
    kept: Rows = []
    size = 0
    for row in rows:
        size += sum(len(c.encode("utf-8", "replace")) for c in row)
        if len(kept) >= max_rows or size > max_bytes:
            return kept, True
        kept.append(row)
    return kept, False


# ---- the databases ---------------------------------------------------------------------------


def query_sqlite(path: Path, sql: str, *, timeout: float, max_rows: int) -> tuple[Rows, bool]:
    """Rows of one query on an SQLite file opened read-only; (rows, more rows existed)."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    deadline = time.monotonic() + timeout
    with closing(sqlite3.connect(uri, uri=True, timeout=min(timeout, 30.0))) as conn:
        conn.execute("PRAGMA query_only = ON")
        # Called every 1000 virtual machine steps: a non-zero answer interrupts the query.
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
        cursor = conn.execute(sql)
        rows = cursor.fetchmany(max_rows + 1)
    return [[_cell(v) for v in row] for row in rows[:max_rows]], len(rows) > max_rows


def _pg_script(sql: str, timeout: float) -> str:
    ms = max(1, int(timeout * 1000))
    return f"SET statement_timeout = {ms};\nBEGIN TRANSACTION READ ONLY;\n{sql}\n;\nROLLBACK;\n"


def _my_script(sql: str) -> str:
    return f"START TRANSACTION READ ONLY;\n{sql}\n;\nROLLBACK;\n"


def query_client(source: Source, sql: str, *, timeout: float, secrets: Mapping[str, str]) -> Rows:
    """Rows of one query through psql or the mysql client (the script on stdin)."""
    from releasegate.backup.sources import (
        MySQLSource,
        PostgresSource,
        redactor_for,
        resolve_password,
    )

    transport = LocalTransport()
    if isinstance(source, PostgresSource):
        password = resolve_password(source.name, source.password_env, secrets)
        env = {"PGOPTIONS": "-c default_transaction_read_only=on"}
        if password is not None:
            env["PGPASSWORD"] = password
        argv = source.psql_argv(source.database, ["-A", "-t", "-F", "\t", "-f", "-"],
                                with_password=password is not None)  # fmt: skip
        result = transport.run(argv, env=env, timeout=timeout + 5, stdin=_pg_script(sql, timeout))
        redact = redactor_for(secrets, password)
    elif isinstance(source, MySQLSource):
        extra = ["--batch", "--skip-column-names", "--raw"]
        with source.client(source.database, extra, secrets=secrets) as (argv, env):
            result = transport.run(argv, env=env, timeout=timeout, stdin=_my_script(sql))
        redact = redactor_for(secrets, resolve_password(source.name, source.password_env, secrets))
    else:
        raise QueryRefused(f"source {source.name} is not a database")
    if not result.ok:
        said = (redact(result.stderr).strip().splitlines() or [result.describe()])[-1]
        raise QueryRefused(f"the query failed: {said[:300]}")
    return [line.split("\t") for line in result.stdout.splitlines() if line != ""]


# ---- judging ---------------------------------------------------------------------------------


def _number(text: str) -> Decimal | None:
    try:
        return Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None


def judge(check: SqlCheck, rows: Rows) -> tuple[bool, str]:
    """(passed, what was found against what was expected)."""
    if check.empty is not None:
        if check.empty:
            return (not rows, "no rows" if not rows else f"{len(rows)} row(s), expected none")
        return (bool(rows), f"{len(rows)} row(s)" if rows else "no rows, expected at least one")
    if not rows or not rows[0]:
        return False, "no rows: nothing to compare"
    first = rows[0][0]
    if check.equals is not None:
        want = str(check.equals)
        return first == want, f"{first!r}" + (
            " as expected" if first == want else f", expected {want!r}"
        )
    value = _number(first)
    if value is None:
        return False, f"{first[:60]!r} is not a number"
    problems = []
    if check.at_least is not None and value < Decimal(str(check.at_least)):
        problems.append(f"below at_least {check.at_least}")
    if check.at_most is not None and value > Decimal(str(check.at_most)):
        problems.append(f"above at_most {check.at_most}")
    bounds = [f"{k} {v}" for k in ("at_least", "at_most") if (v := getattr(check, k)) is not None]
    if problems:
        return False, f"{first}: {', '.join(problems)}"
    return True, f"{first} ({', '.join(bounds)})"


def sql_check(check: SqlCheck, source: Source, *, secrets: Mapping[str, str]) -> CheckResult:
    """One `sql` check; its evidence: the source, a few rows (bounded), the time taken."""
    from releasegate.backup.sources import SQLiteSource

    started = time.monotonic()
    evidence: dict[str, Any] = {"source": source.name, "kind": source.kind}
    try:
        sql = one_statement(check.sql)
        if isinstance(source, SQLiteSource):
            rows, more = query_sqlite(
                source.db_path, sql, timeout=check.timeout, max_rows=check.max_rows
            )
        else:
            rows = query_client(source, sql, timeout=check.timeout, secrets=secrets)
            more = len(rows) > check.max_rows
        rows, cut = _cap(rows, check.max_rows, check.max_bytes)
    except (QueryRefused, sqlite3.Error, OSError) as exc:
        evidence["duration_s"] = round(time.monotonic() - started, 3)
        why = "interrupted: past its timeout" if "interrupted" in str(exc) else str(exc)
        return CheckResult(
            check.name, False, f"sql on {source.name}: {why}", evidence,
            hint="run the query by hand against the source; a data check is read-only and "
            "one statement",
        )  # fmt: skip
    ok, found = judge(check, rows)
    evidence.update(
        rows=[[c[:200] for c in r] for r in rows[:EXCERPT_ROWS]],
        row_count=len(rows),
        duration_s=round(time.monotonic() - started, 3),
        **({"truncated": True} if more or cut else {}),
    )
    return CheckResult(check.name, ok, f"sql on {source.name}: {found}", evidence)


def sql_checks(stack: StackConfig) -> list[SqlCheck]:
    from releasegate.config.schema import SqlCheck

    return [c for c in stack.smoke if isinstance(c, SqlCheck)]


def run_data_checks(stack: StackConfig, secrets: Mapping[str, str]) -> list[CheckResult]:
    """Every `sql` check of the stack, in order (all run: the evidence is wanted whole)."""
    from releasegate.backup.from_config import sources_for

    sources = {s.name: s for s in sources_for(stack)}
    return [sql_check(c, sources[c.source], secrets=secrets) for c in sql_checks(stack)]


def with_data(
    body: tuple[bool, str, list[CheckResult], dict[str, Any]], data: Sequence[CheckResult]
) -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
    """A smoke step's result with the data checks added: any failure fails the step."""
    if not data:
        return body
    ok, summary, checks, evidence = body
    bad = [c for c in data if not c.ok]
    if bad:
        said = "; ".join(f"{c.name}: {c.summary}" for c in bad)
        summary = said if ok else f"{summary}; {said}"
    else:
        summary += f"; {len(data)} data check(s) passed"
    return ok and not bad, summary, [*checks, *data], evidence
