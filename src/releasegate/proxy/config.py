"""The `proxy:` section of a stack: which proxy moves the traffic, how it is reached, and
the two slots (blue/green) the releases run in.

Every address here ends up in a proxy's config or in an API call: hosts are loopback
unless named in `allow_hosts`, ports are checked, paths are absolute once loaded.

On a fleet each host runs its own proxy in front of its own two slots: the paths are paths on
each host, and a slot's host may be `{host}`, replaced by each host's own address (from its
ssh:// URL; 127.0.0.1 for the local host): a host the stack itself names.
"""

# No `from __future__ import annotations`: pydantic evaluates these annotations.
import ipaddress
import re
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from releasegate.config.values import ResolvedPath, StrictModel, _command_name, fail

SLOT_NAMES = ("blue", "green")
HOST = "{host}"  # in a slot's address: each host's own address
LOCAL_HOST = "127.0.0.1"  # what `{host}` is on the local host
_HOSTNAME = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
# HAProxy backend names: what `set server BACKEND/SERVER` accepts without quoting.
_HAPROXY_NAME = r"[A-Za-z0-9_.:-]{1,64}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_address(value: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:PORT`) -> (host, port); ValueError with a sentence."""
    if not isinstance(value, str) or any(c.isspace() for c in value) or len(value) > 300:
        raise ValueError(f"'{value}' is not HOST:PORT")
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"'{value}': '{host}' is not an IPv6 address") from None
    else:
        host, sep, port = value.rpartition(":")
        if not re.fullmatch(_HOSTNAME, host or "-"):
            raise ValueError(f"'{value}': '{host}' is not a host name or IPv4 address")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"'{value}' needs a port 1-65535 (HOST:PORT)")
    return host, int(port)


def _address(value: str) -> str:
    try:
        split_address(value.replace(HOST, LOCAL_HOST))
    except ValueError as exc:
        fail(str(exc))
    if HOST in value and not value.startswith(HOST + ":"):
        fail(f"'{value}': {HOST} stands for the whole host part ({HOST}:PORT)")
    return value


def with_host(value: str, host: str) -> str:
    """`value` with `{host}` replaced by `host` (an IPv6 address in brackets)."""
    if HOST not in value:
        return value
    return value.replace(HOST, f"[{host}]" if ":" in host else host)


Address = Annotated[str, AfterValidator(_address)]


def _haproxy_name(value: str) -> str:
    if not re.fullmatch(_HAPROXY_NAME, value):
        fail(f"'{value}' is not a HAProxy backend name (letters, digits, '_', '.', ':', '-')")
    return value


def _binary(value: str) -> str:
    if value.startswith("/"):
        if any(c.isspace() or c == "\0" for c in value) or ".." in value.split("/"):
            fail(f"'{value}' is not a clean absolute path")
        return value
    return _command_name(value)


class NginxControl(StrictModel):
    """nginx: releasegate writes `upstream_file` (an `include` inside the team's `upstream`
    block), checks the whole config with `nginx -t`, then reloads gracefully."""

    upstream_file: ResolvedPath
    conf: ResolvedPath  # nginx -c
    prefix: ResolvedPath | None = None  # nginx -p (pid file and logs relative to it)
    binary: Annotated[str, AfterValidator(_binary)] = "nginx"  # a name on PATH, or a path
    timeout: Annotated[float, Field(gt=0, le=120)] = 15.0  # seconds per nginx command


class CaddyControl(StrictModel):
    """Caddy: its admin API on loopback moves the upstreams with no reload."""

    admin: str = "http://127.0.0.1:2019"
    # Where the reverse_proxy's upstreams are in Caddy's config: by `@id` or full path.
    upstreams_path: str = "/id/releasegate/upstreams"
    timeout: Annotated[float, Field(gt=0, le=60)] = 5.0  # seconds per admin call

    @model_validator(mode="after")
    def _check(self) -> Self:
        if HOST in self.admin and not self.admin.startswith(f"http://{HOST}:"):
            fail(f"admin: {HOST} stands for the whole host part (http://{HOST}:PORT)")
        parts = urlsplit(self.admin.replace(HOST, LOCAL_HOST))
        if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
            fail(f"admin: '{self.admin}' must be http://HOST:PORT (Caddy's admin endpoint)")
        if parts.username or parts.password or parts.query or parts.fragment:
            fail("admin: no user, password, query or fragment")
        try:
            parts.port  # noqa: B018 - evaluated for the ValueError on a bad port
        except ValueError:
            fail(f"admin: '{self.admin}' has an invalid port")
        if not re.fullmatch(r"(/[A-Za-z0-9_.@-]+)+", self.upstreams_path):
            fail(
                f"upstreams_path: '{self.upstreams_path}' is not a config path "
                "like /id/NAME/upstreams"
            )
        return self

    def target(self, host: str = LOCAL_HOST) -> str:
        """The admin endpoint as a socket target, HOST:PORT, as `host` sees it."""
        parts = urlsplit(with_host(self.admin, host))
        name, port = parts.hostname or LOCAL_HOST, parts.port or 80
        return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"


class HaproxyControl(StrictModel):
    """HAProxy: the runtime API on its stats socket enables one slot's server and puts the
    other in maintenance (servers named after the slots, in `backend`)."""

    socket: ResolvedPath  # `stats socket PATH level admin`
    backend: Annotated[str, AfterValidator(_haproxy_name)] = "app"
    timeout: Annotated[float, Field(gt=0, le=60)] = 5.0


class ProxyConfig(StrictModel):
    kind: Literal["nginx", "caddy", "haproxy"]
    slots: dict[Literal["blue", "green"], Address]
    drain_s: Annotated[float, Field(ge=0, le=3600)] = 2.0  # old slot's grace after the switch
    keep_old: bool = False  # leave the old slot running after the drain (a watch stops it)
    access_log: ResolvedPath | None = None  # the proxy's access log (5xx share)
    # Hosts besides loopback that slots and the admin API may name.
    allow_hosts: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list
    )
    nginx: NginxControl | None = None
    caddy: CaddyControl | None = None
    haproxy: HaproxyControl | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if set(self.slots) != set(SLOT_NAMES):
            fail("slots: name both slots, blue and green (HOST:PORT each)")
        if self.slots["blue"] == self.slots["green"]:
            fail("slots: blue and green must have different addresses")
        for name, addr in self.slots.items():
            if addr.startswith(HOST + ":"):  # each host's own address: named by the stack
                continue
            host, _port = split_address(addr)
            if not is_loopback(host) and host not in self.allow_hosts:
                fail(f"slots.{name}: host '{host}' is not loopback; list it in allow_hosts")
        control = {"nginx": self.nginx, "caddy": self.caddy, "haproxy": self.haproxy}
        if control[self.kind] is None and self.kind != "caddy":
            fail(f"{self.kind}: required for kind {self.kind} (how releasegate reaches it)")
        for other, value in control.items():
            if other != self.kind and value is not None:
                fail(f"{other}: only for kind {other} (this proxy is {self.kind})")
        if self.kind == "caddy":
            admin = self.caddy_control.admin
            host = urlsplit(admin).hostname or ""
            if HOST not in admin and not is_loopback(host) and host not in self.allow_hosts:
                fail(f"caddy.admin: host '{host}' is not loopback; list it in allow_hosts")
        return self

    @property
    def caddy_control(self) -> CaddyControl:
        return self.caddy if self.caddy is not None else CaddyControl()

    @property
    def per_host(self) -> bool:
        """A slot address names `{host}`: each host's slots listen on its own address."""
        return any(HOST in a for a in self.slots.values())

    def address(self, slot: str, host: str = LOCAL_HOST) -> str:
        """The slot's HOST:PORT on `host` (KeyError for a name that is not a slot)."""
        return with_host({str(k): v for k, v in self.slots.items()}[slot], host)

    def shown(self, slot: str) -> str:
        """The slot's address as configured (`{host}:PORT` on a fleet), for titles."""
        return {str(k): v for k, v in self.slots.items()}[slot]

    def slot_of(self, address: str, host: str = LOCAL_HOST) -> str | None:
        """The slot whose address this is on `host` (None: neither)."""
        return next((n for n in self.slots if self.address(n, host) == address), None)

    @staticmethod
    def other(slot: str) -> str:
        return "green" if slot == "blue" else "blue"
