"""`runtime: swarm` on the Docker lab's single-node Swarm (scripts/lab/swarm.sh up): stacks
deployed with `docker stack deploy`, waited for until every task runs the new digest and is
healthy, smoked, verified with the digests, promoted by digest; an unhealthy version rolled
back by Swarm itself and the earlier digests verified running again; a missing tag refused
before anything changes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.compose_workspace import ComposeWorkspace
from tests.lab.docker import REGISTRY, docker
from tests.lab.images import health_body, sha_version
from tests.lab.plans import last_json, planned, recorded, same_steps
from tests.lab.swarm import (
    REPOSITORY,
    build_image,
    image_ref,
    make_workspace,
    remove_stack,
    require_swarm,
)

pytestmark = pytest.mark.e2e

V1, V2, V3 = sha_version("swarm-v1"), sha_version("swarm-v2"), sha_version("swarm-v3")
V4 = sha_version("swarm-v4")  # healthy to Swarm, but its pages say V2: the smoke check fails
MISSING = "sha-0000dead"
REPOSITORY_REF = f"{REGISTRY}/{REPOSITORY}"


@pytest.fixture(scope="module")
def images() -> Iterator[dict[str, str]]:
    require_swarm()
    refs = {
        V1: build_image(V1),
        V2: build_image(V2),
        V3: build_image(V3, broken=True),
        V4: build_image(V4, serves=V2),
    }
    yield refs
    # The engine's pulled copies: by tag (preflight, prepare) and by digest (the tasks).
    pulled = docker("images", "-q", REPOSITORY_REF, check=False).stdout.split()
    if pulled:
        docker("image", "rm", "-f", *sorted(set(pulled)), check=False)


@pytest.fixture()
def lab(images: dict[str, str], tmp_path: Path) -> Iterator[ComposeWorkspace]:
    made = make_workspace(tmp_path)
    for name in made.projects.values():
        remove_stack(name)
    yield made
    for name in made.projects.values():
        remove_stack(name)


def _specs(stack: str) -> dict[str, str]:
    """service -> the image its spec pins (ref@digest), as Docker says."""
    ids = docker(
        "service", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={stack}"
    ).stdout.split()
    if not ids:
        return {}
    out = docker(
        "service", "inspect", "--format",
        "{{.Spec.Name}} {{.Spec.TaskTemplate.ContainerSpec.Image}}", *ids,
    ).stdout  # fmt: skip
    return {
        name.removeprefix(f"{stack}_"): image
        for name, image in (line.split() for line in out.splitlines() if line.strip())
    }


def _running_digests(stack: str) -> set[str]:
    """The digests of every task Swarm runs for the stack now."""
    ids = docker(
        "service", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={stack}"
    ).stdout.split()
    tasks = docker(
        "service", "ps", "-q", "--no-trunc", "--filter", "desired-state=running", *ids
    ).stdout.split()
    out = docker("inspect", "--type", "task", "--format",
                 "{{.Status.State}} {{.Spec.ContainerSpec.Image}}", *tasks).stdout  # fmt: skip
    return {line.split()[1].partition("@")[2] for line in out.splitlines() if "running" in line}


def test_v1_v2_promoted_then_unhealthy_v3_rolled_back_by_swarm(lab: ComposeWorkspace) -> None:
    staging = lab.projects["web-staging"]
    for version in (V1, V2):
        dry = lab.rg("deploy", "web-staging", "staging", version, "--dry-run", "--json")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        out = lab.rg("deploy", "web-staging", "staging", version, "--json")
        assert out.returncode == 0, out.stdout + out.stderr
        assert same_steps(planned(dry.stdout), recorded(last_json(out.stdout, "result")))
        assert lab.health("web-staging") == (200, health_body(version))
    specs = _specs(staging)
    assert set(specs) == {"web", "worker"}
    v2_digest = specs["web"].partition("@")[2]
    assert v2_digest.startswith("sha256:") and specs["worker"].endswith(v2_digest)
    assert _running_digests(staging) == {v2_digest}  # every task, not just the spec

    # verified with the digests; prod takes v2 by those digests (the content gate)
    assert lab.rg("deploy", "web-prod", "prod", V1).returncode == 3  # not verified there now
    out = lab.rg("deploy", "web-prod", "prod", V2, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    result = last_json(out.stdout, "result")
    [gate] = [s for s in result["steps"] if s["step"] == "content-gate"]
    assert gate["ok"], gate
    assert f"image {image_ref(V2)}" in json.dumps(gate) and v2_digest in json.dumps(gate)
    assert _running_digests(lab.projects["web-prod"]) == {v2_digest}
    assert lab.health("web-prod") == (200, health_body(V2))

    # v3's healthcheck fails: Swarm rolls web back itself (failure_action: rollback)
    out = lab.rg("deploy", "web-staging", "staging", V3)
    assert out.returncode == 4, out.stdout + out.stderr
    assert "rolled back by Swarm" in out.stdout and f"rolled back to {V2}" in out.stdout
    assert lab.health("web-staging") == (200, health_body(V2))
    assert _specs(staging) == specs  # the very specs of v2, digests included
    assert _running_digests(staging) == {v2_digest}
    deploys = lab.history("--stack", "web-staging", "--action", "deploy")
    assert [(d["version"], d["status"]) for d in deploys] == [
        (V1, "success"), (V2, "success"), (V3, "fail"),
    ]  # fmt: skip
    [rollback] = lab.history("--stack", "web-staging", "--action", "rollback")
    assert rollback["version"] == V2 and rollback["status"] == "success"
    # the rollback verified the earlier digests running again, and recorded them
    assert {i["digest"] for i in rollback["details"]["images"].values()} == {v2_digest}

    # v4 converges (healthy), its smoke check fails: releasegate rolls each service back
    out = lab.rg("deploy", "web-staging", "staging", V4)
    assert out.returncode == 4, out.stdout + out.stderr
    assert "smoke" in out.stdout and f"rolled back to {V2}" in out.stdout
    assert "worker (docker service rollback)" in out.stdout + out.stderr, out.stderr
    assert _specs(staging) == specs and _running_digests(staging) == {v2_digest}
    assert lab.health("web-staging") == (200, health_body(V2))

    # status: each service's running digest and replicas
    rows = {r["stack"]: r for r in map(json.loads, lab.rg("status", "--json").stdout.splitlines())}
    services = rows["web-staging"]["services"]
    assert services["web"]["digest"] == v2_digest and services["web"]["replicas"] == "1/1"
    assert services["worker"]["replicas"] == "2/2"
    assert rows["web-staging"]["running"] == V2
    assert "tok-secret-swarm-123" not in lab.rg("history", "--json", "--steps").stdout


def test_missing_tag_is_refused_before_anything_changes(lab: ComposeWorkspace) -> None:
    env_before = (lab.root / "srv/web-staging/.env").read_text()
    out = lab.rg("deploy", "web-staging", "staging", MISSING)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "REFUSED" in out.stdout and f"{MISSING}" in out.stdout
    assert "manifest unknown" in out.stdout or "not found" in out.stdout
    assert _specs(lab.projects["web-staging"]) == {}  # nothing was deployed
    assert (lab.root / "srv/web-staging/.env").read_text() == env_before
    rows = lab.history("--stack", "web-staging", "--steps")
    [deploy] = [r for r in rows if r["action"] == "deploy" and r["parent_id"] is None]
    assert deploy["status"] == "refused"
    assert [r["action"] for r in rows if r["parent_id"] == deploy["action_id"]] == ["preflight"]
