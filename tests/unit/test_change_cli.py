"""`releasegate change ...` through the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import RELEASEGATE

SEED = Path(__file__).parents[1] / "data" / "change" / "G2-001.md"


class Rg:
    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, *args: str, user: str = "alice") -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
        env.update(NO_COLOR="1", COLUMNS="200", RELEASEGATE_USER=user)
        return subprocess.run(
            [RELEASEGATE, *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture()
def rg(tmp_path: Path) -> Rg:
    (tmp_path / "releasegate.yaml").write_text("stacks: {}\n", encoding="utf-8")
    return Rg(tmp_path)


def test_new_validate_list(rg: Rg) -> None:
    out = rg("change", "new", "G2-002", "--title", "deploy intake", "--risk", "MEDIUM")
    assert out.returncode == 0, out.stderr
    doc = rg.root / "changes" / "G2-002.md"
    text = doc.read_text(encoding="utf-8")
    for heading in (
        "## Rollback Plan（回滚方案）",
        "### Pre-checks（前置验证）",
        "## Approval（审批）",
    ):
        assert heading in text
    out = rg("change", "validate", "G2-002")
    assert out.returncode == 2 and "without a rollback plan" in out.stdout
    out = rg("change", "list", "--json")
    row = json.loads(out.stdout)
    assert (row["id"], row["risk"], row["status"], row["approvals"]) == (
        "G2-002", "MEDIUM", "DRAFT", "0/1",
    )  # fmt: skip
    assert rg("change", "new", "G2-002", "--title", "x", "--risk", "LOW").returncode == 2


def test_seed_validates_shows_and_approvals_are_voided_by_edit(rg: Rg) -> None:
    (rg.root / "changes").mkdir()
    doc = rg.root / "changes" / "G2-001.md"
    shutil.copy(SEED, doc)
    out = rg("change", "validate", "G2-001")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout and "warning" in out.stdout
    out = rg("change", "approve", "G2-001", "--as", "bob", "--comment", "go")
    assert out.returncode == 0, out.stderr
    show = json.loads(rg("change", "show", "G2-001", "--json").stdout)
    assert show["approved"] and show["approval_list"][0]["state"] == "valid"
    assert [s["line"] for s in show["steps"] if s["kind"] == "pre"] == [92]
    assert doc.read_bytes() == SEED.read_bytes()  # the plan itself is never rewritten
    doc.write_text(doc.read_text(encoding="utf-8").replace("curl http", "curl -f http"))
    out = rg("change", "show", "G2-001")
    assert "void" in out.stdout and "edited after approval" in out.stdout
    show = json.loads(rg("change", "show", "G2-001", "--json").stdout)
    assert not show["approved"] and show["approval_list"][0]["state"] == "void"
    db = sqlite3.connect(rg.root / ".releasegate" / "state.db")
    rows = db.execute("SELECT action, version, user, details FROM entries").fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [("change-approve", "G2-001", "alice")]
    assert json.loads(rows[0][3])["approver"] == "bob"
    assert rg("audit", "verify").returncode == 0


def test_high_refused_with_one_and_with_self_approval(rg: Rg) -> None:
    (rg.root / "changes").mkdir()
    doc = rg.root / "changes" / "H-1.md"
    text = SEED.read_text(encoding="utf-8").replace("G2-001", "H-1").replace("MEDIUM", "HIGH")
    doc.write_text(text, encoding="utf-8")
    out = rg("change", "approve", "H-1", "--as", "engineer")  # the document's owner
    assert out.returncode == 3 and "cannot approve" in out.stderr
    assert rg("change", "approve", "H-1", "--as", "bob").returncode == 0
    assert not json.loads(rg("change", "show", "H-1", "--json").stdout)["approved"]
    assert rg("change", "approve", "H-1", "--as", "carol").returncode == 0
    assert json.loads(rg("change", "show", "H-1", "--json").stdout)["approved"]


def test_malformed_document_is_a_clear_error(rg: Rg) -> None:
    (rg.root / "changes").mkdir()
    (rg.root / "changes" / "B-1.md").write_text("# B-1: t\n\n```bash\necho\n", encoding="utf-8")
    out = rg("change", "validate", "B-1")
    assert out.returncode == 2
    assert "B-1.md:3:" in out.stderr and "never closed" in out.stderr
    assert "Traceback" not in out.stderr
    out = rg("change", "list")
    assert out.returncode == 0 and "unreadable" in out.stdout


def test_dir_option_works_without_config(tmp_path: Path) -> None:
    rg = Rg(tmp_path)
    out = rg("change", "--dir", "recs", "new", "L-1", "--title", "t", "--risk", "LOW")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "recs" / "L-1.md").is_file()
    assert (tmp_path / "recs" / "L-1.meta.json").is_file()
    out = rg("change", "--dir", "recs", "show", "L-1")
    assert out.returncode == 0 and "L-1" in out.stdout


def test_version_does_not_import_change(rg: Rg) -> None:
    out = subprocess.run(
        # python -m, not the console script: -X importtime is an interpreter option
        [sys.executable, "-X", "importtime", "-m", "releasegate", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0
    assert "releasegate.change" not in out.stderr and "releasegate.cli.change" not in out.stderr
