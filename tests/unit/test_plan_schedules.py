"""The planner with windows, jobs and data checks, as data: where the window gate and the
cron step sit in a deploy's and a rollback's plan; the config's new keys and their errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from releasegate.config import load_config
from releasegate.errors import ConfigError
from releasegate.gates.windows import judge
from releasegate.plan import Facts, plan_deploy, plan_rollback

BASE = """
stacks:
  inv-prod:
    env: prod
    runtime: releases
    dir: srv/prod
    artifacts: artifacts
    windows:
      timezone: Europe/Moscow
      allow: [{days: weekdays, from: "17:00", to: "18:00"}]
    cron:
      jobs:
        - {name: sync, schedule: "0 */6 * * *", argv: [python3, sync.py]}
    smoke:
      - name: rows
        sql: SELECT count(*) FROM inventory_data
        source: db
        at_least: 1
    backup:
      sources: [{name: db, kind: sqlite, path: db.sqlite3}]
    check: {max_backup_age: 26h}
"""


def _load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "releasegate.yaml"
    path.write_text(text)
    return load_config(path)


def names(plan: Any) -> list[str]:
    return [s.name for s in plan.steps]


def test_window_first_cron_after_smoke(tmp_path: Path) -> None:
    stack = _load(tmp_path, BASE).stack("inv-prod")
    closed = judge(stack.windows, datetime(2026, 1, 17, 12, tzinfo=UTC))  # a Saturday
    facts = Facts(running="v1", rollback_target="v1", artifact="a/v2", window=closed)
    plan = plan_deploy(stack, "v2", facts)
    assert names(plan) == [
        "lock", "window", "preflight", "backup", "prepare", "switch", "smoke", "cron",
        "verify", "cleanup",
    ]  # fmt: skip
    window = plan.steps[1]
    assert window.title.startswith("deploy window: CLOSED: outside every deploy window")
    assert "Mon 2026-01-19 17:00 MSK (14:00 UTC)" in window.title
    assert window.details["verdict"]["open"] is False
    forced = plan_deploy(stack, "v2", facts, forced=True, reason="INC-7")
    assert "FORCED" in forced.steps[1].title
    cron = plan.steps[names(plan).index("cron")]
    assert cron.title == (
        "install scheduled jobs in the login user's crontab: sync (what was there backed up first)"
    )
    assert plan.steps[names(plan).index("smoke")].details["checks"] == ["rows"]
    assert stack.check.max_backup_age == 26 * 3600


def test_rollback_puts_back_the_targets_jobs_and_has_no_window(tmp_path: Path) -> None:
    stack = _load(tmp_path, BASE).stack("inv-prod")
    plan = plan_rollback(stack, "v1", Facts(running="v2", rollback_target=None, artifact="a"))
    assert "window" not in names(plan)
    assert names(plan)[-1] == "cron"
    assert (
        plan.steps[-1].title
        == "put back the scheduled jobs installed with v1 in the login user's crontab"
    )


def test_without_windows_or_jobs_the_plan_is_as_before(tmp_path: Path) -> None:
    text = BASE.split("    windows:")[0] + "    backup: {files: []}\n"
    stack = _load(tmp_path, text).stack("inv-prod")
    plan = plan_deploy(stack, "v2", Facts("v1", "v1", "a/v2"))
    assert "window" not in names(plan) and "cron" not in names(plan)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("source: db\n", "source: nope\n", "source 'nope' is not a database of backup.sources"),
        (
            "SELECT count(*) FROM inventory_data",
            "SELECT 1; DELETE FROM inventory_data",
            "one statement only",
        ),
        ("        at_least: 1\n", "", "needs an expectation"),
        ('"0 */6 * * *"', '"0 */6 * *"', "5 fields"),
        ("timezone: Europe/Moscow", "timezone: Europe/Atlantis", "not a known time zone"),
        ("max_backup_age: 26h", "max_backup_age: soon", "is not an age"),
        (
            "        at_least: 1\n",
            "        at_least: 1\n      - {name: rows, sql: SELECT 1, source: db, equals: 1}\n",
            "name 'rows' is already used",
        ),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, BASE.replace(old, new))
