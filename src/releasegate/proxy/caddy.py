"""Caddy: the reverse proxy's upstreams replaced through the admin API on the host's loopback,
with no reload (Caddy swaps the handler; requests in flight finish on the old one). The API
is reached with a Talk (a socket as the host sees it), the HTTP written and read by h11."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from releasegate.ops import Program, Talk, TalkReply
from releasegate.proxy.base import MAX_ANSWER, ProxyError, SwitchResult, verify_switch, wait_drain
from releasegate.proxy.config import with_host
from releasegate.proxy.http1 import parse_answer, request_bytes

if TYPE_CHECKING:
    from releasegate.proxy.config import ProxyConfig


def upstreams_body(address: str) -> list[dict[str, str]]:
    return [{"dial": address}]


def parse_upstreams(body: bytes) -> list[str]:
    """The `dial` addresses of an upstreams answer; ProxyError for anything else."""
    try:
        data = json.loads(body)
    except ValueError:
        raise ProxyError("Caddy's answer is not JSON") from None
    if not isinstance(data, list) or len(data) > 64:
        raise ProxyError("Caddy's upstreams are not a list")
    dials = [u.get("dial") for u in data if isinstance(u, dict)]
    if len(dials) != len(data) or not all(isinstance(d, str) and len(d) < 300 for d in dials):
        raise ProxyError("Caddy's upstreams have an entry without a dial address")
    return [str(d) for d in dials]


class CaddySwitch:
    kind = "caddy"

    def __init__(self, cfg: ProxyConfig, host: str = "127.0.0.1") -> None:
        self.cfg = cfg
        self.ctl = cfg.caddy_control
        self.host = host
        self.target = self.ctl.target(host)  # the admin endpoint as the host sees it
        self.admin = with_host(self.ctl.admin, host).rstrip("/")
        self.url = self.admin + self.ctl.upstreams_path

    def _call(self, method: str, body: Any = None) -> Program[tuple[int, bytes]]:
        """One admin API call: a raw HTTP/1.1 request over a Talk, parsed with h11."""
        # Caddy checks Origin on its admin API: the admin's own address is accepted.
        headers = [("Origin", self.admin)]
        content = None
        if body is not None:
            headers.append(("Content-Type", "application/json"))
            content = json.dumps(body).encode()
        request = request_bytes(
            method, self.target, self.ctl.upstreams_path, headers=headers, body=content
        )
        # Headers and framing on top of the body's cap.
        reply: TalkReply = yield Talk(self.target, request, self.ctl.timeout, MAX_ANSWER + 16384)
        if reply.truncated:
            raise ProxyError(f"Caddy's answer is larger than {MAX_ANSWER} bytes")
        if reply.error:
            raise ProxyError(f"Caddy's admin API at {self.admin}: {reply.error}")
        try:
            answer = parse_answer(method, reply.data, max_body=MAX_ANSWER)
        except ProxyError as exc:
            raise ProxyError(f"Caddy's admin API at {self.admin}: {exc}") from None
        return answer.status, answer.body

    def current(self) -> Program[str | None]:
        status, body = yield from self._call("GET")
        if status != 200:
            raise ProxyError(f"GET {self.ctl.upstreams_path}: HTTP {status}")
        dials = parse_upstreams(body)
        return self.cfg.slot_of(dials[0], self.host) if len(dials) == 1 else None

    def switch(self, to: str) -> Program[SwitchResult]:
        address = self.cfg.address(to, self.host)
        evidence: dict[str, Any] = {"url": self.url, "address": address}
        started = time.monotonic()
        try:
            status, body = yield from self._call("PATCH", upstreams_body(address))
            evidence.update(status=status, duration_s=round(time.monotonic() - started, 3))
            if status != 200:
                why = body[:300].decode("utf-8", "replace")
                return SwitchResult(False, f"Caddy refused: HTTP {status} {why}", to, evidence)
            now = yield from self.current()
        except ProxyError as exc:
            return SwitchResult(False, str(exc), to, evidence)
        summary = f"Caddy now sends traffic to {to} ({address})"
        return verify_switch(self.kind, now, to, evidence, summary)

    def drain(self, seconds: float) -> Program[SwitchResult]:
        return wait_drain(self.kind, seconds)
