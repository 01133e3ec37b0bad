"""The deploy pipeline through the real CLI against real sample-app processes."""

import json
import re
import sqlite3

import pytest

pytestmark = pytest.mark.e2e

LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \| [a-z0-9_-]+ \| [a-z0-9_-]+ \| [a-z-]+ "
    r"\| \S* \| \w+ \|( .*)?$"
)


def test_promotion_is_refused_until_verified_upstream(lab):
    out = lab.rg("deploy", "web-prod", "prod", "v1")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "accepts only a version verified on web-staging" in out.stdout
    assert "deploy v1 to web-staging first" in out.stdout
    assert lab.running_version("web-prod") is None  # nothing was started
    assert not (lab.root / "srv/web-prod/current").exists()

    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    assert lab.rg("deploy", "web-prod", "prod", "v1").returncode == 0
    assert lab.running_version("web-prod") == "v1"
    # v2 verified nowhere yet: refused again, and prod keeps running v1
    out = lab.rg("deploy", "web-prod", "prod", "v2")
    assert out.returncode == 3
    assert lab.running_version("web-prod") == "v1"

    log = lab.history_rows("--stack", "web-prod")
    assert [row[3:6] for row in log] == [
        ["deploy", "v1", "refused"],
        ["deploy", "v1", "success"],
        ["deploy", "v2", "refused"],
    ]
    lines = lab.history_log("--stack", "web-prod")
    assert all(LOG_LINE.match(line) for line in lines), lines
    assert lines[1].endswith("| success |")  # empty notes: the seed's exact line shape


def test_forced_deploy_is_recorded_as_forced(lab):
    out = lab.rg("deploy", "web-prod", "prod", "v1", "--force")
    assert out.returncode == 2 and "--reason" in out.stderr
    out = lab.rg("deploy", "web-prod", "prod", "v1", "--force", "--reason", "hotfix INC-42")
    assert out.returncode == 0, out.stdout + out.stderr
    assert lab.running_version("web-prod") == "v1"
    [row] = lab.history_rows("--forced")
    assert row[1:6] == ["web-prod", "prod", "deploy", "v1", "success"]
    assert row[6] == "FORCED: hotfix INC-42"
    [rec] = lab.history_json("--forced")
    assert rec["forced"] is True and rec["reason"] == "hotfix INC-42" and rec["user"] == "tester"


def test_smoke_failure_rolls_back_automatically(lab):
    for v in ("v1", "v2"):
        assert lab.rg("deploy", "web-staging", "staging", v).returncode == 0
    out = lab.rg("deploy", "web-staging", "staging", "v3")
    assert out.returncode == 4, out.stdout + out.stderr
    assert "rolled back to v2" in out.stdout
    # the old version answers afterwards
    assert lab.health("web-staging") == (200, {"status": "ok", "version": "v2"})
    assert (lab.root / "srv/web-staging/current").resolve().name == "v2"
    log = lab.history_rows("--stack", "web-staging")
    assert [row[3:6] for row in log[-2:]] == [
        ["deploy", "v3", "fail"],
        ["rollback", "v2", "success"],
    ]
    assert log[-2][6].startswith("smoke failed")
    assert log[-1][6] == "from v3, automatic"
    verified = lab.rg("verified", "--json")
    assert json.loads(verified.stdout)["version"] == "v2"
    # the execution record names every step, with evidence
    record = re.search(r"record: (\S+)", out.stdout).group(1)
    text = open(record, encoding="utf-8").read()
    assert "## deploy v3 on web-staging" in text and "## rollback v2 on web-staging" in text
    assert "| smoke |" in text and "status 500, expected 200" in text


def test_manual_rollback_and_to_version(lab):
    for v in ("v1", "v2"):
        assert lab.rg("deploy", "web-staging", "staging", v).returncode == 0
    out = lab.rg("rollback", "web-staging", "staging")
    assert out.returncode == 0, out.stdout + out.stderr
    assert lab.running_version("web-staging") == "v1"
    out = lab.rg("rollback", "web-staging", "staging", "--to", "v2")
    assert out.returncode == 0
    assert lab.running_version("web-staging") == "v2"
    out = lab.rg("rollback", "web-staging", "staging", "--to", "v3")
    assert out.returncode == 2 and "never deployed successfully" in out.stderr


def test_dry_run_changes_nothing(lab):
    before = (
        sqlite3.connect(lab.root / ".releasegate/state.db")
        .execute("select count(*) from entries")
        .fetchone()[0]
        if (lab.root / ".releasegate/state.db").exists()
        else 0
    )
    out = lab.rg("deploy", "web-staging", "staging", "v1", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "switch" in out.stdout and "nothing was changed" in out.stdout
    assert not (lab.root / "srv/web-staging/current").exists()
    assert not (lab.root / "srv/web-staging/releases").exists()
    db = lab.root / ".releasegate/state.db"
    after = (
        sqlite3.connect(db).execute("select count(*) from entries").fetchone()[0]
        if db.exists()
        else 0
    )
    assert after == before


def test_bad_names_and_env_mismatch_are_refused(lab):
    for args in (
        ["deploy", "web-staging", "staging", "v1;reboot"],
        ["deploy", "web-staging", "staging", "../v1"],
        ["deploy", "web-staging", "prod", "v1"],
        ["deploy", "nope", "staging", "v1"],
    ):
        out = lab.rg(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr
    assert (
        "is the staging environment, not prod"
        in lab.rg("deploy", "web-staging", "prod", "v1").stderr
    )


def test_status_smoke_preflight(lab):
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    out = lab.rg("status", "--json")
    rows = {json.loads(line)["stack"]: json.loads(line) for line in out.stdout.splitlines()}
    assert rows["web-staging"]["running"] == "v1" and rows["web-staging"]["verified"] == "v1"
    assert rows["web-prod"]["running"] is None
    assert lab.rg("smoke", "web-staging", "staging").returncode == 0
    out = lab.rg("smoke", "web-staging", "staging", "v2")
    assert out.returncode == 1
    assert lab.rg("preflight", "web-staging", "staging", "v2").returncode == 0
    out = lab.rg("preflight", "web-staging", "staging", "v9")
    assert out.returncode == 3 and "no v9/ or v9.tar.gz" in out.stdout
    out = lab.rg("preflight", "web-prod", "prod", "v2")
    assert out.returncode == 3 and "verified on web-staging" in out.stdout


def test_old_releases_are_pruned_keeping_protected(lab):
    # keep_releases is 3 in the lab: after four versions only three directories remain
    import shutil

    for v in ("v5", "v6"):  # the workspace has v1..v4 (v3 broken, v4 logs errors)
        shutil.copytree(lab.root / "artifacts/v1", lab.root / f"artifacts/{v}")
        (lab.root / f"artifacts/{v}/VERSION").write_text(v + "\n")
    for v in ("v1", "v2", "v5", "v6"):
        assert lab.rg("deploy", "web-staging", "staging", v).returncode == 0
    kept = sorted(p.name for p in (lab.root / "srv/web-staging/releases").iterdir())
    assert kept == ["v2", "v5", "v6"]


def test_secrets_never_reach_the_ledger_or_records(lab):
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    secret = "not-for-real"
    db = (lab.root / ".releasegate/state.db").read_bytes()
    assert secret.encode() not in db
    for record in (lab.root / ".releasegate/records").iterdir():
        assert secret not in record.read_text(encoding="utf-8")


def test_tampered_ledger_row_is_caught(lab):
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    assert lab.rg("audit", "verify").returncode == 0
    db = sqlite3.connect(lab.root / ".releasegate/state.db")
    seq = db.execute("select seq from entries where action='deploy' and kind='close'").fetchone()[0]
    db.execute("update entries set status='fail' where seq=?", (seq,))
    db.commit()
    out = lab.rg("audit", "verify")
    assert out.returncode == 6, out.stdout + out.stderr
    assert f"row {seq}" in out.stderr


def test_a_forced_run_that_fails_still_says_forced(lab):
    # v3 is broken: forced past the promotion gate, it fails its smoke checks and goes back.
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    assert lab.rg("deploy", "web-prod", "prod", "v1").returncode == 0
    out = lab.rg("deploy", "web-prod", "prod", "v3", "--force", "--reason", "hotfix INC-43")
    assert out.returncode == 4, out.stdout + out.stderr
    [row] = [r for r in lab.history_rows("--forced") if r[4] == "v3"]
    assert row[3:6] == ["deploy", "v3", "fail"]
    assert row[6].startswith("FORCED: hotfix INC-43")
    assert [line for line in lab.history_log() if "| FORCED" in line] == [
        line for line in lab.history_log("--forced")
    ]
    table = lab.rg("history", "--stack", "web-prod")
    [line] = [ln for ln in table.stdout.splitlines() if " v3 " in ln]
    assert "fail" in line and "FORCED: hotfix INC-43" in line
