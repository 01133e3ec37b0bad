"""HAProxy: its runtime API on the stats socket. The backend has one server per slot, named
after the slot; a switch makes the new slot's server `ready` and puts the old one in `maint`,
in one line, in that order (never a moment with neither). No reload: sessions in flight on
the old server finish there."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from releasegate.ops import Program, Talk, TalkReply
from releasegate.proxy.base import MAX_ANSWER, ProxyError, SwitchResult, verify_switch, wait_drain

if TYPE_CHECKING:
    from releasegate.proxy.config import ProxyConfig


def switch_command(backend: str, to: str, old: str) -> str:
    """One runtime API line; names were checked against a strict pattern (config)."""
    return f"set server {backend}/{to} state ready; set server {backend}/{old} state maint\n"


def state_command(backend: str) -> str:
    return f"show servers state {backend}\n"


def parse_servers_state(text: str) -> dict[str, dict[str, str]]:
    """`show servers state` -> {server name: its columns}; ProxyError when it is not that."""
    columns: list[str] | None = None
    servers: dict[str, dict[str, str]] = {}
    for line in text.splitlines()[:1000]:
        if line.startswith("# be_id"):
            columns = line[2:].split()
            continue
        if columns is None or not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 7:
            continue
        row = dict(zip(columns, fields, strict=False))
        servers[row.get("srv_name", "")] = row
    if columns is None or not {"srv_name", "srv_admin_state"} <= set(columns):
        raise ProxyError("HAProxy's `show servers state` answer has no header line")
    return servers


# srv_admin_state bit 0x04 (CMAINT) only remembers `disabled` in the config file: a server
# made `ready` keeps it and takes traffic. Every other bit is a maintenance or drain state.
_CONFIG_MAINT = 0x04


def live_servers(servers: dict[str, dict[str, str]]) -> list[str]:
    """Servers that take new traffic: no maintenance or drain flag."""
    live = []
    for name, row in servers.items():
        admin = row.get("srv_admin_state", "")
        if admin.isdigit() and int(admin) & ~_CONFIG_MAINT == 0:
            live.append(name)
    return live


def ask(path: str, command: str, timeout: float) -> Program[str]:
    """One runtime API command over the stats socket on the host (a Talk); the answer
    bounded in time and bytes. ProxyError when the socket cannot be asked."""
    reply: TalkReply = yield Talk(path, command.encode(), timeout, MAX_ANSWER)
    if reply.truncated:
        raise ProxyError(f"HAProxy's answer is larger than {MAX_ANSWER} bytes")
    if reply.error:
        raise ProxyError(f"HAProxy's stats socket {path}: {reply.error}")
    return reply.data.decode("utf-8", "replace")


class HaproxySwitch:
    kind = "haproxy"

    def __init__(self, cfg: ProxyConfig, host: str = "127.0.0.1") -> None:
        assert cfg.haproxy is not None  # the config requires it for kind haproxy
        self.cfg = cfg
        self.ctl = cfg.haproxy
        self.host = host

    def _state(self) -> Program[dict[str, dict[str, str]]]:
        text = yield from ask(
            str(self.ctl.socket), state_command(self.ctl.backend), self.ctl.timeout
        )
        return parse_servers_state(text)

    def current(self) -> Program[str | None]:
        live = [s for s in live_servers((yield from self._state())) if s in self.cfg.slots]
        return live[0] if len(live) == 1 else None

    def switch(self, to: str) -> Program[SwitchResult]:
        old = self.cfg.other(to)
        line = switch_command(self.ctl.backend, to, old)
        evidence: dict[str, Any] = {"socket": str(self.ctl.socket), "command": line.strip()}
        started = time.monotonic()
        want = self.cfg.address(to, self.host)
        try:
            servers = yield from self._state()
            missing = [s for s in (to, old) if s not in servers]
            if missing:
                why = f"backend {self.ctl.backend} has no server named {', '.join(missing)}"
                return SwitchResult(False, why, to, evidence)
            host, port = servers[to].get("srv_addr"), servers[to].get("srv_port")
            if port is not None and f"{host}:{port}" != want:
                why = f"server {to} is {host}:{port} in HAProxy, not {want} as configured"
                return SwitchResult(False, why, to, evidence)
            answer = (yield from ask(str(self.ctl.socket), line, self.ctl.timeout)).strip()
            evidence.update(answer=answer[:500], duration_s=round(time.monotonic() - started, 3))
            if answer:  # the runtime API answers nothing on success
                return SwitchResult(False, f"HAProxy refused: {answer[:300]}", to, evidence)
            now = yield from self.current()
        except ProxyError as exc:
            return SwitchResult(False, str(exc), to, evidence)
        summary = f"HAProxy now sends traffic to {to} ({want})"
        return verify_switch(self.kind, now, to, evidence, summary)

    def drain(self, seconds: float) -> Program[SwitchResult]:
        return wait_drain(self.kind, seconds)
