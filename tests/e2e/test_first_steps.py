"""What a newcomer does first, through the installed CLI in an empty folder: lint a change
record with no releasegate.yaml anywhere, `releasegate init` for a compose app and for a
plain one, then load what init wrote."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.cli import RELEASEGATE

pytestmark = pytest.mark.e2e

SEED = Path(__file__).parents[1] / "data" / "change" / "G2-001.md"


def rg(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
    env.update(NO_COLOR="1", COLUMNS="200", RELEASEGATE_USER="tester")
    return subprocess.run(
        [RELEASEGATE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_change_validate_needs_no_config(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    good = docs / "G2-001.md"
    good.write_text(SEED.read_text(encoding="utf-8"), encoding="utf-8")
    out = rg(tmp_path, "change", "validate", "docs/G2-001.md")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "G2-001: valid" in out.stdout

    bad = docs / "G2-009.md"
    text = SEED.read_text(encoding="utf-8").replace("G2-001", "G2-009")
    head, _, tail = text.partition("## Rollback Plan")
    bad.write_text(head + "## " + tail.split("\n## ", 1)[1], encoding="utf-8")  # no rollback
    out = rg(docs, "change", "validate", "G2-009.md", "--json")
    assert out.returncode == 2, out.stdout + out.stderr
    assert '"ok": false' in out.stdout and "rollback" in out.stdout.lower()
    assert not (tmp_path / ".releasegate").exists()  # a linter writes nothing

    # an ID still means "in the changes/ folder beside releasegate.yaml"
    out = rg(tmp_path, "change", "validate", "G2-001")
    assert out.returncode == 2 and "no releasegate.yaml" in out.stderr
