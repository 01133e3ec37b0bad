"""The README's first command, as a newcomer runs it: the installed script, a fresh folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_releasegate_demo_tells_the_whole_story(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "releasegate"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
    out = subprocess.run(
        [str(script), "demo", "--dir", str(tmp_path / "demo")],
        cwd=tmp_path, env={**env, "NO_COLOR": "1"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "internal error" not in text
    assert "web-prod runs v2 (verified v2)" in text
    assert "refused: not verified on web-staging" in text
