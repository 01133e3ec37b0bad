"""End-to-end tests against the real Docker lab (scripts/lab/docker.sh up)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # The lab's fixtures belong in the top-level tests/conftest.py as
    # `pytest_plugins = ["tests.lab.fixtures"]` (pytest refuses it in a nested conftest);
    # until that line is there, load them from here. A no-op once it is.
    if not config.pluginmanager.has_plugin("tests.lab.fixtures"):
        config.pluginmanager.import_plugin("tests.lab.fixtures")
