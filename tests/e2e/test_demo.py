"""`releasegate demo` as a newcomer runs it: the whole story ends in exit 0, and it never
shows a path that is gone when it ends (its records, in a temporary workspace)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.cli import RELEASEGATE

pytestmark = pytest.mark.e2e


def demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
    env.update(NO_COLOR="1", COLUMNS="300", RELEASEGATE_USER="tester", TMPDIR=str(cwd))
    return subprocess.run(
        [RELEASEGATE, "demo", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def test_a_temporary_demo_prints_no_record_path(tmp_path: Path) -> None:
    out = demo(tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "rolled back to v2" in out.stdout
    assert not re.search(r"^record:", out.stdout, re.MULTILINE), out.stdout
    assert ".releasegate/records" not in out.stdout
    assert "releasegate demo --dir DIR` keeps them" in out.stdout
    assert list(tmp_path.iterdir()) == []  # the workspace is gone, as it says


def test_a_kept_demo_prints_record_paths_that_exist(tmp_path: Path) -> None:
    out = demo(tmp_path, "--dir", str(tmp_path / "ws"))
    assert out.returncode == 0, out.stdout + out.stderr
    records = re.findall(r"^record: (\S+)$", out.stdout, re.MULTILINE)
    # One per deploy and flag change of the story; three more with a proxy on PATH.
    assert len(records) == (11 if "web-blue-green runs" in out.stdout else 8)
    assert all(Path(r).is_file() for r in records), records
