"""One small interface over the proxies that move traffic between the two slots.

An adapter answers which slot gets the traffic now (`current`), moves it to the other one
in one atomic step (`switch`), and lets the old slot finish what it serves (`drain`). It
never raises for a proxy's refusal: the result says what happened, with its evidence, so the
workflow records it and decides."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from releasegate.proxy.config import ProxyConfig

MAX_ANSWER = 256 * 1024  # bytes read from a proxy's API or command at most


class ProxyError(Exception):
    """The proxy could not be asked (unreachable, an answer that makes no sense)."""


@dataclass
class SwitchResult:
    ok: bool
    summary: str
    slot: str  # the slot that was asked for
    evidence: dict[str, Any] = field(default_factory=dict)


class TrafficSwitch(Protocol):
    kind: str

    def current(self) -> str | None:
        """The slot ("blue"/"green") that gets the traffic now; None when the proxy routes
        to neither slot's address (first deploy, or changed by hand). Raises ProxyError
        when the proxy cannot be asked."""

    def switch(self, to: str) -> SwitchResult:
        """Send all new requests to slot `to`, in one atomic step, and verify it took."""

    def drain(self, seconds: float) -> SwitchResult:
        """Let the old slot finish its requests: at most `seconds`."""


def wait_drain(kind: str, seconds: float) -> SwitchResult:
    """The plain drain: the proxy already sends nothing new to the old slot and finishes
    in-flight requests itself (nginx's old workers, Caddy's old handlers); wait for them."""
    seconds = max(0.0, min(seconds, 3600.0))
    time.sleep(seconds)
    return SwitchResult(True, f"drained {seconds:g}s", "", {"drain_s": seconds, "proxy": kind})


def adapter_for(cfg: ProxyConfig) -> TrafficSwitch:
    """The adapter of the configured proxy kind (imported only when used)."""
    if cfg.kind == "nginx":
        from releasegate.proxy.nginx import NginxSwitch

        return NginxSwitch(cfg)
    if cfg.kind == "caddy":
        from releasegate.proxy.caddy import CaddySwitch

        return CaddySwitch(cfg)
    from releasegate.proxy.haproxy import HaproxySwitch

    return HaproxySwitch(cfg)
