"""Scheduled jobs end to end: a deploy installs the stack's jobs as a marked block (after
backing up what was there), `cron list|verify` compare installed with expected (exit 3 on
drift), a rollback puts back the target release's jobs, and the real cron daemon runs one.

Only test_the_cron_daemon_runs_the_job waits for cron (up to ~80 s); the others check the
installed block without waiting."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.e2e.conftest import Lab, _teardown, build_lab
from tests.lab import cron as cron_lab

pytestmark = pytest.mark.e2e

JOBS = """\
      jobs:
        - name: sync
          schedule: "0 */6 * * *"
          argv: [python3, inventory_sync_service.py, --source=all, "it's 100%"]
        - name: monitor
          schedule: "@hourly"
          argv: [./scripts/monitor_deployment.sh]
        - name: resync
          schedule: "30 4 * * 0"
          argv: [python3, inventory_sync_service.py, --full]
"""


def _with_cron(lab: Lab, cron: str) -> None:
    text = lab.config.read_text(encoding="utf-8")
    lab.config.write_text(text.replace("  web-prod:", cron + "  web-prod:"), encoding="utf-8")


@pytest.fixture()
def clab(tmp_path):
    lab = build_lab(tmp_path / "ws")
    yield lab
    _teardown(lab)


def _crontab(user: str) -> str:
    return subprocess.run(
        ["crontab", "-u", user, "-l"], capture_output=True, text=True, check=True, timeout=30
    ).stdout


def _report(lab: Lab, command: str = "verify") -> tuple[int, dict]:
    out = lab.rg("cron", command, "web-staging", "staging", "--json")
    return out.returncode, json.loads(out.stdout)


def test_deploy_installs_verify_flags_drift_rollback_restores(clab: Lab) -> None:
    crond = clab.root / "crond"
    crond.mkdir()
    _with_cron(
        clab,
        f"    cron:\n      target: cron.d\n      user: root\n      cron_d_dir: {crond}\n" + JOBS,
    )
    plan = clab.rg("deploy", "web-staging", "staging", "v1", "--dry-run")
    assert f"install scheduled jobs in {crond}/web-staging: sync, monitor, resync" in plan.stdout
    assert clab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    installed = (crond / "web-staging").read_text()
    assert installed.startswith("# BEGIN releasegate web-staging")
    assert installed.rstrip().endswith("# END releasegate web-staging")
    line = next(x for x in installed.splitlines() if "--source=all" in x)
    # cron.d: the user after the schedule; each word quoted; `%` escaped for cron.
    assert line.startswith("0 */6 * * * root cd ")
    assert f"cd {clab.root}/srv/web-staging/current && exec env " in line
    assert "RELEASEGATE_VERSION=v1 " in line
    assert "'it'\"'\"'s 100\\%'" in line
    assert oct((crond / "web-staging").stat().st_mode & 0o777) == "0o644"
    saved = clab.root / "srv/web-staging/.releasegate-cron/v1"
    assert (saved / "crontab.before").read_text() == ""  # nothing was there before
    assert (saved / "block").read_text() == installed

    code, report = _report(clab, "list")
    assert code == 0 and report["ok"] and report["running"] == "v1"
    assert set(report["hosts"]["local"]["installed"]) == {"sync", "monitor", "resync"}

    assert clab.rg("deploy", "web-staging", "staging", "v2").returncode == 0
    assert "RELEASEGATE_VERSION=v2 " in (crond / "web-staging").read_text()
    assert (clab.root / "srv/web-staging/.releasegate-cron/v2/crontab.before").read_text() == (
        installed
    )

    # Someone edits a job by hand: drift, exit 3, the changed word named.
    path = crond / "web-staging"
    path.write_text(path.read_text().replace("--full", "--everything"))
    code, report = _report(clab)
    assert code == 3 and not report["ok"]
    assert any("job resync: changed" in d and "--everything" in d
               for d in report["hosts"]["local"]["drift"])  # fmt: skip
    text = clab.rg("cron", "verify", "web-staging", "staging")
    assert text.returncode == 3 and "DRIFT" in text.stdout

    # v3 fails its smoke check: the automatic rollback puts v2's jobs back.
    failed = clab.rg("deploy", "web-staging", "staging", "v3")
    assert failed.returncode == 4, failed.stdout + failed.stderr
    assert _report(clab)[0] == 0
    assert "RELEASEGATE_VERSION=v2 " in path.read_text()

    back = clab.rg("rollback", "web-staging", "staging", "--to", "v1")
    assert back.returncode == 0, back.stdout + back.stderr
    assert path.read_text() == installed  # exactly the block that went with v1
    code, report = _report(clab)
    assert code == 0 and report["running"] == "v1"
    steps = clab.history_json("--stack", "web-staging", "--steps")
    cron_steps = [s for s in steps if s.get("action") == "cron"]
    assert cron_steps and all(s["status"] == "success" for s in cron_steps)
    assert cron_steps[-1]["details"]["block_from"] == "kept with v1"


def test_crontab_target_keeps_other_lines_and_backs_them_up(clab: Lab) -> None:
    user = cron_lab.require_crontab()
    theirs = 'MAILTO=""\n17 3 * * * /bin/true # not releasegate\n'
    subprocess.run(["crontab", "-u", user, "-"], input=theirs, text=True, check=True)
    try:
        _with_cron(clab, f"    cron:\n      user: {user}\n" + JOBS)
        assert clab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
        now = _crontab(user)
        assert now.startswith(theirs)  # their lines first, untouched
        assert "# BEGIN releasegate web-staging" in now and "# job monitor" in now
        assert "@hourly cd " in now  # a crontab line names no user
        before = clab.root / "srv/web-staging/.releasegate-cron/v1/crontab.before"
        assert before.read_text() == theirs
        assert _report(clab)[0] == 0

        # The block removed by hand: drift; the next deploy installs it again.
        subprocess.run(["crontab", "-u", user, "-"], input=theirs, text=True, check=True)
        code, report = _report(clab)
        assert code == 3 and "the block is missing" in report["hosts"]["local"]["summary"]
        assert clab.rg("deploy", "web-staging", "staging", "v2").returncode == 0
        assert _report(clab)[0] == 0
    finally:
        subprocess.run(["crontab", "-u", user, "-r"], capture_output=True)


def test_the_cron_daemon_runs_the_job(clab: Lab) -> None:
    """The one test that waits for cron: a `* * * * *` job in /etc/cron.d runs within about
    a minute, in the current release, with the release's environment."""
    cron_lab.require_daemon()
    out = clab.root / "cron-ran.txt"
    job = (
        "    cron:\n      target: cron.d\n      user: root\n      jobs:\n"
        "        - name: tick\n          schedule: '* * * * *'\n"
        '          argv: [sh, -c, \'printf "%s %s\\n" "$RELEASEGATE_VERSION" "$(pwd -P)"'
        f" >> \"$1\"', sh, '{out}']\n"
    )
    _with_cron(clab, job)
    installed = cron_lab.CRON_D / "web-staging"
    try:
        done = clab.rg("deploy", "web-staging", "staging", "v1")
        assert done.returncode == 0, done.stdout + done.stderr
        assert installed.is_file()
        deadline = time.monotonic() + 80
        while time.monotonic() < deadline and not out.exists():
            time.sleep(1)
        assert out.exists(), f"cron did not run the job within 80 s: {installed.read_text()}"
        first = out.read_text().splitlines()[0]
        assert first == f"v1 {clab.root}/srv/web-staging/releases/v1"
    finally:
        installed.unlink(missing_ok=True)


def _big_crontab(lines: int = 400) -> str:
    """Their own lines, well over the transport's 16,000-character output bound."""
    text = 'MAILTO=""\n' + "".join(
        f"{i % 60} {i % 24} * * * /bin/true --line={i:04d} # kept exactly, é\n"
        for i in range(lines)
    )
    assert len(text) > 16_000
    return text


def test_a_crontab_over_the_output_bound_round_trips_exactly(clab: Lab) -> None:
    """`crontab -l` of a big crontab is read whole: never cut, nor written back cut."""
    user = cron_lab.require_crontab()
    theirs = _big_crontab()
    subprocess.run(["crontab", "-u", user, "-"], input=theirs, text=True, check=True)
    try:
        _with_cron(clab, f"    cron:\n      user: {user}\n" + JOBS)
        done = clab.rg("deploy", "web-staging", "staging", "v1")
        assert done.returncode == 0, done.stdout + done.stderr
        now = _crontab(user)
        assert "characters cut" not in now
        assert now.startswith(theirs)  # every one of their lines, in order, untouched
        assert "# BEGIN releasegate web-staging" in now[len(theirs) :]
        before = clab.root / "srv/web-staging/.releasegate-cron/v1/crontab.before"
        assert before.read_text(encoding="utf-8") == theirs
        code, report = _report(clab)
        assert code == 0 and report["ok"], report
        # The next release replaces the block only: their lines stay exact.
        assert clab.rg("deploy", "web-staging", "staging", "v2").returncode == 0
        again = _crontab(user)
        assert again.startswith(theirs) and "RELEASEGATE_VERSION=v2 " in again
    finally:
        subprocess.run(["crontab", "-u", user, "-r"], capture_output=True)


def test_a_cron_d_file_over_the_output_bound_round_trips_exactly(clab: Lab) -> None:
    crond = clab.root / "crond"
    crond.mkdir()
    theirs = _big_crontab().replace("* * * /bin/true", "* * * root /bin/true")
    (crond / "web-staging").write_text(theirs, encoding="utf-8")
    _with_cron(
        clab,
        f"    cron:\n      target: cron.d\n      user: root\n      cron_d_dir: {crond}\n" + JOBS,
    )
    done = clab.rg("deploy", "web-staging", "staging", "v1")
    assert done.returncode == 0, done.stdout + done.stderr
    now = (crond / "web-staging").read_text(encoding="utf-8")
    assert now.startswith(theirs) and "characters cut" not in now
    saved = clab.root / "srv/web-staging/.releasegate-cron/v1"
    assert (saved / "crontab.before").read_text(encoding="utf-8") == theirs
    assert _report(clab)[0] == 0
