"""What every tool adapter has: the context it runs in and the operations it offers.

An adapter calls the tool's own commands (argv lists, run in the tool's folder, with the
database URL in one environment variable) and reads their machine-readable output with
pure parsers that live beside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from releasegate.errors import BadInput, Refused
from releasegate.migrations.dbclient import QUERY_TIMEOUT, DbClient
from releasegate.migrations.model import Status, ToolFailed
from releasegate.transport.base import CommandResult
from releasegate.transport.local import LocalTransport

# Migration names reach argv and SQL literals: letters, digits, '_', '-', '.' only.
NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name) or ".." in name:
        raise BadInput(
            f"migration name {name[:80]!r} is not allowed",
            hint="letters, digits, '_', '-' and '.' as the tool names it",
        )
    return name


def literal(value: str) -> str:
    """A SQL string literal for a value already checked with NAME_RE (or a user name)."""
    return "'" + value.replace("\\", "").replace("'", "''") + "'"


def table_exists(client: DbClient, database: str, table: str) -> bool:
    """Whether `table` (a plain identifier, checked in config) exists in `database`."""
    if client.dialect == "sqlite":
        from releasegate.migrations import sqlitedb

        return sqlitedb.table_exists(database, table, deadline_s=QUERY_TIMEOUT)
    schema = "current_schema()" if client.dialect == "postgresql" else "DATABASE()"
    rows = client.query(
        database,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = "
        f"{schema} AND table_name = {literal(table)}",
    )
    return bool(rows) and rows[0][0].strip() not in ("", "0")


@dataclass(frozen=True)
class ToolContext:
    tool: str
    argv: tuple[str, ...]  # the tool's entry, e.g. ("python", "manage.py")
    cwd: Path
    url_env: str
    client: DbClient
    database: str  # the database to act on: the live one or a scratch copy
    folder: str = "migrations"  # sql / prisma: the migrations folder under cwd
    history_table: str = "releasegate_schema_history"
    apps: tuple[str, ...] = ()
    timeout: float = 3600.0
    actor: str = "releasegate"
    path_env: str | None = None  # sqlite: also the file's path in this variable

    def env(self) -> dict[str, str]:
        return {
            self.url_env: self.client.url(self.database),
            **self.client.path_env(self.database, self.path_env),
        }

    def run(self, *args: str, timeout: float | None = None) -> CommandResult:
        """The tool with `args`; output redacted (the URL's password never shows)."""
        if not self.argv:
            raise ToolFailed(f"{self.tool}: no command to run")
        result = LocalTransport().run(
            [*self.argv, *args], cwd=self.cwd, env=self.env(), timeout=timeout or self.timeout
        )
        redact = self.client.redact
        url = self.client.url(self.database)
        return replace(
            result,
            stdout=redact(result.stdout).replace(url, "<url>"),
            stderr=redact(result.stderr).replace(url, "<url>"),
        )

    def run_ok(self, *args: str) -> CommandResult:
        result = self.run(*args)
        if not result.ok:
            raise ToolFailed(
                f"{' '.join([*self.argv, *args])}: {describe(result)}",
                output=result.stdout + result.stderr,
            )
        return result


def describe(result: CommandResult) -> str:
    """`exit 1: <last line of stderr>` or why it did not run."""
    if result.error or result.timed_out:
        return result.describe()
    lines = [x for x in (result.stderr or result.stdout).splitlines() if x.strip()]
    return f"exit {result.exit_code}" + (f": {lines[-1].strip()[:300]}" if lines else "")


class Adapter(Protocol):
    ctx: ToolContext

    @property
    def dialect(self) -> str: ...
    def status(self) -> Status: ...
    def migration_sql(self, names: list[str]) -> list[tuple[str, str]]:
        """(name, SQL) of each named migration, as the tool would run it."""
        ...

    def history_evidence(self, name: str) -> str: ...
    def resolve_hint(self) -> str: ...
    def apply(self) -> CommandResult: ...
    def resolve(self, name: str, *, applied: bool, status: Status) -> CommandResult: ...
    def rollback(self, to: str, *, status: Status) -> CommandResult: ...


class ToolAdapter:
    """What every adapter shares: its context, and the SQL dialect of its database."""

    def __init__(self, ctx: ToolContext) -> None:
        self.ctx = ctx

    @property
    def dialect(self) -> str:
        return self.ctx.client.dialect


class FolderAdapter(ToolAdapter):
    """An adapter that reads migration files itself (Prisma's folders, plain SQL files)."""

    @property
    def folder(self) -> Path:
        return self.ctx.cwd / self.ctx.folder


def no_rollback(tool: str) -> Refused:
    return Refused(
        f"{tool} has no down migrations: releasegate will not guess one",
        hint="restore the backup taken before the deploy: `releasegate rollback STACK ENV "
        "--with-db`, or `releasegate restore STACK ENV --from BACKUP`",
    )
