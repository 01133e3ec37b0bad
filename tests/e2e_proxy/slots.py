"""A releases stack with blue/green slots behind a real proxy, driven through the real CLI:
its workspace (artifacts v1, v2, and v3 that answers the wrong version), its config, and the
clean-up of every slot app it started (by the pid files its commands wrote)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.cli import RELEASEGATE
from tests.lab.proxies import APP, Proxy, free_port, start_proxy, stop_pid

# The team's commands: start the release's app in the slot ($PORT from releasegate), in its
# own session, its pid in a file per slot; stop it by that pid and wait until it is gone.
START = (
    "setsid python3 app.py </dev/null >/dev/null 2>&1 & "
    'echo $! > "$RELEASEGATE_DIR/slot-$RELEASEGATE_SLOT.pid"'
)
STOP = (
    'f="$RELEASEGATE_DIR/slot-$RELEASEGATE_SLOT.pid"; [ -f "$f" ] || exit 0; pid=$(cat "$f"); '
    'kill "$pid" 2>/dev/null; i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; '
    'do sleep 0.05; i=$((i+1)); done; rm -f "$f"'
)


@dataclass
class SlotStack:
    root: Path
    proxy: Proxy

    @property
    def config(self) -> Path:
        return self.root / "releasegate.yaml"

    def rg(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
        env.update(RELEASEGATE_CONFIG=str(self.config), NO_COLOR="1", COLUMNS="200",
                   RELEASEGATE_USER="tester")  # fmt: skip
        return subprocess.run(
            [RELEASEGATE, *args], cwd=self.root, env=env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip

    def stop_apps(self) -> None:
        for pidfile in (self.root / "srv" / "web").glob("slot-*.pid"):
            try:
                stop_pid(int(pidfile.read_text().strip()))
            except ValueError:
                pass


def make_stack(
    root: Path,
    kind: str,
    *,
    drain_s: float = 0.5,
    keep_old: bool = False,
    watch: dict[str, object] | None = None,
) -> SlotStack:
    apps = {
        "v1": APP,
        "v2": APP,
        "v3": APP.replace("VERSION = os.environ", 'VERSION = "bad" or os.environ'),
        # v4 passes its smoke (/health) but answers 500 to everything else.
        "v4": APP.replace('self.path.startswith("/fail")', 'not self.path.startswith("/health")'),
    }
    for version, app in apps.items():
        folder = root / "artifacts" / version
        folder.mkdir(parents=True)
        (folder / "app.py").write_text(app)
    slots = {"blue": f"127.0.0.1:{free_port()}", "green": f"127.0.0.1:{free_port()}"}
    proxy = start_proxy(kind, root, slots)
    stack = {
        "env": "staging",
        "runtime": "releases",
        "dir": "srv/web",
        "artifacts": "artifacts",
        "commands": {"restart": ["sh", "-c", START], "stop": ["sh", "-c", STOP]},
        "smoke": [
            {
                "name": "health",
                "http": f"{proxy.url}/health",
                "body_contains": "version {version}",
                "retries": 30,
                "interval": 0.1,
                "timeout": 6,
            }
        ],
        "preflight": {"disk_free_min_percent": 1},
        "proxy": proxy.config(drain_s=drain_s, keep_old=keep_old),
    }
    if watch is not None:
        stack["watch"] = watch
    # JSON is YAML: no quoting to get wrong.
    (root / "releasegate.yaml").write_text(json.dumps({"stacks": {"web": stack}}, indent=2))
    return SlotStack(root, proxy)
