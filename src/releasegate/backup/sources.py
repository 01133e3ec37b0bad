"""What a backup set holds: one frozen dataclass per kind of source.

Each source has pure argv builders (tested as data) and four actions: `dump` (stream the
tool's output through zstd into a file), `restore_to_scratch` (restore into a temporary
database or file that nothing else uses), `drop_scratch`, and `restore_live` (over the live
database). Passwords come from the variable named by `password_env`, looked up in the
stack's .env values (`secrets`) then in the environment; they reach the tools only through
the child's environment (PGPASSWORD, MYSQL_PWD with `docker exec -e NAME`) or a 0600 option
file deleted afterwards: never argv, never the manifest, never an error message.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar, Protocol

from releasegate.backup.stream import (
    BackupFailed,
    ProgressFn,
    Redact,
    StreamResult,
    compress_file,
    decompress_to_file,
    feed_zstd,
    last_line,
    stream_to_zstd,
    tool_label,
)
from releasegate.errors import BadInput
from releasegate.redact import SECRET_NAME, Redactor
from releasegate.transport.base import CommandResult
from releasegate.transport.local import LocalTransport

SCRATCH_PREFIX = "rg_verify_"
SHORT_TIMEOUT = 300.0  # createdb, dropdb, a sanity query, --version
DEFAULT_TIMEOUT = 6 * 3600.0  # a dump or a restore

_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DB_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_$-]{0,62}$")
_HOST = re.compile(r"^[A-Za-z0-9_.:\[\]][A-Za-z0-9_.:\[\]-]{0,252}$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,62}$")
_CONTAINER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


# --- sanity checks --------------------------------------------------------------------------

_EXPECT = re.compile(r"^\s*(>=|<=|!=|==|=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
_OPS = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "=": lambda a, b: a == b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


@dataclass(frozen=True)
class Expectation:
    op: str
    value: Decimal

    def holds(self, number: Decimal) -> bool:
        return bool(_OPS[self.op](number, self.value))

    def __str__(self) -> str:
        return f"{self.op}{self.value}"


def parse_expect(text: str) -> Expectation:
    """`>0`, `>=10`, `=42`, `<5`, `<=5`, `!=0` (a number after one comparison)."""
    match = _EXPECT.match(text)
    if not match:
        raise BadInput(
            f"sanity check expectation {text!r} is not a comparison with a number",
            hint="write it like >0, >=10, =42, <5 or !=0",
        )
    return Expectation("=" if match[1] == "==" else match[1], Decimal(match[2]))


def parse_number(output: str) -> Decimal:
    """The single number a sanity query printed; ValueError says what came instead."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if len(lines) != 1:
        raise ValueError(f"expected a single number, got {len(lines)} lines")
    cells = lines[0].split("\t")
    if len(cells) != 1:
        raise ValueError(f"expected a single number, got {len(cells)} columns")
    try:
        number = Decimal(cells[0])
    except InvalidOperation:
        raise ValueError(f"expected a single number, got {cells[0][:80]!r}") from None
    if not number.is_finite():
        raise ValueError(f"expected a single number, got {cells[0]!r}")
    return number


@dataclass(frozen=True)
class SanityCheck:
    """A query run on the scratch database after a restore; it must print one number that
    satisfies `expect` (`>0`, `>=10`, `=42`)."""

    query: str
    expect: str

    def __post_init__(self) -> None:
        if not self.query.strip():
            raise BadInput("sanity check: the query is empty")
        parse_expect(self.expect)

    def judge(self, output: str) -> SanityResult:
        try:
            number = parse_number(output)
        except ValueError as exc:
            return SanityResult(self.query, self.expect, False, None, str(exc))
        expectation = parse_expect(self.expect)
        ok = expectation.holds(number)
        verdict = "holds" if ok else "does not hold"
        return SanityResult(
            self.query, self.expect, ok, str(number), f"{number} {expectation}: {verdict}"
        )


@dataclass(frozen=True)
class SanityResult:
    query: str
    expect: str
    ok: bool
    value: str | None
    detail: str


# --- common -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scratch:
    """A restored copy nothing else uses: a temporary database or a temporary file."""

    source: str
    kind: str
    name: str  # the scratch database, or the temporary file
    path: Path | None = None
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class DumpResult:
    stream: StreamResult
    tool: str
    tool_version: str


class Source(Protocol):
    """What `take_backup`, `verify_backup` and `restore_backup` need of a source."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def file_name(self) -> str: ...
    @property
    def checks(self) -> tuple[SanityCheck, ...]: ...

    def describe(self) -> dict[str, Any]: ...
    def dump(
        self, dest: Path, *, secrets: Mapping[str, str], progress: ProgressFn | None = None
    ) -> DumpResult: ...
    def restore_to_scratch(self, file: Path, *, secrets: Mapping[str, str]) -> Scratch: ...
    def run_checks(
        self, scratch: Scratch, *, secrets: Mapping[str, str]
    ) -> tuple[SanityResult, ...]: ...
    def drop_scratch(self, scratch: Scratch, *, secrets: Mapping[str, str]) -> None: ...
    def restore_live(self, file: Path, *, secrets: Mapping[str, str]) -> str: ...


def _check(pattern: re.Pattern[str], value: str, what: str, source: str) -> None:
    if not pattern.match(value):
        raise BadInput(f"backup source {source!r}: {what} {value!r} is not allowed")


def _check_common(
    name: str, password_env: str | None, container: str | None, checks: Sequence[object]
) -> None:
    if not _SOURCE_NAME.match(name):
        raise BadInput(
            f"backup source name {name!r} is not allowed",
            hint="letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    if password_env is not None:
        _check(_ENV_NAME, password_env, "password_env", name)
    if container is not None:
        _check(_CONTAINER, container, "container", name)
    for check in checks:
        if not isinstance(check, SanityCheck):
            raise BadInput(f"backup source {name!r}: checks must be SanityCheck values")


def resolve_password(
    source: str, password_env: str | None, secrets: Mapping[str, str]
) -> str | None:
    """The password named by `password_env`: the stack's .env values first, then the
    environment. None when no variable is named (a ~/.pgpass or ~/.my.cnf may serve)."""
    if password_env is None:
        return None
    if password_env in secrets:
        return secrets[password_env]
    if password_env in os.environ:
        return os.environ[password_env]
    raise BadInput(
        f"backup source {source!r}: the password variable {password_env} is set neither in "
        "the stack's .env nor in the environment",
        hint=f"set {password_env}, or drop password_env to rely on a pgpass/option file",
    )


def redactor_for(secrets: Mapping[str, str], password: str | None) -> Redact:
    values = [v for k, v in secrets.items() if SECRET_NAME.search(k)]
    if password:
        values.append(password)
    return Redactor(values)


def scratch_name() -> str:
    return SCRATCH_PREFIX + uuid.uuid4().hex[:12]


def _run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = SHORT_TIMEOUT,
) -> CommandResult:
    return LocalTransport().run(argv, env=env, timeout=timeout)


def _failed(source: str, what: str, result: CommandResult, redact: Redact) -> BackupFailed:
    stderr = redact(result.stderr)
    line = last_line(stderr) or last_line(redact(result.stdout))
    how = (
        result.describe()
        if (result.error or result.timed_out)
        else (f"exited with status {result.exit_code}")
    )
    return BackupFailed(
        f"{source!r}: {what}: {tool_label(result.argv)} {how}" + (f": {line}" if line else ""),
        source=source,
        stderr=stderr,
    )


def _feed_failed(source: str, what: str, argv: Sequence[str], code: int, stderr: str) -> str:
    line = last_line(stderr)
    return f"{source!r}: {what}: {tool_label(argv)} exited with status {code}" + (
        f": {line}" if line else ""
    )


def _version(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    result = _run(argv, env=env, timeout=60)
    if not result.ok:
        return f"unknown ({result.describe()})"
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    return lines[0] if lines else "unknown"


# --- database servers -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ServerSource:
    """What a database server's source has, PostgreSQL's or MySQL's: where it is (TCP, or
    a container reached with `docker exec`), the password's variable, the sanity checks
    that run on a scratch restore, and how those checks are judged."""

    FORMAT: ClassVar[str]  # the dump's format, as `describe` reports it
    PASSWORD_VAR: ClassVar[str]  # the variable the client reads a password from

    name: str
    database: str
    host: str = "127.0.0.1"
    port: int
    user: str
    password_env: str | None = None
    container: str | None = None
    checks: tuple[SanityCheck, ...] = ()
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        _check_common(self.name, self.password_env, self.container, self.checks)
        _check(_DB_NAME, self.database, "database", self.name)
        _check(_HOST, self.host, "host", self.name)
        _check(_USER, self.user, "user", self.name)
        if not 0 < self.port < 65536:
            raise BadInput(f"backup source {self.name!r}: port {self.port} is out of range")

    def describe(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "container": self.container,
            "format": self.FORMAT,
        }

    def _prefix(self, with_password: bool) -> list[str]:
        """`docker exec` into the container, passing the password variable by name only."""
        if self.container is None:
            return []
        env = ["-e", self.PASSWORD_VAR] if with_password else []
        return ["docker", "exec", "-i", *env, self.container]

    def _check_query(self, database: str, query: str, secrets: Mapping[str, str]) -> CommandResult:
        """A sanity query's result, its stderr redacted (a failing query is reported)."""
        raise NotImplementedError

    def run_checks(
        self, scratch: Scratch, *, secrets: Mapping[str, str]
    ) -> tuple[SanityResult, ...]:
        results = []
        for check in self.checks:
            result = self._check_query(scratch.name, check.query, secrets)
            if not result.ok:
                detail = last_line(result.stderr) or result.describe()
                results.append(SanityResult(check.query, check.expect, False, None, detail))
            else:
                results.append(check.judge(result.stdout))
        return tuple(results)

    @staticmethod
    def _scratch_only(scratch: Scratch) -> None:
        if not scratch.name.startswith(SCRATCH_PREFIX):
            raise BadInput(f"refusing to drop {scratch.name!r}: not a scratch database")


# --- PostgreSQL -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PostgresSource(ServerSource):
    """A PostgreSQL database dumped with `pg_dump -Fc -Z0` (custom format; zstd compresses),
    over TCP or inside a container with `docker exec -i CONTAINER pg_dump ...`."""

    FORMAT: ClassVar[str] = "pg_dump custom (-Fc -Z0)"
    PASSWORD_VAR: ClassVar[str] = "PGPASSWORD"  # noqa: S105 - a name, not a password

    port: int = 5432
    user: str = "postgres"

    @property
    def kind(self) -> str:
        return "postgres"

    @property
    def file_name(self) -> str:
        return f"{self.name}.pgdump.zst"

    # argv builders: pure
    def _conn(self) -> list[str]:
        return ["-h", self.host, "-p", str(self.port), "-U", self.user, "-w"]

    def version_argv(self) -> list[str]:
        return [*self._prefix(False), "pg_dump", "--version"]

    def dump_argv(self, *, with_password: bool = False) -> list[str]:
        return [
            *self._prefix(with_password),
            "pg_dump",
            "-Fc",
            "-Z0",
            *self._conn(),
            "-d",
            self.database,
        ]

    def createdb_argv(self, database: str, *, with_password: bool = False) -> list[str]:
        return [
            *self._prefix(with_password),
            "createdb",
            *self._conn(),
            "-T",
            "template0",
            database,
        ]

    def restore_scratch_argv(self, database: str, *, with_password: bool = False) -> list[str]:
        return [
            *self._prefix(with_password),
            "pg_restore",
            "--no-owner",
            "--exit-on-error",
            *self._conn(),
            "-d",
            database,
        ]

    def query_argv(self, database: str, query: str, *, with_password: bool = False) -> list[str]:
        return [
            *self._prefix(with_password),
            "psql",
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            *self._conn(),
            "-d",
            database,
            "-c",
            query,
        ]

    def psql_argv(
        self, database: str, extra: Sequence[str], *, with_password: bool = False
    ) -> list[str]:
        """psql against `database` with `extra` options, stopping at the first error (for
        callers that run their own SQL: releasegate.migrations)."""
        return [
            *self._prefix(with_password),
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            *self._conn(),
            "-d",
            database,
            *extra,
        ]

    def dropdb_argv(self, database: str, *, with_password: bool = False) -> list[str]:
        return [*self._prefix(with_password), "dropdb", *self._conn(), "--if-exists", database]

    def restore_live_argv(self, *, with_password: bool = False) -> list[str]:
        # One transaction: a restore that fails half way leaves the live database as it was.
        return [
            *self._prefix(with_password),
            "pg_restore",
            "--clean",
            "--if-exists",
            "--single-transaction",
            "--exit-on-error",
            *self._conn(),
            "-d",
            self.database,
        ]

    def child_env(self, password: str | None) -> dict[str, str]:
        return {self.PASSWORD_VAR: password} if password is not None else {}

    # actions
    def _auth(self, secrets: Mapping[str, str]) -> tuple[bool, dict[str, str], Redact]:
        password = resolve_password(self.name, self.password_env, secrets)
        return password is not None, self.child_env(password), redactor_for(secrets, password)

    def dump(
        self, dest: Path, *, secrets: Mapping[str, str], progress: ProgressFn | None = None
    ) -> DumpResult:
        has_pw, env, redact = self._auth(secrets)
        version = _version(self.version_argv())
        stream = stream_to_zstd(
            self.dump_argv(with_password=has_pw),
            dest,
            source=self.name,
            env=env,
            timeout=self.timeout,
            redact=redact,
            progress=progress,
        )
        return DumpResult(stream, "pg_dump", version)

    def restore_to_scratch(self, file: Path, *, secrets: Mapping[str, str]) -> Scratch:
        has_pw, env, redact = self._auth(secrets)
        scratch = scratch_name()
        created = _run(self.createdb_argv(scratch, with_password=has_pw), env=env)
        if not created.ok:
            raise _failed(self.name, f"creating scratch database {scratch}", created, redact)
        try:
            argv = self.restore_scratch_argv(scratch, with_password=has_pw)
            fed = feed_zstd(
                file, argv, source=self.name, env=env, timeout=self.timeout, redact=redact
            )
            if fed.exit_code != 0:
                raise BackupFailed(
                    _feed_failed(
                        self.name, f"restore into {scratch}", argv, fed.exit_code, fed.stderr
                    ),
                    source=self.name,
                    stderr=fed.stderr,
                )
            tables = self._query(scratch, _PG_TABLES, has_pw, env, redact)
        except BaseException:
            _run(self.dropdb_argv(scratch, with_password=has_pw), env=env)
            raise
        return Scratch(
            self.name,
            self.kind,
            scratch,
            evidence=(
                f"pg_restore into scratch database {scratch}: {fed.raw_bytes} bytes "
                f"in {fed.duration_s:.1f}s",
                f"{tables.strip()} tables restored",
            ),
        )

    def _query(
        self, database: str, query: str, has_pw: bool, env: Mapping[str, str], redact: Redact
    ) -> str:
        result = _run(self.query_argv(database, query, with_password=has_pw), env=env)
        if not result.ok:
            raise _failed(self.name, f"query on {database}", result, redact)
        return result.stdout

    def _check_query(self, database: str, query: str, secrets: Mapping[str, str]) -> CommandResult:
        has_pw, env, redact = self._auth(secrets)
        result = _run(self.query_argv(database, query, with_password=has_pw), env=env)
        return dataclasses.replace(result, stderr=redact(result.stderr))

    def drop_scratch(self, scratch: Scratch, *, secrets: Mapping[str, str]) -> None:
        self._scratch_only(scratch)
        has_pw, env, redact = self._auth(secrets)
        result = _run(self.dropdb_argv(scratch.name, with_password=has_pw), env=env)
        if not result.ok:
            raise _failed(self.name, f"dropping scratch database {scratch.name}", result, redact)

    def restore_live(self, file: Path, *, secrets: Mapping[str, str]) -> str:
        has_pw, env, redact = self._auth(secrets)
        argv = self.restore_live_argv(with_password=has_pw)
        fed = feed_zstd(file, argv, source=self.name, env=env, timeout=self.timeout, redact=redact)
        if fed.exit_code != 0:
            raise BackupFailed(
                _feed_failed(
                    self.name, f"restore over {self.database}", argv, fed.exit_code, fed.stderr
                )
                + " (one transaction: the live database was left as it was)",
                source=self.name,
                stderr=fed.stderr,
            )
        return f"pg_restore --clean --if-exists into {self.database} in {fed.duration_s:.1f}s"


_PG_TABLES = (
    "SELECT count(*) FROM information_schema.tables "
    "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
)


# --- MySQL / MariaDB ------------------------------------------------------------------------


@dataclass(frozen=True)
class MySQLTools:
    """The client programs found: MariaDB's (`mariadb-dump`, `mariadb`) or MySQL's."""

    dump: str
    client: str
    flavor: str  # "mariadb" or "mysql"
    version: str


MARIADB_TOOLS = MySQLTools("mariadb-dump", "mariadb", "mariadb", "")
MYSQL_TOOLS = MySQLTools("mysqldump", "mysql", "mysql", "")


def option_file_text(password: str) -> str:
    """A [client] option file carrying the password (escaped for the option-file parser)."""
    escaped = (
        password.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'[client]\npassword="{escaped}"\n'


@dataclass(frozen=True, kw_only=True)
class MySQLSource(ServerSource):
    """A MySQL/MariaDB database dumped with `mysqldump --single-transaction` (one database,
    without CREATE DATABASE / USE, so that it restores into any database name)."""

    FORMAT: ClassVar[str] = "mysqldump SQL (one database, no CREATE DATABASE/USE)"
    PASSWORD_VAR: ClassVar[str] = "MYSQL_PWD"  # noqa: S105 - a name, not a password

    port: int = 3306
    user: str = "root"

    @property
    def kind(self) -> str:
        return "mysql"

    @property
    def file_name(self) -> str:
        return f"{self.name}.sql.zst"

    # argv builders: pure
    def _base(self, tool: str, defaults_file: str | None, with_password: bool) -> list[str]:
        # --defaults-extra-file must come first; it carries the password on the host.
        extra = [f"--defaults-extra-file={defaults_file}"] if defaults_file else []
        return [
            *self._prefix(with_password),
            tool,
            *extra,
            "-h",
            self.host,
            "-P",
            str(self.port),
            "-u",
            self.user,
            "--protocol=TCP",
        ]

    def version_argv(self, tool: str) -> list[str]:
        return [*self._prefix(False), tool, "--version"]

    def dump_argv(
        self, tools: MySQLTools, *, defaults_file: str | None = None, with_password: bool = False
    ) -> list[str]:
        gtid = ["--set-gtid-purged=OFF"] if tools.flavor == "mysql" else []
        return [
            *self._base(tools.dump, defaults_file, with_password),
            "--single-transaction",
            "--quick",
            "--routines",
            "--triggers",
            "--no-tablespaces",
            "--hex-blob",
            "--default-character-set=utf8mb4",
            *gtid,
            self.database,
        ]

    def create_argv(
        self,
        tools: MySQLTools,
        database: str,
        *,
        defaults_file: str | None = None,
        with_password: bool = False,
    ) -> list[str]:
        return [
            *self._base(tools.client, defaults_file, with_password),
            "-e",
            f"CREATE DATABASE `{database}`",
        ]

    def load_argv(
        self,
        tools: MySQLTools,
        database: str,
        *,
        defaults_file: str | None = None,
        with_password: bool = False,
    ) -> list[str]:
        return [
            *self._base(tools.client, defaults_file, with_password),
            "--default-character-set=utf8mb4",
            database,
        ]

    def query_argv(
        self,
        tools: MySQLTools,
        database: str,
        query: str,
        *,
        defaults_file: str | None = None,
        with_password: bool = False,
    ) -> list[str]:
        return [
            *self._base(tools.client, defaults_file, with_password),
            "--batch",
            "--skip-column-names",
            "-e",
            query,
            database,
        ]

    def drop_argv(
        self,
        tools: MySQLTools,
        database: str,
        *,
        defaults_file: str | None = None,
        with_password: bool = False,
    ) -> list[str]:
        return [
            *self._base(tools.client, defaults_file, with_password),
            "-e",
            f"DROP DATABASE IF EXISTS `{database}`",
        ]

    # credentials
    @contextmanager
    def _auth(
        self, secrets: Mapping[str, str]
    ) -> Iterator[tuple[str | None, bool, dict[str, str], Redact]]:
        """(option file, password given?, child env, redactor). On the host the password
        goes in a 0600 option file in a private directory, removed on exit; into a
        container it goes as MYSQL_PWD (`docker exec -e MYSQL_PWD`: the name only)."""
        password = resolve_password(self.name, self.password_env, secrets)
        redact = redactor_for(secrets, password)
        if password is None:
            yield None, False, {}, redact
            return
        if self.container is not None:
            yield None, True, {self.PASSWORD_VAR: password}, redact
            return
        folder = tempfile.mkdtemp(prefix="rg-mysql-")  # mode 0700
        path = os.path.join(folder, "client.cnf")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(option_file_text(password))
            yield path, False, {}, redact
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @contextmanager
    def client(
        self, database: str, extra: Sequence[str], *, secrets: Mapping[str, str]
    ) -> Iterator[tuple[list[str], dict[str, str]]]:
        """(argv, env) of the mysql client against `database` with `extra` options, for
        callers that run their own SQL (releasegate.migrations). The password is handled as
        for a backup: an option file that exists only inside this block."""
        tools = self.detect_tools()
        with self._auth(secrets) as (cnf, has_pw, env, _redact):
            yield [*self._base(tools.client, cnf, has_pw), *extra, database], env

    def detect_tools(self) -> MySQLTools:
        """MariaDB's programs if present (MariaDB 11 images lack the mysql* names), else
        MySQL's; the flavor comes from `--version`."""
        for tools in (MARIADB_TOOLS, MYSQL_TOOLS):
            result = _run(self.version_argv(tools.dump), timeout=60)
            if result.ok:
                version = result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""
                flavor = "mariadb" if "mariadb" in version.lower() else "mysql"
                return MySQLTools(tools.dump, tools.client, flavor, version)
        where = f"in container {self.container}" if self.container else "on this host"
        raise BackupFailed(
            f"{self.name!r}: neither mariadb-dump nor mysqldump runs {where}",
            source=self.name,
            hint="install the MariaDB or MySQL client programs",
        )

    def dump(
        self, dest: Path, *, secrets: Mapping[str, str], progress: ProgressFn | None = None
    ) -> DumpResult:
        tools = self.detect_tools()
        with self._auth(secrets) as (cnf, has_pw, env, redact):
            stream = stream_to_zstd(
                self.dump_argv(tools, defaults_file=cnf, with_password=has_pw),
                dest,
                source=self.name,
                env=env,
                timeout=self.timeout,
                redact=redact,
                progress=progress,
            )
        return DumpResult(stream, tools.dump, tools.version)

    def _load(self, file: Path, database: str, secrets: Mapping[str, str], what: str) -> float:
        tools = self.detect_tools()
        with self._auth(secrets) as (cnf, has_pw, env, redact):
            argv = self.load_argv(tools, database, defaults_file=cnf, with_password=has_pw)
            fed = feed_zstd(
                file, argv, source=self.name, env=env, timeout=self.timeout, redact=redact
            )
        if fed.exit_code != 0:
            raise BackupFailed(
                _feed_failed(self.name, what, argv, fed.exit_code, fed.stderr),
                source=self.name,
                stderr=fed.stderr,
            )
        return fed.duration_s

    def _client(
        self,
        secrets: Mapping[str, str],
        build: Callable[[MySQLTools, str | None, bool], list[str]],
        what: str = "",
    ) -> CommandResult:
        """Run a client command; raise if it fails and `what` names the step, else return
        the result with its stderr redacted (sanity queries report, not raise)."""
        tools = self.detect_tools()
        with self._auth(secrets) as (cnf, has_pw, env, redact):
            result = _run(build(tools, cnf, has_pw), env=env)
        if not result.ok and what:
            raise _failed(self.name, what, result, redact)
        return dataclasses.replace(result, stderr=redact(result.stderr))

    def _create(self, database: str) -> Callable[[MySQLTools, str | None, bool], list[str]]:
        return lambda t, f, pw: self.create_argv(t, database, defaults_file=f, with_password=pw)

    def _drop(self, database: str) -> Callable[[MySQLTools, str | None, bool], list[str]]:
        return lambda t, f, pw: self.drop_argv(t, database, defaults_file=f, with_password=pw)

    def _query(
        self, database: str, query: str
    ) -> Callable[[MySQLTools, str | None, bool], list[str]]:
        return lambda t, f, pw: self.query_argv(
            t, database, query, defaults_file=f, with_password=pw
        )

    def restore_to_scratch(self, file: Path, *, secrets: Mapping[str, str]) -> Scratch:
        scratch = scratch_name()
        self._client(secrets, self._create(scratch), f"creating scratch database {scratch}")
        try:
            took = self._load(file, scratch, secrets, f"restore into {scratch}")
            tables = self._client(secrets, self._query(scratch, _MY_TABLES), f"query on {scratch}")
        except BaseException:
            self._client(secrets, self._drop(scratch))
            raise
        return Scratch(
            self.name,
            self.kind,
            scratch,
            evidence=(
                f"replayed the dump into scratch database {scratch} in {took:.1f}s",
                f"{tables.stdout.strip()} tables restored",
            ),
        )

    def _check_query(self, database: str, query: str, secrets: Mapping[str, str]) -> CommandResult:
        return self._client(secrets, self._query(database, query))

    def drop_scratch(self, scratch: Scratch, *, secrets: Mapping[str, str]) -> None:
        self._scratch_only(scratch)
        self._client(secrets, self._drop(scratch.name), f"dropping scratch database {scratch.name}")

    def restore_live(self, file: Path, *, secrets: Mapping[str, str]) -> str:
        took = self._load(file, self.database, secrets, f"restore over {self.database}")
        return (
            f"replayed the dump into {self.database} in {took:.1f}s (tables in the dump were "
            "dropped and recreated; tables not in the dump were left alone)"
        )


_MY_TABLES = (
    "SELECT COUNT(*) FROM information_schema.tables "
    "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'"
)


# --- SQLite ---------------------------------------------------------------------------------


def _sqlite_uri(path: Path, mode: str) -> str:
    return f"{path.resolve().as_uri()}?mode={mode}"


@dataclass(frozen=True, kw_only=True)
class SQLiteSource:
    """An SQLite database copied with the online backup API (consistent while the app
    writes; never a plain copy of a live file), then compressed."""

    name: str
    path: Path | str
    checks: tuple[SanityCheck, ...] = ()
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        _check_common(self.name, None, None, self.checks)
        object.__setattr__(self, "path", Path(self.path))

    @property
    def db_path(self) -> Path:
        return Path(self.path)

    @property
    def database(self) -> str:
        """What a migration tool is pointed at: the file's absolute path."""
        return str(self.db_path.resolve())

    @property
    def kind(self) -> str:
        return "sqlite"

    @property
    def file_name(self) -> str:
        return f"{self.name}.sqlite3.zst"

    def describe(self) -> dict[str, Any]:
        return {
            "database": str(self.db_path.resolve()),
            "format": "SQLite database file (backup API)",
        }

    def dump(
        self, dest: Path, *, secrets: Mapping[str, str], progress: ProgressFn | None = None
    ) -> DumpResult:
        if not self.db_path.is_file():
            raise BackupFailed(f"{self.name!r}: {self.db_path} does not exist", source=self.name)
        snapshot = dest.with_name(f".{dest.name}.snapshot")
        try:
            try:
                src = sqlite3.connect(_sqlite_uri(self.db_path, "rw"), uri=True, timeout=60)
                with closing(src), closing(sqlite3.connect(snapshot)) as dst:
                    src.backup(dst)
            except sqlite3.Error as exc:
                full = "full" in str(exc).lower()
                raise BackupFailed(
                    f"backup of {self.name!r} failed: "
                    + ("disk full writing the snapshot" if full else "sqlite backup API")
                    + f": {exc}",
                    source=self.name,
                    disk_full=full,
                ) from None
            stream = compress_file(snapshot, dest, source=self.name, progress=progress)
        finally:
            snapshot.unlink(missing_ok=True)
        return DumpResult(stream, "sqlite3 backup API", f"SQLite {sqlite3.sqlite_version}")

    def restore_to_scratch(self, file: Path, *, secrets: Mapping[str, str]) -> Scratch:
        folder = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
        target = folder / "restored.sqlite3"
        try:
            size = _decompress(self.name, file, target)
            with closing(sqlite3.connect(_sqlite_uri(target, "ro"), uri=True)) as conn:
                integrity = [row[0] for row in conn.execute("PRAGMA integrity_check")]
                tables = conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                ).fetchone()[0]
            if integrity != ["ok"]:
                raise BackupFailed(
                    f"{self.name!r}: integrity_check failed: {'; '.join(map(str, integrity))}",
                    source=self.name,
                )
        except sqlite3.Error as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise BackupFailed(
                f"{self.name!r}: the restored file does not open: {exc}", source=self.name
            ) from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return Scratch(
            self.name,
            self.kind,
            str(target),
            target,
            evidence=(
                f"decompressed to a temporary file ({size} bytes)",
                "PRAGMA integrity_check: ok",
                f"{tables} tables",
            ),
        )

    def run_checks(
        self, scratch: Scratch, *, secrets: Mapping[str, str]
    ) -> tuple[SanityResult, ...]:
        assert scratch.path is not None
        results = []
        with closing(sqlite3.connect(_sqlite_uri(scratch.path, "ro"), uri=True)) as conn:
            for check in self.checks:
                try:
                    rows = conn.execute(check.query).fetchall()
                except sqlite3.Error as exc:
                    results.append(SanityResult(check.query, check.expect, False, None, str(exc)))
                    continue
                text = "\n".join("\t".join(str(cell) for cell in row) for row in rows)
                results.append(check.judge(text))
        return tuple(results)

    def drop_scratch(self, scratch: Scratch, *, secrets: Mapping[str, str]) -> None:
        if scratch.path is not None and scratch.path.parent.name.startswith(SCRATCH_PREFIX):
            shutil.rmtree(scratch.path.parent, ignore_errors=True)

    def restore_live(self, file: Path, *, secrets: Mapping[str, str]) -> str:
        """Decompress beside the live file and check the copy, then put it in:

        - with the backup API into the live file (one transaction on the destination, so
          all or nothing; SQLite first recovers whatever -wal or hot -journal lies beside
          the live file, so leftovers cannot mix into the result, and an app's open
          connection sees the restored data);
        - when the live file no longer opens as a database (the reason to restore, often),
          by an atomic rename over it, after its -wal, -shm and -journal are moved aside:
          SQLite would otherwise replay the old file's WAL or journal into the new one.

        Either way the live file must then pass `PRAGMA quick_check`."""
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.db_path.with_name(f".{self.db_path.name}.{uuid.uuid4().hex[:8]}.restore")
        try:
            _decompress(self.name, file, tmp)
            try:
                _sqlite_check(tmp, "PRAGMA integrity_check")
            except sqlite3.Error as exc:
                raise BackupFailed(
                    f"{self.name!r}: {file.name} does not hold a sound database: {exc}",
                    source=self.name,
                ) from None
            try:
                with (
                    closing(sqlite3.connect(_sqlite_uri(tmp, "ro"), uri=True)) as src,
                    closing(sqlite3.connect(self.db_path, timeout=60)) as dst,
                ):
                    src.backup(dst)
                how = f"copied into {self.db_path} with the SQLite backup API"
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                    raise BackupFailed(
                        f"{self.name!r}: restore over {self.db_path} failed: {exc} (a writer "
                        "still holds it: stop the app first)",
                        source=self.name,
                    ) from None
                aside = replace_sqlite_file(tmp, self.db_path)
                how = (
                    f"{self.db_path} did not take the copy ({exc}): replaced by the restored "
                    "file atomically"
                    + (f"; moved aside and removed {', '.join(aside)}" if aside else "")
                )
            try:
                _sqlite_check(self.db_path, "PRAGMA quick_check")
            except sqlite3.Error as exc:
                raise BackupFailed(
                    f"{self.name!r}: {self.db_path} fails quick_check after the restore: {exc}",
                    source=self.name,
                ) from None
        except sqlite3.Error as exc:
            raise BackupFailed(
                f"{self.name!r}: restore over {self.db_path} failed: {exc}", source=self.name
            ) from None
        finally:
            tmp.unlink(missing_ok=True)
        return how


SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


def _sqlite_check(path: Path, pragma: str) -> None:
    """Raise sqlite3.DatabaseError unless `pragma` (integrity_check / quick_check) says ok."""
    with closing(sqlite3.connect(_sqlite_uri(path, "ro"), uri=True, timeout=60)) as conn:
        rows = [str(row[0]) for row in conn.execute(pragma).fetchmany(20)]
    if rows != ["ok"]:
        raise sqlite3.DatabaseError("; ".join(rows))


def replace_sqlite_file(new: Path, live: Path) -> list[str]:
    """Put `new` in place of `live` by rename (atomic on one filesystem), with the old
    file's -wal, -shm and -journal moved aside first and removed after: a leftover WAL or
    hot journal would be replayed into the new file on its next open and corrupt it.
    Writers must be stopped (a process that keeps the old file open keeps the old data).
    Returns the side files that were moved aside."""
    token = uuid.uuid4().hex[:8]
    aside: list[tuple[Path, Path]] = []
    for suffix in SQLITE_SIDECARS:
        side = live.with_name(live.name + suffix)
        if side.exists():
            stale = live.with_name(f".{live.name}{suffix}.{token}.stale")
            os.replace(side, stale)
            aside.append((side, stale))
    os.replace(new, live)
    fd = os.open(live.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename is durable before the old side files go
    finally:
        os.close(fd)
    for _, stale in aside:
        stale.unlink(missing_ok=True)
    return [side.name for side, _ in aside]


def _decompress(source: str, file: Path, target: Path) -> int:
    import zstandard

    try:
        return decompress_to_file(file, target)
    except zstandard.ZstdError as exc:
        target.unlink(missing_ok=True)
        raise BackupFailed(f"{source!r}: {file.name} is corrupt ({exc})", source=source) from None


# --- files ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class FilesSource:
    """Files and folders under `base_dir`, archived with tar and compressed with zstd."""

    name: str
    paths: tuple[str, ...]
    base_dir: Path | str
    timeout: float = DEFAULT_TIMEOUT
    checks: tuple[SanityCheck, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        _check_common(self.name, None, None, ())
        object.__setattr__(self, "base_dir", Path(self.base_dir))
        object.__setattr__(self, "paths", tuple(self.paths))
        if not self.paths:
            raise BadInput(f"backup source {self.name!r}: no paths to archive")
        for p in self.paths:
            parts = Path(p).parts
            if not p or Path(p).is_absolute() or ".." in parts or p.startswith("-"):
                raise BadInput(
                    f"backup source {self.name!r}: path {p!r} must be relative to base_dir "
                    "and stay inside it"
                )

    @property
    def kind(self) -> str:
        return "files"

    @property
    def file_name(self) -> str:
        return f"{self.name}.tar.zst"

    def describe(self) -> dict[str, Any]:
        return {"base_dir": str(self.base.resolve()), "paths": list(self.paths), "format": "tar"}

    def dump_argv(self) -> list[str]:
        return [
            "tar",
            "--create",
            "--file=-",
            "--numeric-owner",
            "-C",
            str(self.base),
            "--",
            *self.paths,
        ]

    @staticmethod
    def list_argv() -> list[str]:
        return ["tar", "--list", "--file=-"]

    @property
    def base(self) -> Path:
        return Path(self.base_dir)

    def extract_argv(self, into: Path | None = None) -> list[str]:
        return ["tar", "--extract", "--file=-", "--numeric-owner", "-C", str(into or self.base)]

    def dump(
        self, dest: Path, *, secrets: Mapping[str, str], progress: ProgressFn | None = None
    ) -> DumpResult:
        version = _version(["tar", "--version"])
        stream = stream_to_zstd(
            self.dump_argv(),
            dest,
            source=self.name,
            timeout=self.timeout,
            redact=redactor_for(secrets, None),
            progress=progress,
        )
        return DumpResult(stream, "tar", version)

    def restore_to_scratch(self, file: Path, *, secrets: Mapping[str, str]) -> Scratch:
        """Reads the whole archive (`tar --list`): the zstd checksum and the tar structure
        are checked without writing the files anywhere."""
        argv = self.list_argv()
        fed = feed_zstd(file, argv, source=self.name, timeout=self.timeout)
        if fed.exit_code != 0:
            raise BackupFailed(
                _feed_failed(self.name, "reading the archive", argv, fed.exit_code, fed.stderr),
                source=self.name,
                stderr=fed.stderr,
            )
        return Scratch(
            self.name,
            self.kind,
            "(tar --list)",
            evidence=(f"tar --list read {fed.raw_bytes} bytes: {fed.stdout_lines} entries",),
        )

    def run_checks(
        self, scratch: Scratch, *, secrets: Mapping[str, str]
    ) -> tuple[SanityResult, ...]:
        return ()

    def drop_scratch(self, scratch: Scratch, *, secrets: Mapping[str, str]) -> None:
        return None

    def restore_live(self, file: Path, *, secrets: Mapping[str, str]) -> str:
        self.base.mkdir(parents=True, exist_ok=True)
        argv = self.extract_argv()
        fed = feed_zstd(file, argv, source=self.name, timeout=self.timeout)
        if fed.exit_code != 0:
            raise BackupFailed(
                _feed_failed(
                    self.name, f"extracting into {self.base}", argv, fed.exit_code, fed.stderr
                ),
                source=self.name,
                stderr=fed.stderr,
            )
        return f"extracted into {self.base} (files not in the archive were left alone)"
