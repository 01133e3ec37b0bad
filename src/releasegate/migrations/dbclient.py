"""SQL against a migration's database with the database's own client (psql, mariadb/mysql),
reusing a backup source's connection settings and its password handling: PGPASSWORD in the
child's environment, or the source's 0600 option file for MySQL. Never argv.

Tools (Django, Alembic, Prisma) get the connection as a URL in one environment variable
(`url`); the URL carries the password, so it only ever goes into a child's environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from releasegate.backup.sources import (
    MySQLSource,
    PostgresSource,
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
    source: PostgresSource | MySQLSource
    secrets: Mapping[str, str]

    @property
    def dialect(self) -> str:
        return "postgresql" if isinstance(self.source, PostgresSource) else "mysql"

    @property
    def password(self) -> str | None:
        return resolve_password(self.source.name, self.source.password_env, self.secrets)

    @property
    def redact(self) -> Redact:
        return redactor_for(self.secrets, self.password)

    def url(self, database: str) -> str:
        """postgresql://user:password@host:port/db (or mysql://...), parts percent-encoded."""
        s = self.source
        auth = quote(s.user, safe="")
        if self.password is not None:
            auth += ":" + quote(self.password, safe="")
        host = f"[{s.host}]" if ":" in s.host else s.host
        return f"{self.dialect}://{auth}@{host}:{s.port}/{quote(database, safe='')}"

    # -- running SQL ---------------------------------------------------------------------------
    def run(self, database: str, extra: list[str], *, stdin: str | None = None) -> CommandResult:
        """The client with `extra` options against `database`; stderr and stdout redacted."""
        transport = LocalTransport()
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
        if isinstance(self.source, PostgresSource):
            extra = ["-1", "-f", "-"] if single_transaction else ["-f", "-"]
        else:
            extra = ["--batch"]
        return self.run(database, extra, stdin=sql)


class QueryFailed(ReleasegateError):
    def __init__(self, database: str, result: CommandResult) -> None:
        line = (result.stderr.strip().splitlines() or [result.describe()])[-1]
        super().__init__(f"query on {database} failed: {line}")
        self.result = result
