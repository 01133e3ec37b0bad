"""releasegate.migrations.sqlrules: the statement splitter, every rule in both dialects,
and `releasegate migrate lint` through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from releasegate.cli.migrate import RULE_HELP
from releasegate.migrations.sqlrules import RULES, Risk, lint_sql, split_statements
from tests.cli import RELEASEGATE

DATA = Path(__file__).parents[1] / "data" / "migrations"

# -- splitter -------------------------------------------------------------------------------
# (sql, dialect, [(line, normalised), ...])
SPLITS: list[tuple[str, str, list[tuple[int, str]]]] = [
    ("SELECT 1; SELECT 2", "postgresql", [(1, "SELECT 1"), (1, "SELECT 2")]),
    ("\n\nSELECT 1;\n\n  SELECT\n 2;\n", "postgresql", [(3, "SELECT 1"), (5, "SELECT 2")]),
    ("SELECT 'a;b';", "postgresql", [(1, "SELECT ''")]),
    ("SELECT 'it''s; here';SELECT 3", "postgresql", [(1, "SELECT ''"), (1, "SELECT 3")]),
    ("SELECT E'a\\';b';", "postgresql", [(1, "SELECT E''")]),
    ("SELECT 'a\\';\nSELECT 2;", "postgresql", [(1, "SELECT ''"), (2, "SELECT 2")]),
    ("SELECT 'a\\';b';", "mysql", [(1, "SELECT ''")]),
    ('SELECT "we;ird" FROM t;', "postgresql", [(1, 'SELECT "we;ird" FROM t')]),
    ("SELECT `we;ird` FROM t;", "mysql", [(1, "SELECT `we;ird` FROM t")]),
    ("-- a; comment\nSELECT 1; -- trailing; x\n", "postgresql", [(2, "SELECT 1")]),
    ("/* one;\n two; */\nSELECT 1;", "postgresql", [(3, "SELECT 1")]),
    ("/* outer /* inner; */ still; */ SELECT 1;", "postgresql", [(1, "SELECT 1")]),
    ("# note; here\nSELECT 1;", "mysql", [(2, "SELECT 1")]),
    ("SELECT 1 -- x\n + 2;", "postgresql", [(1, "SELECT 1 + 2")]),
    (
        "CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1;\nEND;\n"
        "$$ LANGUAGE sql;\nSELECT 2;",
        "postgresql",
        [(1, "CREATE FUNCTION f() RETURNS int AS $$ $$ LANGUAGE sql"), (6, "SELECT 2")],
    ),
    (
        "DO $body$ BEGIN PERFORM 'x; $$'; END $body$;\nSELECT 3;",
        "postgresql",
        [(1, "DO $$ $$"), (2, "SELECT 3")],
    ),
    (
        "PREPARE p AS SELECT $1; SELECT a$b$c FROM t;",
        "postgresql",
        [
            (1, "PREPARE p AS SELECT $1"),
            (1, "SELECT a$b$c FROM t"),
        ],
    ),
    ("-- only a comment\n;\n/* and */;", "postgresql", []),
    ("SELECT 1", "postgresql", [(1, "SELECT 1")]),
]


@pytest.mark.parametrize(("sql", "dialect", "expected"), SPLITS)
def test_split(sql: str, dialect: str, expected: list[tuple[int, str]]) -> None:
    got = [(s.line, s.normalised) for s in split_statements(sql, dialect)]  # type: ignore[arg-type]
    assert got == expected


def test_split_keeps_original_text() -> None:
    [statement] = split_statements("  -- c\n  ALTER TABLE t ADD COLUMN x text DEFAULT 'a;b';\n")
    assert statement.text == "-- c\n  ALTER TABLE t ADD COLUMN x text DEFAULT 'a;b';"
    assert statement.line == 2


# -- rules ----------------------------------------------------------------------------------
# (sql, dialect, [(rule, risk), ...]); an empty list means no finding.
CASES: list[tuple[str, str, list[tuple[str, str]]]] = [
    # seed 003: new nullable columns and new tables only
    ("ALTER TABLE x ADD COLUMN y text NULL", "postgresql", []),
    ("ALTER TABLE x ADD COLUMN y text NULL", "mysql", []),
    ("CREATE TABLE t (id int NOT NULL PRIMARY KEY, name text NOT NULL)", "postgresql", []),
    ("CREATE TABLE IF NOT EXISTS `t` (id INT NOT NULL)", "mysql", []),
    # add-column-not-null-no-default
    (
        "ALTER TABLE x ADD COLUMN y int NOT NULL",
        "postgresql",
        [("add-column-not-null-no-default", "HIGH")],
    ),
    ("ALTER TABLE x ADD y int NOT NULL", "mysql", [("add-column-not-null-no-default", "HIGH")]),
    ("ALTER TABLE x ADD COLUMN y int NOT NULL DEFAULT 0", "postgresql", []),
    ("ALTER TABLE x ADD COLUMN y int DEFAULT 0 NOT NULL", "mysql", []),
    ("ALTER TABLE x ADD COLUMN id bigserial NOT NULL", "postgresql", []),
    ("ALTER TABLE x ADD COLUMN id int GENERATED ALWAYS AS IDENTITY NOT NULL", "postgresql", []),
    (
        "ALTER TABLE x ADD COLUMN note text NOT NULL -- DEFAULT later\n",
        "postgresql",
        [("add-column-not-null-no-default", "HIGH")],
    ),
    ("ALTER TABLE x ADD COLUMN note text NOT NULL DEFAULT 'NOT NULL'", "postgresql", []),
    (
        "ALTER TABLE x ADD COLUMN a text NULL, ADD COLUMN b text NOT NULL",
        "postgresql",
        [("add-column-not-null-no-default", "HIGH")],
    ),
    (
        "CREATE TABLE x (id int); ALTER TABLE x ADD COLUMN y int NOT NULL",
        "postgresql",
        [("add-column-not-null-no-default", "LOW")],
    ),
    ("ALTER TABLE x ADD CONSTRAINT c CHECK (y IS NOT NULL) NOT VALID", "postgresql", []),
    # drop-column
    ("ALTER TABLE x DROP COLUMN y", "postgresql", [("drop-column", "HIGH")]),
    ("ALTER TABLE x DROP COLUMN IF EXISTS y CASCADE", "postgresql", [("drop-column", "HIGH")]),
    ("ALTER TABLE `x` DROP `y`", "mysql", [("drop-column", "HIGH")]),
    ("ALTER TABLE x DROP CONSTRAINT x_fk", "postgresql", []),
    ("ALTER TABLE x DROP INDEX x_idx", "mysql", []),
    ("ALTER TABLE x DROP PRIMARY KEY", "mysql", []),
    ("ALTER TABLE x ALTER COLUMN y DROP DEFAULT", "postgresql", []),
    ("ALTER TABLE x ALTER COLUMN y DROP NOT NULL", "postgresql", []),
    # drop-table
    ("DROP TABLE x", "postgresql", [("drop-table", "HIGH")]),
    ("DROP TABLE IF EXISTS a, b CASCADE", "postgresql", [("drop-table", "HIGH")]),
    ("DROP TABLE `x`", "mysql", [("drop-table", "HIGH")]),
    ("DROP INDEX x_idx", "postgresql", []),
    ("DROP VIEW v", "postgresql", []),
    # rename-column
    ("ALTER TABLE x RENAME COLUMN a TO b", "postgresql", [("rename-column", "HIGH")]),
    ("ALTER TABLE x RENAME a TO b", "postgresql", [("rename-column", "HIGH")]),
    ("ALTER TABLE `x` RENAME COLUMN `a` TO `b`", "mysql", [("rename-column", "HIGH")]),
    ("ALTER TABLE x CHANGE a b VARCHAR(10) NULL", "mysql", [("rename-column", "HIGH")]),
    ("ALTER TABLE x RENAME CONSTRAINT c TO d", "postgresql", []),
    ("ALTER TABLE x RENAME INDEX i TO j", "mysql", []),
    # rename-table
    ("ALTER TABLE x RENAME TO y", "postgresql", [("rename-table", "HIGH")]),
    ("ALTER TABLE x RENAME AS y", "mysql", [("rename-table", "HIGH")]),
    ("RENAME TABLE a TO b, c TO d", "mysql", [("rename-table", "HIGH")]),
    ("ALTER INDEX i RENAME TO j", "postgresql", []),
    # alter-column-type
    ("ALTER TABLE x ALTER COLUMN y TYPE bigint", "postgresql", [("alter-column-type", "HIGH")]),
    (
        "ALTER TABLE x ALTER y SET DATA TYPE varchar(20)",
        "postgresql",
        [("alter-column-type", "HIGH")],
    ),
    ("ALTER TABLE x MODIFY COLUMN y BIGINT", "mysql", [("alter-column-type", "HIGH")]),
    ("ALTER TABLE x MODIFY y TEXT NOT NULL", "mysql", [("alter-column-type", "HIGH")]),
    ("ALTER TABLE x CHANGE COLUMN y y BIGINT", "mysql", [("alter-column-type", "HIGH")]),
    ("ALTER TABLE x ALTER COLUMN y SET DEFAULT 0", "postgresql", []),
    ("ALTER TABLE x ALTER COLUMN y SET DEFAULT 0", "mysql", []),
    # set-not-null
    ("ALTER TABLE x ALTER COLUMN y SET NOT NULL", "postgresql", [("set-not-null", "MEDIUM")]),
    ("ALTER TABLE ONLY public.x ALTER y SET NOT NULL", "postgresql", [("set-not-null", "MEDIUM")]),
    (
        "CREATE TABLE public.x (y int); ALTER TABLE x ALTER y SET NOT NULL",
        "postgresql",
        [("set-not-null", "LOW")],
    ),
    # create-index-not-concurrently
    ("CREATE INDEX i ON x (y)", "postgresql", [("create-index-not-concurrently", "MEDIUM")]),
    (
        "CREATE UNIQUE INDEX IF NOT EXISTS i ON ONLY x (y)",
        "postgresql",
        [("create-index-not-concurrently", "MEDIUM")],
    ),
    ("CREATE INDEX ON x (y)", "postgresql", [("create-index-not-concurrently", "MEDIUM")]),
    ("CREATE INDEX CONCURRENTLY i ON x (y)", "postgresql", []),
    ("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON x (y)", "postgresql", []),
    (
        'CREATE TABLE "Orders" (id int);\nCREATE INDEX i ON "Orders" (id)',
        "postgresql",
        [("create-index-not-concurrently", "LOW")],
    ),
    ("CREATE INDEX i ON x (y)", "mysql", [("create-index-not-concurrently", "LOW")]),
    ("ALTER TABLE x ADD INDEX i (y)", "mysql", [("create-index-not-concurrently", "LOW")]),
    ("ALTER TABLE x ADD UNIQUE KEY k (y)", "mysql", [("create-index-not-concurrently", "LOW")]),
    (
        "ALTER TABLE x ADD CONSTRAINT u UNIQUE (y)",
        "postgresql",
        [("create-index-not-concurrently", "MEDIUM")],
    ),
    ("ALTER TABLE x ADD CONSTRAINT u UNIQUE USING INDEX u_idx", "postgresql", []),
    # add-foreign-key-without-not-valid
    (
        "ALTER TABLE x ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES y (id)",
        "postgresql",
        [("add-foreign-key-without-not-valid", "MEDIUM")],
    ),
    (
        "ALTER TABLE x ADD FOREIGN KEY (a) REFERENCES y (id)",
        "postgresql",
        [("add-foreign-key-without-not-valid", "MEDIUM")],
    ),
    (
        "ALTER TABLE x ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES y (id) NOT VALID",
        "postgresql",
        [],
    ),
    ("ALTER TABLE x ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES y (id)", "mysql", []),
    ("ALTER TABLE x VALIDATE CONSTRAINT fk", "postgresql", []),
    # nothing is checked inside literals, comments or function bodies
    ("INSERT INTO log VALUES ('ALTER TABLE x DROP COLUMN y')", "postgresql", []),
    ("/* DROP TABLE x; */ SELECT 1", "postgresql", []),
    ("CREATE FUNCTION f() RETURNS void AS $$ DROP TABLE x; $$ LANGUAGE sql", "postgresql", []),
    ("-- DROP TABLE x;\nSELECT 1", "postgresql", []),
    ("# DROP TABLE x;\nSELECT 1", "mysql", []),
    # case and layout do not matter
    ("alter   table\n  x\n  drop\n  column y", "postgresql", [("drop-column", "HIGH")]),
    # SQLite: Django's table rebuild is one change (more in test_migration_sqliterules.py)
    (
        'CREATE TABLE "new__t" ("a" int NOT NULL, "b" int NULL); INSERT INTO "new__t" '
        '("a", "b") SELECT "a", "b" FROM "t"; DROP TABLE "t"; '
        'ALTER TABLE "new__t" RENAME TO "t"',
        "sqlite",
        [("table-rebuild", "MEDIUM")],
    ),
]


@pytest.mark.parametrize(("sql", "dialect", "expected"), CASES)
def test_rule(sql: str, dialect: str, expected: list[tuple[str, str]]) -> None:
    findings = lint_sql(sql, file="m.sql", dialect=dialect)  # type: ignore[arg-type]
    assert [(f.rule, f.risk.value) for f in findings] == expected
    for f in findings:
        assert f.rule in RULES
        assert f.file == "m.sql"
        assert f.message and f.hint and f.statement_excerpt


def test_every_rule_is_exercised_and_documented() -> None:
    seen = {rule for _sql, _d, expected in CASES for rule, _risk in expected}
    assert seen == set(RULES)
    assert set(RULE_HELP) == set(RULES)


def test_line_is_the_statement_start() -> None:
    sql = "-- header\n\nALTER TABLE a ADD COLUMN b text NULL;\n\nALTER TABLE a\n  DROP COLUMN c;\n"
    [finding] = lint_sql(sql)
    assert (finding.rule, finding.line) == ("drop-column", 5)
    assert finding.statement_excerpt == "ALTER TABLE a DROP COLUMN c"


def test_unknown_dialect() -> None:
    with pytest.raises(ValueError, match="dialect"):
        lint_sql("SELECT 1", dialect="oracle")  # type: ignore[arg-type]


def test_risk_order() -> None:
    assert Risk.LOW.rank < Risk.MEDIUM.rank < Risk.HIGH.rank


# -- data files -----------------------------------------------------------------------------
FILES: list[tuple[str, str, list[tuple[int, str, str]]]] = [
    ("pg_0001_safe_additive.sql", "postgresql", [(13, "create-index-not-concurrently", "LOW")]),
    (
        "pg_0002_unsafe.sql",
        "postgresql",
        [
            (3, "add-column-not-null-no-default", "HIGH"),
            (5, "drop-column", "HIGH"),
            (7, "rename-column", "HIGH"),
            (9, "alter-column-type", "HIGH"),
            (11, "set-not-null", "MEDIUM"),
            (13, "create-index-not-concurrently", "MEDIUM"),
            (15, "add-foreign-key-without-not-valid", "MEDIUM"),
            (18, "rename-table", "HIGH"),
            (20, "drop-table", "HIGH"),
        ],
    ),
    ("pg_0003_careful.sql", "postgresql", []),
    (
        "mysql_0001_unsafe.sql",
        "mysql",
        [
            (2, "add-column-not-null-no-default", "HIGH"),
            (3, "alter-column-type", "HIGH"),
            (4, "rename-column", "HIGH"),
            (5, "rename-column", "HIGH"),
            (6, "create-index-not-concurrently", "LOW"),
            (7, "create-index-not-concurrently", "LOW"),
            (8, "rename-table", "HIGH"),
        ],
    ),
    ("mysql_0002_safe.sql", "mysql", [(9, "add-column-not-null-no-default", "LOW")]),
]


@pytest.mark.parametrize(("name", "dialect", "expected"), FILES)
def test_data_file(name: str, dialect: str, expected: list[tuple[int, str, str]]) -> None:
    sql = (DATA / name).read_text(encoding="utf-8")
    findings = lint_sql(sql, file=name, dialect=dialect)  # type: ignore[arg-type]
    assert [(f.line, f.rule, f.risk.value) for f in findings] == expected


# -- CLI ------------------------------------------------------------------------------------
def _rg(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
    env.update(NO_COLOR="1", COLUMNS="200")
    return subprocess.run(
        [RELEASEGATE, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_exit_codes_and_text(tmp_path: Path) -> None:
    unsafe = str(DATA / "pg_0002_unsafe.sql")
    safe = str(DATA / "pg_0001_safe_additive.sql")

    r = _rg("migrate", "lint", "--sql", unsafe, cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert f"{unsafe}:5: HIGH drop-column: DROP COLUMN legacy_status" in r.stdout
    assert "  hint: " in r.stdout

    r = _rg("migrate", "lint", "--sql", safe, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _rg("migrate", "lint", "--sql", safe, "--fail-on", "LOW", cwd=tmp_path)
    assert r.returncode == 3

    r = _rg("migrate", "lint", "--sql", str(tmp_path / "missing.sql"), cwd=tmp_path)
    assert r.returncode == 2
    assert "missing.sql" in r.stderr

    r = _rg("migrate", "lint", "--help", cwd=tmp_path)
    assert r.returncode == 0
    for rule in RULES:
        assert rule in r.stdout
    assert "Examples:" in r.stdout


def test_cli_json(tmp_path: Path) -> None:
    path = str(DATA / "mysql_0001_unsafe.sql")
    r = _rg(
        "migrate",
        "lint",
        "--sql",
        path,
        "--dialect",
        "mysql",
        "--json",
        "--fail-on",
        "medium",
        cwd=tmp_path,
    )
    assert r.returncode == 3, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    findings = [line["finding"] for line in lines[:-1]]
    summary = lines[-1]["summary"]
    assert len(findings) == 7
    assert findings[0] == {
        "rule": "add-column-not-null-no-default",
        "risk": "HIGH",
        "file": path,
        "line": 2,
        "statement_excerpt": (
            "ALTER TABLE `users` ADD COLUMN `locale` VARCHAR(8) NOT NULL AFTER `email`"
        ),
        "message": findings[0]["message"],
        "hint": findings[0]["hint"],
    }
    assert summary["findings"] == 7
    assert summary["by_risk"] == {"LOW": 2, "MEDIUM": 0, "HIGH": 5}
    assert summary["fail_on"] == "MEDIUM"
    assert summary["exit_code"] == 3
