"""One small interface over the proxies that move traffic between the two slots.

An adapter answers which slot gets the traffic now (`current`), moves it to the other one
in one atomic step (`switch`), and lets the old slot finish what it serves (`drain`). Each is
a program of operations (releasegate.ops) for one host, so the same adapter runs here and on
every SSH host of a fleet (each host has its own proxy): files through hosttext, commands as
Cmd, a proxy's socket or admin API as Talk. It never raises for a proxy's refusal: the result
says what happened, with its evidence, so the workflow records it and decides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from releasegate.ops import Program, Sleep

if TYPE_CHECKING:
    from releasegate.proxy.config import ProxyConfig

T = TypeVar("T")

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
    host: str  # the host's own address (what `{host}` in a slot address stands for)

    def current(self) -> Program[str | None]:
        """The slot ("blue"/"green") that gets the traffic now; None when the proxy routes
        to neither slot's address (first deploy, or changed by hand). Raises ProxyError
        when the proxy cannot be asked."""

    def switch(self, to: str) -> Program[SwitchResult]:
        """Send all new requests to slot `to`, in one atomic step, and verify it took."""

    def drain(self, seconds: float) -> Program[SwitchResult]:
        """Let the old slot finish its requests: at most `seconds`."""


def wait_drain(kind: str, seconds: float) -> Program[SwitchResult]:
    """The plain drain: the proxy already sends nothing new to the old slot and finishes
    in-flight requests itself (nginx's old workers, Caddy's old handlers); wait for them."""
    seconds = max(0.0, min(seconds, 3600.0))
    yield Sleep(seconds)
    return SwitchResult(True, f"drained {seconds:g}s", "", {"drain_s": seconds, "proxy": kind})


NAMES = {"nginx": "nginx", "caddy": "Caddy", "haproxy": "HAProxy"}


def verify_switch(
    kind: str, now: str | None, to: str, evidence: dict[str, Any], summary: str
) -> SwitchResult:
    """A switch's last word: the proxy, asked again, routes to `to` (`now`), or it failed."""
    name = NAMES.get(kind, kind)
    if now != to:
        why = f"{name} routes to {now or 'neither slot'} after the switch to {to}"
        return SwitchResult(False, why, to, evidence)
    return SwitchResult(True, summary, to, evidence)


def adapter_for(cfg: ProxyConfig, host: str | None = None) -> TrafficSwitch:
    """The adapter of the configured proxy kind for one host (imported only when used);
    `host`: its address, for `{host}` in the slots (the local host's when None)."""
    from releasegate.proxy.config import LOCAL_HOST

    where = host or LOCAL_HOST
    if cfg.kind == "nginx":
        from releasegate.proxy.nginx import NginxSwitch

        return NginxSwitch(cfg, where)
    if cfg.kind == "caddy":
        from releasegate.proxy.caddy import CaddySwitch

        return CaddySwitch(cfg, where)
    from releasegate.proxy.haproxy import HaproxySwitch

    return HaproxySwitch(cfg, where)


def run_here(program: Program[T]) -> T:
    """Carry out an adapter's program on this machine (the benchmarks, the tests, the demo)."""
    from releasegate.ops import run_sync
    from releasegate.transport.local import LocalTransport

    return run_sync(program, LocalTransport())
