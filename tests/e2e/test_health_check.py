"""`releasegate check STACK ENV` end to end (seed 004's health-check): one report of
preflight, smoke and data checks, scheduled jobs, the newest verified backup's age, the
lock and the ledger; exit 0, or 3 naming each part that failed."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from tests.e2e.conftest import Lab, _teardown, build_lab

pytestmark = pytest.mark.e2e


@pytest.fixture()
def hlab(tmp_path):
    lab = build_lab(tmp_path / "ws")
    db = lab.root / "srv/web-staging/shared/app.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE sync_logs (source TEXT, status TEXT)")
        con.execute("INSERT INTO sync_logs VALUES ('ozon', 'ok')")
    crond = lab.root / "crond"
    crond.mkdir()
    extra = f"""\
      - name: sync-logs
        sql: SELECT count(*) FROM sync_logs WHERE status = 'ok'
        source: appdb
        at_least: 1
    backup:
      sources:
        - {{name: appdb, kind: sqlite, path: shared/app.db}}
    cron:
      target: cron.d
      user: root
      cron_d_dir: {crond}
      jobs:
        - {{name: monitor, schedule: "@hourly", argv: [./monitor.sh]}}
    check:
      max_backup_age: 1h
"""
    text = lab.config.read_text(encoding="utf-8")
    lab.config.write_text(
        text.replace(
            "        timeout: 5\n  web-prod:", "        timeout: 5\n" + extra + "  web-prod:"
        ),
        encoding="utf-8",
    )
    yield lab
    _teardown(lab)


def _check(lab: Lab, *args: str) -> tuple[int, dict]:
    out = lab.rg("check", "web-staging", "staging", "--json", *args)
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    result = next(x["result"] for x in lines if "result" in x)
    return out.returncode, result


def _failed(result: dict) -> set[str]:
    return {s["step"] for s in result["steps"] if not s["ok"]}


def test_check_before_and_after_a_deploy(hlab: Lab) -> None:
    code, result = _check(hlab)
    assert code == 3
    assert _failed(result) == {"smoke", "backup-age"}  # nothing deployed: no jobs due either
    assert [s["step"] for s in result["steps"]] == [
        "preflight", "smoke", "cron", "backup-age", "lock", "ledger",
    ]  # fmt: skip

    assert hlab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    code, result = _check(hlab)
    assert code == 3 and _failed(result) == {"backup-age"}  # taken, but never verified
    assert hlab.rg("backup", "verify", "web-staging").returncode == 0
    code, result = _check(hlab)
    assert code == 0, result
    assert result["status"] == "success"

    text = hlab.rg("check", "web-staging", "staging")
    assert text.returncode == 0
    assert "✔ backup-age: newest verified backup" in text.stdout
    assert "✔ ledger: chain intact" in text.stdout

    # A hand-edited job, a data check failing, a stricter age: each named.
    job = hlab.root / "crond/web-staging"
    job.write_text(job.read_text().replace("monitor.sh", "other.sh"))
    with sqlite3.connect(hlab.root / "srv/web-staging/shared/app.db") as con:
        con.execute("UPDATE sync_logs SET status = 'failed'")
    time.sleep(1.1)
    code, result = _check(hlab, "--max-backup-age", "1s")
    assert code == 3 and _failed(result) == {"cron", "smoke", "backup-age"}
    assert "sync-logs" in result["message"] and "job monitor: changed" in result["message"]
    bad = hlab.rg("check", "web-staging", "staging", "--max-backup-age", "soon")
    assert bad.returncode == 2
    rows = hlab.history_rows("--stack", "web-staging")
    assert [r[5] for r in rows if r[3] == "check"][-1] == "fail"
