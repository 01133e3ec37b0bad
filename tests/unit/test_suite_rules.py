"""Rules the test suite keeps about itself: every end-to-end file is marked, and a run ends
by saying which down lab skipped how many tests."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.lab.skips import lab_skips

TESTS = Path(__file__).parents[1]


def _marks_e2e(path: Path) -> bool:
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            value = node.value
            marks = value.elts if isinstance(value, ast.List | ast.Tuple) else [value]
            if any(ast.unparse(mark) == "pytest.mark.e2e" for mark in marks):
                return True
    return False


@pytest.mark.parametrize(
    "path",
    sorted(TESTS.glob("e2e*/test_*.py")),
    ids=lambda p: str(p.relative_to(TESTS)),
)
def test_every_e2e_file_is_marked(path: Path) -> None:
    assert _marks_e2e(path), f"{path}: add `pytestmark = pytest.mark.e2e` (or list it there)"


def test_lab_skips_grouped_with_their_commands() -> None:
    ssh = "SSH lab unavailable: no lab.env (start the lab with: bash scripts/lab/ssh.sh up)"
    db = "database lab unavailable: no psql on PATH (start the lab with: bash scripts/lab/db.sh up)"
    hosts = (
        "SSH lab unavailable: h1's Docker engine does not answer (bash scripts/lab/docker_hosts.sh"
        " up) (start the lab with: bash scripts/lab/ssh.sh up)"
    )
    lines = lab_skips([ssh, db, ssh, "needs Linux", hosts, ssh])
    assert lines == [
        "5 test(s) skipped because a lab was down:",
        "     3  SSH lab: bring it up with `bash scripts/lab/ssh.sh up`",
        "     1  SSH lab: bring it up with "
        "`bash scripts/lab/docker_hosts.sh up && bash scripts/lab/ssh.sh up`",
        "     1  database lab: bring it up with `bash scripts/lab/db.sh up`",
        "(bash .ci/run brings every lab up, then runs this suite)",
    ]


def test_no_lab_skipped_says_nothing() -> None:
    assert lab_skips(["needs Linux", "Skipped: slow"]) == []


@pytest.mark.parametrize(
    ("source", "marked"),
    [
        ("import pytest\npytestmark = pytest.mark.e2e\n", True),
        ("import pytest\npytestmark = [pytest.mark.e2e, pytest.mark.slow]\n", True),
        ("import pytest\npytestmark = pytest.mark.slow\n", False),
        ("import pytest\n\n@pytest.mark.e2e\ndef test_x(): pass\n", False),  # per test: not enough
        ("", False),
    ],
)
def test_the_marker_rule_itself(tmp_path: Path, source: str, marked: bool) -> None:
    path = tmp_path / "test_x.py"
    path.write_text(source, encoding="utf-8")
    assert _marks_e2e(path) is marked
