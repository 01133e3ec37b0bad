"""A watch window on a slot stack: the new version passes its smoke but answers 500 to the
users; the 5xx share in nginx's access log fails the window, and the deploy goes back by a
switch to the old slot, which ran warm all along (no restart)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e_proxy.slots import make_stack
from tests.lab.load import Load
from tests.lab.proxies import get

pytestmark = pytest.mark.e2e


def test_a_5xx_rise_switches_back_to_the_warm_slot(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, "nginx")
    try:
        stack.rg("deploy", "web", "staging", "v1").check_returncode()
        config = json.loads(stack.config.read_text())
        config["stacks"]["web"]["watch"] = {
            "duration": 20,
            "interval": 0.5,
            "smoke": False,
            "access_log": {
                "path": str(stack.proxy.access_log),
                "max_5xx_share": 0.2,
                "min_requests": 5,
            },
        }
        stack.config.write_text(json.dumps(config))
        with Load(stack.proxy.url + "/", clients=2, keepalive=True) as load:
            started = time.monotonic()
            run = stack.rg("deploy", "web", "staging", "v4")
            took = time.monotonic() - started
        assert run.returncode == 4, run.stdout + run.stderr  # ROLLED BACK
        assert "version v1" in get(stack.proxy.url)[1]
        assert took < 20 + 30  # the window ended early: the 5xx share failed it
        shown = stack.rg("history", "--stack", "web", "--steps").stdout
        back = shown.rsplit("rollback", 1)[-1]
        assert "switch-traffic" in back and "start-slot" not in back, shown
        # Only v4's answers failed (500s); no request failed for want of a server.
        assert set(load.result.errors) <= {"HTTP 500"}, load.result.errors
    finally:
        stack.stop_apps()
        stack.proxy.stop()
