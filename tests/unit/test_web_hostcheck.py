"""The dashboard's Host header rule (releasegate.web.hostcheck) as data."""

from __future__ import annotations

import pytest

from releasegate.config.schema import WebConfig
from releasegate.web.hostcheck import allowed_hosts, split_host


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("127.0.0.1:8642", ("127.0.0.1", 8642)),
        ("LocalHost:8642", ("localhost", 8642)),
        ("[::1]:8642", ("[::1]", 8642)),
        ("[::1]", ("[::1]", None)),
        ("dash.example.com.", ("dash.example.com", None)),
        ("", None),
        ("a:b", None),
        ("a:0", None),
        ("a:70000", None),
        ("[::1]x", None),
        ("[::1", None),
        ("evil.com/x:80", None),
        ("a b:80", None),
        ("x" * 400, None),
    ],
)
def test_split_host(header: str, expected: tuple[str, int | None] | None) -> None:
    assert split_host(header) == expected


def test_loopback_bind_allows_its_port_only() -> None:
    allowed = allowed_hosts(("127.0.0.1", 8642), [], tls=False)
    for ok in ("127.0.0.1:8642", "localhost:8642", "[::1]:8642"):
        assert allowed.allows(ok), ok
    for bad in ("localhost:8643", "localhost", "127.0.0.1", "evil.example:8642", None, ""):
        assert not allowed.allows(bad), bad


def test_default_ports_and_configured_names() -> None:
    allowed = allowed_hosts(
        ("0.0.0.0", 443), ["dash.example.com", "ops.example.com:8443", "*.corp.example"], tls=True
    )
    assert allowed.allows("0.0.0.0")  # no port: 443 under TLS
    assert not allowed.allows("localhost:443")  # not bound to loopback
    assert allowed.allows("dash.example.com") and allowed.allows("dash.example.com:9")
    assert allowed.allows("ops.example.com:8443") and not allowed.allows("ops.example.com")
    assert allowed.allows("a.corp.example:1") and allowed.allows("a.b.corp.example")
    assert not allowed.allows("corp.example") and not allowed.allows("evilcorp.example")
    assert not allowed.allows("dash.example.com.evil")


def test_the_config_refuses_malformed_names() -> None:
    WebConfig(allowed_hosts=["dash.example.com", "*.corp.example", "h:8443", "[::1]:9"])
    for bad in ("http://x", "a/b", "*", "*.", "a b", "x:port", ""):
        with pytest.raises(ValueError):
            WebConfig(allowed_hosts=[bad])
