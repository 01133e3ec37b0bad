"""Backups tied to releases, on the embedded default (a SQLite database beside the app):
taken before every deploy, verified by restoring them, and used by `rollback --with-db`
after a release whose migration broke the data (seed 003's repair, made routine)."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Lab, _teardown, build_lab

pytestmark = pytest.mark.e2e

BREAK_ON_V2 = (
    "import os, sqlite3\n"
    "if os.environ['RELEASEGATE_VERSION'] == 'v2':\n"
    "    db = sqlite3.connect(os.path.join(os.environ['RELEASEGATE_SHARED_DIR'], 'app.db'))\n"
    "    db.execute('DELETE FROM users'); db.commit()\n"
)


def users(lab: Lab) -> int:
    db = sqlite3.connect(lab.root / "srv/web-staging/shared/app.db")
    try:
        return int(db.execute("SELECT count(*) FROM users").fetchone()[0])
    finally:
        db.close()


@pytest.fixture()
def db_lab(tmp_path: Path):
    lab = build_lab(tmp_path / "ws")
    shared = lab.root / "srv/web-staging/shared"
    shared.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(shared / "app.db")
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    db.executemany("INSERT INTO users (name) VALUES (?)", [("ann",), ("bob",), ("eve",)])
    db.commit()
    db.close()
    config = lab.config.read_text()
    head, sep, tail = config.partition("  web-prod:")
    service = f'["{sys.executable}", "-m", "releasegate.demo.service"'
    head = head.replace(
        "    commands:\n",
        "    commands:\n"
        f"      migrate: [{json.dumps(sys.executable)}, '-c', {json.dumps(BREAK_ON_V2)}]\n"
        f'      stop: {service}, "stop"]\n',
        1,
    )
    head += (
        "    backup:\n"
        "      keep_last: 2\n"
        "      sources:\n"
        "        - name: app-db\n"
        "          kind: sqlite\n"
        "          path: shared/app.db\n"
        "          checks: [{query: 'SELECT count(*) FROM users', expect: '>0'}]\n"
    )
    lab.config.write_text(head + sep + tail)
    yield lab
    _teardown(lab)


def test_rollback_with_db_undoes_a_release_that_broke_the_data(db_lab: Lab) -> None:
    lab = db_lab
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    out = lab.rg("deploy", "web-staging", "staging", "v2")
    assert out.returncode == 0, out.stdout + out.stderr
    assert users(lab) == 0  # v2's migration emptied the table; the smoke check still passed
    [v2] = [d for d in lab.history_json("--action", "deploy") if d["version"] == "v2"]
    backup_id = v2["details"]["backup"]  # the backup taken before v2, recorded with it

    out = lab.rg("rollback", "web-staging", "staging", "--with-db", "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    assert users(lab) == 3
    assert lab.running_version("web-staging") == "v1"
    [restore] = lab.history_json("--action", "restore")
    assert restore["status"] == "success" and restore["details"]["backup"] == backup_id
    saved = restore["details"]["saved_as"]  # the broken state was saved first, not lost
    listed = [
        json.loads(x) for x in lab.rg("backup", "list", "web-staging", "--json").stdout.splitlines()
    ]
    assert saved in {b["id"] for b in listed}


def test_verify_restores_and_a_flipped_byte_is_caught(db_lab: Lab) -> None:
    lab = db_lab
    out = lab.rg("backup", "web-staging", "staging")
    assert out.returncode == 0, out.stdout + out.stderr
    out = lab.rg("backup", "verify", "web-staging")
    assert out.returncode == 0, out.stdout + out.stderr
    [newest] = [
        json.loads(x) for x in lab.rg("backup", "list", "web-staging", "--json").stdout.splitlines()
    ][:1]
    folder = Path(newest["path"])
    target = next(p for p in folder.iterdir() if "app-db" in p.name)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    out = lab.rg("backup", "verify", "web-staging", newest["id"])
    assert out.returncode == 1, out.stdout + out.stderr
    assert "sha256" in out.stdout + out.stderr
    out = lab.rg("restore", "web-staging", "staging", "--from", newest["id"], "--yes")
    assert out.returncode != 0
    assert users(lab) == 3  # refused: the live data was not touched


def test_retention_keeps_the_protected_backups(db_lab: Lab) -> None:
    lab = db_lab
    for version in ("v1", "v2", "v1"):
        assert lab.rg("deploy", "web-staging", "staging", version).returncode == 0
    for _ in range(3):
        assert lab.rg("backup", "web-staging", "staging").returncode == 0
    listed = [
        json.loads(x) for x in lab.rg("backup", "list", "web-staging", "--json").stdout.splitlines()
    ]
    protected = {b["id"] for b in listed if b["protected"]}
    assert protected, "the backups of the verified and last good versions are protected"
    kept_unprotected = [b for b in listed if not b["protected"]]
    assert len(kept_unprotected) <= 2  # keep_last: 2, applied after each backup


def test_restore_config_puts_the_config_files_back_and_only_when_asked(db_lab: Lab) -> None:
    lab = db_lab
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    env_file = lab.root / "srv/web-staging/shared/.env"
    original = env_file.read_text()  # PORT= for the service; a line of ours after it
    env_file.write_text(original + "GREETING=before\n")
    out = lab.rg("backup", "web-staging", "staging")
    assert out.returncode == 0, out.stdout + out.stderr
    [newest] = [
        json.loads(x) for x in lab.rg("backup", "list", "web-staging", "--json").stdout.splitlines()
    ][:1]
    env_file.write_text(original + "GREETING=after\n")

    # Without --config: the databases only; the config files stay as they are now.
    out = lab.rg("restore", "web-staging", "staging", "--from", newest["id"], "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    assert env_file.read_text() == original + "GREETING=after\n"

    out = lab.rg(
        "restore", "web-staging", "staging", "--from", newest["id"], "--config", "--yes", "--json"
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert env_file.read_text() == original + "GREETING=before\n"
    assert users(lab) == 3
    [result] = [json.loads(x)["result"] for x in out.stdout.splitlines() if '"result"' in x]
    assert f"restored 2 source(s) from {newest['id']}" in json.dumps(result), result
    restore = lab.history_json("--action", "restore")[-1]
    assert restore["status"] == "success"
    # The state it replaced was saved first, config included: it can be had back.
    saved = restore["details"]["saved_as"]
    folder = next(
        Path(b["path"])
        for b in map(
            json.loads, lab.rg("backup", "list", "web-staging", "--json").stdout.splitlines()
        )
        if b["id"] == saved
    )
    assert any(p.name.startswith("config") for p in folder.iterdir())


def test_a_backup_whose_lock_is_released_elsewhere_stops_and_closes_its_rows(
    db_lab: Lab, tmp_path: Path
) -> None:
    """An operation without a workflow of its own (here `backup`) that finds its lock gone
    at a step boundary stops there with exit 5: its rows are closed `aborted`, a
    `lock-lost` row says why, and no backup set was written."""
    lab = db_lab
    pause = tmp_path / "paused"
    proc = lab.rg_background(
        "backup",
        "web-staging",
        "staging",
        RELEASEGATE_PAUSE_AT="backup",
        RELEASEGATE_PAUSE_FILE=str(pause),
    )
    lab.wait_for(pause.exists, "the backup to reach its step", 60)
    freed = lab.rg(
        "lock", "release", "web-staging", "--force", "--reason", "stuck", RELEASEGATE_HOST_ID="m2"
    )
    assert freed.returncode == 0, freed.stdout + freed.stderr
    pause.unlink()
    out, err = proc.communicate(timeout=60)  # the fixture's teardown kills it if it hangs
    assert proc.returncode == 5, out + err
    assert "stopped at a step boundary" in err, out + err
    [run] = lab.history_json("--action", "backup")
    assert run["status"] == "aborted", run
    assert not lab.history_json("--status", "running", "--steps")
    [mark] = lab.mark_notes("lock-lost")
    assert "released" in mark
    listed = lab.rg("backup", "list", "web-staging", "--json").stdout.splitlines()
    assert listed == []
