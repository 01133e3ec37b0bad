"""Each adapter against its real proxy: which slot is live, a switch and a switch back with
the new version answering through the proxy, a refused switch that changes nothing, and the
5xx share read from the proxy's own access log."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from releasegate.proxy import adapter_for
from releasegate.proxy.accesslog import fivexx_share, log_offset
from releasegate.proxy.base import run_here
from releasegate.proxy.config import ProxyConfig
from tests.lab.proxies import Proxy, get

pytestmark = pytest.mark.e2e


def answers(proxy: Proxy, text: str, timeout: float = 10.0) -> bool:
    """The proxy answers `text` (a reload takes effect within a moment, not at once)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in get(proxy.url)[1]:
            return True
        time.sleep(0.05)
    return False


def test_switch_and_back(proxy_with_apps: Proxy) -> None:
    proxy = proxy_with_apps
    switch = adapter_for(ProxyConfig.model_validate(proxy.config()))
    assert run_here(switch.current()) == "blue"
    assert "version v1 slot blue" in get(proxy.url)[1]

    moved = run_here(switch.switch("green"))
    assert moved.ok, moved.summary
    assert run_here(switch.current()) == "green"
    assert answers(proxy, "version v2 slot green")

    back = run_here(switch.switch("blue"))
    assert back.ok, back.summary
    assert run_here(switch.current()) == "blue"
    assert answers(proxy, "version v1 slot blue")
    assert run_here(switch.drain(0.1)).ok


def test_fivexx_share_from_the_proxy_log(proxy_with_apps: Proxy) -> None:
    proxy = proxy_with_apps
    get(proxy.url)
    time.sleep(0.3)  # the first line is written
    start = log_offset(proxy.access_log)
    for path in ["/", "/fail", "/", "/fail", "/fail"]:
        get(proxy.url + path)
    deadline = time.monotonic() + 10
    while fivexx_share(proxy.access_log, start) != (5, 3) and time.monotonic() < deadline:
        time.sleep(0.1)  # Caddy and HAProxy write their lines a moment later
    assert fivexx_share(proxy.access_log, start) == (5, 3)


def test_nginx_refused_config_keeps_the_old_file(tmp_path: Path) -> None:
    from tests.lab.proxies import free_port, start_proxy

    slots = {"blue": f"127.0.0.1:{free_port()}", "green": f"127.0.0.1:{free_port()}"}
    proxy = start_proxy("nginx", tmp_path, slots)
    try:
        cfg = proxy.config()
        # A host name nginx cannot resolve: `nginx -t` refuses the written file.
        cfg["slots"] = {**slots, "green": "no-such-host.invalid:8102"}
        cfg["allow_hosts"] = ["no-such-host.invalid"]
        switch = adapter_for(ProxyConfig.model_validate(cfg))
        before = Path(str(proxy.control["upstream_file"])).read_text()
        result = run_here(switch.switch("green"))
        assert not result.ok and "nginx -t" in result.summary
        assert Path(str(proxy.control["upstream_file"])).read_text() == before
        assert run_here(switch.current()) == "blue"
    finally:
        proxy.stop()


def test_unreachable_control_is_a_failed_switch(tmp_path: Path) -> None:
    from tests.lab.proxies import free_port

    slots = {"blue": "127.0.0.1:8101", "green": "127.0.0.1:8102"}
    caddy = {"kind": "caddy", "slots": slots, "caddy": {"admin": f"http://127.0.0.1:{free_port()}"}}
    result = run_here(adapter_for(ProxyConfig.model_validate(caddy)).switch("green"))
    assert not result.ok and "admin API" in result.summary
    sock = tmp_path / "none.sock"
    ha = {"kind": "haproxy", "slots": slots, "haproxy": {"socket": str(sock)}}
    result = run_here(adapter_for(ProxyConfig.model_validate(ha)).switch("green"))
    assert not result.ok and "stats socket" in result.summary
