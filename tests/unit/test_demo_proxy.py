"""The demo's own proxy, as data: which proxy it picks from PATH, the `proxy:` section it
writes (valid for the adapters' schema, loopback only), the workspace's blue/green stack,
and a workspace path no proxy config could hold refused before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from releasegate.config.loader import load_config
from releasegate.demo import proxy as demo_proxy
from releasegate.demo import workspace
from releasegate.proxy.config import ProxyConfig, is_loopback, split_address


def fake_bin(folder: Path, *names: str) -> str:
    folder.mkdir(exist_ok=True)
    for name in names:
        exe = folder / name
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
    return str(folder)


def test_no_proxy_on_path_is_none(tmp_path: Path) -> None:
    assert demo_proxy.find(fake_bin(tmp_path / "bin", "python3")) is None


@pytest.mark.parametrize(
    ("names", "kind"),
    [(("caddy", "haproxy", "nginx"), "nginx"), (("caddy", "haproxy"), "haproxy"),
     (("caddy",), "caddy")],
)  # fmt: skip
def test_nginx_is_preferred_then_haproxy_then_caddy(
    tmp_path: Path, names: tuple[str, ...], kind: str
) -> None:
    folder = fake_bin(tmp_path / "bin", *names)
    assert demo_proxy.find(folder) == (kind, f"{folder}/{kind}")


@pytest.mark.parametrize("kind", demo_proxy.KINDS)
def test_the_proxy_section_passes_the_adapters_schema(tmp_path: Path, kind: str) -> None:
    p = demo_proxy.plan(tmp_path, kind, f"/usr/sbin/{kind}")
    cfg = ProxyConfig.model_validate(p.section())
    assert cfg.kind == kind
    hosts_ports = [split_address(a) for a in cfg.slots.values()] + [("127.0.0.1", p.port)]
    assert all(is_loopback(h) for h, _ in hosts_ports)
    assert len({port for _, port in hosts_ports}) == 3  # two slots and the listener differ
    assert cfg.access_log == p.access_log and str(p.access_log).startswith(str(tmp_path))


def test_the_workspace_has_a_blue_green_stack_only_with_a_proxy(tmp_path: Path) -> None:
    plain = workspace.create(tmp_path / "plain")
    assert demo_proxy.STACK not in load_config(plain.config).stacks
    p = demo_proxy.plan(tmp_path / "ws", "nginx", "/usr/sbin/nginx")
    ws = workspace.create(tmp_path / "ws", p)
    stack = load_config(ws.config).stacks[demo_proxy.STACK]
    assert stack.proxy is not None and stack.proxy.kind == "nginx"
    assert stack.commands.stop is not None  # the old slot is stopped after its window
    assert stack.watch is not None and stack.watch.duration <= 2  # the demo stays fast
    assert stack.watch.log is not None and stack.watch.log.path == (
        tmp_path / "ws" / "srv" / demo_proxy.STACK / "shared" / "logs" / "app.log"
    )
    assert stack.smoke[0].http == f"{p.url}/health"  # through the proxy
    assert (tmp_path / "ws" / "artifacts" / "v4" / "VERSION").read_text() == "v4\nerrors\n"


@pytest.mark.parametrize("bad", ['a"b', "a;b", "a$b", "a\nb"])
def test_a_workspace_path_a_config_cannot_hold_is_refused(tmp_path: Path, bad: str) -> None:
    p = demo_proxy.plan(tmp_path / bad, "nginx", "/nonexistent/nginx")
    with pytest.raises(demo_proxy.ProxyStartError, match="cannot hold"):
        demo_proxy.start(p)
    assert p.proc is None and not (tmp_path / bad).exists()


def test_a_proxy_that_does_not_start_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    exe = tmp_path / "nginx"
    exe.write_text("#!/bin/sh\necho 'nginx: [emerg] bind() to 127.0.0.1 failed'\nexit 1\n")
    exe.chmod(0o755)
    p = demo_proxy.plan(tmp_path / "ws", "nginx", str(exe))
    with pytest.raises(demo_proxy.ProxyStartError, match=r"\[emerg\] bind\(\)"):
        demo_proxy.start(p, timeout=5)
    assert p.proc is None  # reaped: nothing to stop
    assert (tmp_path / "ws" / "proxy" / "nginx.conf").is_file()
