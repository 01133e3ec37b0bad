"""The plan is what runs: `--dry-run` of deploy, rollback and restore prints exactly the
steps the real run then records, in the same order (releases runtime, this machine)."""

from __future__ import annotations

import json

import pytest

from tests.lab.plans import last_json, planned, recorded, same_steps

pytestmark = pytest.mark.e2e


def _with_migrate_and_backup(lab) -> None:
    text = lab.config.read_text()
    text = text.replace("    commands:\n", "    commands:\n      migrate: ['true']\n")
    text = text.replace(
        "    shared: [.env, logs/]\n",
        "    shared: [.env, logs/]\n"
        "    backup:\n      files: [shared/.env]\n      stop: ['true']\n      sources:\n"
        f"        - name: app\n          kind: sqlite\n          path: {lab.root / 'app.db'}\n",
    )
    lab.config.write_text(text)
    import sqlite3

    with sqlite3.connect(lab.root / "app.db") as db:
        db.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")


def test_deploy_rollback_and_restore_run_their_dry_runs(lab):
    _with_migrate_and_backup(lab)
    for version in ("v1", "v2"):
        dry = lab.rg("deploy", "web-staging", "staging", version, "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        plan = planned(dry.stdout)
        assert [n for n, _ in plan][:2] == ["preflight", "backup"]
        assert "migrate" in [n for n, _ in plan]
        real = lab.rg("deploy", "web-staging", "staging", version, "--json")
        assert real.returncode == 0, real.stdout + real.stderr
        run = recorded(last_json(real.stdout, "result"))
        assert same_steps(plan, run), (plan, run)
        assert lab.running_version("web-staging") == version

    dry = lab.rg("rollback", "web-staging", "staging", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = planned(dry.stdout)
    assert "migrate" not in [n for n, _ in plan]  # a rollback never migrates
    real = lab.rg("rollback", "web-staging", "staging", "--json")
    assert real.returncode == 0, real.stdout + real.stderr
    assert same_steps(plan, recorded(last_json(real.stdout, "result")))
    assert lab.running_version("web-staging") == "v1"

    backups = lab.rg("backup", "list", "web-staging", "--json")
    assert backups.returncode == 0, backups.stderr
    backup_id = json.loads(backups.stdout.splitlines()[0])["id"]
    dry = lab.rg("restore", "web-staging", "staging", "--from", backup_id, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = planned(dry.stdout)
    assert [n for n, _ in plan] == ["backup", "stop", "restore", "restart", "smoke"]
    real = lab.rg("restore", "web-staging", "staging", "--from", backup_id, "--yes", "--json")
    assert real.returncode == 0, real.stdout + real.stderr
    assert same_steps(plan, recorded(last_json(real.stdout, "result")))
