"""`releasegate deploy` of a stack with `migrations:` (a real Django project, the lab's
PostgreSQL): the tool's migrate runs between the backup and the switch; when it fails on the
live rows, the database goes back to the backup this deploy took and nothing is switched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e_db.migrate_lab import MigrateLab, build
from tests.lab.plans import planned, recorded, same_steps

pytestmark = pytest.mark.e2e


@pytest.fixture()
def shop(tmp_path: Path, pg_database) -> MigrateLab:  # type: ignore[no-untyped-def]
    lab = build(
        tmp_path / "ws",
        pg_database,
        project="django_shop",
        tool="django",
        # Writers are stopped before a restore: here there are none to stop.
        extra='    commands:\n      stop: ["true"]\n',
    )
    lab.tool("migrate", "shop", "0002_order_note")
    pg_database.sql(
        "INSERT INTO shop_order (total, note) SELECT g, 'n' || g FROM generate_series(1, 50) g"
    )
    for version in ("v1", "v2", "v3"):
        (lab.root / "artifacts" / version).mkdir()
        (lab.root / "artifacts" / version / "VERSION").write_text(version)
    return lab


def _result(out) -> dict:  # type: ignore[no-untyped-def,type-arg]
    lines = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    return next(x["result"] for x in reversed(lines) if "result" in x)


def _columns(lab: MigrateLab) -> str:
    return lab.db.sql(
        "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM "
        "information_schema.columns WHERE table_name = 'shop_order'"
    )


def test_failed_migration_restores_the_database_and_switches_nothing(shop: MigrateLab) -> None:
    # v1 is live, with nothing pending yet (0003 arrives with v2).
    migration = shop.project / "shop" / "migrations" / "0003_order_region.py"
    unsafe = migration.read_text()
    migration.unlink()
    out = shop.rg("deploy", shop.stack, "staging", "v1", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    before = _columns(shop)

    # v2 brings 0003: NOT NULL without default fails on the 50 live rows.
    migration.write_text(unsafe)
    out = shop.rg("deploy", shop.stack, "staging", "v2", "--json")
    assert out.returncode == 4, out.stdout + out.stderr
    result = _result(out)
    steps = {s["step"]: s for s in result["steps"]}
    assert (
        not steps["migrate"]["ok"]
        and "contains null values" in steps["migrate"]["evidence"]["output"]
    )
    assert "switch" not in steps  # the service never left v1
    [restore] = result["followups"]
    assert restore["action"] == "restore" and restore["status"] == "success"
    assert "the database was restored from" in result["message"]
    assert (shop.root / "srv" / "shop" / "current").resolve().name == "v1"
    assert _columns(shop) == before
    assert shop.db.sql("SELECT count(*) FROM shop_order") == "50"
    assert shop.db.server.password not in out.stdout + out.stderr

    # The fix (seed 003: a nullable column) deploys, and the migration runs in the deploy.
    migration.write_text(unsafe.replace("max_length=20)", "max_length=20, null=True)"))
    dry = shop.rg("deploy", shop.stack, "staging", "v3", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    plan = planned(dry.stdout)
    assert [n for n, _ in plan][:4] == ["preflight", "migration-gate", "backup", "prepare"]
    out = shop.rg("deploy", shop.stack, "staging", "v3", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert same_steps(plan, recorded(_result(out)))  # the plan is what ran, gate included
    steps = {s["step"]: s for s in _result(out)["steps"]}
    assert steps["migrate"]["summary"].startswith("applied 1 migration(s)")
    assert steps["migrate"]["evidence"]["pending"] == ["shop.0003_order_region"]
    assert "region" in _columns(shop).split(",")
    code, [status] = shop.rg_json("migrate", "status", shop.stack)
    assert code == 0 and status["pending"] == []
