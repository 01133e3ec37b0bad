"""Compose fleets on the SSH lab: each host has a Docker engine of its own
(scripts/lab/docker_hosts.sh), its own compose.yaml and .env in its own /srv, and publishes the
web image on its own loopback address. releasegate pulls the tag on every host over SSH, then
switches, recreates and smokes host by host, and brings the whole fleet back when one fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.lab.docker import require_docker
from tests.lab.images import build_web_image, sha_version
from tests.lab.ssh import (
    SshLab,
    docker_host,
    host_dir,
    last_result,
    require_docker_hosts,
    run_rg,
    serving,
)

pytestmark = pytest.mark.e2e

HOSTS = 3
COMPOSE = """\
services:
  web:
    image: 127.0.0.1:5000/rg/web:${IMAGE_TAG}
    ports: ["${HOST_IP}:${WEB_PORT}:80"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/health"]
      interval: 1s
      retries: 30
"""


class ComposeFleet:
    def __init__(self, lab: SshLab, tmp: Path, name: str) -> None:
        self.lab = lab
        self.tmp = tmp
        self.addresses = lab.addresses[:HOSTS]
        # How releasegate names each host: its address, with the port when it is not 22.
        self.labels = tuple(a if lab.port == 22 else f"{a}:{lab.port}" for a in self.addresses)
        self.project = f"cf{name}"
        self.dir = f"/srv/{self.project}"
        self.port = 18000 + os.getpid() % 1000
        for i, addr in enumerate(self.addresses, start=1):
            where = self.host_path(i)
            where.mkdir(parents=True)
            (where / "compose.yaml").write_text(COMPOSE)
            (where / ".env").write_text(
                f"# this host's own settings\nHOST_IP={addr}\nWEB_PORT={self.port}\n"
                "SECRET_TOKEN=hunter2-compose\n"
            )

    def host_path(self, index: int) -> Path:
        return host_dir(index) / "srv" / self.project

    def config(self, **fleet: object) -> None:
        hosts = "\n".join(f"      - ssh://root@{a}:{self.lab.port}" for a in self.addresses)
        (self.tmp / "releasegate.yaml").write_text(
            f"""\
stacks:
  web:
    env: staging
    runtime: compose
    hosts:
{hosts}
    dir: {self.dir}
    compose: {{project: {self.project}, wait_timeout: 60}}
    smoke:
      - http: "http://{{host}}:{self.port}/version"
        body_contains: "{{version}}"
        retries: 20
        interval: 0.3
        timeout: 5
      - command: [sh, -c, 'test ! -e "$RELEASEGATE_DIR/fail-$RELEASEGATE_VERSION"']
    fleet: {json.dumps(fleet or {})}
"""
        )

    def rg(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return run_rg(self.lab, self.tmp, *args, check=check)

    def serving(self) -> list[str | None]:
        return serving(self.addresses, self.port, "/version")

    def engine(self, index: int, *args: str) -> str:
        """docker on host h<index>'s own engine."""
        proc = subprocess.run(
            ["docker", *args],
            env={**os.environ, "DOCKER_HOST": docker_host(index)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def down(self) -> None:
        for i in range(1, HOSTS + 1):
            label = f"label=com.docker.compose.project={self.project}"
            ids = self.engine(i, "ps", "-aq", "--filter", label)
            if ids.split():
                self.engine(i, "rm", "-f", *ids.split())
            subprocess.run(
                ["docker", "network", "rm", f"{self.project}_default"],
                env={**os.environ, "DOCKER_HOST": docker_host(i)},
                capture_output=True,
                timeout=60,
            )
            shutil.rmtree(self.host_path(i), ignore_errors=True)


@pytest.fixture()
def fleet(tmp_path: Path) -> object:
    require_docker()
    lab = require_docker_hosts(HOSTS)
    f = ComposeFleet(lab, tmp_path, f"{os.getpid()}{time.monotonic_ns() % 10**6}")
    yield f
    f.down()


def test_compose_fleet_rolls_out_and_goes_back_whole(fleet: ComposeFleet) -> None:
    v1, v2, v3 = (sha_version(f"{fleet.project}-{n}") for n in (1, 2, 3))
    for version in (v1, v2, v3):
        build_web_image(version)
    fleet.config(strategy="rolling", batch=1)

    first = fleet.rg("deploy", "web", "staging", v1, "--json", check=True)
    assert last_result(first)["status"] == "success"
    assert fleet.serving() == [v1] * HOSTS
    fleet.rg("deploy", "web", "staging", v2, check=True)
    assert fleet.serving() == [v2] * HOSTS
    for i in range(1, HOSTS + 1):
        # Each host's engine runs the project, and its own .env carries the tag (the rest kept).
        assert fleet.engine(i, "ps", "--format", "{{.Image}}").split() == [
            f"127.0.0.1:5000/rg/web:{v2}"
        ]
        env = (fleet.host_path(i) / ".env").read_text()
        assert f"IMAGE_TAG={v2}\n" in env and "SECRET_TOKEN=hunter2-compose" in env

    rows = map(json.loads, fleet.rg("status", "--json", check=True).stdout.splitlines())
    web = next(r for r in rows if r.get("stack") == "web")
    assert web["mixed"] is False and set(web["hosts"].values()) == {v2}, web

    # v3: the second host's smoke fails. h1 had switched, h2 failed, h3 never started: the two
    # that switched go back to v2 and the fleet ends on one version.
    (fleet.host_path(2) / f"fail-{v3}").write_text("")
    third = fleet.rg("deploy", "web", "staging", v3, "--json")
    result = last_result(third)
    assert result["status"] == "rolled_back", third.stdout
    assert fleet.serving() == [v2] * HOSTS
    for i in range(1, HOSTS + 1):
        assert f"IMAGE_TAG={v2}\n" in (fleet.host_path(i) / ".env").read_text()
    assert third.returncode == 4 and fleet.labels[1] in str(result["message"])
    hosts = result["hosts"]
    assert set(hosts) == set(fleet.labels[:2])  # type: ignore[arg-type]  # h3: never started
    assert [hosts[label]["ok"] for label in fleet.labels[:2]] == [True, False]  # type: ignore[index]
    assert result["followups"][0]["status"] == "success"  # type: ignore[index]

    history = fleet.rg("history", "--json", check=True).stdout
    assert "hunter2-compose" not in history  # the hosts' .env secrets never reach the ledger


def test_compose_fleet_preflight_names_the_host_without_compose_files(
    fleet: ComposeFleet,
) -> None:
    v1 = sha_version(f"{fleet.project}-pf")
    build_web_image(v1)
    fleet.config(strategy="all")
    (fleet.host_path(2) / "compose.yaml").unlink()
    proc = fleet.rg("deploy", "web", "staging", v1)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "compose file(s) missing" in out and fleet.addresses[1] in out, out
    assert fleet.serving() == [None] * HOSTS  # refused before anything was pulled or started


def test_prod_compose_rules_are_judged_on_each_host_own_files(fleet: ComposeFleet) -> None:
    fleet.config(strategy="all")
    config = fleet.tmp / "releasegate.yaml"
    config.write_text(config.read_text().replace("env: staging", "env: prod"))
    for i in range(1, HOSTS + 1):  # as after an earlier deploy: every variable resolves
        with (fleet.host_path(i) / ".env").open("a") as env:
            env.write("IMAGE_TAG=sha-1234567\n")
    # The third host's file builds its image on the server: refused by rule, named by host.
    broken = COMPOSE.replace("    image: 127.0.0.1:5000/rg/web:${IMAGE_TAG}\n", "    build: .\n")
    (fleet.host_path(3) / "compose.yaml").write_text(broken)
    proc = fleet.rg("preflight", "web", "prod")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out
    assert f"✘ {fleet.labels[2]}: {fleet.dir}/compose.yaml:3: web: no-build:" in out, out
    assert "releasegate-compose-" not in out  # findings name the host's path, not a temp copy
    for label in fleet.labels[:2]:  # the other hosts' own files passed
        assert f"{label}: compose rules passed" in out
