"""Caddy on an SSH host, for the releases runtime: Caddy runs on the lab host (started there over
ssh, its admin API on the host's own address, `caddy.admin: http://{host}:PORT`), and
releasegate reaches that API by the Talk op over the run's SSH connection (direct-tcpip). A
deploy v1 then v2 moves Caddy's upstream to v2's slot; `rollback` switches it back to v1's
still-running slot (the same app process, no restart)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_ssh.test_fleet_proxy import APP, get, slot_stack, ssh, stop_pidfile
from tests.lab.proxies import binary
from tests.lab.ssh import SshLab, free_port, host_dir, require_ssh_lab, run_rg

pytestmark = pytest.mark.e2e


class CaddyHost:
    """Lab host h1 with its own Caddy in front of its two slots, all on its own address."""

    def __init__(self, lab: SshLab, tmp: Path) -> None:
        self.lab, self.tmp = lab, tmp
        self.addr = lab.addresses[0]
        self.dir = f"/srv/fc-{os.getpid()}-{time.monotonic_ns()}"
        ports: list[int] = []
        while len(ports) < 4:  # the listener, the admin API, blue, green: all different
            port = free_port((self.addr,))
            if port not in ports:
                ports.append(port)
        self.port, self.admin_port, blue, green = ports
        self.slot_ports = {"blue": blue, "green": green}
        self.caddy = binary("caddy")
        for version in ("v1", "v2"):
            folder = tmp / "artifacts" / version
            folder.mkdir(parents=True)
            (folder / "app.py").write_text(APP)

    def host_path(self, *parts: str) -> Path:
        """A path under the stack's dir on h1, seen from this machine."""
        return host_dir(1) / "srv" / self.dir.removeprefix("/srv/") / Path(*parts)

    @property
    def url(self) -> str:
        return f"http://{self.addr}:{self.port}/"

    def start_caddy(self) -> None:
        proxy = f"{self.dir}/proxy"
        folder = self.host_path("proxy")
        folder.mkdir(parents=True)
        config = {
            "admin": {"listen": f"{self.addr}:{self.admin_port}"},
            "apps": {
                "http": {
                    "servers": {
                        "srv0": {
                            "listen": [f"{self.addr}:{self.port}"],
                            "automatic_https": {"disable": True},
                            "routes": [
                                {
                                    "handle": [
                                        {
                                            # No slot has run yet: blue, which nothing serves.
                                            "@id": "releasegate",
                                            "handler": "reverse_proxy",
                                            "upstreams": [
                                                {"dial": f"{self.addr}:{self.slot_ports['blue']}"}
                                            ],
                                        }
                                    ]
                                }
                            ],
                        }
                    }
                }
            },
        }
        (folder / "caddy.json").write_text(json.dumps(config))
        # Started on the host, in its own mount namespace (the paths are its /srv); `caddy
        # start` returns once the server runs, with its pid in the file.
        argv = [
            "env",
            f"HOME={proxy}",
            f"XDG_DATA_HOME={proxy}/data",
            f"XDG_CONFIG_HOME={proxy}/config",
            self.caddy,
            "start",
            "--config",
            f"{proxy}/caddy.json",
            "--pidfile",
            f"{proxy}/caddy.pid",
        ]
        # Its output to a file: the server it leaves running must not hold the session open.
        line = " ".join(shlex.quote(a) for a in argv) + f" >{proxy}/caddy.log 2>&1 </dev/null"
        done = ssh(self.lab, 1, line)
        assert done.returncode == 0, done.stdout + done.stderr

    def config(self) -> None:
        # The admin API on the host's own address: reached over the SSH connection.
        caddy = {"admin": f"http://{{host}}:{self.admin_port}"}
        stack = slot_stack(
            [f"ssh://root@{self.addr}:{self.lab.port}"],
            self.dir,
            self.port,
            self.slot_ports,
            {"kind": "caddy", "drain_s": 0.2, "caddy": caddy},
        )
        (self.tmp / "releasegate.yaml").write_text(json.dumps({"stacks": {"web": stack}}))

    def rg(self, *args: str) -> str:
        done = run_rg(self.lab, self.tmp, *args, timeout=300)
        assert done.returncode == 0, f"{args}: rc {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def upstreams(self) -> list[str]:
        """Caddy's own word: the dial addresses of the releasegate handler."""
        origin = f"http://{self.addr}:{self.admin_port}"
        request = urllib.request.Request(
            f"{origin}/id/releasegate/upstreams", headers={"Origin": origin}
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=5) as answer:
            return [u["dial"] for u in json.loads(answer.read(65536))]

    def pid(self, slot: str) -> str:
        return self.host_path(f"slot-{slot}.pid").read_text().strip()

    def stop(self) -> None:
        for pidfile in self.host_path().glob("slot-*.pid"):
            stop_pidfile(pidfile)
        stop_pidfile(self.host_path("proxy", "caddy.pid"))
        shutil.rmtree(self.host_path(), ignore_errors=True)


@pytest.fixture()
def caddy_host(tmp_path: Path) -> Iterator[CaddyHost]:
    host = CaddyHost(require_ssh_lab(1), tmp_path)
    try:
        host.start_caddy()
        host.config()
        yield host
    finally:
        host.stop()


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except OSError:
        return False
    return True


def test_caddy_on_an_ssh_host_switches_and_rolls_back(caddy_host: CaddyHost) -> None:
    host = caddy_host
    blue, green = (f"{host.addr}:{host.slot_ports[s]}" for s in ("blue", "green"))
    assert host.upstreams() == [blue]
    host.rg("deploy", "web", "staging", "v1")
    # Caddy named blue (empty): v1 started in green, and Caddy's upstream moved there.
    assert host.upstreams() == [green]
    assert get(host.url).strip() == "version v1 slot green h1"

    host.rg("deploy", "web", "staging", "v2")
    assert host.upstreams() == [blue]
    assert get(host.url).strip() == "version v2 slot blue h1"
    warm = host.pid("green")
    assert _alive(warm)  # keep_old: v1 still runs in green
    assert host.host_path("slots", "green").read_text().strip() == "v1"

    plan = host.rg("rollback", "web", "staging", "--dry-run")
    assert "(still running: warm)" in plan and "start v1 in slot" not in plan, plan
    assert "caddy: send traffic to slot green (blue -> green)" in plan, plan
    host.rg("rollback", "web", "staging")
    assert host.upstreams() == [green]  # Caddy's current upstream: v1's slot
    assert get(host.url).strip() == "version v1 slot green h1"
    assert host.pid("green") == warm and _alive(warm)  # the same process: not restarted
    shown = host.rg("status", "--json")
    assert json.loads(shown.splitlines()[0])["running"] == "v1", shown
