"""`releasegate migrate` on a real Django project (tests/data/migrations/django_shop) and the
lab's real PostgreSQL: status, lint with Squawk, a rehearsal on a restored backup that
catches a NOT NULL column added to a table with rows before the real run, drift resolved
with `migrate --fake`, and the tool's own rollback (seed 003's `migrate APP NAME`)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tests.e2e_db.migrate_lab import MigrateLab, build

pytestmark = pytest.mark.e2e


@pytest.fixture()
def shop(tmp_path: Path, pg_database) -> MigrateLab:  # type: ignore[no-untyped-def]
    lab = build(
        tmp_path / "ws",
        pg_database,
        project="django_shop",
        tool="django",
        checks="[{query: 'SELECT count(*) FROM shop_order', expect: '=200'}]",
        extra=f'      previous_smoke: ["{sys.executable}", old_smoke.py]\n',
    )
    # Production as it is: 0001 and 0002 applied by the team's own `manage.py migrate`,
    # 200 orders in the table.
    lab.tool("migrate", "shop", "0002_order_note")
    pg_database.sql(
        "INSERT INTO shop_order (total, note) SELECT g, 'n' || g FROM generate_series(1, 200) g"
    )
    return lab


def _status(lab: MigrateLab) -> tuple[int, dict]:  # type: ignore[type-arg]
    code, [status] = lab.rg_json("migrate", "status", lab.stack)
    return code, status


def test_status_lists_applied_and_pending(shop: MigrateLab) -> None:
    code, status = _status(shop)
    assert code == 3, status  # pending migrations: not clean
    assert status["tool"] == "django"
    assert status["applied"] == ["shop.0001_initial", "shop.0002_order_note"]
    assert status["pending"] == ["shop.0003_order_region"]
    assert status["drift"] == []
    out = shop.rg("migrate", "status", shop.stack)
    assert "shop.0003_order_region" in out.stdout and "pending" in out.stdout
    assert shop.db.server.password not in out.stdout + out.stderr


def test_lint_flags_the_not_null_column_with_squawk(shop: MigrateLab) -> None:
    out = shop.rg("migrate", "lint", shop.stack, "--json")
    assert out.returncode == 3, out.stdout + out.stderr
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    findings = [r["finding"] for r in rows if "finding" in r]
    required = [f for f in findings if f["rule"] == "adding-required-field"]
    assert required and required[0]["risk"] == "HIGH"
    assert required[0]["migration"] == "shop.0003_order_region"
    assert required[0]["source"] == "squawk"
    assert required[0]["line"] == 5  # the ALTER's line in sqlmigrate's output
    # releasegate's own rule says the same thing on the same line: not repeated
    assert not [f for f in findings if f["rule"] == "add-column-not-null-no-default"]


def test_rehearsal_catches_not_null_on_rows_before_the_real_run(shop: MigrateLab) -> None:
    out = shop.rg("backup", shop.stack, shop.env_name)
    assert out.returncode == 0, out.stdout + out.stderr
    out = shop.rg("migrate", "rehearse", shop.stack, "--version", "v2")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "migration failed on the restored data" in out.stdout
    assert "contains null values" in out.stdout + out.stderr
    # the live database never saw it
    cols = shop.db.sql(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'shop_order' "
        "AND column_name = 'region'"
    )
    assert cols == "0"
    [rehearsal] = shop.ledger("migrate-rehearse")
    assert rehearsal["status"] == "failed"
    assert rehearsal["version"] == "v2"
    assert rehearsal["details"]["head"] == "shop.0003_order_region"
    assert rehearsal["details"]["verdict"] == "fail"
    # the scratch copy it ran on was dropped, as a recorded step
    [restore] = [s for s in shop.ledger("restore") if s["parent_id"] == rehearsal["action_id"]]
    scratch = restore["details"]["scratch"]
    assert scratch.startswith("rg_verify_")
    [drop] = [s for s in shop.ledger("drop") if s["parent_id"] == rehearsal["action_id"]]
    assert drop["status"] == "success"
    assert scratch not in shop.db.server.databases()
    assert shop.db.server.password not in json.dumps(shop.ledger("migrate-rehearse"))


def test_rehearsal_passes_a_backward_compatible_migration(shop: MigrateLab) -> None:
    # Make 0003 safe the way seed 003 asks: a nullable column.
    path = shop.project / "shop" / "migrations" / "0003_order_region.py"
    path.write_text(
        path.read_text().replace("max_length=20)", "max_length=20, null=True)"), "utf-8"
    )
    assert shop.rg("backup", shop.stack, shop.env_name).returncode == 0
    out = shop.rg("migrate", "rehearse", shop.stack, "--version", "v2")
    assert out.returncode == 0, out.stdout + out.stderr
    [rehearsal] = shop.ledger("migrate-rehearse")
    assert rehearsal["status"] == "success"
    assert rehearsal["details"]["verdict"] == "pass"
    # the sanity check ran on the migrated copy, the old release's smoke too
    smoke = shop.ledger("previous-smoke")
    assert smoke and smoke[0]["status"] == "success"


def test_drift_explained_and_resolved_with_fake(shop: MigrateLab) -> None:
    # Someone added the column by hand (seed 002's situation, on Django).
    shop.db.sql("ALTER TABLE shop_order ADD COLUMN region varchar(20) NOT NULL DEFAULT 'eu'")
    code, status = _status(shop)
    assert code == 3
    [drift] = status["drift"]
    assert drift["migration"] == "shop.0003_order_region"
    assert drift["verdict"] == "applied-without-record"
    assert any("information_schema.columns: shop_order.region" in e for e in drift["evidence"])
    assert any("django_migrations: no row" in e for e in drift["evidence"])

    out = shop.rg(
        "migrate", "resolve", shop.stack, "shop.0003_order_region", "--applied",
        "--reason", "column added by hand",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    code, status = _status(shop)
    assert code == 0 and status["clean"], status
    [resolve] = shop.ledger("migrate-resolve")
    assert resolve["status"] == "success"
    assert resolve["reason"] == "column added by hand"
    evidence = resolve["details"]["evidence"]
    assert evidence["drift"][0]["verdict"] == "applied-without-record"


def test_resolve_refused_when_the_database_lacks_the_column(shop: MigrateLab) -> None:
    out = shop.rg("migrate", "resolve", shop.stack, "shop.0003_order_region", "--applied")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "run it instead" in out.stdout
    _code, status = _status(shop)
    assert status["pending"] == ["shop.0003_order_region"]  # nothing changed
    [resolve] = shop.ledger("migrate-resolve")
    assert resolve["status"] == "refused"


def test_rollback_with_djangos_own_migrate(shop: MigrateLab) -> None:
    out = shop.rg("migrate", "rollback", shop.stack, "--to", "shop.0001_initial")
    assert out.returncode == 0, out.stdout + out.stderr
    cols = shop.db.sql(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'shop_order' "
        "AND column_name = 'note'"
    )
    assert cols == "0"
    _code, status = _status(shop)
    assert status["pending"] == ["shop.0002_order_note", "shop.0003_order_region"]
    [rollback] = shop.ledger("migrate-rollback")
    assert rollback["status"] == "success"
    assert rollback["details"]["backup"]  # a backup of the database was taken first


def test_rehearsal_uses_the_latest_verified_backup(shop: MigrateLab) -> None:
    assert shop.rg("backup", shop.stack, shop.env_name).returncode == 0
    shop.rg("migrate", "rehearse", shop.stack, "--version", "v2")
    [first] = shop.ledger("migrate-rehearse")
    assert first["details"]["backup_verified"] is False  # nothing verified yet: said so

    out = shop.rg("backup", "verify", shop.stack)
    assert out.returncode == 0, out.stdout + out.stderr
    [verify] = shop.ledger("backup-verify")
    verified = verify["details"]["backup"]
    time.sleep(1.1)  # backup ids are per second
    assert shop.rg("backup", shop.stack, shop.env_name).returncode == 0  # newer, unverified
    shop.rg("migrate", "rehearse", shop.stack, "--version", "v2")
    second = [r for r in shop.ledger("migrate-rehearse") if r["action_id"] != first["action_id"]]
    assert second[0]["details"]["backup"] == verified
    assert second[0]["details"]["backup_verified"] is True
