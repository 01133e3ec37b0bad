"""How a fleet reaches its hosts: settings from an ssh_config (HostName, User, ProxyJump) and
the key from an ssh-agent, on the SSH lab's real sshd hosts.

Two hosts are named only in the ssh_config (inner-a, inner-b) and reached through a third,
h1, as a jump host: h1 gets the connections but never a release.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli import RELEASEGATE
from tests.lab.ssh import SshLab, accepted_logins, host_dir, require_ssh_lab

pytestmark = pytest.mark.e2e

INNER = {"inner-a": 2, "inner-b": 3}  # alias -> lab host number (h2, h3)


@pytest.fixture()
def agent(tmp_path: Path) -> object:
    """A real ssh-agent of its own, on a socket in tmp_path; stopped at the end."""
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 10
    while not sock.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "ssh-agent did not start"
        time.sleep(0.05)
    yield sock
    proc.terminate()
    proc.wait(timeout=10)


def _write_config(tmp: Path, lab: SshLab, app_dir: str) -> Path:
    jump = lab.addresses[0]
    ssh_config = tmp / "ssh_config"
    blocks = [f"Host {alias}\n  HostName {lab.addresses[i - 1]}\n" for alias, i in INNER.items()]
    # As with OpenSSH, a jump host takes its settings from the config, not from the options
    # given for the destination: its known_hosts is named here.
    ssh_config.write_text(
        "".join(blocks)
        + f"Host inner-*\n  User {lab.user}\n  Port {lab.port}\n"
        + f"  ProxyJump {lab.user}@{jump}:{lab.port}\n"
        + f"Host {jump}\n  UserKnownHostsFile {lab.known_hosts}\n"
    )
    (tmp / "artifacts" / "v1").mkdir(parents=True)
    (tmp / "artifacts" / "v1" / "version.txt").write_text("v1\n")
    hosts = ", ".join(f"ssh://{alias}" for alias in INNER)
    (tmp / "releasegate.yaml").write_text(
        f"""\
stacks:
  web:
    env: staging
    runtime: releases
    hosts: [{hosts}]
    dir: {app_dir}
    artifacts: ./artifacts
    smoke:
      - command: [cat, version.txt]
        expect_output: "{{version}}"
    backup: {{files: []}}
"""
    )
    return ssh_config


def test_hosts_reached_through_a_jump_host_with_the_agents_key(tmp_path: Path, agent: Path) -> None:
    lab = require_ssh_lab(3)
    app_dir = f"/srv/fleet-access-{os.getpid()}-{time.monotonic_ns()}"
    ssh_config = _write_config(tmp_path, lab, app_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "RELEASEGATE_SSH_KEY")}
    env.update(
        RELEASEGATE_SSH_CONFIG=str(ssh_config),
        RELEASEGATE_KNOWN_HOSTS=str(lab.known_hosts),
        HOME=str(tmp_path),  # no ~/.ssh keys of this machine's user: only the agent's
        NO_COLOR="1",
    )

    def deploy(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [RELEASEGATE, "deploy", "web", "staging", "v1", "--json"],
            cwd=tmp_path,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=300,
        )

    try:
        # No agent, no key: refused before anything changes, each host named.
        refused = deploy({})
        assert refused.returncode != 0
        said = refused.stdout + refused.stderr
        assert "inner-a" in said and "authentication refused" in said, said
        assert not (host_dir(2) / "srv" / app_dir.removeprefix("/srv/")).exists()

        added = subprocess.run(
            ["ssh-add", str(lab.key)],
            env={**env, "SSH_AUTH_SOCK": str(agent)},
            capture_output=True,
            text=True,
        )
        assert added.returncode == 0, added.stderr
        # The jump host's key is checked too, against what ssh_config names for it.
        text = ssh_config.read_text()
        ssh_config.write_text(text.split(f"Host {lab.addresses[0]}")[0])
        unchecked = deploy({"SSH_AUTH_SOCK": str(agent)})
        assert unchecked.returncode != 0
        assert "a host key on the way was refused" in unchecked.stdout, unchecked.stdout
        ssh_config.write_text(text)

        jumps_before = accepted_logins(1)
        done = deploy({"SSH_AUTH_SOCK": str(agent)})
        assert done.returncode == 0, done.stdout + done.stderr
        rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        result = next(r["result"] for r in rows if "result" in r)
        assert result["status"] == "success"
        assert sorted(result["hosts"]) == sorted(INNER)
        for index in INNER.values():
            current = host_dir(index) / "srv" / app_dir.removeprefix("/srv/") / "current"
            assert os.readlink(current) == "releases/v1"
        # h1 carried the connections (one tunnel per inner host) and got no release.
        assert accepted_logins(1) - jumps_before == len(INNER)
        assert not (host_dir(1) / "srv" / app_dir.removeprefix("/srv/")).exists()
    finally:
        for index in (1, *INNER.values()):
            shutil.rmtree(host_dir(index) / "srv" / app_dir.removeprefix("/srv/"), True)
