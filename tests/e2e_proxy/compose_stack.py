"""A compose stack with blue/green slots behind a real proxy, driven through the real CLI
(tests/e2e_proxy/test_compose_slots.py, benchmarks/zero_downtime.py): two images of the
Docker lab, a compose file publishing $RELEASEGATE_SLOT_PORT, and its config."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e_proxy.slots import SlotStack
from tests.lab.compose_workspace import compose_file, project_tag, write_project
from tests.lab.docker import compose, docker
from tests.lab.fixtures import DockerLab
from tests.lab.images import sha_version
from tests.lab.proxies import free_port, start_proxy


@dataclass
class ComposeSlots(SlotStack):
    project: str = ""
    v1: str = ""
    v2: str = ""
    keep_old: bool = False

    def slot_containers(self, slot: str) -> list[dict[str, Any]]:
        ids = docker(
            "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}-{slot}"
        ).stdout.split()
        return json.loads(docker("inspect", *ids).stdout) if ids else []

    def down(self) -> None:
        """Stop the proxy (by its pid) and remove both slots' projects."""
        self.proxy.stop()
        for slot in ("blue", "green"):
            compose(f"{self.project}-{slot}", "down", "-v", "-t", "2", check=False)

    def rows(self, *args: str) -> list[dict[str, Any]]:
        shown = self.rg("history", "--stack", "web", "--json", *args)
        assert shown.returncode == 0, shown.stderr
        return [json.loads(line) for line in shown.stdout.splitlines()]

    def last_steps(self) -> list[dict[str, Any]]:
        """The steps of the newest run (a line each, under its run's action_id)."""
        rows = self.rows("--steps")
        run = [r for r in rows if not r.get("parent_id")][-1]
        return [r for r in rows if r.get("parent_id") == run["action_id"]]


def make(root: Path, lab: DockerLab, keep_old: bool, kind: str = "nginx") -> ComposeSlots:
    v1, v2 = sha_version(f"compose-slots-v1-{root.name}"), sha_version(f"cslots-v2-{root.name}")
    lab.image(v1), lab.image(v2)
    project = lab.project("cslots-" + project_tag(root, 10))
    compose_text = compose_file(lab.registry, port="RELEASEGATE_SLOT_PORT:-8080")
    write_project(root / "srv" / "web", compose_text, f"IMAGE_TAG={v1}\n")
    slots = {"blue": f"127.0.0.1:{free_port()}", "green": f"127.0.0.1:{free_port()}"}
    proxy = start_proxy(kind, root, slots)
    stack = {
        "env": "staging",
        "runtime": "compose",
        "dir": "srv/web",
        "compose": {"project": project, "wait_timeout": 60},
        "smoke": [
            {
                "name": "health",
                "http": f"{proxy.url}/health",
                "body_contains": '"version": "{version}"',
                "retries": 20,
                "interval": 0.25,
                "timeout": 6,
            }
        ],
        "preflight": {"disk_free_min_percent": 1},
        "proxy": proxy.config(drain_s=0.5, keep_old=keep_old),
    }
    (root / "releasegate.yaml").write_text(json.dumps({"stacks": {"web": stack}}, indent=2))
    return ComposeSlots(root, proxy, project, v1, v2, keep_old)
