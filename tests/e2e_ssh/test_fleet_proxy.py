"""Blue/green slots on fleet hosts (Kamal's model) on the SSH lab's real sshd hosts: each host
runs its own nginx in front of its own two slots, all on its own address. A deploy under
load through every host's proxy fails no request; `rollback` is a warm switch on every host
(the same app processes); hosts whose proxies disagree stop a run before anything changes.
And HAProxy's runtime API on a host's unix socket, reached through the SSH connection
(direct-streamlocal) by the Talk op, with no tool on the host.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.load import Load
from tests.lab.proxies import binary
from tests.lab.ssh import SshLab, free_port, host_dir, require_ssh_lab, run_rg

pytestmark = pytest.mark.e2e

HOSTS = 3

# A slot's app: answers its version, its slot and its host on the slot's own address.
APP = textwrap.dedent(
    """\
    import http.server, os, signal, sys
    VERSION = os.environ["RELEASEGATE_VERSION"]
    HOST = open("/srv/whoami").read().strip()
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        def do_GET(self):
            body = f"version {VERSION} slot {os.environ['RELEASEGATE_SLOT']} {HOST}\\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    class S(http.server.ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True
    server = S((os.environ["RELEASEGATE_SLOT_HOST"], int(os.environ["PORT"])), H)
    signal.signal(signal.SIGTERM, lambda *a: (server.server_close(), sys.exit(0)))
    server.serve_forever()
    """
)
START = (
    "setsid python3 app.py </dev/null >/dev/null 2>&1 & "
    'echo $! > "$RELEASEGATE_DIR/slot-$RELEASEGATE_SLOT.pid"'
)
STOP = (
    'f="$RELEASEGATE_DIR/slot-$RELEASEGATE_SLOT.pid"; [ -f "$f" ] || exit 0; pid=$(cat "$f"); '
    'kill "$pid" 2>/dev/null; i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; '
    'do sleep 0.05; i=$((i+1)); done; rm -f "$f"'
)


def slot_stack(
    hosts: list[str], folder: str, port: int, slot_ports: dict[str, int], proxy: dict[str, object]
) -> dict[str, object]:
    """A releases stack on SSH hosts whose app runs in two slots (START/STOP) behind each
    host's own proxy listening on `port`; `proxy` adds the adapter's kind and settings. The
    old slot stays warm (`keep_old`): `rollback` is a switch."""
    return {
        "env": "staging",
        "runtime": "releases",
        "hosts": hosts,
        "dir": folder,
        "artifacts": "./artifacts",
        "commands": {"restart": ["sh", "-c", START], "stop": ["sh", "-c", STOP]},
        "smoke": [
            {
                "name": "health",
                "http": f"http://{{host}}:{port}/health",
                "body_contains": "version {version}",
                "retries": 30,
                "interval": 0.1,
                "timeout": 6,
            }
        ],
        "preflight": {"disk_free_min_percent": 1},
        "backup": {"files": []},
        "proxy": {
            "slots": {s: f"{{host}}:{p}" for s, p in slot_ports.items()},
            "keep_old": True,
            **proxy,
        },
    }


def ssh(lab: SshLab, index: int, *argv: str) -> subprocess.CompletedProcess[str]:
    """A command on host hN (its own /srv) through the system's ssh and the lab's config."""
    return subprocess.run(
        ["ssh", "-F", str(lab.ssh_config), f"h{index}", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as answer:
            return str(answer.read(4096).decode())
    except OSError as exc:
        return f"error {exc}"


def stop_pidfile(path: Path) -> None:
    try:
        os.kill(int(path.read_text().split()[0]), signal.SIGTERM)
    except (OSError, ValueError):
        pass


class ProxyFleet:
    """Three lab hosts, each with its own nginx on its own address in front of its slots."""

    def __init__(self, lab: SshLab, tmp: Path) -> None:
        self.lab, self.tmp = lab, tmp
        self.addresses = lab.addresses[:HOSTS]
        self.dir = f"/srv/fp-{os.getpid()}-{time.monotonic_ns()}"
        self.port = free_port(self.addresses)  # each host's proxy listens here
        self.slot_ports = {"blue": free_port(self.addresses), "green": 0}
        while self.slot_ports["green"] in (0, self.port, self.slot_ports["blue"]):
            self.slot_ports["green"] = free_port(self.addresses)
        self.nginx = binary("nginx")
        for version in ("v1", "v2", "v3"):
            folder = tmp / "artifacts" / version
            folder.mkdir(parents=True)
            (folder / "app.py").write_text(APP)

    def host_path(self, index: int, *parts: str) -> Path:
        """A path under the stack's dir on host hN, seen from this machine."""
        return host_dir(index) / "srv" / self.dir.removeprefix("/srv/") / Path(*parts)

    def url(self, index: int, path: str = "/") -> str:
        return f"http://{self.addresses[index - 1]}:{self.port}{path}"

    def start_proxies(self) -> None:
        proxy = f"{self.dir}/proxy"
        for i, addr in enumerate(self.addresses, start=1):
            folder = self.host_path(i, "proxy")
            (folder / "logs").mkdir(parents=True)
            # No slot has run yet: the file names the blue slot, which nothing serves.
            (folder / "upstream.conf").write_text(f"server {addr}:{self.slot_ports['blue']};\n")
            (folder / "nginx.conf").write_text(
                textwrap.dedent(
                    f"""\
                    daemon on;
                    pid {proxy}/nginx.pid;
                    error_log {proxy}/logs/error.log warn;
                    worker_processes 1;
                    events {{ worker_connections 512; }}
                    http {{
                      access_log {proxy}/access.log;
                      client_body_temp_path {proxy}/tmp-body;
                      proxy_temp_path {proxy}/tmp-proxy;
                      fastcgi_temp_path {proxy}/tmp-fcgi;
                      uwsgi_temp_path {proxy}/tmp-uwsgi;
                      scgi_temp_path {proxy}/tmp-scgi;
                      upstream app {{ include {proxy}/upstream.conf; keepalive 16; }}
                      server {{
                        listen {addr}:{self.port};
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
            # Started on the host, in its own mount namespace: the paths are its /srv.
            done = ssh(self.lab, i, self.nginx, "-c", f"{proxy}/nginx.conf", "-p", proxy)
            assert done.returncode == 0, done.stderr

    def config(self) -> None:
        hosts = [f"ssh://root@{a}:{self.lab.port}" for a in self.addresses]
        proxy = f"{self.dir}/proxy"
        nginx = {
            "upstream_file": f"{proxy}/upstream.conf",
            "conf": f"{proxy}/nginx.conf",
            "prefix": proxy,
            "binary": self.nginx,
        }
        stack = slot_stack(
            hosts,
            self.dir,
            self.port,
            self.slot_ports,
            {"kind": "nginx", "drain_s": 0.5, "nginx": nginx},
        )
        (self.tmp / "releasegate.yaml").write_text(json.dumps({"stacks": {"web": stack}}))

    def rg(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_rg(self.lab, self.tmp, *args, timeout=300)

    def serving(self) -> list[str]:
        return [get(self.url(i)).strip() for i in range(1, HOSTS + 1)]

    def pids(self, slot: str) -> list[str]:
        return [
            self.host_path(i, f"slot-{slot}.pid").read_text().strip() for i in range(1, HOSTS + 1)
        ]

    def stop(self) -> None:
        for i in range(1, HOSTS + 1):
            for pidfile in self.host_path(i).glob("slot-*.pid"):
                stop_pidfile(pidfile)
            stop_pidfile(self.host_path(i, "proxy", "nginx.pid"))
            shutil.rmtree(self.host_path(i), ignore_errors=True)


@pytest.fixture()
def proxy_fleet(tmp_path: Path) -> Iterator[ProxyFleet]:
    fleet = ProxyFleet(require_ssh_lab(HOSTS), tmp_path)
    try:
        fleet.start_proxies()
        fleet.config()
        yield fleet
    finally:
        fleet.stop()


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except OSError:
        return False
    return True


def test_deploy_under_load_and_a_warm_rollback_on_every_host(proxy_fleet: ProxyFleet) -> None:
    fleet = proxy_fleet
    first = fleet.rg("deploy", "web", "staging", "v1")
    assert first.returncode == 0, first.stdout + first.stderr
    # The upstream named blue: v1 went to green on every host, each on its own address.
    assert fleet.serving() == [f"version v1 slot green h{i}" for i in range(1, HOSTS + 1)]

    loads = [Load(fleet.url(i), clients=2, keepalive=True, max_s=240) for i in (1, 2, 3)]
    for load in loads:
        load.__enter__()
    try:
        time.sleep(0.5)  # steady traffic before the deploy
        second = fleet.rg("deploy", "web", "staging", "v2")
        time.sleep(0.5)
    finally:
        for load in loads:
            load.__exit__(None, None, None)
    assert second.returncode == 0, second.stdout + second.stderr
    for i, load in enumerate(loads, start=1):
        result = load.result
        assert result.failed == 0, (i, result.errors)
        assert result.ok > 0
        seen = set(result.bodies)  # each host's proxy served only its own slots
        assert f"version v2 slot blue h{i}" in seen, seen
        assert seen <= {f"version v1 slot green h{i}", f"version v2 slot blue h{i}"}, seen
    assert fleet.serving() == [f"version v2 slot blue h{i}" for i in range(1, HOSTS + 1)]
    # keep_old: v1 still runs in green on every host, its file says so.
    warm = fleet.pids("green")
    assert all(_alive(p) for p in warm)
    for i in range(1, HOSTS + 1):
        assert fleet.host_path(i, "slots", "green").read_text().strip() == "v1"
        assert fleet.host_path(i, "slots", "blue").read_text().strip() == "v2"

    plan = fleet.rg("rollback", "web", "staging", "--dry-run")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "start-slot" not in plan.stdout and "start v1 in slot" not in plan.stdout
    back = fleet.rg("rollback", "web", "staging")
    assert back.returncode == 0, back.stdout + back.stderr
    assert fleet.serving() == [f"version v1 slot green h{i}" for i in range(1, HOSTS + 1)]
    assert fleet.pids("green") == warm and all(_alive(p) for p in warm)  # not restarted


def test_hosts_whose_proxies_disagree_stop_the_run_before_any_change(
    proxy_fleet: ProxyFleet,
) -> None:
    fleet = proxy_fleet
    done = fleet.rg("deploy", "web", "staging", "v1")
    assert done.returncode == 0, done.stdout + done.stderr
    # Someone moved h3's proxy by hand to the other slot.
    upstream = fleet.host_path(3, "proxy", "upstream.conf")
    upstream.write_text(f"server {fleet.addresses[2]}:{fleet.slot_ports['blue']};\n")
    links = [os.readlink(fleet.host_path(i, "current")) for i in range(1, HOSTS + 1)]
    refused = fleet.rg("deploy", "web", "staging", "v2")
    assert refused.returncode != 0
    said = " ".join((refused.stdout + refused.stderr).split())
    assert "disagree" in said and fleet.addresses[2] in said, said
    assert [os.readlink(fleet.host_path(i, "current")) for i in range(1, HOSTS + 1)] == links
    for i in range(1, HOSTS + 1):  # nothing started in the free slot anywhere
        assert not fleet.host_path(i, "slots", "blue").exists()


# ---- HAProxy's runtime API on an SSH host: a Talk over direct-streamlocal -----------------


def test_haproxy_on_an_ssh_host_through_its_connection(tmp_path: Path) -> None:
    from releasegate.ops import Talk, run_async
    from releasegate.proxy.base import adapter_for
    from releasegate.proxy.config import ProxyConfig
    from releasegate.transport.ssh import AsyncSshHost, SshOptions, SshTarget

    lab = require_ssh_lab(1)
    exe = binary("haproxy")
    addr = lab.addresses[0]
    where = f"/srv/ha-{os.getpid()}-{time.monotonic_ns()}"
    seen = host_dir(1) / "srv" / where.removeprefix("/srv/")
    seen.mkdir(parents=True)
    port, blue, green = (free_port((addr,)) for _ in range(3))
    sock = f"{where}/admin.sock"  # on the host's own /srv: not a path on this machine
    (seen / "haproxy.cfg").write_text(
        "\n".join(
            [
                "global",
                f"  stats socket {sock} mode 600 level admin",
                "defaults",
                "  mode http",
                "  timeout connect 2s",
                "  timeout client 10s",
                "  timeout server 10s",
                "frontend web",
                f"  bind {addr}:{port}",
                "  default_backend app",
                "backend app",
                f"  server blue {addr}:{blue}",
                f"  server green {addr}:{green} disabled",
                "",
            ]
        )
    )
    started = ssh(lab, 1, exe, "-f", f"{where}/haproxy.cfg", "-D", "-p", f"{where}/haproxy.pid")
    assert started.returncode == 0, started.stderr
    assert not Path(sock).exists()  # only the host sees it
    cfg = ProxyConfig.model_validate(
        {
            "kind": "haproxy",
            "slots": {"blue": f"{{host}}:{blue}", "green": f"{{host}}:{green}"},
            "haproxy": {"socket": sock, "backend": "app"},
        }
    )
    target = SshTarget(address=addr, user=lab.user, port=lab.port)
    options = SshOptions(known_hosts=lab.known_hosts, config=(), client_keys=(lab.key,))

    async def scenario() -> dict[str, Any]:
        host = AsyncSshHost(target, options)
        try:
            switch = adapter_for(cfg, addr)
            found: dict[str, Any] = {"before": await run_async(switch.current(), host, client=None)}
            moved = await run_async(switch.switch("green"), host, client=None)
            found["moved"] = moved
            found["after"] = await run_async(switch.current(), host, client=None)
            # direct-tcpip too: the frontend on the host's address, as the host sees it.
            request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            found["http"] = await run_async(
                _one(Talk(f"{addr}:{port}", request, 5)), host, client=None
            )
            found["gone"] = await run_async(
                _one(Talk(f"{where}/none.sock", b"x", 5)), host, client=None
            )
            found["logins"] = host.connections_opened
            return found
        finally:
            await host.close()

    try:
        found = asyncio.run(scenario())
    finally:
        stop_pidfile(seen / "haproxy.pid")
        shutil.rmtree(seen, ignore_errors=True)
    assert found["before"] == "blue"
    assert found["moved"].ok, found["moved"].summary
    assert found["after"] == "green"
    assert found["http"].data.startswith(b"HTTP/1.1 503"), found["http"]  # no app behind it
    assert found["gone"].error and not found["gone"].data
    assert found["logins"] == 1  # every Talk on the one connection


def _one(op: Any) -> Any:
    answer = yield op
    return answer
