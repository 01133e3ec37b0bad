"""The database lab itself works: real PostgreSQL 15 and MariaDB on loopback, password
authentication over TCP, dumps and restores with the password only in the environment."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.lab.db import DbError, DbServer, client_versions
from tests.lab.db_fixtures import Database

pytestmark = pytest.mark.e2e

ROWS = [("1", "alpha", "10.50"), ("2", "béta ✓", "0.00"), ("3", 'it\'s "quoted"', "-3.25")]


def _insert_values() -> str:
    def lit(s: str) -> str:
        return "'" + s.replace("'", "''") + "'"

    return ", ".join(f"({i}, {lit(name)}, {price})" for i, name, price in ROWS)


def _assert_no_secret_in_argv(args: list[str], server: DbServer) -> None:
    assert not any(server.password in a for a in args), "the password must not be in argv"


# --- PostgreSQL -----------------------------------------------------------------------------


def test_postgres_lab_facts(postgres_lab: DbServer) -> None:
    assert postgres_lab.host == "127.0.0.1"
    assert postgres_lab.user == "rg"
    assert postgres_lab.version.startswith("15.")
    assert postgres_lab.sql("SHOW server_version").startswith("15.")
    assert postgres_lab.sql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") == "t"
    assert postgres_lab.sql("SHOW password_encryption") == "scram-sha-256"
    # Only TCP on loopback: the lab cluster has no Unix socket.
    assert postgres_lab.sql("SHOW listen_addresses") == "127.0.0.1"
    assert postgres_lab.sql("SHOW port") == str(postgres_lab.port)
    assert postgres_lab.password_file.stat().st_mode & 0o077 == 0


def test_pg_table_rows_dump_and_restore(
    pg_database: Database, postgres_lab: DbServer, tmp_path: Path
) -> None:
    pg_database.sql(
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(8,2));"
        f"INSERT INTO items VALUES {_insert_values()};"
        "CREATE INDEX items_name ON items (name);"
    )
    assert pg_database.rows("SELECT id, name, price FROM items ORDER BY id") == [
        list(r) for r in ROWS
    ]

    dump = tmp_path / "items.dump"
    args = ["pg_dump", "-Fc", "-f", str(dump), *postgres_lab.client_args(), "-d", pg_database.name]
    _assert_no_secret_in_argv(args, postgres_lab)
    proc = subprocess.run(args, env=pg_database.env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert dump.read_bytes()[:5] == b"PGDMP"  # the custom format's magic

    listing = subprocess.run(
        ["pg_restore", "--list", str(dump)], capture_output=True, text=True, check=True
    ).stdout
    assert "TABLE DATA public items" in listing
    assert "INDEX public items_name" in listing

    target = postgres_lab.create_database("restore")
    try:
        postgres_lab.run(
            ["pg_restore", "--exit-on-error", "--no-owner", *postgres_lab.client_args(),
             "-d", target, str(dump)],
            database=target,
        )  # fmt: skip
        restored = postgres_lab.rows("SELECT id, name, price FROM items ORDER BY id", target)
        assert restored == [list(r) for r in ROWS]
        assert postgres_lab.sql(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'items' ORDER BY 1", target
        ).splitlines() == ["items_name", "items_pkey"]
    finally:
        postgres_lab.drop_database(target)
    assert target not in postgres_lab.databases()


def test_pg_password_is_enforced(
    pg_database: Database, postgres_lab: DbServer, tmp_path: Path
) -> None:
    assert postgres_lab.can_login(postgres_lab.password)
    assert not postgres_lab.can_login(postgres_lab.password + "x")
    assert not postgres_lab.can_login("")

    wrong = postgres_lab.run(
        postgres_lab.sql_command(pg_database.name), password="wrong", input="SELECT 1;",
        check=False,
    )  # fmt: skip
    assert wrong.returncode != 0
    assert 'password authentication failed for user "rg"' in wrong.stderr

    missing = postgres_lab.run(
        postgres_lab.sql_command(pg_database.name), password="", input="SELECT 1;", check=False
    )
    assert missing.returncode != 0
    assert "no password supplied" in missing.stderr

    # A wrong password also stops pg_dump, and nothing is prompted for (no terminal in CI).
    dump = subprocess.run(
        ["pg_dump", "-w", *postgres_lab.client_args(), "-d", pg_database.name],
        env=pg_database.env(password="wrong"),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    assert dump.returncode != 0 and "password authentication failed" in dump.stderr

    # The other way to pass it: a pgpass file named by PGPASSFILE.
    pgpass = postgres_lab.write_client_file(tmp_path / "pgpass")
    assert pgpass.stat().st_mode & 0o777 == 0o600
    env = pg_database.env(password="")
    env["PGPASSFILE"] = str(pgpass)
    proc = subprocess.run(
        ["psql", "-X", "-w", "-At", *postgres_lab.client_args(), "-d", pg_database.name,
         "-c", "SELECT current_user"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "rg"


def test_pgbench_runs_against_the_lab(pg_database: Database, postgres_lab: DbServer) -> None:
    args = postgres_lab.client_args()
    postgres_lab.run(["pgbench", "-i", "-s", "1", "-q", *args, pg_database.name])
    run = postgres_lab.run(["pgbench", "-c", "2", "-t", "20", "-n", *args, pg_database.name])
    assert "number of transactions actually processed: 40/40" in run.stdout
    assert pg_database.sql("SELECT count(*) FROM pgbench_accounts") == "100000"


# --- MariaDB --------------------------------------------------------------------------------


def test_mariadb_lab_facts(mariadb_lab: DbServer) -> None:
    assert mariadb_lab.host == "127.0.0.1"
    assert mariadb_lab.user == "rg"
    assert "MariaDB" in mariadb_lab.version
    assert mariadb_lab.sql("SELECT CURRENT_USER()") == "rg@127.0.0.1"
    assert mariadb_lab.sql("SELECT @@port") == str(mariadb_lab.port)
    assert mariadb_lab.sql("SELECT @@bind_address") == "127.0.0.1"
    grants = mariadb_lab.sql("SHOW GRANTS")
    assert "GRANT ALL PRIVILEGES ON *.* TO `rg`@`127.0.0.1`" in grants
    assert "WITH GRANT OPTION" in grants
    # No anonymous users that could let a wrong password in under another name.
    assert mariadb_lab.sql("SELECT COUNT(*) FROM mysql.global_priv WHERE User = ''") == "0"
    assert mariadb_lab.password_file.stat().st_mode & 0o077 == 0


def test_maria_table_rows_dump_and_restore(
    maria_database: Database, mariadb_lab: DbServer, tmp_path: Path
) -> None:
    maria_database.sql(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL,"
        " price DECIMAL(8,2)) ENGINE=InnoDB;"
        f"INSERT INTO items VALUES {_insert_values()};"
    )
    assert maria_database.rows("SELECT id, name, price FROM items ORDER BY id") == [
        list(r) for r in ROWS
    ]
    engine = maria_database.sql(
        "SELECT engine FROM information_schema.tables"
        f" WHERE table_schema = '{maria_database.name}' AND table_name = 'items'"
    )
    assert engine == "InnoDB"  # --single-transaction gives a consistent dump only for InnoDB

    dump = tmp_path / "items.sql"
    args = [
        "mysqldump", "--no-defaults", *mariadb_lab.client_args(), "--single-transaction",
        "--routines", "--triggers", "--result-file", str(dump), maria_database.name,
    ]  # fmt: skip
    _assert_no_secret_in_argv(args, mariadb_lab)
    proc = subprocess.run(
        args, env=maria_database.env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    text = dump.read_text()
    assert "CREATE TABLE `items`" in text
    assert "INSERT INTO `items` VALUES" in text
    assert "béta ✓" in text
    assert "-- Dump completed" in text

    target = mariadb_lab.create_database("restore")
    try:
        mariadb_lab.run(mariadb_lab.sql_command(target), input=text)
        restored = mariadb_lab.rows("SELECT id, name, price FROM items ORDER BY id", target)
        assert restored == [list(r) for r in ROWS]
    finally:
        mariadb_lab.drop_database(target)
    assert target not in mariadb_lab.databases()


def test_maria_password_is_enforced(
    maria_database: Database, mariadb_lab: DbServer, tmp_path: Path
) -> None:
    assert mariadb_lab.can_login(mariadb_lab.password)
    assert not mariadb_lab.can_login(mariadb_lab.password + "x")
    assert not mariadb_lab.can_login("")

    wrong = mariadb_lab.run(
        mariadb_lab.sql_command(), password="wrong", input="SELECT 1;", check=False
    )
    assert wrong.returncode != 0
    assert "Access denied for user 'rg'@'127.0.0.1' (using password: YES)" in wrong.stderr
    missing = mariadb_lab.run(
        mariadb_lab.sql_command(), password="", input="SELECT 1;", check=False
    )
    assert "Access denied for user 'rg'@'127.0.0.1' (using password: NO)" in missing.stderr

    dump = subprocess.run(
        ["mysqldump", "--no-defaults", *mariadb_lab.client_args(), "--single-transaction",
         maria_database.name],
        env=maria_database.env(password="wrong"), capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert dump.returncode != 0 and "Access denied" in dump.stderr

    # The other way to pass it: an option file, first option of the client.
    cnf = mariadb_lab.write_client_file(tmp_path / "client.cnf")
    assert cnf.stat().st_mode & 0o777 == 0o600
    env = maria_database.env(password="")
    assert "MYSQL_PWD" not in env
    proc = subprocess.run(
        ["mariadb", f"--defaults-extra-file={cnf}", "-N", "-B", "-e", "SELECT CURRENT_USER()",
         maria_database.name],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "rg@127.0.0.1"


# --- both -----------------------------------------------------------------------------------


@pytest.fixture(params=["postgres", "mariadb"])
def server(request: pytest.FixtureRequest) -> DbServer:
    fixture = "postgres_lab" if request.param == "postgres" else "mariadb_lab"
    lab: DbServer = request.getfixturevalue(fixture)
    return lab


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_cleanup_drops_dead_sessions_databases_and_keeps_live_ones(server: DbServer) -> None:
    mine = server.create_database("mine")
    dead, live = _dead_pid(), os.getppid()
    q = '"' if server.kind == "postgres" else "`"
    dead_name = f"rgtest_{dead}_left_over_000000"
    live_name = f"rgtest_{live}_concurrent_000000"
    for name in (dead_name, live_name):
        server.sql(f"CREATE DATABASE {q}{name}{q}")
    try:
        assert {mine, dead_name, live_name} <= set(server.databases())
        dropped = server.cleanup(keep_other_sessions=True)
        assert mine in dropped and dead_name in dropped
        assert live_name not in dropped
        assert live_name in server.databases()
    finally:
        server.drop_database(live_name)
        server.drop_database(dead_name)
    assert not {mine, dead_name, live_name} & set(server.databases())

    with pytest.raises(ValueError):
        server.drop_database(server.admin_database)
    with pytest.raises(DbError):
        server.sql("SELECT * FROM no_such_table_anywhere")


def test_database_fixtures_are_fresh_and_named_for_the_test(
    pg_database: Database, maria_database: Database
) -> None:
    for db in (pg_database, maria_database):
        assert db.name.startswith(f"rgtest_{os.getpid()}_database_fixtures_are_fresh")
        assert len(db.name) <= 63
        assert db.name in db.server.databases()
    assert (
        pg_database.sql(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        == "0"
    )
    assert maria_database.sql("SHOW TABLES") == ""
    assert pg_database.sql("SELECT current_database()") == pg_database.name
    assert maria_database.sql("SELECT DATABASE()") == maria_database.name
    assert pg_database.env()["PGDATABASE"] == pg_database.name
    assert pg_database.url() == (
        f"postgresql://rg@127.0.0.1:{pg_database.server.port}/{pg_database.name}"
    )


def test_client_tools_are_there(postgres_lab: DbServer, mariadb_lab: DbServer) -> None:
    found = client_versions()
    for tool in ("psql", "pg_dump", "pg_restore", "pgbench"):
        assert "(PostgreSQL) 15." in found[tool], found
    for tool in ("mariadb", "mysqldump"):
        assert "MariaDB" in found[tool], found
