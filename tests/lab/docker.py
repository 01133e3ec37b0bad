"""Access to the Docker lab (engine, Compose v2 plugin, registry on 127.0.0.1:5000).

`bash scripts/lab/docker.sh up` installs and starts the lab; this module only talks to it.
A missing part skips a test on a developer's machine and fails it under CI (CI=true).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

REGISTRY = "127.0.0.1:5000"
UP_HINT = "start the lab with: bash scripts/lab/docker.sh up"

T = TypeVar("T")


class DockerError(RuntimeError):
    """A docker command failed; carries its output."""

    def __init__(self, args: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.cmd = list(args)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(
            f"`{' '.join(self.cmd)}` exited {returncode}: {stderr.strip() or stdout.strip()}"
        )


def under_ci() -> bool:
    """True when the run is CI's: a missing lab part must then fail, never skip."""
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer's machine; fail under CI."""
    message = f"Docker lab unavailable: {reason} ({UP_HINT})"
    if under_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def docker(
    *args: str,
    input: str | None = None,
    timeout: float = 120.0,
    check: bool = True,
    cwd: Path | str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `docker ARGS...`; raise DockerError on a non-zero exit when `check`."""
    cmd = ["docker", *args]
    proc = subprocess.run(
        cmd, input=input, capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
    if check and proc.returncode != 0:
        raise DockerError(cmd, proc.returncode, proc.stdout, proc.stderr)
    return proc


def compose(
    project: str,
    *args: str,
    files: Iterable[Path | str] = (),
    cwd: Path | str | None = None,
    timeout: float = 300.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run `docker compose -p PROJECT [-f FILE]... ARGS...`."""
    file_args: list[str] = []
    for f in files:
        file_args += ["-f", str(f)]
    return docker(
        "compose", "-p", project, *file_args, *args, timeout=timeout, check=check, cwd=cwd
    )


def compose_ps(project: str) -> list[dict[str, object]]:
    """`docker compose -p PROJECT ps -a --format json` as a list of dicts (one per container)."""
    out = compose(project, "ps", "-a", "--format", "json").stdout.strip()
    if not out:
        return []
    if out.startswith("["):  # older Compose printed one JSON array
        rows = json.loads(out)
        return [dict(r) for r in rows]
    return [dict(json.loads(line)) for line in out.splitlines() if line.strip()]


def registry_answers(registry: str = REGISTRY, timeout: float = 3.0) -> bool:
    try:
        status, _ = http_get(f"http://{registry}/v2/", timeout=timeout)
    except OSError:
        return False
    return status == 200


def problems(registry: str = REGISTRY) -> list[str]:
    """What of the lab is missing or not answering; empty when all is there."""
    found: list[str] = []
    if shutil.which("docker") is None:
        return ["no `docker` client on PATH"]
    try:
        info = docker("version", "--format", "{{.Server.Version}}", timeout=20, check=False)
        if info.returncode != 0 or not info.stdout.strip():
            found.append(f"the Docker engine does not answer: {info.stderr.strip()[:300]}")
        comp = docker("compose", "version", "--short", timeout=20, check=False)
        if comp.returncode != 0:
            found.append(f"no Compose v2 plugin (`docker compose`): {comp.stderr.strip()[:300]}")
    except subprocess.TimeoutExpired as e:
        found.append(f"`{' '.join(map(str, e.cmd))}` timed out")
    if not registry_answers(registry):
        found.append(f"the registry does not answer at http://{registry}/v2/")
    if not Path("/bin/busybox").is_file():
        found.append("no /bin/busybox (apt-get install busybox-static) to build test images")
    if shutil.which("tar") is None:
        found.append("no `tar`")
    return found


_checked: dict[str, bool] = {}


def require_docker(registry: str = REGISTRY) -> None:
    """Skip (developer) or fail (CI=true) the calling test unless the whole lab answers.

    A success is remembered for the session; a failure is checked again next time.
    """
    if _checked.get(registry):
        return
    found = problems(registry)
    if found:
        unavailable("; ".join(found))
    _checked[registry] = True


def versions() -> dict[str, str]:
    """Engine, client and Compose versions, for messages and reports."""
    fmt = "{{.Server.Version}} {{.Server.APIVersion}} {{.Client.Version}} {{.Client.APIVersion}}"
    server, server_api, client, client_api = docker("version", "--format", fmt).stdout.split()
    return {
        "engine": server,
        "engine_api": server_api,
        "client": client,
        "client_api": client_api,
        "compose": docker("compose", "version", "--short").stdout.strip(),
    }


def _require_loopback(url: str) -> None:
    host = urllib.parse.urlparse(url).hostname or ""
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise ValueError(f"the lab only talks to loopback addresses, not {url}")


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """GET a loopback URL: (status, body); HTTP errors come back as their status."""
    _require_loopback(url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def wait_for(
    probe: Callable[[], T | None], what: str, timeout: float = 60.0, interval: float = 0.5
) -> T:
    """Call `probe` until it returns something other than None/False; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last is not None and last is not False:
            return last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def wait_http(url: str, status: int = 200, timeout: float = 30.0) -> str:
    """Wait until `url` answers `status`; return the body."""

    def probe() -> str | None:
        try:
            code, body = http_get(url, timeout=3)
        except OSError:
            return None
        return body if code == status else None

    return wait_for(probe, f"{url} to answer {status}", timeout)


def health_status(container: str) -> str:
    """The container's health: starting, healthy, unhealthy, or 'none' without a check."""
    out = docker(
        "inspect",
        "--format",
        "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
        container,
    ).stdout.strip()
    return out


def wait_health(container: str, want: str, timeout: float = 60.0) -> str:
    """Wait until `container`'s health is `want` (healthy / unhealthy)."""
    return wait_for(
        lambda: want if health_status(container) == want else None,
        f"{container} to become {want}",
        timeout,
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
