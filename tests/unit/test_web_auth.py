"""The dashboard's authentication parts as data: CSRF, throttling, trusted proxies, bind
addresses, and the roles' permissions (sessions: test_web_sessions.py)."""

from __future__ import annotations

import pytest

from releasegate.errors import BadInput
from releasegate.users import PERMISSIONS, ROLES, User, check_password, check_role
from releasegate.web.auth import (
    Throttle,
    csrf_ok,
    is_loopback,
    parse_bind,
    parse_proxies,
    peer_trusted,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_csrf_token_comparison() -> None:
    assert csrf_ok("abc123", "abc123")
    assert not csrf_ok("abc123", "abc124")
    assert not csrf_ok("abc123", None)
    assert not csrf_ok("abc123", "")
    assert not csrf_ok("", "")


def test_throttle_per_user_and_peer_with_a_window() -> None:
    clock = Clock()
    throttle = Throttle(allowed=3, window_s=100, clock=clock)
    for _ in range(3):
        assert throttle.blocked("amy", "127.0.0.1") == 0
        throttle.failed("amy", "127.0.0.1")
    assert throttle.blocked("amy", "127.0.0.1") == pytest.approx(100)
    assert throttle.blocked("amy", "127.0.0.2") == 0  # another peer
    assert throttle.blocked("bob", "127.0.0.1") == 0  # another user
    clock.now += 101
    assert throttle.blocked("amy", "127.0.0.1") == 0  # the window passed
    throttle.failed("amy", "127.0.0.1")
    throttle.succeeded("amy", "127.0.0.1")
    assert len(throttle) == 0


def test_throttle_memory_is_bounded() -> None:
    throttle = Throttle(limit=100)
    for i in range(1000):
        throttle.failed(f"user{i}", "10.0.0.1")
    assert len(throttle) == 100


def test_trusted_proxies() -> None:
    proxies = parse_proxies(["127.0.0.1", "10.0.0.0/8", "::1"])
    assert peer_trusted("127.0.0.1", proxies)
    assert peer_trusted("10.2.3.4", proxies)
    assert peer_trusted("::1", proxies)
    assert not peer_trusted("127.0.0.2", proxies)
    assert not peer_trusted("testclient", proxies)
    assert not peer_trusted(None, proxies)
    assert not peer_trusted("127.0.0.1", ())
    with pytest.raises(BadInput):
        parse_proxies(["proxy.example.org"])


@pytest.mark.parametrize(
    ("bind", "expected", "loopback"),
    [
        ("127.0.0.1:8642", ("127.0.0.1", 8642), True),
        ("[::1]:80", ("::1", 80), True),
        ("localhost:1", ("localhost", 1), True),
        ("0.0.0.0:8642", ("0.0.0.0", 8642), False),
        ("192.168.1.5:443", ("192.168.1.5", 443), False),
    ],
)
def test_bind(bind: str, expected: tuple[str, int], loopback: bool) -> None:
    assert parse_bind(bind) == expected
    assert is_loopback(expected[0]) is loopback


@pytest.mark.parametrize("bind", ["8642", "127.0.0.1:", "127.0.0.1:0", ":80", "h:99999"])
def test_bad_bind(bind: str) -> None:
    with pytest.raises(BadInput):
        parse_bind(bind)


def test_roles() -> None:
    def user(role: str) -> User:
        return User("x", role, "", 1)

    assert not user("viewer").may("operate") and not user("viewer").may("approve")
    assert user("operator").may("operate") and not user("operator").may("approve")
    assert user("approver").may("approve") and not user("approver").may("operate")
    assert user("admin").may("operate") and user("admin").may("approve")
    assert not user("root").may("operate")  # an unknown role may nothing
    assert set(PERMISSIONS) == set(ROLES)
    with pytest.raises(BadInput):
        check_role("root")


def test_password_length() -> None:
    with pytest.raises(BadInput):
        check_password("short")
    with pytest.raises(BadInput):
        check_password("x" * 2000)
    assert check_password("long enough!") == "long enough!"


def test_serve_without_the_web_extra_names_it(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import importlib.util

    from releasegate.cli.main import run

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a)
    )
    assert run(["serve"]) == 2
    err = capsys.readouterr().err
    assert "uvicorn" in err and "releasegate[web]" in err
