"""Real proxies on loopback (tests/lab/proxies.py): each test starts its own and stops, by
pid, what it started."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.proxies import Proxy, free_port, start_app, start_proxy, stop_child

KINDS = ["nginx", "caddy", "haproxy"]


@pytest.fixture(params=KINDS)
def proxy_with_apps(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Proxy]:
    """A proxy of each kind in front of two running apps: v1 on blue (live), v2 on green."""
    kind = str(request.param)
    blue, green = free_port(), free_port()
    slots = {"blue": f"127.0.0.1:{blue}", "green": f"127.0.0.1:{green}"}
    apps = [
        start_app(tmp_path / "blue", blue, "v1", "blue"),
        start_app(tmp_path / "green", green, "v2", "green"),
    ]
    proxy = start_proxy(kind, tmp_path, slots)
    try:
        yield proxy
    finally:
        proxy.stop()
        for app in apps:
            stop_child(app)
