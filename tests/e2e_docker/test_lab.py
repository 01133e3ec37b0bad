"""The Docker lab itself works: engine, registry, Compose healthchecks, test images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lab.docker import (
    compose,
    compose_ps,
    docker,
    free_port,
    http_get,
    wait_for,
    wait_health,
    wait_http,
)
from tests.lab.fixtures import DockerLab
from tests.lab.images import HEALTHCHECK, cleanup, health_body, in_registry, sha_version

pytestmark = pytest.mark.e2e

COMPOSE = """\
services:
  good:
    image: {good}
    ports: ["127.0.0.1:{good_port}:80"]
    healthcheck: &check
      test: {check}
      interval: 1s
      timeout: 3s
      retries: 3
  bad:
    image: {bad}
    ports: ["127.0.0.1:{bad_port}:80"]
    healthcheck: *check
"""


def test_engine_runs_a_web_image_published_on_loopback(docker_lab: DockerLab) -> None:
    version = sha_version("lab-engine")
    ref = docker_lab.image(version)
    assert ref == f"127.0.0.1:5000/rg/web:{version}"
    assert in_registry(ref)
    # Pushed, then removed locally: `docker run` has to pull it from the lab registry.
    assert docker("image", "inspect", ref, check=False).returncode != 0
    assert docker_lab.image(version) == ref  # cached: not rebuilt

    name = docker_lab.project("lab-engine")
    port = free_port()
    docker("rm", "-f", name, check=False)
    try:
        docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", ref)
        body = wait_http(f"http://127.0.0.1:{port}/health", timeout=30)
        assert json.loads(body) == {"status": "ok", "version": version}
        assert body.strip() == health_body(version)
        status, page = http_get(f"http://127.0.0.1:{port}/")
        assert status == 200 and version in page
        assert http_get(f"http://127.0.0.1:{port}/version") == (200, version + "\n")
        # Stops at once on SIGTERM (not after docker's 10 s grace period).
        docker("stop", "-t", "10", name, timeout=8)
    finally:
        docker("rm", "-f", name, check=False)


def test_compose_healthcheck_reaches_healthy_and_the_broken_image_unhealthy(
    docker_lab: DockerLab, tmp_path: Path
) -> None:
    good_version, bad_version = sha_version("lab-good"), sha_version("lab-bad")
    good, bad = docker_lab.image(good_version), docker_lab.image(bad_version, broken=True)
    good_port, bad_port = free_port(), free_port()
    file = tmp_path / "compose.yaml"
    file.write_text(
        COMPOSE.format(
            good=good,
            bad=bad,
            good_port=good_port,
            bad_port=bad_port,
            check=json.dumps(HEALTHCHECK),
        )
    )
    project = docker_lab.project("lab")
    assert project == "rgtest-lab"
    compose(project, "down", "-v", "--remove-orphans", files=[file], check=False)
    try:
        compose(project, "pull", files=[file])
        compose(project, "up", "-d", files=[file])

        def states() -> dict[str, tuple[str, str]] | None:
            rows = {
                str(r["Service"]): (str(r["Health"]), str(r["Status"])) for r in compose_ps(project)
            }
            done = rows.get("good", ("",))[0] == "healthy" and rows.get("bad", ("",))[0] == (
                "unhealthy"
            )
            return rows if done else None

        rows = wait_for(states, "good healthy and bad unhealthy", timeout=60)
        assert "(healthy)" in rows["good"][1]
        assert "(unhealthy)" in rows["bad"][1]
        assert compose(project, "ps", files=[file]).stdout.count("(healthy)") == 1
        assert wait_health(f"{project}-good-1", "healthy") == "healthy"

        status, body = http_get(f"http://127.0.0.1:{good_port}/health")
        assert (status, json.loads(body)["version"]) == (200, good_version)
        status, _ = http_get(f"http://127.0.0.1:{bad_port}/health")
        assert status == 404
        assert http_get(f"http://127.0.0.1:{bad_port}/version") == (200, bad_version + "\n")

        # `up --wait` reports the unhealthy container and exits non-zero.
        waited = compose(
            project, "up", "-d", "--wait", "--wait-timeout", "30", files=[file], check=False
        )
        assert waited.returncode != 0
        assert f"container {project}-bad-1 is unhealthy" in waited.stdout + waited.stderr
    finally:
        compose(project, "down", "-v", "--remove-orphans", "-t", "2", files=[file], check=False)
    assert compose_ps(project) == []


def test_pulling_a_tag_missing_from_the_registry_fails_with_manifest_unknown(
    docker_lab: DockerLab, compose_project: str, tmp_path: Path
) -> None:
    ref = docker_lab.ref(sha_version("never-pushed"))
    assert not in_registry(ref)
    pulled = docker("pull", ref, check=False)
    assert pulled.returncode != 0
    # The engine (20.10) says, on stderr:
    # Error response from daemon: manifest for REF not found: manifest unknown: manifest unknown
    assert f"manifest for {ref} not found: manifest unknown" in pulled.stderr

    file = tmp_path / "compose.yaml"
    file.write_text(f"services:\n  web:\n    image: {ref}\n")
    assert compose_project.startswith("rgtest-pulling-a-tag-missing")
    pulled = compose(compose_project, "pull", files=[file], check=False)
    assert pulled.returncode != 0
    assert "manifest unknown" in pulled.stdout + pulled.stderr


def test_cleanup_removes_containers_networks_and_volumes_by_prefix(
    docker_lab: DockerLab,
) -> None:
    ref = docker_lab.image(sha_version("lab-engine"))
    prefix = "rgtest-cleanup-"
    docker("network", "create", f"{prefix}net")
    docker("volume", "create", f"{prefix}vol")
    docker("create", "--name", f"{prefix}c1", "--network", f"{prefix}net", ref)
    removed = cleanup(prefix, labelled=False, images=False)
    assert set(removed) >= {f"container {prefix}c1", f"network {prefix}net", f"volume {prefix}vol"}
    assert docker("ps", "-aq", "--filter", f"name={prefix}").stdout.strip() == ""
    assert docker("network", "inspect", f"{prefix}net", check=False).returncode != 0
    assert docker("volume", "inspect", f"{prefix}vol", check=False).returncode != 0
