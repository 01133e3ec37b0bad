"""Real reverse proxies for the tests: nginx, Caddy and HAProxy, each started by the test
on free loopback ports with a config folder of its own, stopped by the pid it started.

`bash scripts/lab/proxy.sh up` installs them (apt). A missing one skips a test on a
developer's machine and fails it under CI (CI=true)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.lab.docker import under_ci

UP_HINT = "install them with: bash scripts/lab/proxy.sh up"
BINARIES = {"nginx": "nginx", "caddy": "caddy", "haproxy": "haproxy"}
SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")

# A slot's app: answers its version (from the environment) on $PORT, 127.0.0.1 only.
APP = textwrap.dedent(
    """\
    import http.server, os, signal, sys
    VERSION = os.environ.get("APP_VERSION") or os.environ.get("RELEASEGATE_VERSION", "?")
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall
        def do_GET(self):
            body = ("version " + VERSION + " slot " + os.environ.get("RELEASEGATE_SLOT", "-")
                    + "\\n").encode()
            status = 500 if self.path.startswith("/fail") else 200
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    class S(http.server.ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True
    server = S(("127.0.0.1", int(os.environ["PORT"])), H)
    signal.signal(signal.SIGTERM, lambda *a: (server.server_close(), sys.exit(0)))
    server.serve_forever()
    """
)


def unavailable(reason: str) -> NoReturn:
    message = f"proxy lab unavailable: {reason} ({UP_HINT})"
    if under_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def binary(kind: str) -> str:
    found = shutil.which(BINARIES[kind]) or next(
        (f"{d}/{BINARIES[kind]}" for d in SBIN if os.access(f"{d}/{BINARIES[kind]}", os.X_OK)),
        None,
    )
    if found is None:
        unavailable(f"{BINARIES[kind]} is not installed")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing answers on 127.0.0.1:{port} after {timeout:g}s")


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as answer:
            return answer.status, answer.read(4096).decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(4096).decode()


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop_child(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """A process this test started (reaped here: a zombie would look alive to kill -0)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def start_app(folder: Path, port: int, version: str, slot: str = "-") -> subprocess.Popen[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(APP)
    env = {**os.environ, "PORT": str(port), "APP_VERSION": version, "RELEASEGATE_SLOT": slot}
    proc = subprocess.Popen(
        [sys.executable, str(folder / "app.py")], env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    wait_port(port)
    return proc


@dataclass
class Proxy:
    """One running proxy: where it listens, its control, and the `proxy:` config for it."""

    kind: str
    dir: Path
    port: int  # the listener clients use
    slots: dict[str, str]
    access_log: Path
    control: dict[str, object]
    pid: int = 0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self, drain_s: float = 0.5, keep_old: bool = False) -> dict[str, object]:
        return {
            "kind": self.kind,
            "slots": dict(self.slots),
            "drain_s": drain_s,
            "keep_old": keep_old,
            "access_log": str(self.access_log),
            self.kind: dict(self.control),
        }

    def stop(self) -> None:
        for proc in self.procs:
            stop_child(proc)
        if self.pid:
            stop_pid(self.pid)


def start_proxy(kind: str, root: Path, slots: dict[str, str], live: str = "blue") -> Proxy:
    exe = binary(kind)
    folder = root / f"proxy-{kind}"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = folder / "access.log"
    if kind == "nginx":
        return _nginx(exe, folder, port, slots, live, log)
    if kind == "caddy":
        return _caddy(exe, folder, port, slots, live, log)
    return _haproxy(exe, folder, port, slots, live, log)


def _nginx(exe: str, folder: Path, port: int, slots: dict[str, str], live: str, log: Path) -> Proxy:
    (folder / "logs").mkdir(exist_ok=True)
    upstream = folder / "upstream.conf"
    upstream.write_text(f"server {slots[live]};\n")
    conf = folder / "nginx.conf"
    conf.write_text(
        textwrap.dedent(
            f"""\
            daemon on;
            pid {folder}/nginx.pid;
            error_log {folder}/logs/error.log warn;
            worker_processes 1;
            events {{ worker_connections 512; }}
            http {{
              access_log {log};
              client_body_temp_path {folder}/tmp-body;
              proxy_temp_path {folder}/tmp-proxy;
              fastcgi_temp_path {folder}/tmp-fcgi;
              uwsgi_temp_path {folder}/tmp-uwsgi;
              scgi_temp_path {folder}/tmp-scgi;
              upstream app {{ include {upstream}; keepalive 16; }}
              server {{
                listen 127.0.0.1:{port};
                location / {{
                  proxy_pass http://app;
                  proxy_http_version 1.1;
                  proxy_set_header Connection "";
                  proxy_next_upstream error timeout http_502;
                }}
              }}
            }}
            """
        )
    )
    subprocess.run([exe, "-c", str(conf), "-p", str(folder)], check=True, timeout=20,
                   capture_output=True)  # fmt: skip
    wait_port(port)
    pid = int((folder / "nginx.pid").read_text().split()[0])
    control = {"upstream_file": str(upstream), "conf": str(conf), "prefix": str(folder),
               "binary": exe}  # fmt: skip
    return Proxy("nginx", folder, port, slots, log, control, pid=pid)


def caddy_config(port: int, admin: int, upstream: str, log: Path) -> dict[str, Any]:
    """The Caddy config the tests and benchmarks run (JSON, as the admin API holds it): one
    server on 127.0.0.1:`port`, a reverse_proxy whose upstreams releasegate replaces (by the
    `@id`), an access log as JSON lines."""
    return {
        "admin": {"listen": f"127.0.0.1:{admin}"},
        "logging": {
            "logs": {
                "access": {
                    "writer": {"output": "file", "filename": str(log)},
                    "encoder": {"format": "json"},
                    "include": ["http.log.access.access"],
                }
            }
        },
        "apps": {
            "http": {
                "servers": {
                    "srv0": {
                        "listen": [f"127.0.0.1:{port}"],
                        "logs": {"default_logger_name": "access"},
                        "automatic_https": {"disable": True},
                        "routes": [
                            {
                                "handle": [
                                    {
                                        "@id": "releasegate",
                                        "handler": "reverse_proxy",
                                        "upstreams": [{"dial": upstream}],
                                    }
                                ]
                            }
                        ],
                    }
                }
            }
        },
    }


MIGRATE_REQ = Path("/proc/sys/net/ipv4/tcp_migrate_req")


def caddy_may_reset() -> bool:
    """Whether a Caddy reload may reset a new connection here: Caddy 2.6 hands its listener
    over with SO_REUSEPORT (a new socket per config, the old one closed), and the kernel resets
    what was queued on the closed socket unless `net.ipv4.tcp_migrate_req` is 1 (Linux 5.14+;
    per network namespace), which moves those connections to the new socket
    (benchmarks/caddy_resets.py: 0 resets in 6 runs of 60 switches with it; without it, up to
    20 per 60 whatever the Caddy config)."""
    try:
        return MIGRATE_REQ.read_text().strip() != "1"
    except OSError:
        return True


def _caddy(exe: str, folder: Path, port: int, slots: dict[str, str], live: str, log: Path) -> Proxy:
    admin = free_port()
    config = caddy_config(port, admin, slots[live], log)
    path = folder / "caddy.json"
    path.write_text(json.dumps(config))
    env = {**os.environ, "HOME": str(folder), "XDG_DATA_HOME": str(folder / "data"),
           "XDG_CONFIG_HOME": str(folder / "config")}  # fmt: skip
    proc = subprocess.Popen(
        [exe, "run", "--config", str(path)], env=env, stdin=subprocess.DEVNULL,
        stdout=open(folder / "caddy.out", "wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    wait_port(port)
    wait_port(admin)
    control = {"admin": f"http://127.0.0.1:{admin}", "upstreams_path": "/id/releasegate/upstreams"}
    return Proxy("caddy", folder, port, slots, log, control, procs=[proc])


def _haproxy(
    exe: str, folder: Path, port: int, slots: dict[str, str], live: str, log: Path
) -> Proxy:
    sock = folder / "admin.sock"
    conf = folder / "haproxy.cfg"

    def server(name: str) -> str:
        state = "" if name == live else " disabled"
        return f"  server {name} {slots[name]}{state}"

    conf.write_text(
        "\n".join(
            [
                "global",
                f"  stats socket {sock} mode 600 level admin",
                "  log stdout format raw local0",
                "defaults",
                "  mode http",
                "  log global",
                "  option httplog",
                "  timeout connect 2s",
                "  timeout client 30s",
                "  timeout server 30s",
                "  option http-keep-alive",
                "  retries 2",
                "  option redispatch",
                "frontend web",
                f"  bind 127.0.0.1:{port}",
                "  default_backend app",
                "backend app",
                server("blue"),
                server("green"),
                "",
            ]
        )
    )
    proc = subprocess.Popen(
        [exe, "-f", str(conf), "-db"], stdin=subprocess.DEVNULL,
        stdout=open(folder / "haproxy.out", "wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    wait_port(port)
    control = {"socket": str(sock), "backend": "app"}
    log = folder / "haproxy.out"  # its access log goes to stdout (`log stdout`)
    return Proxy("haproxy", folder, port, slots, log, control, procs=[proc])
