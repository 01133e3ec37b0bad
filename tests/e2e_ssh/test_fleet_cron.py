"""Scheduled jobs on a fleet: a deploy installs the block on every SSH host (each host's own
file, under its own /srv), `cron verify` names the one host that drifted, and a rollback puts
back on every host the block that went with the target release."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.lab.ssh import host_dir, require_ssh_lab, run_rg

pytestmark = pytest.mark.e2e
HOSTS = 3


@pytest.fixture()
def fleet(tmp_path: Path):
    lab = require_ssh_lab(HOSTS)
    name = f"cron-{os.getpid()}-{time.monotonic_ns()}"
    for version in ("v1", "v2"):
        folder = tmp_path / "artifacts" / version
        folder.mkdir(parents=True)
        (folder / "version.txt").write_text(version)
    hosts = "\n".join(f"      - ssh://root@{a}:{lab.port}" for a in lab.addresses[:HOSTS])
    (tmp_path / "releasegate.yaml").write_text(
        f"""\
stacks:
  jobs:
    env: staging
    runtime: releases
    hosts:
{hosts}
    dir: /srv/{name}
    artifacts: ./artifacts
    backup: {{files: []}}
    cron:
      target: cron.d
      user: root
      cron_d_dir: /srv/{name}/crond   # each host's own /srv: its own cron.d for the test
      jobs:
        - {{name: sync, schedule: "0 */6 * * *", argv: [python3, sync.py, --all]}}
        - {{name: monitor, schedule: "@hourly", argv: [./monitor.sh]}}
"""
    )
    paths = [host_dir(i) / "srv" / name for i in range(1, HOSTS + 1)]
    for path in paths:
        (path / "crond").mkdir(parents=True)  # as /etc/cron.d exists on a real host
    yield lab, tmp_path, paths
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def _verify(lab, cwd: Path) -> tuple[int, dict]:
    out = run_rg(lab, cwd, "cron", "verify", "jobs", "staging", "--json")
    return out.returncode, json.loads(out.stdout)


def test_every_host_gets_the_jobs_and_drift_is_named_per_host(fleet) -> None:
    lab, cwd, paths = fleet
    run_rg(lab, cwd, "deploy", "jobs", "staging", "v1", check=True)
    for path in paths:
        text = (path / "crond" / "jobs").read_text()
        assert "RELEASEGATE_VERSION=v1 " in text and "# job monitor" in text
        assert (path / ".releasegate-cron/v1/block").read_text() == text
    code, report = _verify(lab, cwd)
    assert code == 0 and len(report["hosts"]) == HOSTS

    run_rg(lab, cwd, "deploy", "jobs", "staging", "v2", check=True)
    assert all("RELEASEGATE_VERSION=v2 " in (p / "crond/jobs").read_text() for p in paths)

    second = paths[1] / "crond" / "jobs"
    second.write_text(second.read_text().replace("--all", "--none"))
    code, report = _verify(lab, cwd)
    assert code == 3
    bad = [h for h, v in report["hosts"].items() if not v["ok"]]
    # A host is named by its address, with the port when it is not 22 (the lab may move).
    second_host = lab.addresses[1] if lab.port == 22 else f"{lab.addresses[1]}:{lab.port}"
    assert bad == [second_host], report

    run_rg(lab, cwd, "rollback", "jobs", "staging", "--to", "v1", check=True)
    for path in paths:
        assert (path / "crond/jobs").read_text() == (
            path / ".releasegate-cron/v1/block"
        ).read_text()
    assert _verify(lab, cwd)[0] == 0
