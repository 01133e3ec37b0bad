"""The demo's own reverse proxy: nginx, HAProxy or Caddy if one is on PATH, started in the
workspace (its config, pid and logs under WORKSPACE/proxy/) on free loopback ports, in front
of the two slots of the demo's blue/green stack; stopped by the pid it started.

Nothing here prints: the CLI tells the story."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from releasegate.demo.workspace import free_port

KINDS = ("nginx", "haproxy", "caddy")  # the order the demo prefers (nginx: no admin port)
NAMES = {"nginx": "nginx", "haproxy": "HAProxy", "caddy": "Caddy"}
INSTALL_HINT = "apt-get install nginx-light"  # or haproxy, or caddy
STACK = "web-blue-green"


class ProxyStartError(Exception):
    """The proxy is installed but did not start (its own words in the message)."""


def find(path: str | None = None) -> tuple[str, str] | None:
    """(kind, binary) of the first supported proxy on PATH, or None."""
    for kind in KINDS:
        found = shutil.which(kind, path=path)
        if found:
            return kind, found
    return None


@dataclass
class DemoProxy:
    kind: str
    binary: str
    dir: Path  # WORKSPACE/proxy: config, pid, logs
    port: int  # where clients reach it
    slots: dict[str, str]  # slot -> 127.0.0.1:PORT
    admin_port: int = 0  # Caddy's admin API
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return NAMES[self.kind]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        # HAProxy logs its requests to stdout (`log stdout`), kept in a file here.
        return self.dir / ("proxy.out" if self.kind == "haproxy" else "access.log")

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def control(self) -> dict[str, str]:
        """The adapter's section of `proxy:` (how releasegate reaches this proxy)."""
        if self.kind == "nginx":
            return {
                "upstream_file": str(self.dir / "upstream.conf"),
                "conf": str(self.dir / "nginx.conf"),
                "prefix": str(self.dir),
                "binary": self.binary,
            }
        if self.kind == "haproxy":
            return {"socket": str(self.dir / "admin.sock"), "backend": "app"}
        return {"admin": f"http://127.0.0.1:{self.admin_port}"}

    def section(self) -> dict[str, object]:
        """The stack's `proxy:` section."""
        return {
            "kind": self.kind,
            "slots": dict(self.slots),
            "drain_s": 0.2,  # the demo's requests are short; a real app wants more
            "access_log": str(self.access_log),
            self.kind: self.control(),
        }


def plan(root: Path, kind: str, binary: str) -> DemoProxy:
    """Ports and paths for a proxy in ROOT/proxy (nothing written or started yet)."""
    slots = {"blue": f"127.0.0.1:{free_port()}", "green": f"127.0.0.1:{free_port()}"}
    return DemoProxy(
        kind, binary, root / "proxy", free_port(), slots,
        admin_port=free_port() if kind == "caddy" else 0,
    )  # fmt: skip


# What a path may hold to be written, double-quoted, into nginx's or HAProxy's config.
_SAFE_PATH = re.compile(r"[\w./ +,:@=-]+")


def _q(path: Path) -> str:
    return f'"{path}"'


def _nginx_conf(p: DemoProxy) -> str:
    d = p.dir
    return f"""\
# The demo's nginx: releasegate owns only upstream.conf (the live slot).
daemon off;
pid {_q(d / "nginx.pid")};
error_log {_q(d / "error.log")} warn;
worker_processes 1;
events {{ worker_connections 256; }}
http {{
  access_log {_q(p.access_log)};
  client_body_temp_path {_q(d / "body")};
  proxy_temp_path {_q(d / "proxy")};
  fastcgi_temp_path {_q(d / "fastcgi")};
  uwsgi_temp_path {_q(d / "uwsgi")};
  scgi_temp_path {_q(d / "scgi")};
  upstream app {{ include {_q(d / "upstream.conf")}; }}
  server {{
    listen 127.0.0.1:{p.port};
    location / {{ proxy_pass http://app; }}
  }}
}}
"""


def _haproxy_conf(p: DemoProxy) -> str:
    return "\n".join(
        [
            "global",
            f"  stats socket {_q(p.dir / 'admin.sock')} mode 600 level admin",
            "  log stdout format raw local0",
            "defaults",
            "  mode http",
            "  log global",
            "  option httplog",
            "  timeout connect 2s",
            "  timeout client 30s",
            "  timeout server 30s",
            "frontend web",
            f"  bind 127.0.0.1:{p.port}",
            "  default_backend app",
            "backend app",
            # No slot runs yet: both in maintenance, the first deploy enables one.
            f"  server blue {p.slots['blue']} disabled",
            f"  server green {p.slots['green']} disabled",
            "",
        ]
    )


def _caddy_conf(p: DemoProxy) -> str:
    # No Caddy setting stops a reload from now and then resetting a new connection queued on
    # the old listener (grace_period, shutdown_delay, load_balancing retries, /load: measured
    # by benchmarks/caddy_resets.py); the host's net.ipv4.tcp_migrate_req=1 does (docs/proxy.md).
    server = {
        "listen": [f"127.0.0.1:{p.port}"],
        "logs": {"default_logger_name": "access"},
        "automatic_https": {"disable": True},
        # No slot runs yet: an address that is neither slot's (the first deploy sets one).
        "routes": [
            {"handle": [{"@id": "releasegate", "handler": "reverse_proxy",
                         "upstreams": [{"dial": f"127.0.0.1:{free_port()}"}]}]}
        ],
    }  # fmt: skip
    config = {
        "admin": {"listen": f"127.0.0.1:{p.admin_port}"},
        "logging": {
            "logs": {
                "access": {
                    "writer": {"output": "file", "filename": str(p.access_log)},
                    "encoder": {"format": "json"},
                    "include": ["http.log.access.access"],
                }
            }
        },
        "apps": {"http": {"servers": {"demo": server}}},
    }
    return json.dumps(config, indent=2)


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _tail(path: Path, limit: int = 600) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - limit))
            return fh.read(limit).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def start(p: DemoProxy, timeout: float = 10.0) -> None:
    """Write the proxy's config and start it in the foreground as our child (its own
    session: a Ctrl-C in the terminal reaches only the demo, which then stops it)."""
    if not _SAFE_PATH.fullmatch(str(p.dir)):
        raise ProxyStartError(f"{p.dir}: a path with characters a proxy config cannot hold")
    p.dir.mkdir(parents=True, exist_ok=True)
    out = p.dir / "proxy.out"
    env = dict(os.environ)
    if p.kind == "nginx":
        # A `down` server that is neither slot: nginx starts, answers 502, and the first
        # deploy finds no live slot (it starts in blue).
        (p.dir / "upstream.conf").write_text(f"server 127.0.0.1:{free_port()} down;\n")
        (p.dir / "nginx.conf").write_text(_nginx_conf(p))
        argv = [p.binary, "-c", str(p.dir / "nginx.conf"), "-p", str(p.dir)]
    elif p.kind == "haproxy":
        (p.dir / "haproxy.cfg").write_text(_haproxy_conf(p))
        argv = [p.binary, "-f", str(p.dir / "haproxy.cfg"), "-db"]
    else:
        (p.dir / "caddy.json").write_text(_caddy_conf(p))
        argv = [p.binary, "run", "--config", str(p.dir / "caddy.json")]
        # Caddy keeps state under HOME/XDG folders: the workspace's, not the user's.
        env.update(HOME=str(p.dir), XDG_DATA_HOME=str(p.dir / "data"),
                   XDG_CONFIG_HOME=str(p.dir / "config"))  # fmt: skip
    with open(out, "ab") as log:
        try:
            p.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise ProxyStartError(f"cannot run {p.binary}: {exc.strerror}") from None
    ports = [p.port] + ([p.admin_port] if p.admin_port else [])
    if not all(_wait_port(port, p.proc, timeout) for port in ports):
        code = p.proc.poll()
        stop(p)
        why = (
            f"{p.name} exited with {code}"
            if code is not None
            else f"{p.name} did not answer on 127.0.0.1:{p.port} within {timeout:g}s"
        )
        raise ProxyStartError(f"{why}: {_tail(out) or _tail(p.dir / 'error.log') or 'no output'}")
    if p.kind == "haproxy":
        _wait_socket(p.dir / "admin.sock", timeout)


def _wait_socket(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not path.exists():
        time.sleep(0.05)


def stop(p: DemoProxy, timeout: float = 10.0) -> None:
    """Stop the proxy by the pid we started (SIGTERM, then SIGKILL), and reap it."""
    proc, p.proc = p.proc, None
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
