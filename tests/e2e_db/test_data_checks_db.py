"""`sql` data checks against the lab's real PostgreSQL (psql) and MariaDB: the answer judged, a
write refused by the READ ONLY transaction, a slow statement stopped by statement_timeout,
and the password kept out of the evidence."""

from __future__ import annotations

import json
import os

import pytest

from releasegate.backup.sources import PostgresSource
from releasegate.config.schema import SqlCheck
from releasegate.datachecks import sql_check
from tests.lab.db import DbServer
from tests.lab.db_fixtures import Database

pytestmark = pytest.mark.e2e
PW_VAR = "RG_LAB_DB_PASSWORD"


@pytest.fixture(autouse=True)
def _only_our_password(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("PG")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PGPASSFILE", "/dev/null")


def _check(**kw: object) -> SqlCheck:
    return SqlCheck.model_validate({"name": "c", "source": "db", **kw})


def test_sql_checks_on_postgres(pg_database: Database, postgres_lab: DbServer) -> None:
    pg_database.sql(
        "CREATE TABLE sync_logs (source text, status text);"
        "INSERT INTO sync_logs VALUES ('ozon', 'ok'), ('wildberries', 'ok'), ('ozon', NULL);"
    )
    source = PostgresSource(
        name="db",
        database=pg_database.name,
        host=postgres_lab.host,
        port=postgres_lab.port,
        user=postgres_lab.user,
        password_env=PW_VAR,
    )
    secrets = {PW_VAR: postgres_lab.password}

    ok = sql_check(_check(sql="SELECT count(*) FROM sync_logs WHERE status = 'ok'", at_least=2),
                   source, secrets=secrets)  # fmt: skip
    assert ok.ok, ok.summary
    assert ok.summary == "sql on db: 2 (at_least 2)"
    rows = sql_check(_check(sql="SELECT source, status FROM sync_logs WHERE status IS NULL",
                            empty=True), source, secrets=secrets)  # fmt: skip
    assert not rows.ok and rows.evidence["rows"] == [["ozon", ""]]
    equals = sql_check(_check(sql="SELECT status FROM sync_logs LIMIT 1;", equals="ok"),
                       source, secrets=secrets)  # fmt: skip
    assert equals.ok, equals.summary

    write = sql_check(_check(sql="DELETE FROM sync_logs RETURNING source", empty=True),
                      source, secrets=secrets)  # fmt: skip
    assert not write.ok and "read-only transaction" in write.summary
    assert pg_database.rows("SELECT count(*) FROM sync_logs") == [["3"]]

    slow = sql_check(_check(sql="SELECT pg_sleep(5)", empty=False, timeout=1),
                     source, secrets=secrets)  # fmt: skip
    assert not slow.ok and "statement timeout" in slow.summary
    assert slow.evidence["duration_s"] < 4.5

    wrong = sql_check(_check(sql="SELECT 1", equals="1"), source, secrets={PW_VAR: "nope"})
    assert not wrong.ok
    for result in (ok, rows, equals, write, slow, wrong):
        text = json.dumps(result.as_dict())
        assert postgres_lab.password not in text and "nope" not in text


def test_sql_checks_on_mariadb(maria_database: Database, mariadb_lab: DbServer) -> None:
    from releasegate.backup.sources import MySQLSource

    maria_database.sql(
        "CREATE TABLE sync_logs (source text, status text);"
        "INSERT INTO sync_logs VALUES ('ozon', 'ok'), ('wildberries', 'ok');"
    )
    source = MySQLSource(
        name="db",
        database=maria_database.name,
        host=mariadb_lab.host,
        port=mariadb_lab.port,
        user=mariadb_lab.user,
        password_env=PW_VAR,
    )
    secrets = {PW_VAR: mariadb_lab.password}
    ok = sql_check(_check(sql="SELECT count(*) FROM sync_logs", equals=2), source, secrets=secrets)
    assert ok.ok, ok.summary
    write = sql_check(_check(sql="DELETE FROM sync_logs", empty=True), source, secrets=secrets)
    assert not write.ok and "READ ONLY" in write.summary.upper(), write.summary
    assert maria_database.rows("SELECT count(*) FROM sync_logs") == [["2"]]
    assert mariadb_lab.password not in json.dumps([ok.as_dict(), write.as_dict()])
