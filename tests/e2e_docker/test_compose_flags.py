"""A flag on a compose stack: one key of the stack's .env (where IMAGE_TAG and a secret
also live) changed, `docker compose up` recreating the container with the new environment,
the smoke checks, and the way back."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.lab.compose_workspace import ComposeWorkspace, make_workspace
from tests.lab.docker import compose, http_get
from tests.lab.images import health_body, sha_version

pytestmark = pytest.mark.e2e

V1 = sha_version("compose-flags-v1")

# The container writes the switch it was started with where its web server shows it.
COMPOSE = """\
services:
  web:
    image: {registry}/rg/web:${{IMAGE_TAG}}
    ports: ["127.0.0.1:${{PORT}}:80"]
    environment:
      FEATURE_X_ENABLED: ${{FEATURE_X_ENABLED:-false}}
    command:
      - /bin/sh
      - -c
      - >-
        echo "$$FEATURE_X_ENABLED" > /www/feature;
        trap 'exit 0' TERM INT; httpd -f -p 80 -h /www & wait
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/health"]
      interval: 1s
      timeout: 2s
      retries: 2
"""


@pytest.fixture()
def lab(docker_lab, tmp_path):  # type: ignore[no-untyped-def]
    docker_lab.image(V1, broken=False)
    made = make_workspace(tmp_path, docker_lab.registry, docker_lab.prefix)
    run = made.root / "srv/web-staging"
    (run / "docker-compose.yml").write_text(COMPOSE.format(registry=docker_lab.registry))
    path = made.root / "releasegate.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["stacks"]["web-staging"]["flags"] = {
        "dotenv": ".env",
        "apply": "restart",
        "declared": {"FEATURE_X_ENABLED": {"type": "bool", "default": False}},
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    yield made
    for project in made.projects.values():
        compose(project, "down", "-v", "--remove-orphans", "-t", "2", check=False)


def test_compose_flag_recreates_the_container_with_the_switch(lab: ComposeWorkspace) -> None:
    out = lab.rg("deploy", "web-staging", "staging", V1)
    assert out.returncode == 0, out.stdout + out.stderr
    base = f"http://127.0.0.1:{lab.ports['web-staging']}"
    assert http_get(f"{base}/feature") == (200, "false\n")
    env_file = lab.root / "srv/web-staging/.env"
    before = env_file.read_text()

    out = lab.rg("flag", "set", "web-staging", "staging", "FEATURE_X_ENABLED", "true")
    assert out.returncode == 0, out.stdout + out.stderr
    assert http_get(f"{base}/feature") == (200, "true\n")  # the new container sees it
    assert lab.health("web-staging") == (200, health_body(V1))  # same release, smoked
    assert env_file.read_text() == before + "FEATURE_X_ENABLED=true\n"  # IMAGE_TAG, secret kept

    out = lab.rg("flag", "rollback", "web-staging", "staging", "FEATURE_X_ENABLED")
    assert out.returncode == 0, out.stdout + out.stderr
    assert http_get(f"{base}/feature") == (200, "false\n")
    assert env_file.read_text() == before
    changes = [json.loads(line) for line in lab.rg(
        "flag", "history", "web-staging", "staging", "--json"
    ).stdout.splitlines()]  # fmt: skip
    assert [(c["old"], c["new"], c["release"]) for c in changes] == [
        (None, "true", V1),
        ("true", None, V1),
    ]
