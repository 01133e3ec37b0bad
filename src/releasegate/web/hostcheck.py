"""The Host header check against DNS rebinding: a page in a browser on this machine that
resolves its own name to 127.0.0.1 reaches the dashboard with `Host: evil.example:8642`;
such requests get 400 before any route, cookie or token is looked at.

Allowed: the address and port the server is bound to, `localhost:PORT` (and the other
loopback spellings when bound to loopback), and the names of `web.allowed_hosts` (a name
alone: any port, for a reverse proxy's public name; `name:port`: that port only;
`*.example.com`: its subdomains).

Not Starlette's TrustedHostMiddleware: it drops the port (so `localhost:other-port` would
pass) and splits `[::1]:8642` at its first colon."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from releasegate.web.auth import is_loopback

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def split_host(value: str) -> tuple[str, int | None] | None:
    """'Example.com:8642' -> ('example.com', 8642); '[::1]:80' -> ('[::1]', 80); a Host
    without a port -> (name, None); anything malformed -> None."""
    value = value.strip().lower()
    if not value or len(value) > 300:
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:] if rest else None
    else:
        name, sep, port_text = value.partition(":")
        port = port_text if sep else None
    if port is not None and (not port.isdigit() or len(port) > 5 or not 0 < int(port) < 65536):
        return None
    if not name or not all(c.isalnum() or c in "-.[]:_" for c in name):
        return None
    return name.rstrip("."), int(port) if port is not None else None


@dataclass(frozen=True)
class AllowedHosts:
    exact: frozenset[tuple[str, int]]  # (name, port)
    any_port: frozenset[str]  # names of web.allowed_hosts given without a port
    suffixes: tuple[tuple[str, int | None], ...]  # (".example.com", port) of *.example.com
    default_port: int  # what a Host without a port means (80 or 443)

    def allows(self, header: str | None) -> bool:
        found = split_host(header or "")
        if found is None:
            return False
        name, port = found
        if port is None:
            port = self.default_port
        if (name, port) in self.exact or name in self.any_port:
            return True
        return any(
            name.endswith(s) and len(name) > len(s) and p in (None, port) for s, p in self.suffixes
        )


def allowed_hosts(bind: tuple[str, int], configured: Iterable[str], tls: bool) -> AllowedHosts:
    """The bound address and port, its loopback spellings, and `web.allowed_hosts`."""
    host, port = bind
    bound = f"[{host}]" if ":" in host else host
    exact = {(bound.lower(), port)}
    if is_loopback(host):
        exact |= {(name, port) for name in LOOPBACK_NAMES}
    any_port: set[str] = set()
    suffixes: list[tuple[str, int | None]] = []
    for entry in configured:
        wild = entry.startswith("*.")
        found = split_host(entry[2:] if wild else entry)
        if found is None:
            continue  # the config schema refuses these; never widen on a bad entry
        name, given = found
        if wild:
            suffixes.append(("." + name, given))
        elif given is None:
            any_port.add(name)
        else:
            exact.add((name, given))
    return AllowedHosts(frozenset(exact), frozenset(any_port), tuple(suffixes), 443 if tls else 80)


class HostCheck:
    """ASGI middleware: a request whose Host is not allowed gets 400 (plain text)."""

    def __init__(self, app: ASGIApp, allowed: AllowedHosts) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":  # the dashboard has no websocket route
            hosts = [v for k, v in scope.get("headers", []) if k == b"host"]
            header = hosts[0].decode("latin-1") if len(hosts) == 1 else None
            if not self.allowed.allows(header):
                from starlette.responses import PlainTextResponse

                text = "invalid Host header: add this name to web.allowed_hosts to serve it"
                await PlainTextResponse(text, status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)
