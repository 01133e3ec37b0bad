"""The migration tools' parsers on output captured from the real tools (tests/data/
migrations: Django 5.2 showmigrations/sqlmigrate, Alembic 1.x history/current/heads,
Squawk 2.x --reporter json), and the pure parts of drift, Prisma and SQL-folder status."""

from __future__ import annotations

from pathlib import Path

import pytest

from releasegate.errors import BadInput
from releasegate.migrations.drift import created_objects, facts_from_rows, find_drift
from releasegate.migrations.model import SchemaObject, ToolFailed
from releasegate.migrations.service import lint_sql_by_migration
from releasegate.migrations.sqlrules import Risk
from releasegate.migrations.squawk import parse_report, risk_of
from releasegate.migrations.tools.alembic import parse_history, parse_revisions, states
from releasegate.migrations.tools.base import check_name, literal
from releasegate.migrations.tools.django import parse_plan, split_name
from releasegate.migrations.tools.prisma import merge as prisma_merge
from releasegate.migrations.tools.sqlfolder import list_files
from releasegate.migrations.tools.sqlfolder import merge as sql_merge

DATA = Path(__file__).resolve().parents[1] / "data" / "migrations"


def test_django_plan_with_dependencies() -> None:
    plan = parse_plan((DATA / "django_showmigrations_plan.txt").read_text())
    assert [(m.name, m.state) for m in plan] == [
        ("shop.0001_initial", "applied"),
        ("shop.0002_order_note", "applied"),
        ("shop.0003_order_region", "pending"),
    ]


def test_django_plan_rejects_what_it_cannot_read() -> None:
    with pytest.raises(ToolFailed, match="unexpected line"):
        parse_plan("Traceback (most recent call last):\n")


def test_django_names() -> None:
    assert split_name("shop.0003_order_region") == ("shop", "0003_order_region")
    with pytest.raises(BadInput):
        split_name("0003_order_region")
    with pytest.raises(BadInput):
        split_name("shop.0003; DROP TABLE x")


def test_alembic_history_is_ordered_oldest_first() -> None:
    chain = parse_history((DATA / "alembic_history.txt").read_text())
    assert [(r.rev, r.down) for r in chain] == [
        ("a1b2c3d4e5f6", None),
        ("b2c3d4e5f6a1", "a1b2c3d4e5f6"),
        ("c3d4e5f6a1b2", "b2c3d4e5f6a1"),
    ]
    assert chain[2].tags == ("head",) and chain[2].message == "rename amount to total"
    current = parse_revisions((DATA / "alembic_current.txt").read_text())
    assert current == ["b2c3d4e5f6a1"]
    assert parse_revisions((DATA / "alembic_heads.txt").read_text()) == ["c3d4e5f6a1b2"]
    assert [m.state for m in states(chain, current)] == ["applied", "applied", "pending"]
    assert [m.state for m in states(chain, [])] == ["pending"] * 3


def test_alembic_branches_and_unknown_revisions_are_refused() -> None:
    branched = "a -> b (head), x\na -> c (head), y\n<base> -> a, z\n"
    with pytest.raises(ToolFailed, match="branches"):
        parse_history(branched)
    chain = parse_history("<base> -> a (head), z\n")
    with pytest.raises(ToolFailed, match="not in this code's history"):
        states(chain, ["zzz"])


def test_squawk_report_lines_and_risks() -> None:
    found = parse_report((DATA / "squawk_output.json").read_text())
    by_rule = {f.rule: f for f in found}
    assert by_rule["adding-required-field"].risk == Risk.HIGH
    assert by_rule["adding-required-field"].line == 1  # Squawk counts from 0
    assert by_rule["ban-drop-column"].line == 3
    assert by_rule["require-concurrent-index-creation"].risk == Risk.MEDIUM
    assert by_rule["prefer-robust-stmts"].risk == Risk.LOW
    assert risk_of("some-new-rule") == Risk.MEDIUM
    assert risk_of("some-new-rule", "Error") == Risk.HIGH


def test_own_rules_fill_in_where_squawk_is_silent() -> None:
    sql = (DATA / "django_sqlmigrate_0003.txt").read_text()
    report = lint_sql_by_migration([("shop.0003_order_region", sql)], "mysql")
    assert [(f.rule, f.source, f.line) for f in report.findings] == [
        ("add-column-not-null-no-default", "releasegate", 5)
    ]


def test_created_objects_by_dialect() -> None:
    sql = (
        "ALTER TABLE `Shipment` ADD COLUMN shipmentFile VARCHAR(191) NULL, ADD INDEX ix (a);\n"
        'CREATE TABLE "Order" (id int);\nCREATE INDEX order_ix ON Orders (id);\n'
    )
    assert created_objects(sql, "mysql") == [
        SchemaObject("column", "Shipment", "shipmentFile"),
        SchemaObject("table", "Order"),
        SchemaObject("index", "Orders", "order_ix"),
    ]
    pg = created_objects(
        'ALTER TABLE "Shipment" ADD "shipmentFile" text; ALTER TABLE T ADD c int', "postgresql"
    )
    assert pg == [
        SchemaObject("column", "Shipment", "shipmentFile"),
        SchemaObject("column", "t", "c"),
    ]


def test_drift_applied_without_record_and_partial() -> None:
    facts = facts_from_rows(
        "mysql",
        [["Shipment", "BASE TABLE"]],
        [["Shipment", "shipmentFile", "varchar(191)", "YES", "NULL"]],
        [],
    )
    pending = [
        ("0002_file", "ALTER TABLE Shipment ADD COLUMN shipmentFile VARCHAR(191) NULL;"),
        ("0003_two", "ALTER TABLE Shipment ADD COLUMN shipmentfile int, ADD COLUMN other int;"),
        ("0004_new", "ALTER TABLE Shipment ADD COLUMN fresh int;"),
        ("0005_data", "UPDATE Shipment SET reference = 'x';"),
    ]
    history = {"0002_file": "hist: no row for 0002_file"}
    drift = find_drift(pending, facts, history, resolve_hint="resolve {name}")
    assert [(d.migration, d.verdict) for d in drift] == [
        ("0002_file", "applied-without-record"),
        ("0003_two", "partially-applied"),
    ]
    assert drift[0].evidence == (
        "information_schema.columns: Shipment.shipmentFile varchar(191) nullable=YES default=NULL",
        "hist: no row for 0002_file",
    )
    assert drift[0].hint.endswith("resolve 0002_file")
    assert drift[1].missing == ("column Shipment.other",)


def test_prisma_rows() -> None:
    names = ["20250101_init", "20250821015630_add_shipment_file_field", "20250901_more"]
    rows = [
        ["20250101_init", "2025-01-01 10:00:00", "", ""],
        ["20250901_more", "", "2025-09-02 10:00:00", "old attempt"],  # rolled back
        ["20250901_more", "", "", "Database error: column exists\nmore"],  # failed
        ["20240101_gone", "2024-01-01 10:00:00", "", ""],
    ]
    migrations, notes = prisma_merge(names, rows)
    assert [(m.name, m.state) for m in migrations] == [
        ("20250101_init", "applied"),
        ("20250821015630_add_shipment_file_field", "pending"),
        ("20250901_more", "failed"),
    ]
    assert migrations[2].detail == "Database error: column exists"
    assert notes == ["20240101_gone: recorded in _prisma_migrations but no folder has that name"]


def test_sql_folder_order_and_checksums(tmp_path: Path) -> None:
    (tmp_path / "0010_later.sql").write_text("SELECT 1;")
    (tmp_path / "0002_first.sql").write_text("SELECT 2;")
    (tmp_path / "README.md").write_text("not a migration")
    files = list_files(tmp_path)
    assert [f.name for f in files] == ["0002_first", "0010_later"]
    migrations, notes = sql_merge(files, [["0002_first", "bad", "2026-01-01"], ["0001_x", "", ""]])
    assert [(m.name, m.state) for m in migrations] == [
        ("0002_first", "applied"),
        ("0010_later", "pending"),
    ]
    assert "0002_first: the file changed after it was applied (checksum differs)" in notes
    assert "0001_x: in the history table but no file has that name" in notes
    (tmp_path / "0002_again.sql").write_text("")
    with pytest.raises(BadInput, match="two migrations numbered"):
        list_files(tmp_path)


def test_names_and_literals_are_safe() -> None:
    assert check_name("20250821015630_add_shipment_file_field")
    for bad in ("a'b", "a b", "../x", "-x", ""):
        with pytest.raises(BadInput):
            check_name(bad)
    assert literal("o'brien\\") == "'o''brien'"
