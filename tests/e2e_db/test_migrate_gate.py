"""The deploy's migration gate (engine/migrate_gate.py) on a prod Django stack and the
lab's PostgreSQL: HIGH lint findings and a missing rehearsal refuse; a backward-compatible
migration rehearsed on the same version passes; --force passes and says so."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from releasegate.config import load_config
from releasegate.engine.migrate_gate import migration_gate
from releasegate.engine.migrations import REHEARSE, MigrationOps
from releasegate.identity import current_actor
from releasegate.ledger import Ledger
from releasegate.ledger.trust import LedgerTampered
from tests.e2e_db.migrate_lab import PW_VAR, MigrateLab, build

pytestmark = pytest.mark.e2e


@pytest.fixture()
def prod(tmp_path: Path, pg_database, monkeypatch) -> MigrateLab:  # type: ignore[no-untyped-def]
    lab = build(tmp_path / "ws", pg_database, project="django_shop", tool="django", env_name="prod")
    lab.tool("migrate", "shop", "0002_order_note")
    pg_database.sql("INSERT INTO shop_order (total) SELECT g FROM generate_series(1, 20) g")
    monkeypatch.setenv(PW_VAR, pg_database.server.password)
    return lab


def gate(lab: MigrateLab, version: str, forced: bool = False):  # type: ignore[no-untyped-def]
    config = load_config(lab.config)
    with Ledger.open(config.state_url) as ledger:
        ops = MigrationOps(config, ledger, actor=current_actor())
        return migration_gate(ops, config.stack(lab.stack), version, forced=forced)


def test_gate_refuses_high_risk_and_unrehearsed(prod: MigrateLab) -> None:
    ok, summary, checks, _evidence = gate(prod, "v2")
    assert not ok
    assert "HIGH-risk lint finding" in summary and "not rehearsed on v2" in summary
    assert any(c.name == "lint adding-required-field" and not c.ok for c in checks)
    ok, summary, _c, _e = gate(prod, "v2", forced=True)
    assert ok and summary.startswith("FORCED past the migration gate")


def test_gate_passes_a_rehearsed_safe_migration(prod: MigrateLab) -> None:
    path = prod.project / "shop" / "migrations" / "0003_order_region.py"
    path.write_text(path.read_text().replace("max_length=20)", "max_length=20, null=True)"))
    assert prod.rg("backup", prod.stack, "prod").returncode == 0
    out = prod.rg("migrate", "rehearse", prod.stack, "--version", "v2")
    assert out.returncode == 0, out.stdout + out.stderr
    ok, summary, _c, evidence = gate(prod, "v2")
    assert ok, summary
    assert evidence["rehearsal"]
    ok, summary, _c, _e = gate(prod, "v3")  # rehearsed on another version: not enough
    assert not ok and "not rehearsed on v3" in summary
    # A rehearsal forged in the database to say v3 is refused as tampering, by row.
    with sqlite3.connect(load_config(prod.config).state_url) as conn:
        [(seq,)] = conn.execute(
            "SELECT seq FROM entries WHERE action = ? AND kind = 'open' AND parent_id IS NULL",
            (REHEARSE,),
        ).fetchall()
        conn.execute("UPDATE entries SET version = 'v3' WHERE action_id ="
                     " (SELECT action_id FROM entries WHERE seq = ?)", (seq,))  # fmt: skip
    with pytest.raises(LedgerTampered) as caught:
        gate(prod, "v3")
    assert caught.value.seq == seq
