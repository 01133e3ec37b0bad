"""Caddy: the reverse proxy's upstreams replaced through the admin API on loopback, with no
reload (Caddy swaps the handler; requests in flight finish on the old one)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from releasegate.proxy.base import MAX_ANSWER, ProxyError, SwitchResult, wait_drain

if TYPE_CHECKING:
    import httpx

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

    def __init__(self, cfg: ProxyConfig) -> None:
        self.cfg = cfg
        self.ctl = cfg.caddy_control
        self.url = self.ctl.admin.rstrip("/") + self.ctl.upstreams_path

    def _client(self) -> httpx.Client:
        from releasegate.imports import load_httpx

        load_httpx()
        import httpx

        # Loopback admin API: no proxy from the environment, no redirects.
        return httpx.Client(trust_env=False, follow_redirects=False, timeout=self.ctl.timeout)

    def _call(self, method: str, body: Any = None) -> tuple[int, bytes]:
        import httpx

        # Caddy checks Origin on its admin API: the admin's own address is accepted.
        headers = {"Origin": self.ctl.admin.rstrip("/")}
        if body is not None:
            headers["Content-Type"] = "application/json"
        content = json.dumps(body).encode() if body is not None else None
        try:
            with (
                self._client() as client,
                client.stream(method, self.url, content=content, headers=headers) as answer,
            ):
                data = b""
                for chunk in answer.iter_bytes():
                    data += chunk
                    if len(data) > MAX_ANSWER:
                        raise ProxyError(f"Caddy's answer is larger than {MAX_ANSWER} bytes")
                return answer.status_code, data
        except httpx.HTTPError as exc:
            raise ProxyError(f"Caddy's admin API at {self.ctl.admin}: {exc}") from None

    def current(self) -> str | None:
        status, body = self._call("GET")
        if status != 200:
            raise ProxyError(f"GET {self.ctl.upstreams_path}: HTTP {status}")
        dials = parse_upstreams(body)
        return self.cfg.slot_of(dials[0]) if len(dials) == 1 else None

    def switch(self, to: str) -> SwitchResult:
        address = self.cfg.address(to)
        evidence: dict[str, Any] = {"url": self.url, "address": address}
        started = time.monotonic()
        try:
            status, body = self._call("PATCH", upstreams_body(address))
            evidence.update(status=status, duration_s=round(time.monotonic() - started, 3))
            if status != 200:
                why = body[:300].decode("utf-8", "replace")
                return SwitchResult(False, f"Caddy refused: HTTP {status} {why}", to, evidence)
            now = self.current()
        except ProxyError as exc:
            return SwitchResult(False, str(exc), to, evidence)
        if now != to:
            return SwitchResult(
                False, f"Caddy routes to {now or 'neither slot'} after the PATCH", to, evidence
            )
        return SwitchResult(True, f"Caddy now sends traffic to {to} ({address})", to, evidence)

    def drain(self, seconds: float) -> SwitchResult:
        return wait_drain(self.kind, seconds)
