"""A releasegate workspace with a staging and a prod compose stack on the Docker lab:
shared by the end-to-end tests and the compose benchmarks; its parts (the compose file, a
project's run folder, the project name's suffix) also serve the swarm and slot stacks."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cli import RELEASEGATE
from tests.lab.docker import free_port

COMPOSE_FILE = """\
services:
  web:
    image: {registry}/rg/web:${{IMAGE_TAG}}
    ports: ["127.0.0.1:${{{port}}}:80"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/health"]
      interval: 1s
      timeout: 2s
      retries: 2
"""


@dataclass
class ComposeWorkspace:
    root: Path
    ports: dict[str, int]
    projects: dict[str, str]

    def rg(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "RELEASEGATE_USER": "tester", "NO_COLOR": "1"}
        return subprocess.run(
            [RELEASEGATE, *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def history(self, *args: str) -> list[dict[str, Any]]:
        out = self.rg("history", "--json", *args)
        assert out.returncode == 0, out.stderr
        return [json.loads(line) for line in out.stdout.splitlines()]

    def url(self, stack: str) -> str:
        return f"http://127.0.0.1:{self.ports[stack]}/health"

    def health(self, stack: str, timeout: float = 3) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url(stack), timeout=timeout) as resp:
                return resp.status, resp.read().decode().strip()
        except OSError as exc:
            return -1, str(exc)


def compose_file(registry: str, port: str = "PORT") -> str:
    """The lab's web service, published on the variable `port` (with its default, if any)."""
    return COMPOSE_FILE.format(registry=registry, port=port)


def project_tag(root: Path, size: int = 8) -> str:
    """A project name's suffix from the test's folder: its last `size` letters and digits."""
    return "".join(ch for ch in root.name.lower() if ch.isalnum())[-size:] or "ws"


def write_project(run: Path, compose_text: str, dotenv: str) -> Path:
    """A stack's run folder with its compose file and .env."""
    run.mkdir(parents=True)
    (run / "docker-compose.yml").write_text(compose_text)
    (run / ".env").write_text(dotenv)
    return run


def make_workspace(
    root: Path,
    registry: str,
    prefix: str,
    prod_extra: str = "",
    *,
    runtime: str = "compose",
    compose_text: str | None = None,
    secret: str = "tok-secret-123456",
    wait_timeout: float = 60,
    migrate: bool = True,
    smoke: tuple[int, float] = (5, 15),
) -> ComposeWorkspace:
    """A staging and a prod stack (prod promoted from staging), each with its own run dir
    and project name; `smoke` is the health check's (retries, timeout)."""
    ports = {"web-staging": free_port(), "web-prod": free_port()}
    tag = project_tag(root)
    projects = {s: f"{prefix}{s}-{tag}" for s in ports}
    retries, timeout = smoke
    stacks = []
    for stack, env in (("web-staging", "staging"), ("web-prod", "prod")):
        text = compose_text if compose_text is not None else compose_file(registry)
        if stack == "web-prod":
            text += prod_extra
        write_project(root / "srv" / stack, text, f"PORT={ports[stack]}\nAPI_TOKEN={secret}\n")
        promote = "    promote_from: web-staging\n" if env == "prod" else ""
        # The team's migrate step (seed 001 runs one): it sees the version it migrates to.
        commands = "    commands:\n      migrate: 'test -n \"$IMAGE_TAG\"'\n" if migrate else ""
        stacks.append(
            f"  {stack}:\n    env: {env}\n    runtime: {runtime}\n    dir: srv/{stack}\n"
            f"{promote}"
            f"    compose:\n      project: {projects[stack]}\n      wait_timeout: {wait_timeout}\n"
            f"{commands}"
            f"    smoke:\n      - name: health\n"
            f"        http: http://127.0.0.1:{ports[stack]}/health\n"
            f'        body_contains: \'"version": "{{version}}"\'\n'
            f"        retries: {retries}\n        interval: 0.5\n        timeout: {timeout}\n"
        )
    (root / "releasegate.yaml").write_text("stacks:\n" + "".join(stacks))
    return ComposeWorkspace(root, ports, projects)
