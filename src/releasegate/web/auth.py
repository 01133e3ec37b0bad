"""CSRF tokens, login throttling and the trusted-header (SSO) rule: the parts of the
dashboard's authentication that hold no I/O, so they are tested as data. Sessions live in
the state database: web/sessions.py."""

from __future__ import annotations

import hmac
import ipaddress
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from releasegate.errors import BadInput

MAX_THROTTLE_KEYS = 10_000
FAILURES_ALLOWED = 5  # failed sign-ins per (user, peer) within the window
THROTTLE_WINDOW_S = 300.0


def new_secret() -> str:
    return os.urandom(32).hex()


def csrf_ok(expected: str, given: str | None) -> bool:
    """The POST carries its session's CSRF token (compared in constant time)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


@dataclass
class Throttle:
    """Failed sign-ins per (user, peer): past FAILURES_ALLOWED in the window, refused
    without checking the password. Bounded: the least recently failed keys are dropped."""

    allowed: int = FAILURES_ALLOWED
    window_s: float = THROTTLE_WINDOW_S
    limit: int = MAX_THROTTLE_KEYS
    clock: Callable[[], float] = time.monotonic
    _fails: OrderedDict[tuple[str, str], deque[float]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float] | None:
        times = self._fails.get(key)
        if times is None:
            return None
        while times and now - times[0] > self.window_s:
            times.popleft()
        if not times:
            del self._fails[key]
            return None
        return times

    def blocked(self, user: str, peer: str) -> float:
        """Seconds until (user, peer) may try again; 0 when it may now."""
        now = self.clock()
        with self._lock:
            times = self._recent((user[:64], peer), now)
            if times is None or len(times) < self.allowed:
                return 0.0
            return max(0.0, self.window_s - (now - times[0]))

    def failed(self, user: str, peer: str) -> None:
        key = (user[:64], peer)
        now = self.clock()
        with self._lock:
            times = self._recent(key, now) or deque(maxlen=self.allowed)
            times.append(now)
            self._fails[key] = times
            self._fails.move_to_end(key)
            while len(self._fails) > self.limit:
                self._fails.popitem(last=False)

    def succeeded(self, user: str, peer: str) -> None:
        with self._lock:
            self._fails.pop((user[:64], peer), None)

    def __len__(self) -> int:
        return len(self._fails)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(values: Iterable[str]) -> tuple[Network, ...]:
    """`web.trusted_proxies`: addresses or networks (127.0.0.1, 10.0.0.0/8)."""
    nets: list[Network] = []
    for value in values:
        try:
            nets.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise BadInput(
                f"web.trusted_proxies: {value!r} is not an IP address or network"
            ) from None
    return tuple(nets)


def peer_trusted(peer: str | None, proxies: tuple[Network, ...]) -> bool:
    if not peer or not proxies:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in net for net in proxies)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_bind(bind: str) -> tuple[str, int]:
    """'127.0.0.1:8642', '[::1]:8642' -> (host, port)."""
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise BadInput(f"--bind {bind!r}: expected HOST:PORT, e.g. 127.0.0.1:8642")
    number = int(port)
    if not 0 < number < 65536:
        raise BadInput(f"--bind {bind!r}: the port must be 1-65535")
    return host.strip("[]"), number
