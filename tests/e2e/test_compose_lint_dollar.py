"""Issue 16, case 19: a compose default holding a `$` that starts no variable (a bcrypt
hash) is accepted by `releasegate lint`, as `docker compose config` accepts it
(tests/e2e_docker/test_compose_differential.py compares the two on many files)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.cli import RELEASEGATE

pytestmark = pytest.mark.e2e

COMPOSE = """\
services:
  auth:
    image: registry.example.org/auth:${AUTH_TAG:-1.4.2}
    environment:
      ADMIN_HASH: ${ADMIN_HASH:-$2a$14$ajq8Q7fbtFRQvXpdCq7Jcuy.Rx1h/L4J60Otx.gyNLbAYctGMJ9tK}
      PRICE: "5$"
"""


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
    env.update(NO_COLOR="1", COLUMNS="200")
    return subprocess.run(
        [RELEASEGATE, "lint", str(path), "--json"],
        cwd=path.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bcrypt_hash_default_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text(COMPOSE, encoding="utf-8")
    out = lint(path)
    assert out.returncode == 0, out.stdout + out.stderr
    # `$ajq8...` inside the hash is a variable to compose too: unset, so empty, and said so.
    assert "ajq8Q7fbtFRQvXpdCq7Jcuy" in out.stdout + out.stderr


def test_a_broken_template_is_still_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text(COMPOSE.replace("${AUTH_TAG:-1.4.2}", "${AUTH TAG}"), encoding="utf-8")
    out = lint(path)
    assert out.returncode == 2 and "compose.yaml:3: invalid interpolation" in out.stderr
