"""SQLite migrations as data: the rules on Django's table rebuild and on SQLite's ALTER
TABLE, on SQL written here and on what Django 5.2's `sqlmigrate` printed for seed 003's
migrations (tests/data/migrations/django_sqlite_*.sql); drift on rebuilt tables; the
in-process SQLite client; a restore over a live file that no longer opens."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from releasegate.backup.sources import SQLiteSource, replace_sqlite_file
from releasegate.migrations import sqlitedb
from releasegate.migrations.dbclient import DbClient
from releasegate.migrations.drift import created_objects, facts_from_rows, find_drift
from releasegate.migrations.sqliterules import rebuilds
from releasegate.migrations.sqlrules import lint_sql, split_statements

DATA = Path(__file__).parents[1] / "data" / "migrations"
T = "supplier_eval_supplierevaluation"


def rebuild(columns: str, insert: str, select: str, table: str = "t") -> str:
    return (
        f'CREATE TABLE "new__{table}" ({columns});\n'
        f'INSERT INTO "new__{table}" ({insert}) SELECT {select} FROM "{table}";\n'
        f'DROP TABLE "{table}";\n'
        f'ALTER TABLE "new__{table}" RENAME TO "{table}";\n'
        f'CREATE INDEX "{table}_a" ON "{table}" ("a");\n'
    )


def rules(sql: str) -> list[tuple[str, str]]:
    return [(f.rule, f.risk.value) for f in lint_sql(sql, file="m", dialect="sqlite")]


CASES: list[tuple[str, list[tuple[str, str]]]] = [
    # a NOT NULL column filled with NULL: fails on rows (seed 003's trap)
    (
        rebuild('"g" varchar(2) NOT NULL, "a" int NOT NULL', '"a", "g"', '"a", NULL'),
        [("table-rebuild", "MEDIUM"), ("add-column-not-null-no-default", "HIGH")],
    ),
    # the same column with a default ('x' is blanked to '' by the splitter): the copy only
    (
        rebuild('"g" varchar(2) NOT NULL, "a" int NOT NULL', '"a", "g"', "\"a\", 'x'"),
        [("table-rebuild", "MEDIUM")],
    ),
    # nullable added through a rebuild (e.g. a UNIQUE column): the copy only
    (
        rebuild('"a" int NOT NULL, "u" text NULL UNIQUE', '"a", "u"', '"a", NULL'),
        [("table-rebuild", "MEDIUM")],
    ),
    # made NOT NULL with a default for the NULLs: coalesce is a copy of the column
    (
        rebuild('"a" int NOT NULL', '"a"', 'coalesce("a", 0)'),
        [("table-rebuild", "MEDIUM")],
    ),
    # a column copied under another name is a rename
    (
        rebuild('"b" int NOT NULL', '"b"', '"a"'),
        [("table-rebuild", "MEDIUM"), ("rename-column", "HIGH")],
    ),
    # a rebuild of a table created earlier in the file: empty, so LOW; the column the
    # copy leaves out is known to be dropped
    (
        'CREATE TABLE "t" ("a" int NOT NULL, "old" int NULL);\n'
        + rebuild('"a" int NOT NULL, "g" int NOT NULL', '"a", "g"', '"a", NULL'),
        [
            ("table-rebuild", "LOW"),
            ("add-column-not-null-no-default", "LOW"),
            ("drop-column", "LOW"),
        ],
    ),
    # SQLite's own ALTER TABLE
    ('ALTER TABLE "t" ADD COLUMN "c" decimal NULL', []),
    ('ALTER TABLE "t" ADD COLUMN "c" integer DEFAULT 0 NOT NULL', []),
    (
        'ALTER TABLE "t" ADD COLUMN "c" integer NOT NULL',
        [("add-column-not-null-no-default", "HIGH")],
    ),
    ('ALTER TABLE "t" DROP COLUMN "c"', [("drop-column", "HIGH")]),
    ('ALTER TABLE "t" RENAME COLUMN "a" TO "b"', [("rename-column", "HIGH")]),
    ('ALTER TABLE "t" RENAME TO "u"', [("rename-table", "HIGH")]),
    ('DROP TABLE "t"', [("drop-table", "HIGH")]),
    ("ALTER TABLE `t` DROP COLUMN `c`", [("drop-column", "HIGH")]),
    # an index on an existing table: LOW (no concurrent build exists); on a new one: none
    ('CREATE INDEX "i" ON "t" ("a")', [("create-index-not-concurrently", "LOW")]),
    ('CREATE TABLE "n" ("a" int); CREATE INDEX "i" ON "n" ("a")', []),
    # a rebuild's own DROP TABLE and RENAME are not findings of their own
    (rebuild('"a" int NOT NULL', '"a"', '"a"'), [("table-rebuild", "MEDIUM")]),
]


@pytest.mark.parametrize(("sql", "expected"), CASES)
def test_sqlite_rules(sql: str, expected: list[tuple[str, str]]) -> None:
    assert rules(sql) == expected


def test_rebuild_group_spans_its_statements() -> None:
    sql = rebuild('"a" int NOT NULL, "g" int NULL', '"a", "g"', '"a", NULL') + "SELECT 1;"
    statements = split_statements(sql, "sqlite")
    [r] = rebuilds(statements)
    assert (r.start, r.end, r.line) == (0, 5, 1)
    assert r.added == ["g"] and r.copied == {"a": "a"}


def test_django_sqlmigrate_output_for_seed_003() -> None:
    """What Django 5.2 printed for the seed's migrations on SQLite."""
    clean = (DATA / "django_sqlite_0002.sql").read_text()
    assert rules(clean) == [("create-index-not-concurrently", "LOW")]
    unsafe = (DATA / "django_sqlite_0003.sql").read_text()
    findings = lint_sql(unsafe, file="supplier_eval.0003_grade", dialect="sqlite")
    assert [(f.rule, f.risk.value, f.line) for f in findings] == [
        ("table-rebuild", "MEDIUM", 5),
        ("add-column-not-null-no-default", "HIGH", 5),
    ]
    assert "grade" in findings[1].message and "NOT NULL constraint failed" in findings[1].message
    misc = (DATA / "django_sqlite_0004.sql").read_text()
    assert rules(misc) == [
        ("table-rebuild", "MEDIUM"),  # AddField with a default
        ("table-rebuild", "MEDIUM"),  # AddField unique
        ("rename-column", "HIGH"),
        ("table-rebuild", "MEDIUM"),  # AlterField
        ("drop-column", "HIGH"),
        ("rename-table", "HIGH"),  # RenameModel
    ]


def test_drift_on_a_rebuild_sees_the_added_column_only() -> None:
    sql = (DATA / "django_sqlite_0003.sql").read_text()
    assert [str(o) for o in created_objects(sql, "sqlite")] == [f"column {T}.grade"]
    tables = [[T, "table"]]
    columns = [[T, c, "varchar", "NO", "NULL"] for c in ("evaluation_code", "supplier_name")]
    indexes = [[T, "supplier_name_idx"], [T, f"{T}_supplier_name_2e9ac508"]]
    facts = facts_from_rows("sqlite", tables, columns, indexes)
    # the indexes the rebuild makes again exist already: no false drift
    assert find_drift([("m", sql)], facts, {}, resolve_hint="{name}") == []
    added = facts_from_rows("sqlite", tables, [*columns, [T, "GRADE", "varchar", "NO", "NULL"]], [])
    [drift] = find_drift([("m", sql)], added, {}, resolve_hint="resolve {name}")
    assert drift.verdict == "applied-without-record"
    assert drift.evidence[0].startswith(f"pragma_table_info: {T}.GRADE")


# -- the in-process client -------------------------------------------------------------------


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "db.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (a INTEGER, b TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(1, "x\ty"), (2, None)])
    conn.commit()
    conn.close()
    return path


def test_client_queries_read_only_and_scripts_are_all_or_nothing(db: Path) -> None:
    client = DbClient(SQLiteSource(name="app", path=db), {})
    assert client.dialect == "sqlite" and client.password is None
    assert client.url(str(db)) == f"sqlite:///{db.resolve()}"
    assert client.path_env(str(db), "DATABASE_PATH") == {"DATABASE_PATH": str(db.resolve())}
    assert client.path_env(str(db), None) == {}
    assert client.query(str(db), "SELECT a, b FROM t ORDER BY a") == [["1", "x y"], ["2", ""]]
    with pytest.raises(Exception, match="readonly"):
        client.query(str(db), "DELETE FROM t")
    bad = client.script(str(db), "INSERT INTO t VALUES (3, 'z');\nINSERT INTO nope VALUES (1);",
                        single_transaction=True)  # fmt: skip
    assert not bad.ok and "no such table: nope" in bad.stderr
    assert client.query(str(db), "SELECT count(*) FROM t") == [["2"]]  # rolled back
    assert client.script(str(db), "DELETE FROM t WHERE a = 2;", single_transaction=True).ok
    assert client.query(str(db), "SELECT count(*) FROM t") == [["1"]]
    assert sqlitedb.table_exists(db, "t", deadline_s=5)
    assert not sqlitedb.table_exists(db, "t' OR '1'='1", deadline_s=5)


def test_client_never_creates_a_missing_file_and_queries_have_a_deadline(db: Path) -> None:
    missing = db.with_name("missing.sqlite3")
    with pytest.raises(sqlitedb.SQLiteQueryFailed, match="does not exist"):
        sqlitedb.query(missing, "SELECT 1", deadline_s=5)
    assert not missing.exists()
    forever = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
    with pytest.raises(sqlitedb.SQLiteQueryFailed, match="interrupted"):
        sqlitedb.query(db, forever, deadline_s=0.2)


# -- restore over a live file ----------------------------------------------------------------


def _backup(tmp_path: Path, db: Path) -> tuple[SQLiteSource, Path]:
    from releasegate.backup.stream import compress_file

    src = SQLiteSource(name="app", path=db)
    file = tmp_path / "app.sqlite3.zst"
    compress_file(db, file, source="app")
    return src, file


def test_restore_replaces_a_live_file_that_no_longer_opens(tmp_path: Path, db: Path) -> None:
    src, file = _backup(tmp_path, db)
    db.write_bytes(b"not a database" * 500)
    # the stale WAL of some other database beside it: replayed, it would corrupt the copy
    db.with_name(db.name + "-wal").write_bytes(b"\x37\x7f\x06\x82" + b"\0" * 4000)
    db.with_name(db.name + "-shm").write_bytes(b"\0" * 32768)
    how = src.restore_live(file, secrets={})
    assert "replaced by the restored file atomically" in how
    assert not db.with_name(db.name + "-wal").exists()
    assert not db.with_name(db.name + "-shm").exists()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
    conn.close()
    assert [p.name for p in db.parent.iterdir() if p.name.startswith(".")] == []


def test_restore_into_a_sound_live_file_uses_the_backup_api(tmp_path: Path, db: Path) -> None:
    src, file = _backup(tmp_path, db)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("DELETE FROM t")
    conn.commit()  # in the -wal, not yet in the file
    how = src.restore_live(file, secrets={})
    assert "backup API" in how
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)  # the open connection sees it
    conn.close()


def test_a_backup_that_does_not_hold_a_database_is_refused(tmp_path: Path, db: Path) -> None:
    from releasegate.backup.stream import BackupFailed, compress_file

    junk = tmp_path / "junk"
    junk.write_bytes(b"junk" * 1000)
    file = tmp_path / "junk.zst"
    compress_file(junk, file, source="app")
    before = db.read_bytes()
    with pytest.raises(BackupFailed, match="does not hold a sound database"):
        SQLiteSource(name="app", path=db).restore_live(file, secrets={})
    assert db.read_bytes() == before  # the live file was not touched


def test_replace_moves_the_side_files_aside_first(tmp_path: Path) -> None:
    live, new = tmp_path / "a.db", tmp_path / "b.db"
    live.write_text("old")
    new.write_text("new")
    live.with_name("a.db-journal").write_text("hot journal")
    assert replace_sqlite_file(new, live) == ["a.db-journal"]
    assert live.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["a.db"]


def test_cli_lints_sqlmigrate_output_as_sqlite(tmp_path: Path) -> None:
    import json
    import os
    import subprocess

    from tests.cli import RELEASEGATE

    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
    args = ["migrate", "lint", "--dialect", "sqlite", "--json"]
    for name, code in (("django_sqlite_0002.sql", 0), ("django_sqlite_0003.sql", 3)):
        done = subprocess.run(
            [RELEASEGATE, *args, "--sql", str(DATA / name)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == code, done.stdout + done.stderr
        summary = json.loads(done.stdout.splitlines()[-1])["summary"]
        assert summary["dialect"] == "sqlite" and summary["exit_code"] == code
    assert summary["by_rule"] == {"table-rebuild": 1, "add-column-not-null-no-default": 1}
