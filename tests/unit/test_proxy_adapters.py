"""The proxy adapters' pure parts as data: config validation, the nginx include file and
argv, Caddy's upstreams, HAProxy's runtime API lines and state, the access-log parser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from releasegate.proxy.accesslog import fivexx_share, log_offset, scan, status_of
from releasegate.proxy.base import ProxyError
from releasegate.proxy.caddy import parse_upstreams, upstreams_body
from releasegate.proxy.config import ProxyConfig, split_address
from releasegate.proxy.haproxy import (
    live_servers,
    parse_servers_state,
    state_command,
    switch_command,
)
from releasegate.proxy.nginx import check_argv, parse_upstream, reload_argv, upstream_text

SLOTS = {"blue": "127.0.0.1:8101", "green": "127.0.0.1:8102"}


def cfg(**over: Any) -> ProxyConfig:
    data: dict[str, Any] = {
        "kind": "nginx",
        "slots": SLOTS,
        "nginx": {"upstream_file": "/etc/nginx/up.conf", "conf": "/etc/nginx/nginx.conf"},
        **over,
    }
    return ProxyConfig.model_validate(data)


def test_a_valid_config_and_its_slots() -> None:
    c = cfg()
    assert c.address("green") == "127.0.0.1:8102"
    assert c.slot_of("127.0.0.1:8101") == "blue"
    assert c.slot_of("127.0.0.1:9999") is None
    assert c.other("blue") == "green" and c.drain_s == 2.0 and not c.keep_old


@pytest.mark.parametrize(
    ("over", "says"),
    [
        ({"slots": {"blue": "127.0.0.1:8101"}}, "name both slots"),
        ({"slots": {"blue": "127.0.0.1:8101", "green": "127.0.0.1:8101"}}, "different"),
        ({"slots": {"blue": "10.0.0.5:8101", "green": "127.0.0.1:8102"}}, "not loopback"),
        ({"slots": {"blue": "127.0.0.1:0", "green": "127.0.0.1:8102"}}, "port 1-65535"),
        ({"slots": {"blue": "127.0.0.1:99999", "green": "127.0.0.1:8102"}}, "port 1-65535"),
        ({"slots": {"blue": "a b:80", "green": "127.0.0.1:8102"}}, "HOST:PORT"),
        ({"slots": {"blue": "x;rm:80", "green": "127.0.0.1:8102"}}, "not a host name"),
        ({"slots": {"red": "127.0.0.1:1", "green": "127.0.0.1:8102"}}, "blue"),
        ({"kind": "haproxy"}, "haproxy: required"),
        ({"kind": "caddy"}, "nginx: only for kind nginx"),
        ({"drain_s": -1}, "greater than or equal"),
        ({"nginx": {"upstream_file": "u", "conf": "c", "binary": "nginx; rm"}}, "plain command"),
    ],
)
def test_bad_configs_are_refused(over: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        cfg(**over)


def test_other_hosts_only_when_allowed() -> None:
    slots = {"blue": "10.0.0.5:8101", "green": "10.0.0.6:8101"}
    c = cfg(slots=slots, allow_hosts=["10.0.0.5", "10.0.0.6"])
    assert c.address("blue") == "10.0.0.5:8101"


@pytest.mark.parametrize(
    ("admin", "ok"),
    [
        ("http://127.0.0.1:2019", True),
        ("http://localhost:2019/", True),
        ("http://192.0.2.1:2019", False),  # not loopback, not allowed
        ("https://127.0.0.1:2019", False),
        ("http://u:p@127.0.0.1:2019", False),
        ("http://127.0.0.1:2019/config", False),
    ],
)
def test_caddy_admin_is_loopback_http(admin: str, ok: bool) -> None:
    data = {"kind": "caddy", "slots": SLOTS, "caddy": {"admin": admin}}
    if ok:
        assert ProxyConfig.model_validate(data).caddy_control.admin == admin
    else:
        with pytest.raises(ValidationError):
            ProxyConfig.model_validate(data)


def test_caddy_upstreams_path_is_checked() -> None:
    bad = {"kind": "caddy", "slots": SLOTS, "caddy": {"upstreams_path": "/id/x/../y?z"}}
    with pytest.raises(ValidationError, match="upstreams_path"):
        ProxyConfig.model_validate(bad)


def test_haproxy_backend_name_is_checked() -> None:
    bad = {"kind": "haproxy", "slots": SLOTS, "haproxy": {"socket": "/s", "backend": "a b"}}
    with pytest.raises(ValidationError, match="backend name"):
        ProxyConfig.model_validate(bad)


def test_split_address() -> None:
    assert split_address("[::1]:80") == ("::1", 80)
    assert split_address("localhost:8080") == ("localhost", 8080)
    with pytest.raises(ValueError):
        split_address("[nothex]:80")


# -- nginx ------------------------------------------------------------------------------------


def test_nginx_include_file_and_argv() -> None:
    text = upstream_text("green", "127.0.0.1:8102")
    assert text.endswith("server 127.0.0.1:8102;\n")
    assert parse_upstream(text) == ["127.0.0.1:8102"]
    assert parse_upstream("server a:1;\n  server b:2 ;\n# server c:3;") == ["a:1", "b:2"]
    ctl = cfg(nginx={"upstream_file": "/x/u.conf", "conf": "/x/n.conf", "prefix": "/x"}).nginx
    assert ctl is not None
    assert check_argv(ctl) == ["nginx", "-c", "/x/n.conf", "-p", "/x", "-t", "-q"]
    assert reload_argv(ctl) == ["nginx", "-c", "/x/n.conf", "-p", "/x", "-s", "reload"]


# -- Caddy ------------------------------------------------------------------------------------


def test_caddy_upstreams() -> None:
    assert upstreams_body("127.0.0.1:8102") == [{"dial": "127.0.0.1:8102"}]
    assert parse_upstreams(b'[{"dial": "127.0.0.1:8101"}]') == ["127.0.0.1:8101"]
    for hostile in (b"nope", b'{"dial": 1}', b'[{"dial": 5}]', b"[1]", b"[" + b"{}," * 99 + b"{}]"):
        with pytest.raises(ProxyError):
            parse_upstreams(hostile)


# -- HAProxy ----------------------------------------------------------------------------------

HEADER = "# " + " ".join(
    "be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight".split()
    + "srv_iweight srv_time_since_last_change srv_check_status srv_check_result".split()
    + "srv_check_health srv_check_state srv_agent_state bk_f_forced_id".split()
    + "srv_f_forced_id srv_fqdn srv_port".split()
)
STATE = (
    "1\n"
    + HEADER
    + """
3 app 1 blue 127.0.0.1 0 1 1 1 0 1 0 0 0 0 0 0 - 8101
3 app 2 green 127.0.0.1 2 4 1 1 0 1 0 0 8 0 0 0 - 8102
"""
)


def test_haproxy_lines_and_state() -> None:
    assert switch_command("app", "green", "blue") == (
        "set server app/green state ready; set server app/blue state maint\n"
    )
    assert state_command("app") == "show servers state app\n"
    servers = parse_servers_state(STATE)
    assert servers["green"]["srv_port"] == "8102"
    # green was `disabled` in the file (0x04) and made ready: it takes traffic; blue is maint.
    assert live_servers(servers) == ["green"]
    drained = STATE.replace("2 4 1 1", "2 8 1 1")
    assert live_servers(parse_servers_state(drained)) == []
    with pytest.raises(ProxyError):
        parse_servers_state("Unknown command\n")


# -- access logs ------------------------------------------------------------------------------

NGINX = b'127.0.0.1 - - [03/Dec/2026:17:00:00 +0000] "GET / HTTP/1.1" 200 612 "-" "curl"\n'
NGINX_502 = b'127.0.0.1 - - [03/Dec/2026:17:00:01 +0000] "GET /x HTTP/1.1" 502 157 "-" "-"\n'
CADDY = b'{"level":"info","msg":"handled request","status":503,"size":0}\n'
HAPROXY = (
    b"127.0.0.1:39152 [03/Dec/2026:17:00:02.123] web app/green 0/0/0/1/1 500 123 - - ---- "
    b'1/1/0/0/0 0/0 "GET / HTTP/1.1"\n'
)


def test_status_of_each_format() -> None:
    assert status_of(NGINX.strip()) == 200
    assert status_of(NGINX_502.strip()) == 502
    assert status_of(CADDY.strip()) == 503
    assert status_of(HAPROXY.strip()) == 500
    assert status_of(b"[notice] worker started") is None
    assert status_of(b'{"status": "500"}') is None
    assert status_of(b'{"status": 999}') is None


def test_fivexx_share_since_an_offset(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(NGINX * 3 + NGINX_502)
    assert fivexx_share(log, 0) == (4, 1)
    start = log_offset(log)
    with log.open("ab") as fh:
        fh.write(CADDY + HAPROXY + NGINX + b"junk line\n" + b'"GET / HTTP/1.1" 50')  # half a line
    assert fivexx_share(log, start) == (3, 2)
    assert scan(log, start)[:2] == (3, 2)
    end = scan(log, start)[2]
    assert end == log.stat().st_size - len(b'"GET / HTTP/1.1" 50')
    assert fivexx_share(tmp_path / "missing.log", 0) == (0, 0)
    assert log_offset(tmp_path / "missing.log") == 0


def test_fivexx_share_is_bounded_and_survives_rotation(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(NGINX_502 * 1000)
    assert fivexx_share(log, 0, max_bytes=len(NGINX_502) * 10 + 5) == (10, 10)
    # A log that shrank below the offset was rotated: read from its start.
    assert fivexx_share(log, 10**9) == (1000, 1000)
    log.write_bytes(b"x" * 70_000 + b"\n" + NGINX)  # an overlong line is skipped
    assert fivexx_share(log, 0) == (1, 0)
