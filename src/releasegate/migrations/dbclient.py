"""SQL against a migration's database with the database's own client (psql, mariadb/mysql),
reusing a backup source's connection settings and its password handling: PGPASSWORD in the
child's environment, or the source's 0600 option file for MySQL. Never argv. SQLite needs
no client and no password: its "database" is the file's path, queried in process
(sqlitedb.py).

Tools (Django, Alembic, Prisma) get the connection as a URL in one environment variable
(`url`); the URL carries the password, so it only ever goes into a child's environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from releasegate.backup.sources import (
    MySQLSource,
    PostgresSource,
    SQLiteSource,
    redactor_for,
    resolve_password,
)
from releasegate.backup.stream import Redact
from releasegate.errors import ReleasegateError
from releasegate.transport.base import CommandResult
from releasegate.transport.local import LocalTransport

QUERY_TIMEOUT = 300.0


@dataclass(frozen=True)
class DbClient:
    source: PostgresSource | MySQLSource | SQLiteSource
    secrets: Mapping[str, str]

    @property
    def dialect(self) -> str:
        if isinstance(self.source, SQLiteSource):
            return "sqlite"
        return "postgresql" if isinstance(self.source, PostgresSource) else "mysql"

    @property
    def password(self) -> str | None:
        if isinstance(self.source, SQLiteSource):
            return None
        return resolve_password(self.source.name, self.source.password_env, self.secrets)

    @property
    def redact(self) -> Redact:
        return redactor_for(self.secrets, self.password)

    def url(self, database: str) -> str:
        """postgresql://user:password@host:port/db (or mysql://...), parts percent-encoded;
        sqlite:////absolute/path for SQLite (the form dj-database-url and SQLAlchemy read)."""
        s = self.source
        if isinstance(s, SQLiteSource):
            return "sqlite:///" + str(Path(database).resolve())
        auth = quote(s.user, safe="")
        if self.password is not None:
            auth += ":" + quote(self.password, safe="")
        host = f"[{s.host}]" if ":" in s.host else s.host
        return f"{self.dialect}://{auth}@{host}:{s.port}/{quote(database, safe='')}"

    # -- running SQL ---------------------------------------------------------------------------
    def path_env(self, database: str, name: str | None) -> dict[str, str]:
        """SQLite: `name` set to the database file's absolute path (settings that read a
        path, not a URL); nothing for the other dialects or without a name."""
        if name is None or not isinstance(self.source, SQLiteSource):
            return {}
        return {name: str(Path(database).resolve())}

    def run(self, database: str, extra: list[str], *, stdin: str | None = None) -> CommandResult:
        """The client with `extra` options against `database`; stderr and stdout redacted."""
        transport = LocalTransport()
        if isinstance(self.source, SQLiteSource):
            raise QueryFailedText(database, "SQLite has no client program here: use query()")
        if isinstance(self.source, PostgresSource):
            password = self.password
            env = {"PGPASSWORD": password} if password is not None else {}
            # PGPASSWORD is always passed into a container by name: psql -w never prompts.
            argv = self.source.psql_argv(database, extra, with_password=True)
            result = transport.run(argv, env=env, timeout=QUERY_TIMEOUT, stdin=stdin)
        else:
            with self.source.client(database, extra, secrets=self.secrets) as (argv, env):
                result = transport.run(argv, env=env, timeout=QUERY_TIMEOUT, stdin=stdin)
        redact = self.redact
        return CommandResult(
            argv=result.argv,
            exit_code=result.exit_code,
            stdout=redact(result.stdout),
            stderr=redact(result.stderr),
            duration_s=result.duration_s,
            timed_out=result.timed_out,
            error=result.error,
        )

    def query(self, database: str, sql: str) -> list[list[str]]:
        """Rows of one query, as lists of column texts (NULL is an empty string)."""
        if isinstance(self.source, SQLiteSource):
            from releasegate.migrations import sqlitedb

            try:
                return sqlitedb.query(database, sql, deadline_s=QUERY_TIMEOUT)
            except sqlitedb.SQLiteQueryFailed as exc:
                raise QueryFailedText(database, exc.message) from None
        if isinstance(self.source, PostgresSource):
            extra = ["-A", "-t", "-F", "\t", "-c", sql]
        else:
            extra = ["--batch", "--skip-column-names", "--raw", "-e", sql]
        result = self.run(database, extra)
        if not result.ok:
            raise QueryFailed(database, result)
        return [line.split("\t") for line in result.stdout.splitlines() if line.strip()]

    def script(self, database: str, sql: str, *, single_transaction: bool) -> CommandResult:
        """Run a SQL script read from stdin (never argv: it may be large)."""
        if isinstance(self.source, SQLiteSource):
            return _sqlite_script(database, sql, single_transaction=single_transaction)
        if isinstance(self.source, PostgresSource):
            extra = ["-1", "-f", "-"] if single_transaction else ["-f", "-"]
        else:
            extra = ["--batch"]
        return self.run(database, extra, stdin=sql)


def _sqlite_script(database: str, sql: str, *, single_transaction: bool) -> CommandResult:
    """A script on an SQLite file, reported like a client's run (exit 1 + its message)."""
    import time

    from releasegate.migrations import sqlitedb

    t0 = time.monotonic()
    argv = ("sqlite3-module", "executescript", database)
    try:
        sqlitedb.script(
            database, sql, single_transaction=single_transaction, deadline_s=QUERY_TIMEOUT
        )
    except sqlitedb.SQLiteQueryFailed as exc:
        return CommandResult(argv, 1, "", f"Error: {exc.message}\n", time.monotonic() - t0)
    return CommandResult(argv, 0, "", "", time.monotonic() - t0)


class QueryFailedText(ReleasegateError):
    """A query on an SQLite file failed (there is no client run to show)."""

    def __init__(self, database: str, message: str) -> None:
        super().__init__(f"query on {database} failed: {message}")


class QueryFailed(ReleasegateError):
    def __init__(self, database: str, result: CommandResult) -> None:
        line = (result.stderr.strip().splitlines() or [result.describe()])[-1]
        super().__init__(f"query on {database} failed: {line}")
        self.result = result
