"""Two tiny database adapters that run the same SQL text (named ``:param`` style).

Runtime queries never touch SQLAlchemy for SQLite files: importing it costs more
than a whole ``releasegate history`` call is allowed to take. SQLAlchemy is used
for every other URL (PostgreSQL, ...) and is imported only then.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Generator, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine

Row = tuple[Any, ...]
Params = Mapping[str, Any]

BUSY_TIMEOUT_S = 15.0
MIN_SQLITE = (3, 35, 0)  # RETURNING on INSERT/UPDATE/DELETE
# The head row is the single point every writer must pass: locking it serializes appends.
LOCK_HEAD_SQL = "SELECT seq FROM ledger_head WHERE id = 1 FOR UPDATE"


class Database(Protocol):
    dialect: str

    def execute(self, sql: str, params: Params | None = None) -> list[Row]:
        """Run one statement; return its rows (empty for statements without rows)."""

    def stream(
        self, sql: str, params: Params | None = None, batch: int = 2000
    ) -> Generator[Row, None, None]:
        """Yield rows of one query without holding them all in memory."""

    def execute_many(self, sql: str, rows: list[dict[str, Any]]) -> None:
        """Run one statement for each parameter set (a batch of inserts)."""

    def write_transaction(self) -> AbstractContextManager[None]:
        """Serialize against every other writer, in this and other processes."""

    def read_transaction(self) -> AbstractContextManager[None]:
        """One consistent snapshot for several reads."""

    def close(self) -> None: ...


def check_sqlite_version() -> None:
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        wanted = ".".join(map(str, MIN_SQLITE))
        raise RuntimeError(f"SQLite {sqlite3.sqlite_version} is too old; the ledger needs {wanted}")


class SQLiteDatabase:
    """Stdlib sqlite3: WAL so readers never block the writer, BEGIN IMMEDIATE for writers."""

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        check_sqlite_version()
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, sqlite3 must not.
        self._conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self._in_txn = False
        self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")

    def execute(self, sql: str, params: Params | None = None) -> list[Row]:
        return self._conn.execute(sql, params or {}).fetchall()

    def execute_many(self, sql: str, rows: list[dict[str, Any]]) -> None:
        self._conn.executemany(sql, rows)

    def stream(
        self, sql: str, params: Params | None = None, batch: int = 2000
    ) -> Generator[Row, None, None]:
        cur = self._conn.execute(sql, params or {})
        try:
            while rows := cur.fetchmany(batch):
                yield from rows
        finally:
            cur.close()

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[None]:
        if self._in_txn:
            raise RuntimeError("ledger transactions do not nest")
        self._conn.execute(begin)
        self._in_txn = True
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            try:
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        finally:
            self._in_txn = False

    def write_transaction(self) -> AbstractContextManager[None]:
        # IMMEDIATE takes the write lock before we read the chain head, so two
        # processes can never both build on the same head (which would fork the chain).
        return self._transaction("BEGIN IMMEDIATE")

    def read_transaction(self) -> AbstractContextManager[None]:
        return self._transaction("BEGIN")

    def close(self) -> None:
        self._conn.close()


def make_engine(url: str | URL) -> Engine:
    """An Engine; SQLite engines emit real BEGIN (IMMEDIATE for writers) like SQLiteDatabase."""
    from sqlalchemy import create_engine, event

    from releasegate.ledger.url import engine_options, engine_url, missing_driver

    parsed = engine_url(url)
    if parsed.get_backend_name() != "sqlite":
        try:
            return create_engine(parsed, **engine_options(parsed))
        except ModuleNotFoundError as exc:  # the extra is not installed
            raise missing_driver(parsed, exc) from None
    check_sqlite_version()
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})

    # pysqlite's own transaction handling defers BEGIN; take control (SQLAlchemy's recipe).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.info.get("immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class SQLAlchemyDatabase:
    """Any SQLAlchemy URL; one connection, statements as ``text()``."""

    def __init__(self, url: str | URL) -> None:
        from sqlalchemy.exc import DBAPIError

        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        try:
            self._conn = self.engine.connect()
        except DBAPIError as exc:  # refused, a wrong password, no such database
            self.engine.dispose()
            from releasegate.ledger.url import connect_failed

            raise connect_failed(self.engine.url.render_as_string(), exc) from None
        self._in_txn = False

    def _rows(self, sql: str, params: Params | None) -> list[Row]:
        from sqlalchemy import text

        result = self._conn.execute(text(sql), dict(params or {}))
        return [tuple(r) for r in result] if result.returns_rows else []

    def execute(self, sql: str, params: Params | None = None) -> list[Row]:
        if self._in_txn:
            return self._rows(sql, params)
        with self._conn.begin():
            return self._rows(sql, params)

    def execute_many(self, sql: str, rows: list[dict[str, Any]]) -> None:
        from sqlalchemy import text

        if not rows:
            return
        if self._in_txn:
            self._conn.execute(text(sql), rows)
            return
        with self._conn.begin():
            self._conn.execute(text(sql), rows)

    def stream(
        self, sql: str, params: Params | None = None, batch: int = 2000
    ) -> Generator[Row, None, None]:
        from sqlalchemy import text

        def run() -> Iterator[Row]:
            opts = {"stream_results": True, "yield_per": batch}
            result = self._conn.execute(text(sql), dict(params or {}), execution_options=opts)
            with result:
                for part in result.partitions(batch):
                    yield from (tuple(r) for r in part)

        if self._in_txn:
            yield from run()
        else:
            with self._conn.begin():
                yield from run()

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[None]:
        if self._in_txn:
            raise RuntimeError("ledger transactions do not nest")
        sqlite = self.dialect == "sqlite"
        self._conn.info["immediate"] = write
        if not write and not sqlite:
            # A snapshot for multi-statement reads (verify_chain reads head, then rows).
            self._conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            with self._conn.begin():
                self._in_txn = True
                if write and not sqlite:
                    self._rows(LOCK_HEAD_SQL, None)
                yield
        finally:
            self._in_txn = False
            self._conn.info["immediate"] = False
            if not write and not sqlite:
                self._conn.execution_options(isolation_level=self._default_isolation())

    def _default_isolation(self) -> str:
        return str(self._conn.default_isolation_level or "READ COMMITTED")

    def write_transaction(self) -> AbstractContextManager[None]:
        return self._transaction(write=True)

    def read_transaction(self) -> AbstractContextManager[None]:
        return self._transaction(write=False)

    def close(self) -> None:
        self._conn.close()
        self.engine.dispose()


def sqlite_path_from_url(url: str) -> str | None:
    """The file path of a plain ``sqlite:///`` URL (served by stdlib sqlite3), else None."""
    prefix = "sqlite:///"
    if url.startswith(prefix):
        return url[len(prefix) :]
    return None


# `:name` parameters (never `::type` casts) as psycopg's `%(name)s`.
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def to_pyformat(sql: str) -> str:
    """The ledger's `:name` SQL as psycopg takes it (a literal % doubled first)."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


class PsycopgDatabase:
    """PostgreSQL through psycopg alone: what SQLAlchemy does for a team's ledger, without
    its import (about 0.3 s, more than `history` may take in all). The same SQL text; the
    same transactions: a writer locks the chain head row (FOR UPDATE) first, a multi-read
    runs on one REPEATABLE READ snapshot. Alembic (with SQLAlchemy) is used only to create
    or upgrade the schema."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        from releasegate.ledger.url import connect_failed, libpq_params, missing_driver

        try:
            import psycopg
        except ModuleNotFoundError as exc:  # the extra is not installed
            raise missing_driver("postgresql", exc) from None
        conninfo, params, masked = libpq_params(url)
        try:
            # autocommit: every transaction is an explicit `transaction()` block below, and
            # a failed lone statement leaves no aborted transaction behind.
            self._conn = psycopg.connect(conninfo, autocommit=True, **params)
        except psycopg.Error as exc:
            raise connect_failed(masked, exc) from None
        self._txn: Any = None

    def execute(self, sql: str, params: Params | None = None) -> list[Row]:
        cur = self._conn.execute(to_pyformat(sql), dict(params or {}))
        return [tuple(r) for r in cur.fetchall()] if cur.description is not None else []

    def execute_many(self, sql: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            with self._conn.cursor() as cur:
                cur.executemany(to_pyformat(sql), rows)

    def stream(
        self, sql: str, params: Params | None = None, batch: int = 2000
    ) -> Generator[Row, None, None]:
        if self._txn is None:  # a server-side cursor lives in a transaction
            with self._transaction(write=False):
                yield from self._stream(sql, params, batch)
        else:
            yield from self._stream(sql, params, batch)

    def _stream(self, sql: str, params: Params | None, batch: int) -> Iterator[Row]:
        with self._conn.cursor(name=f"rg_stream_{os.urandom(4).hex()}") as cur:
            cur.itersize = batch
            cur.execute(to_pyformat(sql), dict(params or {}))
            for row in cur:
                yield tuple(row)

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[None]:
        if self._txn is not None:
            raise RuntimeError("ledger transactions do not nest")
        with self._conn.transaction() as txn:
            self._txn = txn
            try:
                if write:
                    self.execute(LOCK_HEAD_SQL)
                else:
                    # A snapshot for multi-statement reads (verify_chain: head, then rows).
                    self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                yield
            finally:
                self._txn = None

    def write_transaction(self) -> AbstractContextManager[None]:
        return self._transaction(write=True)

    def read_transaction(self) -> AbstractContextManager[None]:
        return self._transaction(write=False)

    def close(self) -> None:
        self._conn.close()
