"""Feature switches through the real CLI: the sample app (started by the stack's restart
command) reads its .env and answers differently when a switch is on; a change is locked,
gated, restarted, smoked, recorded and reversible; a rollback brings a release's flags."""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

FLAGS = {
    "dotenv": "shared/.env",
    "flagd": "shared/flags.json",
    "apply": "restart",
    "declared": {
        "SUPPLIER_EVAL_ENABLED": {
            "type": "bool",
            "default": False,
            "description": "seed 003's supplier evaluation module",
            "stores": ["dotenv"],
        },
        "BROKEN_FEATURE_ENABLED": {"type": "bool", "stores": ["dotenv"]},
        "API_MODE": {"type": "string", "secret": True, "stores": ["dotenv"]},
        "supplier-eval": {"type": "bool", "stores": ["flagd"]},
    },
}


def add_flags(lab, *stacks: str) -> None:
    cfg = yaml.safe_load(lab.config.read_text(encoding="utf-8"))
    for stack in stacks:
        cfg["stacks"][stack]["flags"] = FLAGS
    lab.config.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")


def features(lab, stack: str) -> tuple[int, str]:
    """What the app answers on /features: 403 until a switch is on."""
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{lab.ports[stack]}/features", timeout=5
        ) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def env_text(lab, stack: str) -> str:
    return (lab.root / "srv" / stack / "shared" / ".env").read_text(encoding="utf-8")


def flag_history(lab, stack: str, env: str) -> list[dict]:
    out = lab.rg("flag", "history", stack, env, "--json")
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_flag_set_changes_what_the_app_answers_then_rolls_back(lab):
    add_flags(lab, "web-staging")
    env_file = lab.root / "srv/web-staging/shared/.env"
    env_file.write_text(env_file.read_text() + "# seed 003: dark launch\n")
    before = env_text(lab, "web-staging")
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    assert features(lab, "web-staging")[0] == 403  # dark: the module answers "not enabled"

    out = lab.rg(
        "flag", "set", "web-staging", "staging", "SUPPLIER_EVAL_ENABLED", "true",
        "--reason", "open to everyone",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUPPLIER_EVAL_ENABLED: (unset) -> true" in out.stdout
    status, body = features(lab, "web-staging")
    assert status == 200 and "SUPPLIER_EVAL_ENABLED" in body  # the restarted app reads it
    # One line added; every other byte (the secret, the comment) as it was.
    assert env_text(lab, "web-staging") == before + "SUPPLIER_EVAL_ENABLED=true\n"

    again = lab.rg("flag", "set", "web-staging", "staging", "SUPPLIER_EVAL_ENABLED", "on")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already true on every host: nothing to change" in again.stdout
    assert "restart" not in again.stderr  # nothing written, nothing restarted

    change, same = flag_history(lab, "web-staging", "staging")
    assert (same["old"], same["new"], same["status"]) == ("true", "true", "success")
    assert change["flag"] == "SUPPLIER_EVAL_ENABLED"
    assert (change["old"], change["new"]) == (None, "true")
    assert change["status"] == "success" and change["user"] == "tester"
    assert change["reason"] == "open to everyone" and change["release"] == "v1"
    steps = [r["action"] for r in lab.history_json("--steps", "--action", "flag")]
    rows = lab.history_json("--steps", "--last", "9")
    assert [r["action"] for r in rows] == [
        *("flag", "gate", "read", "write", "restart", "smoke"),
        *("flag", "gate", "read"),  # the same value again: read, nothing more
    ]
    assert steps == ["flag", "flag"]  # steps have names of their own

    listed = lab.rg("flag", "list", "web-staging", "staging", "--json")
    assert listed.returncode == 0, listed.stdout
    by_name = {r["name"]: r for r in map(json.loads, listed.stdout.splitlines())}
    assert by_name["SUPPLIER_EVAL_ENABLED"]["value"] == "true"
    assert by_name["SUPPLIER_EVAL_ENABLED"]["recorded"] == "true"

    out = lab.rg("flag", "rollback", "web-staging", "staging", "SUPPLIER_EVAL_ENABLED")
    assert out.returncode == 0, out.stdout + out.stderr
    assert features(lab, "web-staging")[0] == 403
    assert env_text(lab, "web-staging") == before  # the line it added is gone again
    last = flag_history(lab, "web-staging", "staging")[-1]
    assert (last["old"], last["new"]) == ("true", None)
    assert last["rollback_of"] == change["action_id"]


def test_smoke_failure_puts_the_old_value_back(lab):
    add_flags(lab, "web-staging")
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    before = env_text(lab, "web-staging")
    out = lab.rg("flag", "set", "web-staging", "staging", "BROKEN_FEATURE_ENABLED", "true")
    assert out.returncode == 4, out.stdout + out.stderr
    assert "BROKEN_FEATURE_ENABLED is back to (unset)" in out.stdout
    assert env_text(lab, "web-staging") == before
    assert lab.health("web-staging") == (200, {"status": "ok", "version": "v1"})
    [change] = flag_history(lab, "web-staging", "staging")
    assert change["status"] == "fail"
    steps = [r["action"] for r in lab.history_json("--steps", "--last", "8")]
    assert steps[-3:] == ["restore", "restart", "smoke"]
    # The failed change was never "the previous value" of anything.
    out = lab.rg("flag", "rollback", "web-staging", "staging", "BROKEN_FEATURE_ENABLED")
    assert out.returncode == 2 and "never changed" in out.stderr


def test_rollback_restores_the_flags_of_the_target_release(lab):
    add_flags(lab, "web-staging")
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    assert (
        lab.rg("flag", "set", "web-staging", "staging", "SUPPLIER_EVAL_ENABLED", "true").returncode
        == 0
    )  # v1 runs with it on
    assert lab.rg("deploy", "web-staging", "staging", "v2").returncode == 0
    assert (
        lab.rg("flag", "set", "web-staging", "staging", "SUPPLIER_EVAL_ENABLED", "false").returncode
        == 0
    )  # v2 turned it off
    assert features(lab, "web-staging")[0] == 403

    plan = lab.rg("rollback", "web-staging", "staging", "--dry-run")
    assert "put back the flags recorded with v1" in plan.stdout, plan.stdout
    out = lab.rg("rollback", "web-staging", "staging")
    assert out.returncode == 0, out.stdout + out.stderr
    assert lab.running_version("web-staging") == "v1"
    assert "SUPPLIER_EVAL_ENABLED=true" in env_text(lab, "web-staging")
    assert features(lab, "web-staging")[0] == 200  # v1 came back with its switch on
    [rb] = [r for r in lab.history_json() if r["action"] == "rollback"]
    assert rb["details"]["flags"]["SUPPLIER_EVAL_ENABLED"]["value"] == "true"


def test_prod_needs_a_reason_and_secrets_stay_out_of_the_ledger(lab):
    add_flags(lab, "web-staging", "web-prod")
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    assert lab.rg("deploy", "web-prod", "prod", "v1").returncode == 0
    before = env_text(lab, "web-prod")
    out = lab.rg("flag", "set", "web-prod", "prod", "SUPPLIER_EVAL_ENABLED", "true")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "needs --reason" in out.stdout
    assert env_text(lab, "web-prod") == before  # refused: nothing written
    assert flag_history(lab, "web-prod", "prod")[-1]["status"] == "refused"

    out = lab.rg("flag", "set", "web-prod", "prod", "API_MODE", "hunter2-s3cret", "--reason", "k")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "API_MODE=hunter2-s3cret" in env_text(lab, "web-prod")
    assert "hunter2" not in out.stdout + out.stderr
    change = flag_history(lab, "web-prod", "prod")[-1]
    assert change["new"] == "***"
    dump = "\n".join(sqlite3.connect(lab.root / ".releasegate/state.db").iterdump())
    assert "hunter2" not in dump
    records = "".join(p.read_text() for p in (lab.root / ".releasegate/records").glob("*.md"))
    assert "hunter2" not in records
    out = lab.rg("flag", "rollback", "web-prod", "prod", "API_MODE", "--reason", "back")
    assert out.returncode == 2 and "secret" in out.stderr


def test_bad_names_and_values_are_refused_before_anything(lab):
    add_flags(lab, "web-staging")
    for args, words in (
        (["UNKNOWN_FLAG", "true"], "not declared"),
        (["SUPPLIER_EVAL_ENABLED", "maybe"], "not a bool"),
        (["SUPPLIER_EVAL_ENABLED", "tr\nue"], "control character"),
        (["SUPPLIER_EVAL_ENABLED=1", "true"], "not declared"),
        (["SUPPLIER_EVAL_ENABLED", "true", "--users", "a"], "no flagd store"),
    ):
        out = lab.rg("flag", "set", "web-staging", "staging", *args)
        assert out.returncode in (2, 3), (args, out.stdout, out.stderr)
        assert words in out.stdout + out.stderr, (args, out.stdout, out.stderr)
    assert "SUPPLIER_EVAL_ENABLED" not in env_text(lab, "web-staging")


def test_a_running_deploy_holds_the_lock(gated_lab):
    lab = gated_lab
    add_flags(lab, "web-staging")
    deploy = lab.rg_background("deploy", "web-staging", "staging", "v1")
    lab.wait_for(lambda: _locked(lab), "the deploy to take the lock")
    out = lab.rg("flag", "set", "web-staging", "staging", "SUPPLIER_EVAL_ENABLED", "true")
    assert out.returncode == 5, out.stdout + out.stderr
    lab.open_go("web-staging")
    assert deploy.wait(timeout=120) == 0
    assert "SUPPLIER_EVAL_ENABLED" not in env_text(lab, "web-staging")


def _locked(lab) -> bool:
    out = lab.rg("lock", "status", "--json")
    return '"web-staging"' in out.stdout


def test_flagd_targeting_is_written_and_listed(lab, tmp_path: Path):
    add_flags(lab, "web-staging")
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    out = lab.rg(
        "flag", "set", "web-staging", "staging", "supplier-eval", "false",
        "--users", "alice,bob", "--reason", "beta group",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads((lab.root / "srv/web-staging/shared/flags.json").read_text())
    flag = doc["flags"]["supplier-eval"]
    assert flag["defaultVariant"] == "off"
    assert flag["targeting"]["if"][1] == "on"
    rule = tmp_path / "rule.json"
    rule.write_text(json.dumps({"fractional": [["on", 50], ["off", 50]]}))
    out = lab.rg(
        "flag", "set", "web-staging", "staging", "supplier-eval", "false",
        "--targeting-file", str(rule),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    listed = lab.rg("flag", "list", "web-staging", "staging")
    assert "50% on, 50% off" in listed.stdout, listed.stdout
    out = lab.rg("flag", "rollback", "web-staging", "staging", "supplier-eval")
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads((lab.root / "srv/web-staging/shared/flags.json").read_text())
    assert doc["flags"]["supplier-eval"]["targeting"]["if"][1] == "on"  # the beta group again


def test_an_interrupted_change_is_closed_and_says_what_to_check(lab):
    import os
    import signal
    import subprocess

    from tests.cli import RELEASEGATE

    add_flags(lab, "web-staging")
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    marker = lab.root / "paused"
    env = {**lab.env(), "RELEASEGATE_PAUSE_AT": "restart", "RELEASEGATE_PAUSE_FILE": str(marker)}
    proc = subprocess.Popen(
        [RELEASEGATE, "flag", "set", "web-staging", "staging", "SUPPLIER_EVAL_ENABLED", "true"],
        cwd=lab.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lab.procs.append(proc)
    lab.wait_for(marker.exists, "the change to reach its restart")
    os.kill(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert "flag list web-staging staging" in stdout  # the hint: the write happened
    [change] = flag_history(lab, "web-staging", "staging")
    assert change["status"] == "aborted"
    assert lab.rg("lock", "status", "--json").stdout.strip() == ""  # the lock was released


def test_apply_reload_runs_the_reload_command_not_the_restart(lab):
    cfg = yaml.safe_load(lab.config.read_text(encoding="utf-8"))
    cfg["stacks"]["web-staging"]["flags"] = {
        "dotenv": "shared/.env",
        "apply": "reload",
        # Run in the current release with the release's environment, like the restart.
        "reload": ["sh", "-c", 'pwd -P >> "$RELEASEGATE_SHARED_DIR/reloads"'],
        "declared": {"SUPPLIER_EVAL_ENABLED": {"type": "bool"}},
    }
    lab.config.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    shared = lab.root / "srv/web-staging/shared"
    pid = (shared / "app.pid").read_text()
    out = lab.rg("flag", "set", "web-staging", "staging", "SUPPLIER_EVAL_ENABLED", "true")
    assert out.returncode == 0, out.stdout + out.stderr
    assert (shared / "reloads").read_text().splitlines() == [
        str((lab.root / "srv/web-staging/releases/v1").resolve())
    ]
    assert (shared / "app.pid").read_text() == pid  # not restarted
    steps = [r["action"] for r in lab.history_json("--steps", "--last", "6")]
    assert steps == ["flag", "gate", "read", "write", "reload", "smoke"]
