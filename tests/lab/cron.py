"""The cron lab (scripts/lab/cron.sh): Debian's cron daemon running, `crontab`, and a lab
user whose crontab the tests own. Missing: the test skips, or fails under CI=true."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

from tests.lab.docker import under_ci

UP_HINT = "bash scripts/lab/cron.sh up"
LAB_USER = "rg-cron"
CRON_D = Path("/etc/cron.d")


def unavailable(reason: str) -> NoReturn:
    message = f"cron lab unavailable: {reason} ({UP_HINT})"
    if under_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_crontab() -> str:
    """The lab user, once `crontab` and that user exist."""
    if shutil.which("crontab") is None:
        unavailable("no crontab command")
    known = subprocess.run(["id", "-u", LAB_USER], capture_output=True, timeout=10)
    if known.returncode != 0:
        unavailable(f"no lab user {LAB_USER}")
    return LAB_USER


def require_daemon() -> None:
    """A cron daemon runs (this lab's or the machine's), reading /etc/cron.d."""
    require_crontab()
    found = subprocess.run(["pgrep", "-x", "cron"], capture_output=True, timeout=10)
    if found.returncode != 0:
        unavailable("no cron daemon runs")
    if not CRON_D.is_dir():
        unavailable(f"{CRON_D} is missing")
