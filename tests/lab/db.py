"""Access to the database lab: a PostgreSQL 15 cluster and a MariaDB server on loopback.

`bash scripts/lab/db.sh up` installs and starts them and writes their facts to
lab-run/db/lab.env (ports, user, password files); this module only reads that and talks to
the servers with their own command-line clients. A missing part skips a test on a developer's
machine and fails it under CI (CI=true).

Passwords are never put on a command line: the clients get them from the environment
(PGPASSWORD, MYSQL_PWD), as `DbServer.env()` builds it, or from an option file
(`DbServer.write_client_file`).

Test databases are named `rgtest_<pid>_<label>_<random>` (`DbServer.new_name`): the pid of the
pytest process that made them, so that a session's clean-up drops what earlier, dead sessions
left and never what a concurrent one is using. `cleanup()` without arguments drops every
`rgtest_%` database.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NoReturn

import pytest

from tests.lab.docker import under_ci

REPO = Path(__file__).resolve().parents[2]
FACTS_FILE = REPO / "lab-run" / "db" / "lab.env"
UP_HINT = "start the lab with: bash scripts/lab/db.sh up"
PREFIX = "rgtest_"
_NAME = re.compile(r"rgtest_[a-z0-9_]{1,56}")
_OURS = re.compile(r"rgtest_(\d+)_[a-z0-9_]*")

Kind = Literal["postgres", "mariadb"]

# Client variables of the caller's environment that could redirect or authenticate a client
# in place of the lab's settings.
_FOREIGN_ENV = {
    "postgres": ("PG",),
    "mariadb": ("MYSQL_", "MARIADB_"),
}

__all__ = [
    "FACTS_FILE",
    "PREFIX",
    "DbError",
    "DbServer",
    "client_versions",
    "facts",
    "facts_file",
    "mariadb",
    "postgres",
    "require_mariadb",
    "require_postgres",
    "unavailable",
    "under_ci",
]


class DbError(RuntimeError):
    """A database client exited non-zero; carries its output."""

    def __init__(self, args: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.cmd = list(args)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(
            f"`{' '.join(self.cmd)}` exited {returncode}: {stderr.strip() or stdout.strip()}"
        )


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer's machine; fail under CI."""
    message = f"database lab unavailable: {reason} ({UP_HINT})"
    if under_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def facts_file() -> Path:
    """lab-run/db/lab.env of this checkout, or the file RG_DB_LAB_FACTS names."""
    return Path(os.environ.get("RG_DB_LAB_FACTS", FACTS_FILE))


def facts(path: Path | None = None) -> dict[str, str]:
    """lab-run/db/lab.env as a dict (RG_DB_LAB_FACTS names another file); {} when missing."""
    path = path or facts_file()
    try:
        text = path.read_text()
    except OSError:
        return {}
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            found[key.strip()] = value
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:  # a zombie is dead
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a lab test database name (rgtest_[a-z0-9_]+, <64): {name!r}")
    return name


def _quote(kind: Kind, name: str) -> str:
    """`name` as an SQL identifier of `kind`'s dialect."""
    if kind == "postgres":
        return '"' + name.replace('"', '""') + '"'
    return "`" + name.replace("`", "``") + "`"


@dataclass(frozen=True)
class DbServer:
    """One lab server and what it takes to reach it: the `postgres_lab` / `mariadb_lab`
    fixtures. Every helper runs the real CLI client over TCP with the password in the
    environment."""

    kind: Kind
    host: str
    port: int
    user: str
    password_file: Path
    admin_database: str  # the database to connect to when a test needs none of its own
    version: str  # the server's version, as it reports it

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    # --- connecting ---------------------------------------------------------------------------

    def env(
        self,
        database: str | None = None,
        password: str | None = None,
        base: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """An environment for the clients: `base` (default os.environ) less its own client
        variables, plus host, port, user and the password (`password` overrides the lab's:
        "" sets none). PostgreSQL: PGHOST PGPORT PGUSER PGPASSWORD [PGDATABASE] and
        PGPASSFILE=/dev/null; MariaDB: MYSQL_HOST MYSQL_TCP_PORT MYSQL_PWD."""
        source = os.environ if base is None else base
        prefixes = _FOREIGN_ENV[self.kind]
        env = {k: v for k, v in source.items() if not k.startswith(prefixes)}
        secret = self.password if password is None else password
        if self.kind == "postgres":
            env.update(
                PGHOST=self.host,
                PGPORT=str(self.port),
                PGUSER=self.user,
                PGPASSFILE="/dev/null",
                PGCONNECT_TIMEOUT="5",
            )
            if database:
                env["PGDATABASE"] = database
            if secret:
                env["PGPASSWORD"] = secret
        else:
            env.update(MYSQL_HOST=self.host, MYSQL_TCP_PORT=str(self.port))
            if secret:
                env["MYSQL_PWD"] = secret
        return env

    def client_args(self) -> list[str]:
        """Host, port and user as client options (never the password): psql / pg_dump /
        pg_restore take `-h -p -U`, mariadb / mysqldump `--protocol=TCP -h -P -u`."""
        if self.kind == "postgres":
            return ["-h", self.host, "-p", str(self.port), "-U", self.user]
        return ["--protocol=TCP", "-h", self.host, "-P", str(self.port), "-u", self.user]

    def url(self, database: str | None = None, with_password: bool = False) -> str:
        """postgresql://rg@127.0.0.1:15432/DB or mysql://rg@127.0.0.1:13306/DB."""
        scheme = "postgresql" if self.kind == "postgres" else "mysql"
        auth = f"{self.user}:{self.password}" if with_password else self.user
        return f"{scheme}://{auth}@{self.host}:{self.port}/{database or self.admin_database}"

    def write_client_file(self, path: Path) -> Path:
        """A credentials file (mode 0600) for clients that take one, returned.

        PostgreSQL: a pgpass file (`host:port:*:user:password`), used with PGPASSFILE=PATH.
        MariaDB: an option file with a [client] group (user, password, host, port,
        protocol), used with `--defaults-extra-file=PATH` (or --defaults-file) as the first
        option of mariadb / mysqldump."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.kind == "postgres":
            text = f"{self.host}:{self.port}:*:{self.user}:{self.password}\n"
        else:
            text = (
                "[client]\n"
                f"user={self.user}\n"
                f"password={self.password}\n"
                f"host={self.host}\n"
                f"port={self.port}\n"
                "protocol=TCP\n"
            )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        path.chmod(0o600)
        return path

    # --- running clients ----------------------------------------------------------------------

    def run(
        self,
        args: Sequence[str],
        database: str | None = None,
        password: str | None = None,
        input: str | bytes | None = None,
        timeout: float = 120.0,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run a client (`["pg_dump", "-Fc", ...]`) with `env(database, password)`; text
        output. Raise DbError on a non-zero exit when `check`."""
        env = self.env(database=database, password=password)
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run(list(args), input=data, capture_output=True, timeout=timeout, env=env)
        out = proc.stdout.decode("utf-8", "replace")
        err = proc.stderr.decode("utf-8", "replace")
        if check and proc.returncode != 0:
            raise DbError(args, proc.returncode, out, err)
        return subprocess.CompletedProcess(list(args), proc.returncode, out, err)

    def sql_command(self, database: str | None = None) -> list[str]:
        """The client command that runs SQL read from stdin, tab-separated, no headers."""
        db = database or self.admin_database
        if self.kind == "postgres":
            return [
                "psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-w",
                *self.client_args(), "-d", db, "-f", "-",
            ]  # fmt: skip
        # --no-defaults: no option file of this machine applies (must come first).
        return ["mariadb", "--no-defaults", *self.client_args(), "-N", "-B", db]

    def sql(
        self,
        query: str,
        database: str | None = None,
        password: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> str:
        """Run SQL (one or more statements) in `database` (default: the admin database);
        its output, stripped."""
        proc = self.run(
            self.sql_command(database),
            database=database,
            password=password,
            input=query,
            timeout=timeout,
            check=check,
        )
        return proc.stdout.strip()

    def rows(self, query: str, database: str | None = None) -> list[list[str]]:
        """A query's rows as lists of column texts."""
        out = self.sql(query, database)
        return [line.split("\t") for line in out.splitlines() if line]

    def can_login(self, password: str, database: str | None = None) -> bool:
        """Whether a connection with `password` ("" for none) is let in."""
        proc = self.run(
            self.sql_command(database), password=password, input="SELECT 1;", check=False
        )
        return proc.returncode == 0

    # --- test databases -----------------------------------------------------------------------

    def new_name(self, label: str = "db") -> str:
        """A fresh database name `rgtest_<pid>_<label>_<hex>` (at most 63 characters); use it
        for every database a test makes, also through the product."""
        slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:30].strip("_") or "db"
        return _check_name(f"{PREFIX}{os.getpid()}_{slug}_{secrets.token_hex(3)}")

    def create_database(self, label: str = "db") -> str:
        """Create an empty database with a fresh name (`new_name(label)`); its name."""
        name = self.new_name(label)
        if self.kind == "postgres":
            self.sql(f'CREATE DATABASE "{name}"')
        else:
            self.sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        return name

    def drop_database(self, name: str) -> None:
        """Drop a test database (names starting rgtest_ only), if it exists; PostgreSQL ends
        its sessions first (WITH (FORCE))."""
        if not name.startswith(PREFIX):
            raise ValueError(f"only {PREFIX}* databases are dropped here, not {name!r}")
        if self.kind == "postgres":
            self.sql(f"DROP DATABASE IF EXISTS {_quote(self.kind, name)} WITH (FORCE)")
        else:
            self.sql(f"DROP DATABASE IF EXISTS {_quote(self.kind, name)}")

    def databases(self) -> list[str]:
        """The names of all `rgtest_%` databases on the server."""
        if self.kind == "postgres":
            query = "SELECT datname FROM pg_database WHERE datname LIKE 'rgtest\\_%' ORDER BY 1"
        else:
            query = (
                "SELECT schema_name FROM information_schema.schemata"
                " WHERE schema_name LIKE 'rgtest\\_%' ORDER BY 1"
            )
        return [r[0] for r in self.rows(query)]

    def cleanup(self, keep_other_sessions: bool = False) -> list[str]:
        """Drop every `rgtest_%` database; the names dropped. With `keep_other_sessions`,
        keep those whose creating process still runs and is not this one (a concurrent test
        session's), and any not named by `new_name` (their owner is unknown)."""
        dropped: list[str] = []
        me = os.getpid()
        for name in self.databases():
            if keep_other_sessions:
                m = _OURS.fullmatch(name)
                if m is None:
                    continue
                pid = int(m.group(1))
                if pid != me and _pid_alive(pid):
                    continue
            self.drop_database(name)
            dropped.append(name)
        return dropped


# --- the lab's servers ----------------------------------------------------------------------


def _server(kind: Kind, found: Mapping[str, str]) -> DbServer:
    key = "PG" if kind == "postgres" else "MARIADB"
    return DbServer(
        kind=kind,
        host=found[f"{key}_HOST"],
        port=int(found[f"{key}_PORT"]),
        user=found[f"{key}_USER"],
        password_file=Path(found[f"{key}_PASSWORD_FILE"]),
        admin_database=found[f"{key}_DATABASE"],
        version=found.get(f"{key}_VERSION", "?"),
    )


def postgres(path: Path | None = None) -> DbServer:
    """The lab's PostgreSQL, from lab.env (KeyError when the lab was never brought up)."""
    return _server("postgres", facts(path))


def mariadb(path: Path | None = None) -> DbServer:
    """The lab's MariaDB, from lab.env (KeyError when the lab was never brought up)."""
    return _server("mariadb", facts(path))


_TOOLS: dict[Kind, tuple[str, ...]] = {
    "postgres": ("psql", "pg_dump", "pg_restore"),
    "mariadb": ("mariadb", "mysqldump"),
}


def problems(kind: Kind) -> list[str]:
    """What is missing for `kind`, or why it does not answer; empty when all is well."""
    missing = [tool for tool in _TOOLS[kind] if shutil.which(tool) is None]
    if missing:
        return [f"no {', '.join(missing)} on PATH"]
    found = facts()
    if not found:
        return [f"no {facts_file()} (the lab was never brought up here)"]
    try:
        server = _server(kind, found)
    except (KeyError, ValueError) as e:
        return [f"lab.env lacks {e}"]
    if not server.password_file.is_file():
        return [f"no password file {server.password_file}"]
    try:
        proc = server.run(server.sql_command(), input="SELECT 1;", timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return [f"{kind} at {server.host}:{server.port} did not answer in 20s"]
    if proc.returncode != 0:
        return [f"{kind} at {server.host}:{server.port} refuses the lab login: {proc.stderr[:300]}"]
    return []


_checked: dict[Kind, DbServer] = {}


def _require(kind: Kind) -> DbServer:
    if kind in _checked:
        return _checked[kind]
    found = problems(kind)
    if found:
        unavailable("; ".join(found))
    server = _server(kind, facts())
    _checked[kind] = server
    return server


def require_postgres() -> DbServer:
    """The lab's PostgreSQL, answering a query with the lab password; else skip (developer)
    or fail (CI=true) the calling test. A success is remembered for the session."""
    return _require("postgres")


def require_mariadb() -> DbServer:
    """The lab's MariaDB, answering a query with the lab password; else skip (developer) or
    fail (CI=true) the calling test. A success is remembered for the session."""
    return _require("mariadb")


def client_versions() -> dict[str, str]:
    """`--version` of the clients (psql, pg_dump, pg_restore, pgbench, mariadb, mysqldump)."""
    found: dict[str, str] = {}
    for tool in ("psql", "pg_dump", "pg_restore", "pgbench", "mariadb", "mysqldump"):
        if shutil.which(tool) is None:
            continue
        proc = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=20)
        found[tool] = (proc.stdout or proc.stderr).strip().splitlines()[0]
    return found
