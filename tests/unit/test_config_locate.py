"""quick_state_url must agree with the full loader, or step aside (None)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from releasegate.config import load_config, quick_state_url

STACKS = "stacks:\n  web:\n    env: prod\n    runtime: releases\n    dir: srv\n    artifacts: art\n"


@pytest.mark.parametrize(
    "state_line",
    [
        "",
        "state: db/ledger.db\n",
        "state: ./a/../b/state.db\n",
        "state: /var/lib/releasegate/state.db\n",
        "state: ~/rg/state.db\n",
        "state: postgresql+psycopg://rg@localhost/rg\n",
        "state: 'quoted dir/state.db'\n",
        "x-base: &s other.db\nstate: *s\n",
        '"\\x73tate": escaped.db\n',  # a key spelt with an escape is still `state`
    ],
)
def test_agrees_with_the_full_loader(tmp_path: Path, state_line: str) -> None:
    config = tmp_path / "conf" / "releasegate.yaml"
    config.parent.mkdir()
    config.write_text(state_line + STACKS)
    assert quick_state_url(config) == load_config(config).state_url


@pytest.mark.parametrize(
    "text",
    [
        "state: 42\n" + STACKS,
        "state: ''\n" + STACKS,
        "state: [a]\n" + STACKS,
        "- a list\n- state\n",
    ],
)
def test_unsure_means_none(tmp_path: Path, text: str) -> None:
    config = tmp_path / "releasegate.yaml"
    config.write_text(text)
    assert quick_state_url(config) is None


def test_a_broken_stack_does_not_hide_the_history(tmp_path: Path) -> None:
    config = tmp_path / "releasegate.yaml"
    config.write_text("state: s.db\nstacks:\n  web:\n    envv: prod\n")
    assert quick_state_url(config) == str(tmp_path / "s.db")


def test_the_quick_path_does_not_import_pydantic() -> None:
    # It parses the YAML (every command refuses duplicate keys) but skips the schema.
    code = (
        "import sys, pathlib, tempfile\n"
        "from releasegate.config.locate import quick_state_url\n"
        "d = pathlib.Path(tempfile.mkdtemp()); f = d / 'releasegate.yaml'\n"
        "f.write_text('stacks: {}\\n')\n"
        "assert quick_state_url(f)\n"
        "print('pydantic' in sys.modules, 'yaml' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
