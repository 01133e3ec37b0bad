"""The security model names a test for each defence: a named test that is renamed or
removed makes this fail, so the page cannot promise what nothing checks."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _defined_tests() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        names.update(re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), re.M))
    return names


def test_every_test_the_security_model_names_exists() -> None:
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    defined = _defined_tests()
    missing = []
    for token in re.findall(r"`([^`]+)`", text):
        path, _, name = token.partition("::")
        if path.startswith("tests/"):
            if not (ROOT / path).exists():
                missing.append(path)
            if name and name not in defined:
                missing.append(token)
        elif token.startswith("test_") and not token.endswith(".py") and token not in defined:
            missing.append(token)
    assert not missing, missing
    assert len(re.findall(r"`tests/", text)) >= 10  # the table does name its tests
