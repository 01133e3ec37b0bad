"""Build the demo's workspace: artifacts v1-v3 of the sample app (v3 broken on purpose),
two stacks' run directories, and a releasegate.yaml that promotes staging to prod."""

from __future__ import annotations

import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

APP = Path(__file__).resolve().parent / "app"
VERSIONS = {"v1": False, "v2": False, "v3": True}  # version -> broken


@dataclass(frozen=True)
class Workspace:
    root: Path
    config: Path
    ports: dict[str, int]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CONFIG = """\
# releasegate demo: a sample web app with a staging and a production stack.
# Production accepts only versions verified on staging (promote_from).
stacks:
  web-staging:
    env: staging
    runtime: releases
    dir: srv/web-staging
    artifacts: artifacts
    shared: [.env, logs/]
    keep_releases: 3
    commands:
      restart: ["{python}", "-m", "releasegate.demo.service", "restart"]
    # Feature switches (seed 003): written to shared/.env, the app restarted and smoked.
    flags:
      dotenv: shared/.env
      apply: restart
      declared:
        SUPPLIER_EVAL_ENABLED:
          type: bool
          default: false
          description: the supplier evaluation module, shipped dark
    smoke:
      - name: health
        http: http://127.0.0.1:{staging_port}/health
        expect_status: 200
        body_contains: '"version": "{{version}}"'
        latency_ms: 2000
        retries: 2
        interval: 0.2
        timeout: 5
  web-prod:
    env: prod
    runtime: releases
    dir: srv/web-prod
    artifacts: artifacts
    shared: [.env, logs/]
    promote_from: web-staging
    commands:
      restart: ["{python}", "-m", "releasegate.demo.service", "restart"]
    smoke:
      - name: health
        http: http://127.0.0.1:{prod_port}/health
        expect_status: 200
        body_contains: '"version": "{{version}}"'
        retries: 2
        interval: 0.2
        timeout: 5
"""


def create(root: Path) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    if (root / "releasegate.yaml").exists():
        raise FileExistsError(
            f"{root / 'releasegate.yaml'} exists: pick an empty folder for the demo"
        )
    for version, broken in VERSIONS.items():
        dest = root / "artifacts" / version
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(APP / "server.py", dest / "server.py")
        (dest / "VERSION").write_text(
            version + ("\nbroken\n" if broken else "\n"), encoding="utf-8"
        )
    ports = {"web-staging": free_port(), "web-prod": free_port()}
    for stack, port in ports.items():
        shared = root / "srv" / stack / "shared"
        shared.mkdir(parents=True, exist_ok=True)
        # A secret in .env, to show it never reaches the ledger or the records.
        (shared / ".env").write_text(
            f"PORT={port}\nAPP_SECRET_TOKEN=demo-{port}-not-for-real\n", encoding="utf-8"
        )
    config = root / "releasegate.yaml"
    config.write_text(
        CONFIG.format(
            python=sys.executable, staging_port=ports["web-staging"], prod_port=ports["web-prod"]
        ),
        encoding="utf-8",
    )
    return Workspace(root, config, ports)


def stop_services(ws: Workspace) -> None:
    from releasegate.demo.service import stop

    for stack in ws.ports:
        stop(ws.root / "srv" / stack / "shared")
