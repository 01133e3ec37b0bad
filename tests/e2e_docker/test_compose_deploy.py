"""Seed 001 on a real Docker engine and registry: compose stacks deployed by image tag,
gated, smoked, rolled back automatically, promoted from staging to prod."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli import RELEASEGATE
from tests.lab.compose_workspace import ComposeWorkspace, make_workspace
from tests.lab.docker import compose, docker
from tests.lab.images import health_body, sha_version
from tests.lab.plans import last_json, planned, recorded, same_steps

pytestmark = pytest.mark.e2e

V1, V2, V3 = sha_version("compose-v1"), sha_version("compose-v2"), sha_version("compose-v3")
MISSING = "sha-0000dead"


@pytest.fixture()
def lab(docker_lab, tmp_path):  # type: ignore[no-untyped-def]
    for version, broken in ((V1, False), (V2, False), (V3, True)):
        docker_lab.image(version, broken=broken)
    made = make_workspace(tmp_path, docker_lab.registry, docker_lab.prefix)
    yield made
    for project in made.projects.values():
        compose(project, "down", "-v", "--remove-orphans", "-t", "2", check=False)


def test_v1_v2_then_unhealthy_v3_rolls_back_to_v2(lab: ComposeWorkspace) -> None:
    for version in (V1, V2):
        dry = lab.rg("deploy", "web-staging", "staging", version, "--dry-run", "--json")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        plan = planned(dry.stdout)
        out = lab.rg("deploy", "web-staging", "staging", version, "--json")
        assert out.returncode == 0, out.stdout + out.stderr
        assert same_steps(plan, recorded(last_json(out.stdout, "result")))  # the plan ran
        assert lab.health("web-staging") == (200, health_body(version))
    out = lab.rg("deploy", "web-staging", "staging", V3)
    assert out.returncode == 4, out.stdout + out.stderr
    assert "unhealthy" in out.stdout and f"rolled back to {V2}" in out.stdout
    assert lab.health("web-staging") == (200, health_body(V2))  # the old version answers
    env_text = (lab.root / "srv/web-staging/.env").read_text()
    assert f"IMAGE_TAG={V2}" in env_text and "API_TOKEN=tok-secret-123456" in env_text
    # the running version is read from the containers, and the digest sits next to the tag
    status = json.loads(lab.rg("status", "--json").stdout.splitlines()[0])
    assert status["running"] == V2
    deploys = lab.history("--stack", "web-staging", "--action", "deploy")
    assert [(d["version"], d["status"]) for d in deploys] == [
        (V1, "success"),
        (V2, "success"),
        (V3, "fail"),
    ]
    image = deploys[1]["details"]["images"]["web"]
    assert image["image"].endswith(f"/rg/web:{V2}") and image["digest"].startswith("sha256:")
    [rollback] = lab.history("--stack", "web-staging", "--action", "rollback")
    assert rollback["version"] == V2 and rollback["status"] == "success"
    # secrets from the run dir's .env never reach the ledger
    assert "tok-secret-123456" not in lab.rg("history", "--json", "--steps").stdout
    # prune: the failed v3's image goes; v2 (running, verified) and v1 (last good) stay
    out = lab.rg("prune", "web-staging", "--keep", "1", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    [choice] = [o for o in map(json.loads, out.stdout.splitlines()) if "keep" in o]
    assert choice["remove"] == [V3] and set(choice["keep"]) == {V1, V2}
    images = docker("image", "ls", "--format", "{{.Tag}}", "127.0.0.1:5000/rg/web").stdout
    assert V3 not in images.split() and V2 in images.split()


def test_missing_tag_fails_at_pull_and_leaves_the_stack_alone(lab: ComposeWorkspace) -> None:
    assert lab.rg("deploy", "web-staging", "staging", V1).returncode == 0
    out = lab.rg("deploy", "web-staging", "staging", MISSING)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "pull" in out.stdout and "nothing was switched" in out.stdout
    assert lab.health("web-staging") == (200, health_body(V1))
    assert f"IMAGE_TAG={V1}" in (lab.root / "srv/web-staging/.env").read_text()


def test_promotion_between_compose_stacks(lab: ComposeWorkspace) -> None:
    out = lab.rg("deploy", "web-prod", "prod", V1)
    assert out.returncode == 3 and "verified on web-staging" in out.stdout
    assert lab.rg("deploy", "web-staging", "staging", V1).returncode == 0
    out = lab.rg("deploy", "web-prod", "prod", V1)
    assert out.returncode == 0, out.stdout + out.stderr
    assert lab.health("web-prod") == (200, health_body(V1))


def test_build_and_latest_are_refused_in_prod_with_rule_ids(docker_lab, tmp_path) -> None:  # type: ignore[no-untyped-def]
    extra = (
        "  builder:\n    build: ./app\n    image: local/app:sha-1234567\n"
        "  cache:\n    image: 127.0.0.1:5000/rg/web:latest\n"
        "  proxy:\n    image: 127.0.0.1:5000/rg/web\n"
    )
    lab = make_workspace(tmp_path, docker_lab.registry, docker_lab.prefix, prod_extra=extra)
    out = lab.rg("deploy", "web-prod", "prod", V1, "--force", "--reason", "gate test")
    assert out.returncode == 3, out.stdout + out.stderr
    for rule in ("no-build", "no-latest", "untagged-image"):
        assert rule in out.stdout + out.stderr, rule
    assert "docker-compose.yml:" in out.stdout + out.stderr  # the file line as evidence
    ps = compose(lab.projects["web-prod"], "ps", "-q", check=False)
    assert ps.stdout.strip() == ""  # nothing was started


def test_second_concurrent_deploy_gets_the_lock_code(lab: ComposeWorkspace) -> None:
    first = subprocess.Popen(
        [RELEASEGATE, "deploy", "web-staging", "staging", V1],
        cwd=lab.root,
        env={**os.environ, "RELEASEGATE_USER": "tester"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "web-staging" in lab.rg("lock", "status").stdout:
                break
            time.sleep(0.1)
        second = lab.rg("deploy", "web-staging", "staging", V2)
        assert second.returncode == 5, second.stdout + second.stderr
        assert "locked by tester" in second.stdout + second.stderr
    finally:
        assert first.wait(timeout=300) == 0, first.communicate()
    assert lab.health("web-staging") == (200, health_body(V1))


def test_sync_stacks_and_prune(lab: ComposeWorkspace, tmp_path: Path) -> None:
    source = tmp_path / "source" / "web-staging"
    source.mkdir(parents=True)
    run = lab.root / "srv/web-staging"
    changed = (run / "docker-compose.yml").read_text().replace("retries: 2", "retries: 3")
    (source / "docker-compose.yml").write_text(changed)
    (source / ".env").write_text("IMAGE_TAG=never-copied\n")
    config = (lab.root / "releasegate.yaml").read_text()
    config = config.replace(
        "      wait_timeout: 60\n", f"      wait_timeout: 60\n      source: {source}\n", 1
    )
    (lab.root / "releasegate.yaml").write_text(config)

    out = lab.rg("sync", "web-staging", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "-      retries: 2" in out.stdout and "+      retries: 3" in out.stdout
    assert "retries: 2" in (run / "docker-compose.yml").read_text()  # dry run: unchanged
    out = lab.rg("sync", "web-staging")
    assert out.returncode == 0, out.stdout + out.stderr
    assert (run / "docker-compose.yml").read_text() == changed
    assert "never-copied" not in (run / ".env").read_text()
    backups = list((lab.root / ".releasegate/backups/web-staging").glob("*/manifest.json"))
    assert backups, "the replaced compose file was backed up"
    [sync] = lab.history("--action", "sync")
    assert sync["status"] == "success"

    for version in (V1, V2):
        assert lab.rg("deploy", "web-staging", "staging", version).returncode == 0
    table = lab.rg("stacks", "--json")
    rows = {r["stack"]: r for r in map(json.loads, table.stdout.splitlines())}
    assert rows["web-staging"]["running"] == V2 and rows["web-staging"]["verified"] == V2
    assert rows["web-staging"]["source_dir"] == str(source)

    out = lab.rg("prune", "web-staging", "--keep", "1", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    [choice] = [o for o in map(json.loads, out.stdout.splitlines()) if "keep" in o]
    # V1 was the last good before V2: protected; nothing else was deployed here
    assert V2 in choice["keep"] and V1 in choice["keep"] and choice["remove"] == []


def test_a_tag_pushed_again_with_other_content_is_refused_in_prod(
    lab: ComposeWorkspace, docker_lab
) -> None:  # type: ignore[no-untyped-def]
    # Promotion binds to the image digest staging verified, not to the tag's name.
    v4 = sha_version("compose-v4")
    docker_lab.image(v4)
    out = lab.rg("deploy", "web-staging", "staging", v4)
    assert out.returncode == 0, out.stdout + out.stderr
    docker_lab.image(v4, broken=True)  # the same tag, pushed again with other content
    dry = lab.rg("deploy", "web-prod", "prod", v4, "--dry-run", "--json")
    assert "content-gate" in [n for n, _ in planned(dry.stdout)]
    out = lab.rg("deploy", "web-prod", "prod", v4, "--json")
    assert out.returncode == 3, out.stdout + out.stderr
    result = last_json(out.stdout, "result")
    assert "other content" in result["message"] and "sha256:" in result["message"]
    assert [s["step"] for s in result["steps"]][-1] == "content-gate"  # refused before a switch
