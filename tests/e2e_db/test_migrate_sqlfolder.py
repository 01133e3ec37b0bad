"""Seed 002 on the lab's real MariaDB, with a folder of SQL files (the SQL-folder path
stands in for Prisma, whose engines cannot be fetched here): a column added by hand
before its migration ran, seen as drift with its evidence, then resolved with a reason
and recorded; refused on prod without one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from releasegate.backup.sources import MySQLSource
from releasegate.migrations.dbclient import DbClient
from releasegate.migrations.tools.base import ToolContext
from releasegate.migrations.tools.sqlfolder import SqlFolderAdapter
from tests.e2e_db.migrate_lab import PW_VAR, MigrateLab, build

pytestmark = pytest.mark.e2e


def _adapter(lab: MigrateLab) -> SqlFolderAdapter:
    server = lab.db.server
    source = MySQLSource(
        name="shop", database=lab.db.name, host=server.host, port=server.port,
        user=server.user, password_env=PW_VAR,
    )  # fmt: skip
    client = DbClient(source, {PW_VAR: server.password})
    ctx = ToolContext("sql", (), lab.project.parent, "DATABASE_URL", client, lab.db.name)
    return SqlFolderAdapter(ctx)


@pytest.fixture()
def shipments(tmp_path: Path, maria_database) -> MigrateLab:  # type: ignore[no-untyped-def]
    lab = build(
        tmp_path / "ws", maria_database, project="sql_shipments", tool="sql", env_name="prod"
    )
    # Release 1 shipped 0001 only; releasegate applied it with its history table.
    later = lab.project / "0002_add_shipment_file.sql"
    held = tmp_path / later.name
    shutil.move(later, held)
    assert _adapter(lab).apply().ok
    shutil.move(held, later)
    maria_database.sql("INSERT INTO Shipment (id, reference) VALUES (1, 'S-1'), (2, 'S-2')")
    return lab


def test_seed_002_drift_evidence_and_resolve(shipments: MigrateLab) -> None:
    lab = shipments
    code, [status] = lab.rg_json("migrate", "status", lab.stack)
    assert code == 3
    assert status["applied"] == ["0001_create_shipment"]
    assert status["pending"] == ["0002_add_shipment_file"]
    assert status["drift"] == []  # not drift yet: the column does not exist

    # The hotfix of seed 002: the column was added by hand in production.
    lab.db.sql("ALTER TABLE Shipment ADD COLUMN shipmentFile VARCHAR(191) NULL")
    code, [status] = lab.rg_json("migrate", "status", lab.stack)
    assert code == 3
    [drift] = status["drift"]
    assert drift["verdict"] == "applied-without-record"
    assert drift["present"] == ["column Shipment.shipmentFile"]
    column, history = drift["evidence"]
    assert column.startswith("information_schema.columns: Shipment.shipmentFile varchar(191)")
    assert "nullable=YES" in column
    assert history == "releasegate_schema_history: no row for 0002_add_shipment_file"
    text = lab.rg("migrate", "status", lab.stack).stdout
    assert "DRIFT" in text and "applied-without-record" in text

    # prod: refused without a reason, and the refusal is recorded
    out = lab.rg("migrate", "resolve", lab.stack, "0002_add_shipment_file", "--applied")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "needs --reason" in out.stdout
    assert lab.db.sql("SELECT count(*) FROM releasegate_schema_history") == "1"

    out = lab.rg(
        "migrate", "resolve", lab.stack, "0002_add_shipment_file", "--applied",
        "--reason", "shipmentFile added by hand in the hotfix",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert (
        lab.db.sql(
            "SELECT name FROM releasegate_schema_history WHERE name = '0002_add_shipment_file'"
        )
        == "0002_add_shipment_file"
    )
    code, [status] = lab.rg_json("migrate", "status", lab.stack)
    assert code == 0 and status["clean"]
    refused, done = lab.ledger("migrate-resolve")
    assert refused["status"] == "refused"
    assert done["status"] == "success"
    assert done["reason"] == "shipmentFile added by hand in the hotfix"
    evidence = done["details"]["evidence"]
    assert evidence["drift"][0]["evidence"] == [column, history]
    assert lab.db.server.password not in json.dumps(done)
    # the record in seed 002's shape names the evidence step
    records = list((lab.root / ".releasegate" / "records").glob("*migrate-resolve*.md"))
    # Two records (the refused attempt and the resolve); the resolve's keeps the evidence.
    assert len(records) == 2 and any("evidence" in r.read_text() for r in records)


def test_rolled_back_removes_the_history_row(shipments: MigrateLab) -> None:
    lab = shipments
    out = lab.rg(
        "migrate", "resolve", lab.stack, "0001_create_shipment", "--rolled-back",
        "--reason", "re-run 0001 after a manual cleanup",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert lab.db.sql("SELECT count(*) FROM releasegate_schema_history") == "0"


def test_sql_folder_has_no_down_migrations(shipments: MigrateLab) -> None:
    out = shipments.rg(
        "migrate", "rollback", shipments.stack, "--to", "0001_create_shipment", "--reason", "x"
    )
    assert out.returncode == 3
    assert "--with-db" in out.stderr


def test_lint_uses_releasegates_rules_on_mysql(shipments: MigrateLab) -> None:
    (shipments.project / "0003_drop_reference.sql").write_text(
        "ALTER TABLE Shipment DROP COLUMN reference;\n"
    )
    out = shipments.rg("migrate", "lint", shipments.stack)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "0003_drop_reference:1: HIGH drop-column [releasegate]" in out.stdout
    assert "0002_add_shipment_file" in out.stdout  # linted, no finding: a nullable column
