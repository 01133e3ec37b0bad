"""A ledger on a full disk: a write that fails after the switch still brings the last good
release back (the hosts first, the record after), and the message names the ledger."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.cli import RELEASEGATE

pytestmark = pytest.mark.e2e


@pytest.fixture()
def small_disk(tmp_path: Path):
    """A 3 MiB tmpfs of our own (root only: CI runs as root)."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("this test mounts a tmpfs: CI must run as root")
        pytest.skip("mounting a tmpfs needs root")
    where = tmp_path / "small"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(where: Path) -> Path:
    filler = where / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_ledger_full_after_the_switch_brings_the_last_good_back(lab, small_disk, tmp_path):
    state = small_disk / "state.db"
    lab.config.write_text(lab.config.read_text() + f"state: {state}\n")
    for version in ("v1", "v2"):
        done = lab.rg("deploy", "web-staging", "staging", version)
        assert done.returncode == 0, done.stdout + done.stderr
    pause = tmp_path / "paused"
    env = {**lab.env(), "RELEASEGATE_PAUSE_AT": "smoke", "RELEASEGATE_PAUSE_FILE": str(pause)}
    proc = subprocess.Popen(
        [RELEASEGATE, "deploy", "web-staging", "staging", "v3"],
        cwd=lab.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lab.procs.append(proc)
    lab.wait_for(pause.exists, "the deploy to reach smoke")
    assert lab.running_version("web-staging") == "v3"  # switched and restarted
    filler = _fill(small_disk)
    pause.unlink()  # go on: closing the smoke step's row finds the disk full
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    text = out + err
    assert "could not be written" in text and str(state) in text, text
    assert "internal error" not in text
    assert lab.running_version("web-staging") == "v2", text  # the hosts came first
    filler.unlink()
    verify = lab.rg("audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    again = lab.rg("deploy", "web-staging", "staging", "v2")
    assert again.returncode == 0, again.stdout + again.stderr
    assert lab.running_version("web-staging") == "v2"
