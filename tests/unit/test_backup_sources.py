"""Backup sources: argv builders as data, sanity-check expectations, and where passwords go
(the child's environment or a 0600 option file; never argv)."""

from __future__ import annotations

import os
import stat
from decimal import Decimal
from pathlib import Path

import pytest

from releasegate.backup.sources import (
    MARIADB_TOOLS,
    MYSQL_TOOLS,
    FilesSource,
    MySQLSource,
    PostgresSource,
    SanityCheck,
    SQLiteSource,
    option_file_text,
    parse_expect,
    parse_number,
    resolve_password,
)
from releasegate.errors import BadInput

PW = "s3cr3t-PW-for-tests"

# --- PostgreSQL argv ------------------------------------------------------------------------


def test_pg_dump_argv_over_tcp() -> None:
    src = PostgresSource(name="db", database="odoo", port=15432, user="rg")
    assert src.dump_argv() == [
        "pg_dump", "-Fc", "-Z0", "-h", "127.0.0.1", "-p", "15432", "-U", "rg", "-w",
        "-d", "odoo",
    ]  # fmt: skip
    assert src.file_name == "db.pgdump.zst" and src.kind == "postgres"


def test_pg_argv_inside_a_container_passes_the_password_by_name_only() -> None:
    src = PostgresSource(name="db", database="odoo", container="seisei-db", password_env="PGPW")
    argv = src.dump_argv(with_password=True)
    assert argv[:6] == ["docker", "exec", "-i", "-e", "PGPASSWORD", "seisei-db"]
    assert argv[6:9] == ["pg_dump", "-Fc", "-Z0"]
    # without a password no -e at all (a pgpass file inside the container may serve)
    assert src.dump_argv()[:4] == ["docker", "exec", "-i", "seisei-db"]
    assert src.child_env(PW) == {"PGPASSWORD": PW}
    assert src.child_env(None) == {}


def test_pg_scratch_and_restore_argv() -> None:
    src = PostgresSource(name="db", database="odoo")
    conn = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-w"]
    assert src.createdb_argv("rg_verify_1") == ["createdb", *conn, "-T", "template0", "rg_verify_1"]
    assert src.restore_scratch_argv("rg_verify_1") == [
        "pg_restore", "--no-owner", "--exit-on-error", *conn, "-d", "rg_verify_1",
    ]  # fmt: skip
    assert src.query_argv("rg_verify_1", "SELECT 1") == [
        "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", *conn,
        "-d", "rg_verify_1", "-c", "SELECT 1",
    ]  # fmt: skip
    assert src.dropdb_argv("rg_verify_1") == ["dropdb", *conn, "--if-exists", "rg_verify_1"]
    assert src.restore_live_argv() == [
        "pg_restore", "--clean", "--if-exists", "--single-transaction", "--exit-on-error",
        *conn, "-d", "odoo",
    ]  # fmt: skip


# --- MySQL / MariaDB argv -------------------------------------------------------------------


def test_mysqldump_argv_dumps_one_database_without_create_database() -> None:
    src = MySQLSource(name="shop", database="inventory", port=13306, user="rg")
    argv = src.dump_argv(MARIADB_TOOLS, defaults_file="/tmp/x/client.cnf")
    assert argv == [
        "mariadb-dump", "--defaults-extra-file=/tmp/x/client.cnf",
        "-h", "127.0.0.1", "-P", "13306", "-u", "rg", "--protocol=TCP",
        "--single-transaction", "--quick", "--routines", "--triggers", "--no-tablespaces",
        "--hex-blob", "--default-character-set=utf8mb4", "inventory",
    ]  # fmt: skip
    assert "--databases" not in argv and "--all-databases" not in argv
    assert src.file_name == "shop.sql.zst" and src.kind == "mysql"


def test_mysql_flavor_adds_gtid_off_and_container_gets_mysql_pwd_by_name() -> None:
    src = MySQLSource(name="shop", database="inventory", container="db-1", password_env="X")
    argv = src.dump_argv(MYSQL_TOOLS, with_password=True)
    assert argv[:7] == ["docker", "exec", "-i", "-e", "MYSQL_PWD", "db-1", "mysqldump"]
    assert "--set-gtid-purged=OFF" in argv
    assert "--set-gtid-purged=OFF" not in src.dump_argv(MARIADB_TOOLS)


def test_mysql_scratch_argv() -> None:
    src = MySQLSource(name="shop", database="inventory")
    base = ["mariadb", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "--protocol=TCP"]
    assert src.create_argv(MARIADB_TOOLS, "rg_verify_1") == [
        *base, "-e", "CREATE DATABASE `rg_verify_1`",
    ]  # fmt: skip
    assert src.load_argv(MARIADB_TOOLS, "rg_verify_1") == [
        *base, "--default-character-set=utf8mb4", "rg_verify_1",
    ]  # fmt: skip
    assert src.query_argv(MARIADB_TOOLS, "rg_verify_1", "SELECT 1") == [
        *base, "--batch", "--skip-column-names", "-e", "SELECT 1", "rg_verify_1",
    ]  # fmt: skip
    assert src.drop_argv(MARIADB_TOOLS, "rg_verify_1") == [
        *base, "-e", "DROP DATABASE IF EXISTS `rg_verify_1`",
    ]  # fmt: skip


def test_option_file_escapes_the_password() -> None:
    text = option_file_text('a"b\\c\nd')
    assert text == '[client]\npassword="a\\"b\\\\c\\nd"\n'


# --- files ----------------------------------------------------------------------------------


def test_tar_argv() -> None:
    src = FilesSource(name="config", paths=(".env", "conf/"), base_dir="/srv/stacks/web")
    assert src.dump_argv() == [
        "tar", "--create", "--file=-", "--numeric-owner", "-C", "/srv/stacks/web",
        "--", ".env", "conf/",
    ]  # fmt: skip
    assert src.list_argv() == ["tar", "--list", "--file=-"]
    assert src.extract_argv() == [
        "tar", "--extract", "--file=-", "--numeric-owner", "-C", "/srv/stacks/web",
    ]  # fmt: skip
    assert src.file_name == "config.tar.zst" and src.checks == ()


@pytest.mark.parametrize("path", ["/etc/passwd", "../x", "a/../../b", "-rf", ""])
def test_files_paths_stay_inside_base_dir(path: str) -> None:
    with pytest.raises(BadInput):
        FilesSource(name="f", paths=(path,), base_dir="/srv")


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "bad name"},
        {"name": "-x"},
        {"database": "odoo; DROP"},
        {"database": "postgresql://u:p@h/db"},
        {"host": "-oProxyCommand=x"},
        {"user": "a b"},
        {"port": 0},
        {"container": "--privileged"},
        {"password_env": "NOT-A-VAR"},
    ],
)
def test_unsafe_values_are_refused(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"name": "db", "database": "odoo", **kwargs}
    with pytest.raises(BadInput):
        PostgresSource(**args)  # type: ignore[arg-type]
    with pytest.raises(BadInput):
        MySQLSource(**args)  # type: ignore[arg-type]


def test_sqlite_source_accepts_str_or_path(tmp_path: Path) -> None:
    assert SQLiteSource(name="a", path=str(tmp_path / "x.db")).db_path == tmp_path / "x.db"
    assert SQLiteSource(name="a", path=tmp_path / "x.db").file_name == "a.sqlite3.zst"


# --- sanity checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "op", "value"),
    [(">0", ">", "0"), (">=10", ">=", "10"), ("=42", "=", "42"), ("==42", "=", "42"),
     (" < 5 ", "<", "5"), ("<=5", "<=", "5"), ("!=0", "!=", "0"), (">-1.5", ">", "-1.5")],
)  # fmt: skip
def test_parse_expect(text: str, op: str, value: str) -> None:
    exp = parse_expect(text)
    assert (exp.op, exp.value) == (op, Decimal(value))


@pytest.mark.parametrize("text", ["", "0", ">", "> x", "~5", ">=1e3", "between 1 and 2"])
def test_parse_expect_refuses(text: str) -> None:
    with pytest.raises(BadInput):
        parse_expect(text)


def test_sanity_check_is_validated_when_built() -> None:
    with pytest.raises(BadInput):
        SanityCheck("SELECT 1", "lots")
    with pytest.raises(BadInput):
        SanityCheck("  ", ">0")


@pytest.mark.parametrize(
    ("output", "expect", "ok"),
    [("42\n", "=42", True), (" 3 ", ">0", True), ("0", ">0", False), ("10", ">=10", True),
     ("9.5", "<10", True), ("-1", "!=0", True)],
)  # fmt: skip
def test_check_judges_a_single_number(output: str, expect: str, ok: bool) -> None:
    result = SanityCheck("SELECT count(*) FROM t", expect).judge(output)
    assert result.ok is ok
    assert result.value is not None


@pytest.mark.parametrize(
    ("output", "why"),
    [("", "0 lines"), ("1\n2\n", "2 lines"), ("1\t2", "2 columns"), ("abc", "'abc'"),
     ("NaN", "'NaN'"), ("t", "'t'")],
)  # fmt: skip
def test_check_needs_exactly_one_number(output: str, why: str) -> None:
    result = SanityCheck("SELECT x", ">0").judge(output)
    assert not result.ok and result.value is None
    assert why in result.detail
    with pytest.raises(ValueError):
        parse_number(output)


# --- credentials ----------------------------------------------------------------------------


def test_password_comes_from_stack_env_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASS", "from-environ")
    assert resolve_password("db", "DB_PASS", {"DB_PASS": "from-dotenv"}) == "from-dotenv"
    assert resolve_password("db", "DB_PASS", {}) == "from-environ"
    assert resolve_password("db", None, {"DB_PASS": "x"}) is None
    monkeypatch.delenv("DB_PASS")
    with pytest.raises(BadInput) as err:
        resolve_password("db", "DB_PASS", {"OTHER": PW})
    assert "DB_PASS" in err.value.message and PW not in err.value.message


FAKE_TOOL = r"""#!/bin/sh
# Records how it was called: argv, environment, an option file's content and mode.
name="$(basename "$0")"
printf '%s\n' "$@" >> "$FAKE_LOG/$name.argv"
env > "$FAKE_LOG/$name.env"
for a in "$@"; do
  case "$a" in
    --defaults-extra-file=*)
      f="${a#*=}"; cat "$f" > "$FAKE_LOG/$name.cnf"; stat -c %a "$f" > "$FAKE_LOG/$name.mode"
      echo "$f" > "$FAKE_LOG/$name.cnfpath";;
  esac
done
if [ "$1" = "--version" ]; then echo "$name  Ver 10.19 Distrib 10.11.6-MariaDB, fake"; exit 0; fi
echo "-- fake dump of $name"
"""


@pytest.fixture()
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    for tool in ("pg_dump", "mariadb-dump", "mariadb", "mysqldump", "mysql"):
        (bin_dir / tool).write_text(FAKE_TOOL)
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    return log


def test_pg_password_reaches_pg_dump_only_through_its_environment(
    fake_tools: Path, tmp_path: Path
) -> None:
    src = PostgresSource(name="db", database="odoo", password_env="DB_PASSWORD")
    out = src.dump(tmp_path / "db.pgdump.zst", secrets={"DB_PASSWORD": PW})
    argv = (fake_tools / "pg_dump.argv").read_text()
    assert "-Fc" in argv and PW not in argv
    assert f"PGPASSWORD={PW}" in (fake_tools / "pg_dump.env").read_text()
    assert out.tool == "pg_dump" and out.stream.raw_bytes > 0


def test_mysql_password_goes_in_a_0600_option_file_removed_afterwards(
    fake_tools: Path, tmp_path: Path
) -> None:
    src = MySQLSource(name="shop", database="inventory", password_env="MYSQL_PASSWORD")
    out = src.dump(tmp_path / "shop.sql.zst", secrets={"MYSQL_PASSWORD": PW})
    argv = (fake_tools / "mariadb-dump.argv").read_text()
    assert PW not in argv and "--defaults-extra-file=" in argv
    assert (fake_tools / "mariadb-dump.mode").read_text().strip() == "600"
    assert PW in (fake_tools / "mariadb-dump.cnf").read_text()
    assert "MYSQL_PWD" not in (fake_tools / "mariadb-dump.env").read_text()
    cnf = Path((fake_tools / "mariadb-dump.cnfpath").read_text().strip())
    assert not cnf.exists() and not cnf.parent.exists()
    assert out.tool == "mariadb-dump" and "MariaDB" in out.tool_version


def test_option_file_is_removed_when_the_dump_fails(fake_tools: Path, tmp_path: Path) -> None:
    failing = Path(os.environ["PATH"].split(os.pathsep)[0]) / "mariadb-dump"
    failing.write_text(FAKE_TOOL.replace('echo "-- fake dump', 'exit 2; echo "'))
    src = MySQLSource(name="shop", database="inventory", password_env="MYSQL_PASSWORD")
    with pytest.raises(Exception) as err:
        src.dump(tmp_path / "shop.sql.zst", secrets={"MYSQL_PASSWORD": PW})
    assert PW not in str(err.value)
    cnf = Path((fake_tools / "mariadb-dump.cnfpath").read_text().strip())
    assert not cnf.parent.exists()
    assert not list(tmp_path.glob("shop.sql.zst*"))


def test_option_file_directory_is_private(fake_tools: Path, tmp_path: Path) -> None:
    seen: list[int] = []
    src = MySQLSource(name="shop", database="inventory", password_env="P")
    with src._auth({"P": PW}) as (cnf, has_pw, env, _redact):
        assert cnf is not None and not has_pw and env == {}
        seen.append(stat.S_IMODE(os.stat(os.path.dirname(cnf)).st_mode))
        seen.append(stat.S_IMODE(os.stat(cnf).st_mode))
    assert seen == [0o700, 0o600]
    assert not os.path.exists(cnf)


def test_sql_clients_for_callers_that_run_their_own_sql(fake_tools: Path) -> None:
    pg = PostgresSource(name="db", database="odoo", container="seisei-db", password_env="PGPW")
    argv = pg.psql_argv("scratch_1", ["-c", "SELECT 1"], with_password=True)
    assert argv[:6] == ["docker", "exec", "-i", "-e", "PGPASSWORD", "seisei-db"]
    assert argv[-4:] == ["-d", "scratch_1", "-c", "SELECT 1"] and PW not in argv
    my = MySQLSource(name="shop", database="inventory", password_env="P")
    with my.client("inventory", ["-e", "SELECT 1"], secrets={"P": PW}) as (argv, env):
        option = next(a for a in argv if a.startswith("--defaults-extra-file="))
        cnf = option.split("=", 1)[1]
        assert os.path.exists(cnf) and argv[-3:] == ["-e", "SELECT 1", "inventory"]
        assert PW not in " ".join(argv) and env == {}
    assert not os.path.exists(cnf)  # the password's file lives only inside the block
