"""Concurrent deploys and a SIGKILL in the middle of one."""

import json
import signal

import pytest

pytestmark = pytest.mark.e2e


def _holds_lock(lab, stack):
    out = lab.rg("lock", "status", "--json")
    return any(json.loads(line)["stack"] == stack for line in out.stdout.splitlines())


def _step_running(lab, stack, step):
    out = lab.rg("history", "--json", "--stack", stack, "--steps")
    if out.returncode == 2 and "no ledger at" in out.stderr:
        return False  # the deploy has not created the ledger yet; history does not create it
    assert out.returncode == 0, out.stderr
    return any(
        r["action"] == step and r["status"] == "running"
        for r in map(json.loads, out.stdout.splitlines())
    )


def test_second_concurrent_deploy_gets_the_lock_code(gated_lab):
    lab = gated_lab
    first = lab.rg_background("deploy", "web-staging", "staging", "v1")
    lab.wait_for(lambda: _step_running(lab, "web-staging", "prepare"), "the first deploy to hold")
    second = lab.rg("deploy", "web-staging", "staging", "v1")
    assert second.returncode == 5, second.stdout + second.stderr
    assert "locked by tester since" in second.stderr and "pid" in second.stderr
    lab.open_go("web-staging")
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, out + err
    statuses = [row[5] for row in lab.history_rows("--stack", "web-staging")]
    assert sorted(statuses) == ["refused", "success"]
    assert not _holds_lock(lab, "web-staging")


def test_sigkill_mid_deploy_is_seen_and_recovered(gated_lab):
    lab = gated_lab
    lab.open_go("web-staging")
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    (lab.root / "srv/web-staging/go").unlink()

    victim = lab.rg_background("deploy", "web-staging", "staging", "v2")
    lab.wait_for(
        lambda: _step_running(lab, "web-staging", "prepare"), "the deploy to reach prepare"
    )
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    # the service answers on the old version: nothing was switched
    assert lab.running_version("web-staging") == "v1"

    status = lab.rg("status", "--json")
    row = next(
        json.loads(x) for x in status.stdout.splitlines() if json.loads(x)["stack"] == "web-staging"
    )
    assert any("interrupted" in w for w in row["warnings"]), row
    # status only reads: the dead run's rows stay open until a deploy or rollback closes them
    dead = lab.history_json("--stack", "web-staging", "--status", "running")
    assert [(r["action"], r["version"]) for r in dead] == [("deploy", "v2")]

    # the next deploy takes over the dead lock and goes through
    lab.open_go("web-staging")
    out = lab.rg("deploy", "web-staging", "staging", "v2")
    assert out.returncode == 0, out.stdout + out.stderr
    assert lab.running_version("web-staging") == "v2"
    interrupted = lab.history_json("--stack", "web-staging", "--status", "interrupted")
    assert [(r["action"], r["version"]) for r in interrupted] == [("deploy", "v2")]
    actions = [r["action"] for r in lab.history_json("--stack", "web-staging")]
    assert "lock-takeover" not in actions  # marks are not actions
    assert lab.rg("audit", "verify").returncode == 0


def test_sigkill_after_switch_recovers_to_last_good(lab):
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    # from now on a smoke check blocks on a gate file: the kill lands after switch and restart
    text = lab.config.read_text().replace(
        "    smoke:\n",
        "    smoke:\n      - name: gate\n        command: "
        "'while [ ! -f \"$RELEASEGATE_DIR/go\" ]; do sleep 0.05; done'\n"
        "        timeout: 60\n",
        1,
    )
    lab.config.write_text(text)
    victim = lab.rg_background("deploy", "web-staging", "staging", "v2")
    lab.wait_for(lambda: _step_running(lab, "web-staging", "smoke"), "the deploy to reach smoke")
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    # switched and restarted, never verified: the new version answers, never neither
    assert lab.running_version("web-staging") == "v2"
    lab.open_go("web-staging")
    out = lab.rg("rollback", "web-staging", "staging")
    assert out.returncode == 0, out.stdout + out.stderr
    assert lab.running_version("web-staging") == "v1"
    log = lab.history_rows("--stack", "web-staging")
    assert ["deploy", "v2", "interrupted"] in [row[3:6] for row in log], log
    assert any("recovery after interrupted deploy of v2" in row[6] for row in log), log
