"""What a newcomer does first, through the installed CLI in an empty folder: lint a change
record with no releasegate.yaml anywhere, `releasegate init` for a compose app and for a
plain one, then load what init wrote."""

from __future__ import annotations

import json
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


COMPOSE = """\
services:
  web:
    image: ghcr.io/acme/shop:${SHOP_TAG:-dev}
    ports: ["127.0.0.1:18069:8069"]
  db:
    image: postgres:15
"""


def _status(folder: Path) -> list[dict[str, object]]:
    out = rg(folder, "status", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_init_for_a_compose_app(tmp_path: Path) -> None:
    app = tmp_path / "Shop App"
    app.mkdir()
    (app / "docker-compose.yml").write_text(COMPOSE, encoding="utf-8")
    out = rg(app, "init")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "runtime compose: docker-compose.yml found" in out.stdout
    assert "fill in:" in out.stdout and "releasegate.yaml:" in out.stdout
    text = (app / "releasegate.yaml").read_text(encoding="utf-8")
    assert "version_var: SHOP_TAG" in text and "http://127.0.0.1:18069/health" in text
    assert "TODO:" in text

    [row] = _status(app)  # loads the file as every command does
    assert row["stack"] == "shop-app-staging" and row["env"] == "staging"
    out = rg(app, "stacks", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout.splitlines()[0])["runtime"] == "compose"


def test_init_for_a_plain_app_then_preflight(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("flask\n", encoding="utf-8")
    out = rg(tmp_path, "init", "--name", "web")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "runtime releases: no compose file here" in out.stdout
    text = (tmp_path / "releasegate.yaml").read_text(encoding="utf-8")
    assert "install: [pip, install, -r, requirements.txt]" in text

    [row] = _status(tmp_path)
    assert row["stack"] == "web-staging"
    out = rg(tmp_path, "preflight", "web-staging", "staging")
    assert out.returncode == 0, out.stdout + out.stderr
    out = rg(tmp_path, "deploy", "web-staging", "staging", "v1", "--dry-run")
    assert out.returncode == 0 and "run restart" in out.stdout, out.stdout + out.stderr


def test_init_never_overwrites_without_force(tmp_path: Path) -> None:
    mine = "stacks: {mine: {env: staging, runtime: releases, dir: ., artifacts: .}}\n"
    (tmp_path / "releasegate.yaml").write_text(mine, encoding="utf-8")
    out = rg(tmp_path, "init")
    assert out.returncode == 2 and "exists: not overwritten" in out.stderr
    assert (tmp_path / "releasegate.yaml").read_text(encoding="utf-8") == mine
    out = rg(tmp_path, "init", "--force")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "written by `releasegate init`" in (tmp_path / "releasegate.yaml").read_text()
    # no temp file left; the ledger is created, so read-only commands work at once
    assert sorted(p.name for p in tmp_path.iterdir()) == [".releasegate", "releasegate.yaml"]
    out = rg(tmp_path, "init", "--force", "--name", "Bad Name")
    assert out.returncode == 2 and "not allowed" in out.stderr
