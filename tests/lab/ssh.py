"""Access to the SSH lab: N sshd hosts on 127.0.0.11.. (scripts/lab/ssh.sh up [N]).

The script writes its facts to lab-run/ssh/lab.env (addresses, port, key, known_hosts,
ssh_config); this module reads them and checks that the hosts answer. A missing part skips a
test on a developer's machine and fails it under CI (CI=true).
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from tests.cli import RELEASEGATE
from tests.lab.docker import under_ci

REPO = Path(__file__).resolve().parents[2]
FACTS_FILE = REPO / "lab-run" / "ssh" / "lab.env"
UP_HINT = "start the lab with: bash scripts/lab/ssh.sh up"

__all__ = [
    "FACTS_FILE",
    "SshLab",
    "current_links",
    "facts",
    "free_port",
    "last_result",
    "require_ssh_lab",
    "rg_env",
    "run_rg",
    "serving",
    "unavailable",
    "under_ci",
]


def host_dir(index: int) -> Path:
    """Lab host hN's own folder: its sshd.log, and its /srv as `srv`."""
    return REPO / "lab-run" / "ssh" / f"h{index}"


def accepted_logins(index: int) -> int:
    """How many connections host hN's sshd has accepted so far (its log)."""
    log = host_dir(index) / "sshd.log"
    return log.read_text(errors="replace").count("Accepted publickey") if log.is_file() else 0


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer's machine; fail under CI."""
    message = f"SSH lab unavailable: {reason} ({UP_HINT})"
    if under_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def facts(path: Path = FACTS_FILE) -> dict[str, str]:
    """lab.env as a dict (KEY='value' lines)."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        words = shlex.split(value)
        found[key.strip()] = words[0] if words else ""
    return found


@dataclass(frozen=True)
class SshLab:
    """The running lab: host hN is `addresses[N-1]`, its /srv/whoami holds "hN"."""

    addresses: tuple[str, ...]
    port: int
    user: str
    key: Path
    known_hosts: Path
    ssh_config: Path
    version: str

    def url(self, index: int) -> str:
        """ssh://root@127.0.0.(10+index):PORT for host h<index> (1-based)."""
        return f"ssh://{self.user}@{self.addresses[index - 1]}:{self.port}"

    def name(self, index: int) -> str:
        return f"h{index}"


def _answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=3) as s:
            s.settimeout(3)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


_checked: list[SshLab] = []


def require_ssh_lab(count: int = 3) -> SshLab:
    """The lab, with at least `count` hosts answering; skip (or fail under CI) otherwise."""
    if _checked and len(_checked[0].addresses) >= count:
        return _checked[0]
    if not FACTS_FILE.is_file():
        unavailable(f"no {FACTS_FILE.relative_to(REPO)}")
    f = facts()
    lab = SshLab(
        addresses=tuple(f["SSH_HOSTS"].split()),
        port=int(f["SSH_PORT"]),
        user=f["SSH_USER"],
        key=Path(f["SSH_KEY"]),
        known_hosts=Path(f["SSH_KNOWN_HOSTS"]),
        ssh_config=Path(f["SSH_CONFIG"]),
        version=f.get("SSH_VERSION", ""),
    )
    if len(lab.addresses) < count:
        unavailable(f"{len(lab.addresses)} hosts up, the test needs {count}")
    for path in (lab.key, lab.known_hosts, lab.ssh_config):
        if not path.is_file():
            unavailable(f"no {path}")
    down = [a for a in lab.addresses[:count] if not _answers(a, lab.port)]
    if down:
        unavailable(f"no sshd answers on {', '.join(down)} port {lab.port}")
    _checked[:] = [lab]
    return lab


def rg_env(lab: SshLab, known_hosts: Path | None = None) -> dict[str, str]:
    """The environment releasegate runs in against the lab: its key and known_hosts, no
    ~/.ssh/config of the developer's, plain wide output."""
    return {
        **os.environ,
        "RELEASEGATE_SSH_KEY": str(lab.key),
        "RELEASEGATE_KNOWN_HOSTS": str(known_hosts or lab.known_hosts),
        "RELEASEGATE_SSH_CONFIG": "/dev/null",
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }


def run_rg(
    lab: SshLab,
    cwd: Path,
    *args: str,
    known_hosts: Path | None = None,
    check: bool = False,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """`releasegate ARGS` in `cwd` against the lab; with check, a failure shows its output."""
    proc = subprocess.run(
        [RELEASEGATE, *args],
        cwd=cwd,
        env=rg_env(lab, known_hosts),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args}: rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def last_result(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    """The last `{"result": ...}` line of a --json run."""
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    results = [x["result"] for x in lines if "result" in x]
    assert results, proc.stdout + proc.stderr
    return results[-1]  # type: ignore[no-any-return]


def docker_host(index: int) -> str:
    """DOCKER_HOST of lab host hN's own engine (scripts/lab/docker_hosts.sh up)."""
    return f"unix://{host_dir(index) / 'docker.sock'}"


def require_docker_hosts(count: int) -> SshLab:
    """The SSH lab with an engine of its own on each of hosts h1..h<count>."""
    lab = require_ssh_lab(count)
    for i in range(1, count + 1):
        try:
            seen = subprocess.run(
                ["docker", "info", "--format", "{{.DockerRootDir}}"],
                env={**os.environ, "DOCKER_HOST": docker_host(i)},
                capture_output=True,
                text=True,
                timeout=20,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            unavailable(f"h{i}'s Docker engine: {exc} (bash scripts/lab/docker_hosts.sh up)")
        if seen.returncode != 0:
            unavailable(
                f"h{i}'s Docker engine does not answer (bash scripts/lab/docker_hosts.sh up)"
            )
    return lab


def free_port(addresses: tuple[str, ...]) -> int:
    """A TCP port free on every one of the lab hosts' addresses."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if all(_port_free(a, port) for a in addresses):
            return port
    raise RuntimeError("no free port")


def _port_free(address: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def serving(
    addresses: tuple[str, ...] | list[str], port: int, path: str = "/version.txt"
) -> list[str | None]:
    """What each host answers on `path` (None: nothing answers)."""
    found: list[str | None] = []
    for addr in addresses:
        try:
            with urllib.request.urlopen(f"http://{addr}:{port}{path}", timeout=3) as r:
                found.append(r.read().decode().strip())
        except OSError:
            found.append(None)
    return found


def current_links(links: list[Path]) -> list[str | None]:
    """The release each host's `current` link names (None: no link)."""
    return [Path(os.readlink(p)).name if p.is_symlink() else None for p in links]
