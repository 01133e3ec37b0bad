"""The compose runtime's argv builders and parsers, as data."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

import pytest

from releasegate.runtimes import compose_commands as cc

ROOT = PurePosixPath("/srv/stacks/odoo18-prod")


def test_every_call_names_its_project_and_files() -> None:
    base = cc.base("odoo18-prod", ROOT, ["docker-compose.yml", "prod.override.yml"])
    assert base == [
        "docker", "compose", "-p", "odoo18-prod", "--project-directory", str(ROOT),
        "-f", f"{ROOT}/docker-compose.yml", "-f", f"{ROOT}/prod.override.yml",
    ]  # fmt: skip
    assert cc.pull(base)[-2:] == ["pull", "--quiet"]
    assert cc.up(base)[-3:] == ["up", "--detach", "--remove-orphans"]
    assert cc.config_check(base)[-2:] == ["config", "--quiet"]


def test_a_version_never_reaches_argv() -> None:
    # The version travels in the environment (IMAGE_TAG), so argv is the same for all.
    base = cc.base("p", ROOT, ["compose.yaml"])
    head = ["docker", "compose", "-p", "p", "--project-directory", str(ROOT),
            "-f", f"{ROOT}/compose.yaml"]  # fmt: skip
    assert cc.pull(base) == [*head, "pull", "--quiet"]
    assert cc.up(base) == [*head, "up", "--detach", "--remove-orphans"]
    assert cc.config_check(base) == [*head, "config", "--quiet"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("IMAGE_TAG=sha-1\n", "sha-1"),
        ("A=1\nIMAGE_TAG='sha-2'\n", "sha-2"),
        ('export IMAGE_TAG="sha-3"\n', "sha-3"),
        ("IMAGE_TAG=a\nIMAGE_TAG=b\n", "b"),
        ("# IMAGE_TAG=x\nOTHER=1\n", None),
        ("", None),
    ],
)
def test_env_value(text: str, expected: str | None) -> None:
    assert cc.env_value(text, "IMAGE_TAG") == expected


def test_set_env_value_keeps_every_other_line() -> None:
    text = "# prod\nDB_PASSWORD=s3cret\nIMAGE_TAG=sha-1111111\nPORT=8069\n"
    out = cc.set_env_value(text, "IMAGE_TAG", "sha-2222222")
    assert out == "# prod\nDB_PASSWORD=s3cret\nIMAGE_TAG=sha-2222222\nPORT=8069\n"
    assert cc.set_env_value("A=1", "IMAGE_TAG", "v") == "A=1\nIMAGE_TAG=v\n"
    assert cc.set_env_value("", "IMAGE_TAG", "v") == "IMAGE_TAG=v\n"
    # a later duplicate would win in compose: it is dropped
    assert cc.set_env_value("IMAGE_TAG=a\nX=1\nIMAGE_TAG=b\n", "IMAGE_TAG", "c") == (
        "IMAGE_TAG=c\nX=1\n"
    )


@pytest.mark.parametrize(
    ("image", "uses"),
    [
        ("ghcr.io/o/r:${IMAGE_TAG}", True),
        ("ghcr.io/o/r:${IMAGE_TAG:-sha-1}", True),
        ("ghcr.io/o/r:$IMAGE_TAG", True),
        ("ghcr.io/o/r:${IMAGE_TAG_OLD}", False),
        ("ghcr.io/o/r:$IMAGE_TAGS", False),
        ("postgres:15", False),
    ],
)
def test_uses_var(image: str, uses: bool) -> None:
    assert cc.uses_var(image, "IMAGE_TAG") is uses


@pytest.mark.parametrize(
    ("ref", "tag"),
    [
        ("127.0.0.1:5000/rg/web:sha-1234567", "sha-1234567"),
        ("127.0.0.1:5000/rg/web", None),
        ("web:sha-1@sha256:" + "a" * 64, "sha-1"),
        ("web@sha256:" + "a" * 64, None),
        ("postgres", None),
    ],
)
def test_image_tag(ref: str, tag: str | None) -> None:
    assert cc.image_tag(ref) == tag


def container(**kw: object) -> dict[str, object]:
    base = {
        "Name": "/p-web-1",
        "Image": "sha256:abc",
        "Config": {"Image": "r/web:sha-1", "Labels": {"com.docker.compose.service": "web"}},
        "State": {"Status": "running", "ExitCode": 0},
    }
    base.update(kw)
    return base


def test_parse_inspect_and_health() -> None:
    healthy = container(
        State={"Status": "running", "Health": {"Status": "healthy", "Log": [{"Output": "ok"}]}}
    )
    plain = container(Name="/p-worker-1")
    parsed = cc.parse_inspect(json.dumps([healthy, plain]))
    assert [c["service"] for c in parsed] == ["web", "web"]
    assert parsed[0]["health"] == "healthy" and parsed[1]["health"] is None
    assert cc.health_verdict(parsed) == ("ok", "2 container(s) running, 1 healthy")


def test_health_verdicts() -> None:
    def one(state: str, health: str | None, output: str = "") -> list[dict[str, object]]:
        return [
            {"name": "n", "service": "web", "state": state, "exit_code": 1,
             "health": health, "health_output": output}
        ]  # fmt: skip

    assert cc.health_verdict(one("running", "starting"))[0] == "wait"
    assert cc.health_verdict(one("created", None))[0] == "wait"
    verdict, why = cc.health_verdict(one("running", "unhealthy", "wget: server returned 404"))
    assert verdict == "fail" and why == "web is unhealthy: wget: server returned 404"
    assert cc.health_verdict(one("exited", None)) == ("fail", "web exited (exit 1)")
    assert cc.health_verdict([])[0] == "fail"


def test_repo_digests() -> None:
    out = json.dumps([{"Id": "sha256:abc", "RepoDigests": ["r/web@sha256:" + "d" * 64]}])
    assert cc.parse_repo_digests(out) == {"sha256:abc": ["r/web@sha256:" + "d" * 64]}
    assert cc.parse_repo_digests("not json") == {}


def test_profiles_are_passed_to_every_call() -> None:
    base = cc.base("p", ROOT, ["compose.yaml"], ["web", "workers"])
    assert base[-4:] == ["--profile", "web", "--profile", "workers"]
    assert cc.up(base)[: len(base)] == base


def test_services_using_var_reads_images_as_written() -> None:
    texts = {
        "compose.yaml": "services:\n  web:\n    image: r/web:${IMAGE_TAG}\n"
        "  db:\n    image: postgres:16\n",
        "compose.override.yaml": "services:\n  worker:\n    image: r/worker:$IMAGE_TAG\n",
        "broken.yaml": "services: [: nope",
    }
    assert cc.services_using_var(texts, "IMAGE_TAG") == ["web", "worker"]
    assert cc.services_using_var(texts, "OTHER") == []
    assert cc.services_using_var({"a.yaml": "just a string"}, "IMAGE_TAG") == []


def test_running_tag_counts_running_version_services_only() -> None:
    def c(service: str, image: str, state: str = "running") -> dict[str, object]:
        return {"service": service, "image": image, "state": state}

    found = [
        c("web", "r/web:v2"),
        c("web", "r/web:v2"),
        c("web", "r/web:v1"),
        c("web", "r/web:v3", state="exited"),
        c("db", "postgres:16"),
    ]
    assert cc.running_tag(found, ["web"]) == "v2"
    assert cc.running_tag(found[-1:], ["web"]) is None
    assert cc.running_tag([c("db", "postgres:16")], []) == "16"  # no service named: all count


def test_image_digests_prefer_the_image_own_repository() -> None:
    containers = [
        {"service": "web", "name": "p-web-1", "image": "r/web:v2", "image_id": "sha256:1"},
        {"service": "", "name": "p-x-1", "image": "", "image_id": ""},
    ]
    digests = {"sha256:1": ["mirror/web@sha256:" + "a" * 64, "r/web@sha256:" + "b" * 64]}
    found = cc.image_digests(containers, digests)
    assert found["web"] == {
        "image": "r/web:v2",
        "digest": "sha256:" + "b" * 64,
        "image_id": "sha256:1",
    }
    assert found["p-x-1"]["digest"] == ""
