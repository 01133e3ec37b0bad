"""Pytest fixtures for the SSH lab (scripts/lab/ssh.sh up). Enabled from tests/conftest.py.

- `ssh_lab` (session): the running lab as an `SshLab` (addresses, port, key, known_hosts,
  ssh_config); skipped, or failed under CI=true, when fewer than 3 hosts answer.
- `ssh_options` (function): `SshOptions` for the lab: its known_hosts and client key only
  (no ~/.ssh/config, no agent), so the tests do not depend on the developer's own settings.
"""

from __future__ import annotations

import pytest

from releasegate.transport.ssh import SshOptions
from tests.lab.ssh import SshLab, require_ssh_lab


@pytest.fixture(scope="session")
def ssh_lab() -> SshLab:
    """The lab's hosts h1..hN on 127.0.0.11.. (at least 3)."""
    return require_ssh_lab(3)


@pytest.fixture()
def ssh_options(ssh_lab: SshLab) -> SshOptions:
    return SshOptions(
        known_hosts=ssh_lab.known_hosts,
        config=(),
        client_keys=(ssh_lab.key,),
        connect_timeout=10,
    )
