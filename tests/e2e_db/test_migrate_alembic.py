"""`releasegate migrate` on a real Alembic project (tests/data/migrations/alembic_shop) and
the lab's PostgreSQL: status from `alembic history/current`, a rehearsal whose migration
renames a column the previous release reads (flagged rollback-unsafe), a passing
rehearsal recorded for (stack, version, head), and `alembic downgrade` as the rollback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.e2e_db.migrate_lab import MigrateLab, build

pytestmark = pytest.mark.e2e


@pytest.fixture()
def billing(tmp_path: Path, pg_database) -> MigrateLab:  # type: ignore[no-untyped-def]
    lab = build(
        tmp_path / "ws",
        pg_database,
        project="alembic_shop",
        tool="alembic",
        checks="[{query: 'SELECT count(*) FROM invoices', expect: '=50'}]",
        extra=f'      previous_smoke: ["{sys.executable}", old_smoke.py]\n',
    )
    lab.tool("upgrade", "a1b2c3d4e5f6")
    pg_database.sql("INSERT INTO invoices (amount) SELECT g FROM generate_series(1, 50) g")
    return lab


def test_status_from_alembic_history_and_current(billing: MigrateLab) -> None:
    code, [status] = billing.rg_json("migrate", "status", billing.stack)
    assert code == 3
    assert status["applied"] == ["a1b2c3d4e5f6"]
    assert status["pending"] == ["b2c3d4e5f6a1", "c3d4e5f6a1b2"]
    assert status["head"] == "c3d4e5f6a1b2"


def test_rename_is_flagged_rollback_unsafe(billing: MigrateLab) -> None:
    assert billing.rg("backup", billing.stack, billing.env_name).returncode == 0
    out = billing.rg("migrate", "rehearse", billing.stack, "--version", "v3")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "previous release's smoke failed on the new schema" in out.stdout + out.stderr
    [rehearsal] = billing.ledger("migrate-rehearse")
    assert rehearsal["details"]["verdict"] == "rollback-unsafe"
    assert rehearsal["details"]["head"] == "c3d4e5f6a1b2"
    # lint says why, before anything runs
    out = billing.rg("migrate", "lint", billing.stack)
    assert out.returncode == 3
    assert "c3d4e5f6a1b2" in out.stdout and "renaming-column" in out.stdout


def test_backward_compatible_rehearsal_passes_and_is_recorded(billing: MigrateLab) -> None:
    (billing.project / "migrations" / "versions" / "c3d4e5f6a1b2_rename_amount.py").unlink()
    assert billing.rg("backup", billing.stack, billing.env_name).returncode == 0
    out = billing.rg("migrate", "rehearse", billing.stack, "--version", "v2")
    assert out.returncode == 0, out.stdout + out.stderr
    [rehearsal] = billing.ledger("migrate-rehearse")
    assert rehearsal["status"] == "success"
    assert rehearsal["version"] == "v2"
    assert rehearsal["details"]["head"] == "b2c3d4e5f6a1"
    assert rehearsal["details"]["pending"] == ["b2c3d4e5f6a1"]
    # the live database is untouched: still at a1
    assert billing.db.sql("SELECT version_num FROM alembic_version") == "a1b2c3d4e5f6"


def test_downgrade_is_the_rollback(billing: MigrateLab) -> None:
    billing.tool("upgrade", "b2c3d4e5f6a1")
    out = billing.rg("migrate", "rollback", billing.stack, "--to", "a1b2c3d4e5f6")
    assert out.returncode == 0, out.stdout + out.stderr
    assert billing.db.sql("SELECT version_num FROM alembic_version") == "a1b2c3d4e5f6"
    memo = billing.db.sql(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'invoices' "
        "AND column_name = 'memo'"
    )
    assert memo == "0"
    [rollback] = billing.ledger("migrate-rollback")
    assert rollback["status"] == "success"
