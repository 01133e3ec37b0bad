"""A releasegate workspace with a staging and a prod compose stack on the Docker lab:
shared by the end-to-end tests and the compose benchmarks."""

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
    ports: ["127.0.0.1:${{PORT}}:80"]
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


def make_workspace(
    root: Path, registry: str, prefix: str, prod_extra: str = ""
) -> ComposeWorkspace:
    """A staging and a prod compose stack, each with its own run dir and project name."""
    ports = {"web-staging": free_port(), "web-prod": free_port()}
    tag = "".join(ch for ch in root.name.lower() if ch.isalnum())[-8:] or "ws"
    projects = {s: f"{prefix}{s}-{tag}" for s in ports}
    stacks = []
    for stack, env in (("web-staging", "staging"), ("web-prod", "prod")):
        run = root / "srv" / stack
        run.mkdir(parents=True)
        compose_text = COMPOSE_FILE.format(registry=registry)
        if stack == "web-prod":
            compose_text += prod_extra
        (run / "docker-compose.yml").write_text(compose_text)
        (run / ".env").write_text(f"PORT={ports[stack]}\nAPI_TOKEN=tok-secret-123456\n")
        promote = "    promote_from: web-staging\n" if env == "prod" else ""
        stacks.append(
            f"  {stack}:\n    env: {env}\n    runtime: compose\n    dir: srv/{stack}\n"
            f"{promote}"
            f"    compose:\n      project: {projects[stack]}\n      wait_timeout: 60\n"
            # The team's migrate step (seed 001 runs one): it sees the version it migrates to.
            f"    commands:\n      migrate: 'test -n \"$IMAGE_TAG\"'\n"
            f"    smoke:\n      - name: health\n"
            f"        http: http://127.0.0.1:{ports[stack]}/health\n"
            f'        body_contains: \'"version": "{{version}}"\'\n'
            f"        retries: 5\n        interval: 0.5\n        timeout: 15\n"
        )
    (root / "releasegate.yaml").write_text("stacks:\n" + "".join(stacks))
    return ComposeWorkspace(root, ports, projects)
