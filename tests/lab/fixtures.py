"""Pytest fixtures for the Docker lab. Enable with, in the top-level tests/conftest.py:

    pytest_plugins = ["tests.lab.fixtures"]

(pytest accepts `pytest_plugins` only in a top-level conftest.)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.lab.docker import REGISTRY, compose, docker, require_docker, versions
from tests.lab.images import PREFIX, build_web_image, cleanup, image_ref


@dataclass
class DockerLab:
    """The running Docker lab, as the `docker_lab` fixture gives it."""

    registry: str = REGISTRY
    prefix: str = PREFIX
    versions: dict[str, str] = field(default_factory=dict)

    def image(self, version: str, broken: bool = False) -> str:
        """Build and push the web image of `version` (once per session); its reference."""
        return build_web_image(version, broken=broken, registry=self.registry)

    def ref(self, version: str) -> str:
        """The reference `version` would have, without building anything."""
        return image_ref(version, self.registry)

    def project(self, name: str) -> str:
        """A compose project / container name that the session's cleanup removes."""
        return name if name.startswith(self.prefix) else self.prefix + name

    def cleanup(self) -> list[str]:
        """Remove the containers, networks, volumes and local images tests made."""
        return cleanup(self.prefix)


@pytest.fixture(scope="session")
def docker_lab() -> Iterator[DockerLab]:
    """The Docker lab (engine, compose, registry at 127.0.0.1:5000); skipped, or failed under
    CI=true, when a part is missing. Removes what the tests made at the start (leftovers of
    an interrupted run) and at the end of the session."""
    require_docker()
    lab = DockerLab(versions=versions())
    lab.cleanup()
    yield lab
    lab.cleanup()


def _project_name(prefix: str, node_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", node_name.lower().removeprefix("test_")).strip("-")
    slug = slug[:40].strip("-")
    digest = hashlib.sha1(node_name.encode()).hexdigest()[:6]
    return f"{prefix}{slug}-{digest}"


@pytest.fixture()
def compose_project(docker_lab: DockerLab, request: pytest.FixtureRequest) -> Iterator[str]:
    """A compose project name unique to the test (`rgtest-...`), brought down afterwards."""
    name = _project_name(docker_lab.prefix, request.node.name)
    compose(name, "down", "-v", "--remove-orphans", check=False)
    yield name
    compose(name, "down", "-v", "--remove-orphans", "-t", "2", check=False)
    left = docker(
        "ps", "-aq", "--filter", f"label=com.docker.compose.project={name}", check=False
    ).stdout.split()
    if left:
        docker("rm", "-f", "-v", *left, check=False)
