"""Shared by every test folder: the Docker, database and SSH lab fixtures (tests/lab), and
the closing summary of the tests a down lab skipped."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.lab.skips import lab_skips

pytest_plugins = ["tests.lab.fixtures", "tests.lab.db_fixtures", "tests.lab.ssh_fixtures"]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Generator[None]:
    """After pytest's own summary (and before its closing counts): the tests each down lab
    skipped, and how to bring it up."""
    yield
    reasons = []
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            reasons.append(str(longrepr[2]))
    lines = lab_skips(reasons)
    if lines:
        terminalreporter.section("labs down", sep="=", yellow=True, bold=True)
        for line in lines:
            terminalreporter.line(line)
