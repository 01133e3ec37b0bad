"""Pytest fixtures for the database lab (scripts/lab/db.sh up). Enabled from the top-level
tests/conftest.py: `pytest_plugins = [..., "tests.lab.db_fixtures"]`.

- `postgres_lab`, `mariadb_lab` (session): the lab's server as a `DbServer` (facts and
  helpers, see tests/lab/db.py); skipped, or failed under CI=true, when it does not answer.
  Drops the `rgtest_%` databases that dead sessions left, at the start and the end.
- `pg_database`, `maria_database` (function): a fresh, empty database as a `Database`,
  dropped after the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.lab.db import DbServer, require_mariadb, require_postgres


@dataclass(frozen=True)
class Database:
    """A test database on a lab server: `server` and `name`, with the server's helpers bound
    to it."""

    server: DbServer
    name: str

    def sql(self, query: str, password: str | None = None, check: bool = True) -> str:
        return self.server.sql(query, database=self.name, password=password, check=check)

    def rows(self, query: str) -> list[list[str]]:
        return self.server.rows(query, database=self.name)

    def env(self, password: str | None = None) -> dict[str, str]:
        """The clients' environment (host, port, user, password; PGDATABASE for postgres)."""
        return self.server.env(database=self.name, password=password)

    def url(self, with_password: bool = False) -> str:
        return self.server.url(self.name, with_password=with_password)


def _session(server: DbServer) -> Iterator[DbServer]:
    server.cleanup(keep_other_sessions=True)
    yield server
    server.cleanup(keep_other_sessions=True)


@pytest.fixture(scope="session")
def postgres_lab() -> Iterator[DbServer]:
    """The lab's PostgreSQL 15 (127.0.0.1, user rg, password from lab-run/db/pg.password)."""
    yield from _session(require_postgres())


@pytest.fixture(scope="session")
def mariadb_lab() -> Iterator[DbServer]:
    """The lab's MariaDB (127.0.0.1, user rg, password from lab-run/db/mariadb.password)."""
    yield from _session(require_mariadb())


def _fresh(server: DbServer, request: pytest.FixtureRequest) -> Iterator[Database]:
    label = request.node.name.removeprefix("test_")
    db = Database(server, server.create_database(label))
    try:
        yield db
    finally:
        server.drop_database(db.name)


@pytest.fixture()
def pg_database(postgres_lab: DbServer, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A fresh, empty PostgreSQL database (`rgtest_<pid>_<test>_<hex>`), dropped after."""
    yield from _fresh(postgres_lab, request)


@pytest.fixture()
def maria_database(mariadb_lab: DbServer, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A fresh, empty MariaDB database (`rgtest_<pid>_<test>_<hex>`, utf8mb4), dropped after."""
    yield from _fresh(mariadb_lab, request)
