"""The planner as data: config + facts in, ordered steps out (what --dry-run prints)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from releasegate.config import load_config
from releasegate.plan import Facts, plan_deploy, plan_rollback

BASE = """
stacks:
  web-staging:
    env: staging
    runtime: releases
    dir: srv/staging
    artifacts: artifacts
    shared: [.env, logs/]
    commands:
      install: ["pip", "install", "-r", "requirements.txt"]
      migrate: ./manage.py migrate --noinput
      restart: ["pm2", "reload", "web"]
    smoke:
      - http: http://127.0.0.1:8000/health
      - name: version
        command: ["./manage.py", "check"]
  web-prod:
    env: prod
    runtime: releases
    dir: srv/prod
    artifacts: artifacts
    promote_from: web-staging
    keep_releases: 3
    preflight:
      require_commands: [pm2]
"""


@pytest.fixture
def config(tmp_path: Path) -> Any:
    path = tmp_path / "releasegate.yaml"
    path.write_text(BASE)
    return load_config(path)


def names(plan: Any) -> list[str]:
    return [s.name for s in plan.steps]


def test_full_deploy_order(config: Any) -> None:
    stack = config.stack("web-staging")
    plan = plan_deploy(stack, "v2", Facts(running="v1", rollback_target="v1", artifact="a/v2"))
    assert names(plan) == [
        "lock", "preflight", "backup", "prepare", "migrate", "switch", "restart", "smoke",
        "verify", "cleanup",
    ]  # fmt: skip
    assert plan.notes == "if switch, restart or smoke fails: roll back to v1"
    titles = {s.name: s.title for s in plan.steps}
    assert "pip install -r requirements.txt" in titles["prepare"]
    assert titles["migrate"] == "run migrate: ./manage.py migrate --noinput"
    assert titles["switch"].endswith("current: v1 -> v2")
    assert "shared/.env" in titles["backup"]
    assert plan.steps[names(plan).index("smoke")].details["checks"] == ["http:/health", "version"]


def test_promotion_gate_comes_first_and_says_forced(config: Any) -> None:
    stack = config.stack("web-prod")
    facts = Facts(running=None, rollback_target=None, artifact="a/v2")
    plan = plan_deploy(stack, "v2", facts)
    assert names(plan)[:3] == ["lock", "promotion", "preflight"]
    forced = plan_deploy(stack, "v2", facts, forced=True, reason="INC-42")
    assert forced.forced and forced.reason == "INC-42"
    assert "FORCED" in forced.steps[1].title
    assert plan.notes.endswith("nothing (no earlier good version)")


def test_optional_steps_drop_out(config: Any) -> None:
    stack = config.stack("web-prod")  # no shared files, no commands
    plan = plan_deploy(stack, "v1", Facts(running=None, rollback_target=None, artifact="a/v1"))
    assert "backup" not in names(plan)
    assert "migrate" not in names(plan) and "restart" not in names(plan)
    assert "keep the last 3 releases" in plan.steps[-1].title
    staging = config.stack("web-staging")
    skipped = plan_deploy(staging, "v2", Facts("v1", "v1", "a/v2"), skip_backup=True)
    assert "backup" not in names(skipped)


def test_prepared_release_is_reused(config: Any) -> None:
    stack = config.stack("web-staging")
    plan = plan_deploy(stack, "v2", Facts("v1", "v1", "a/v2", prepared=True))
    prepare = plan.steps[names(plan).index("prepare")]
    assert prepare.title.startswith("reuse prepared release")


def test_missing_artifact_is_visible_in_the_plan(config: Any) -> None:
    plan = plan_deploy(config.stack("web-staging"), "v9", Facts("v1", "v1", None))
    assert "(artifact missing)" in plan.steps[names(plan).index("prepare")].title


def test_preflight_lists_every_rule(config: Any) -> None:
    plan = plan_deploy(config.stack("web-prod"), "v1", Facts(None, None, "a"))
    rules = plan.steps[names(plan).index("preflight")].details["rules"]
    assert rules[0].startswith("disk free >= 20% on")
    assert "command pm2 present" in rules


def test_rollback_never_migrates(config: Any) -> None:
    stack = config.stack("web-staging")
    plan = plan_rollback(stack, "v1", Facts(running="v2", rollback_target=None, artifact="a/v1"))
    assert names(plan) == ["lock", "prepare", "switch", "restart", "smoke"]
    assert plan.action == "rollback" and plan.version == "v1" and plan.notes == "from v2"
