"""Build the demo's workspace: artifacts v1-v4 of the sample app (v3 broken on purpose, v4
logs an error on every request), two stacks' run directories, and a releasegate.yaml that
promotes staging to prod; with a proxy, a third stack in blue/green slots behind it."""

from __future__ import annotations

import json
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from releasegate.demo.proxy import DemoProxy

APP = Path(__file__).resolve().parent / "app"
# version -> what the sample app reads after the version in its VERSION file
VERSIONS = {"v1": "", "v2": "", "v3": "broken", "v4": "errors"}


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


# The blue/green stack behind the demo's proxy; values are JSON (valid YAML, quoted safely).
PROXY_STACK = """\
  # Blue/green behind the {name} the demo started (proxy/): a deploy starts the new
  # version in the free slot, smokes it there, then the proxy switches the traffic; the old
  # slot stays warm through the watch window, and a failing check switches back to it.
  {stack}:
    env: prod
    runtime: releases
    dir: srv/{stack}
    artifacts: artifacts
    shared: [.env, logs/]
    commands:
      # With RELEASEGATE_SLOT and the slot's PORT in the environment: one pid per slot.
      restart: ["{python}", "-m", "releasegate.demo.service", "restart"]
      stop: ["{python}", "-m", "releasegate.demo.service", "stop"]
    smoke:
      - name: health
        http: {url}
        expect_status: 200
        body_contains: '"version": "{{version}}"'
        retries: 2
        interval: 0.2
        timeout: 5
    proxy: {proxy}
    # Seed 003's first minutes, shortened for the demo: the smoke checks and
    # `grep -i error` in the app's log since the switch.
    watch:
      duration: 1
      interval: 0.25
      smoke: true
      log:
        path: srv/{stack}/shared/logs/app.log
        pattern: "(?i)error"
"""


def create(root: Path, proxy: DemoProxy | None = None) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    if (root / "releasegate.yaml").exists():
        raise FileExistsError(
            f"{root / 'releasegate.yaml'} exists: pick an empty folder for the demo"
        )
    for version, marker in VERSIONS.items():
        dest = root / "artifacts" / version
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(APP / "server.py", dest / "server.py")
        (dest / "VERSION").write_text(
            version + (f"\n{marker}\n" if marker else "\n"), encoding="utf-8"
        )
    ports = {"web-staging": free_port(), "web-prod": free_port()}
    for stack, port in ports.items():
        shared = root / "srv" / stack / "shared"
        shared.mkdir(parents=True, exist_ok=True)
        # A secret in .env, to show it never reaches the ledger or the records.
        (shared / ".env").write_text(
            f"PORT={port}\nAPP_SECRET_TOKEN=demo-{port}-not-for-real\n", encoding="utf-8"
        )
    text = CONFIG.format(
        python=sys.executable, staging_port=ports["web-staging"], prod_port=ports["web-prod"]
    )
    if proxy is not None:
        from releasegate.demo.proxy import NAMES, STACK

        shared = root / "srv" / STACK / "shared"
        shared.mkdir(parents=True, exist_ok=True)
        (shared / ".env").write_text("APP_SECRET_TOKEN=demo-slots-not-for-real\n")
        text += PROXY_STACK.format(
            name=NAMES[proxy.kind], stack=STACK, python=sys.executable,
            url=json.dumps(f"{proxy.url}/health"), proxy=json.dumps(proxy.section()),
        )  # fmt: skip
    config = root / "releasegate.yaml"
    config.write_text(text, encoding="utf-8")
    return Workspace(root, config, ports)


def stop_services(ws: Workspace) -> None:
    from releasegate.demo.service import stop

    for stack in ws.ports:
        stop(ws.root / "srv" / stack / "shared")
    # The blue/green stack's slots (one pid file each), whatever ran there.
    for pidfile in sorted((ws.root / "srv").glob("*/shared/slot-*.pid")):
        stop(pidfile.parent, pidfile=pidfile)
