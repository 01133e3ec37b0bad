"""The SSH transport against the SSH lab's real sshd hosts (scripts/lab/ssh.sh up)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import time
from pathlib import Path

import pytest

from releasegate.transport.ssh import (
    AsyncSshHost,
    HostKeyRefused,
    SshOptions,
    SshTarget,
    SshTransport,
)
from tests.lab.ssh import SshLab

pytestmark = pytest.mark.e2e


def _target(lab: SshLab, index: int) -> SshTarget:
    return SshTarget.parse(lab.url(index))


def test_three_hosts_in_parallel_each_with_its_own_srv(
    ssh_lab: SshLab, ssh_options: SshOptions
) -> None:
    async def main() -> tuple[list[tuple[str, str]], float]:
        hosts = [AsyncSshHost(_target(ssh_lab, i), ssh_options) for i in (1, 2, 3)]
        try:
            await asyncio.gather(*(h.connect() for h in hosts))
            started = time.monotonic()
            results = await asyncio.gather(
                *(h.run(["sh", "-c", "sleep 1; cat /srv/whoami"]) for h in hosts)
            )
            elapsed = time.monotonic() - started
            assert [h.connections_opened for h in hosts] == [1, 1, 1]
            return [(r.stdout.strip(), r.describe()) for r in results], elapsed
        finally:
            await asyncio.gather(*(h.close() for h in hosts))

    got, elapsed = asyncio.run(main())
    assert [name for name, _ in got] == ["h1", "h2", "h3"], got
    assert elapsed < 2.5, f"3 hosts x 1s took {elapsed:.2f}s: not in parallel"


def test_one_connection_is_reused_for_every_command(
    ssh_lab: SshLab, ssh_options: SshOptions
) -> None:
    with SshTransport(_target(ssh_lab, 1), ssh_options) as t:
        seen = set()
        for _ in range(5):
            r = t.run(["sh", "-c", 'echo "$SSH_CONNECTION"'])
            assert r.ok, r
            seen.add(r.stdout.split()[1])  # the client's source port
        assert t.connections_opened == 1
        assert len(seen) == 1, f"commands came over several TCP connections: {seen}"
        digest = t.put(Path(__file__), "/srv/reuse-check.py")
        assert digest
        assert t.connections_opened == 1
        t.run(["rm", "-f", "/srv/reuse-check.py"])


def test_result_shape_stdin_env_cwd(ssh_lab: SshLab, ssh_options: SshOptions) -> None:
    with SshTransport(_target(ssh_lab, 2), ssh_options) as t:
        r = t.run(["sh", "-c", "cat; echo oops >&2; exit 7"], stdin="line one\nsecret 'x'\n")
        assert (r.exit_code, r.stdout, r.stderr, r.timed_out, r.error) == (
            7,
            "line one\nsecret 'x'\n",
            "oops\n",
            False,
            "",
        )
        assert r.argv == ("sh", "-c", "cat; echo oops >&2; exit 7")
        assert not r.ok
        value = 'a b $HOME `id` it\'s "q"'
        r = t.run(["printenv", "RG_V"], env={"RG_V": value})
        assert r.ok and r.stdout == value + "\n", r
        r = t.run(["pwd"], cwd=Path("/srv"))
        assert r.stdout == "/srv\n"
        r = t.run(["ls", "/srv/no such file"])
        assert r.exit_code == 2 and "No such file" in r.stderr
        r = t.run(["no-such-command-rg"])
        assert r.exit_code == 127


def test_command_timeout_kills_the_remote_command(ssh_lab: SshLab, ssh_options: SshOptions) -> None:
    with SshTransport(_target(ssh_lab, 3), ssh_options) as t:
        started = time.monotonic()
        r = t.run(["sh", "-c", "echo started; exec sleep 41.5"], timeout=0.7)
        assert r.timed_out and r.exit_code == -1 and not r.ok
        assert r.stdout == "started\n"
        assert time.monotonic() - started < 5
        assert "timed out" in r.describe()
        left = t.run(["sh", "-c", "pgrep -f '[s]leep 41.5' || true"])
        assert left.stdout.strip() == "", "the timed-out command still runs"
        assert t.run(["true"]).ok  # the connection survives a timeout
        assert t.connections_opened == 1


def test_connect_timeout_and_unreachable_host(ssh_lab: SshLab, ssh_options: SshOptions) -> None:
    # A loopback address where no sshd listens: the connection is refused, reported by name.
    target = SshTarget(address="127.0.0.9", user="root", port=ssh_lab.port)
    with SshTransport(target, dataclasses.replace(ssh_options, connect_timeout=3)) as t:
        r = t.run(["true"])
        assert r.exit_code == -1 and "127.0.0.9" in r.error and "cannot connect" in r.error


def test_unknown_host_key_is_refused(
    ssh_lab: SshLab, ssh_options: SshOptions, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(ssh_lab.known_hosts.read_text().splitlines()[0] + "\n")  # h1 only
    options = dataclasses.replace(ssh_options, known_hosts=known)
    with SshTransport(_target(ssh_lab, 2), options) as t:
        r = t.run(["true"])
        assert r.exit_code == -1 and not r.ok
        assert "unknown" in r.error and "refused" in r.error and "SHA256:" in r.error
        assert t.connections_opened == 0
        with pytest.raises(HostKeyRefused):
            t.connect()
    assert known.read_text().count("\n") == 1, "a refused key must not be written"


def test_changed_host_key_is_refused_even_with_accept_new(
    ssh_lab: SshLab, ssh_options: SshOptions, tmp_path: Path
) -> None:
    lines = ssh_lab.known_hosts.read_text().splitlines()
    name = lines[1].split()[0]  # h2's name, with h1's key
    known = tmp_path / "known_hosts"
    known.write_text(f"{name} {' '.join(lines[0].split()[1:])}\n")
    options = dataclasses.replace(ssh_options, known_hosts=known, accept_new=True)
    with SshTransport(_target(ssh_lab, 2), options) as t:
        with pytest.raises(HostKeyRefused, match="differs"):
            t.connect()
        assert t.accepted_key is None


def test_accept_new_accepts_records_and_reports(
    ssh_lab: SshLab, ssh_options: SshOptions, tmp_path: Path
) -> None:
    known = tmp_path / "sub" / "known_hosts"  # does not exist yet
    options = dataclasses.replace(ssh_options, known_hosts=known, accept_new=True)
    with SshTransport(_target(ssh_lab, 3), options) as t:
        info = t.connect()
        assert info.accepted_key is not None
        accepted = t.accepted_key
        assert accepted is not None and accepted.fingerprint.startswith("SHA256:")
        assert accepted.known_hosts == known
        assert t.run(["cat", "/srv/whoami"]).stdout == "h3\n"
    line = known.read_text().strip()
    assert line == accepted.line
    expected = [
        x for x in ssh_lab.known_hosts.read_text().splitlines() if x.split()[0] == line.split()[0]
    ]
    assert expected and line.split()[1:3] == expected[0].split()[1:3]
    # Next time the key is known: nothing new is accepted.
    with SshTransport(_target(ssh_lab, 3), options) as t:
        assert t.connect().accepted_key is None
        assert t.run(["true"]).ok
    assert known.read_text().strip() == line


def test_upload_with_sha256_checked(
    ssh_lab: SshLab, ssh_options: SshOptions, tmp_path: Path
) -> None:
    artifact = tmp_path / "release.tar"
    artifact.write_bytes(os.urandom(300_000))
    want = hashlib.sha256(artifact.read_bytes()).hexdigest()
    remote = f"/srv/upload-{os.getpid()}.tar"
    with SshTransport(_target(ssh_lab, 1), ssh_options) as t:
        try:
            assert t.put(artifact, remote) == want
            r = t.run(["sha256sum", remote])
            assert r.stdout.split()[0] == want
            left = t.run(["sh", "-c", f"ls {remote}.part-* 2>/dev/null || true"])
            assert left.stdout == ""
        finally:
            t.run(["rm", "-f", remote])
    # Not on the other hosts: each has its own /srv.
    with SshTransport(_target(ssh_lab, 2), ssh_options) as t2:
        assert t2.run(["test", "-e", remote]).exit_code == 1


def test_ssh_config_file_is_read(ssh_lab: SshLab, tmp_path: Path) -> None:
    """User, port, key and known_hosts of the lab's ssh_config apply to an alias."""
    options = SshOptions(known_hosts=ssh_lab.known_hosts, config=(ssh_lab.ssh_config,))
    with SshTransport(SshTarget(address="h2"), options) as t:
        r = t.run(["cat", "/srv/whoami"])
        assert r.ok and r.stdout == "h2\n", r
