"""Pure helpers for the `compose` runtime: argv builders and parsers (tested as data).

Every docker compose call names its project (-p) and its files (-f) explicitly, so two
stacks whose folders share a name never touch each other's containers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

# ${VAR}, ${VAR:-x}, $VAR ... as docker compose interpolates them.
_VAR_USE = r"\$(?:\{{{name}(?:[:?+\-}}]|$)|{name}(?![A-Za-z0-9_]))"


def base(
    project: str, root: PurePosixPath, files: Sequence[str], profiles: Sequence[str] = ()
) -> list[str]:
    argv = ["docker", "compose", "-p", project, "--project-directory", str(root)]
    for name in files:
        argv += ["-f", str(root / name)]
    for profile in profiles:
        argv += ["--profile", profile]
    return argv


def config_check(base_argv: list[str]) -> list[str]:
    return [*base_argv, "config", "--quiet"]


def config_images(base_argv: list[str]) -> list[str]:
    return [*base_argv, "config", "--images"]


def pull(base_argv: list[str]) -> list[str]:
    return [*base_argv, "pull", "--quiet"]


def up(base_argv: list[str]) -> list[str]:
    # --remove-orphans: a service dropped from the file does not linger on the old version.
    return [*base_argv, "up", "--detach", "--remove-orphans"]


def container_ids(base_argv: list[str]) -> list[str]:
    return [*base_argv, "ps", "--all", "--quiet"]


def inspect(ids: Sequence[str]) -> list[str]:
    return ["docker", "inspect", "--type", "container", "--", *ids]


def image_inspect(ids: Sequence[str]) -> list[str]:
    return ["docker", "image", "inspect", "--", *ids]


def image_rm(ref: str) -> list[str]:
    return ["docker", "image", "rm", "--", ref]


def network_exists(name: str) -> list[str]:
    return ["docker", "network", "inspect", "--format", "{{.Name}}", "--", name]


def docker_root() -> list[str]:
    return ["docker", "info", "--format", "{{.DockerRootDir}}"]


# ---- parsers ------------------------------------------------------------------------------


def env_value(text: str, name: str) -> str | None:
    """The value of `name` in a .env file (the last assignment wins, as in compose)."""
    found = None
    for line in text.splitlines():
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            found = value
    return found


def set_env_value(text: str, name: str, value: str) -> str:
    """`text` with `name=value`: the existing assignment replaced in place, else appended.

    Every other line (comments, secrets, ordering) is kept byte for byte.
    """
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    done = False
    for line in lines:
        key, sep, _ = line.strip().removeprefix("export ").partition("=")
        if sep and key.strip() == name:
            if not done:
                ending = "\n" if line.endswith("\n") else ""
                out.append(f"{name}={value}{ending}")
                done = True
            continue  # later duplicates would override ours: drop them
        out.append(line)
    if not done:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        out.append(f"{name}={value}\n")
    return "".join(out)


def uses_var(image: str, name: str) -> bool:
    """Does an image reference as written (before interpolation) use variable `name`?"""
    return re.search(_VAR_USE.format(name=re.escape(name)), image) is not None


def services_using_var(texts: Mapping[str, str], name: str) -> list[str]:
    """Services whose image, as written in these compose files (name -> text), uses the
    variable `name`; a file that does not parse is skipped (`compose-valid` reports it)."""
    import yaml

    found: list[str] = []
    for text in texts.values():
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        services = data.get("services") if isinstance(data, dict) else None
        for service, spec in (services if isinstance(services, dict) else {}).items():
            image = spec.get("image") if isinstance(spec, dict) else None
            if isinstance(image, str) and uses_var(image, name):
                found.append(str(service))
    return found


def running_tag(containers: list[dict[str, Any]], services: Sequence[str]) -> str | None:
    """The tag most running containers of `services` (all, if none is named) carry."""
    wanted = set(services)
    tags = [
        image_tag(c["image"])
        for c in containers
        if c["state"] == "running" and (not wanted or c["service"] in wanted)
    ]
    found = [t for t in tags if t]
    return max(set(found), key=found.count) if found else None


def image_tag(reference: str) -> str | None:
    """`127.0.0.1:5000/rg/web:sha-1234567@sha256:..` -> `sha-1234567`; None if untagged."""
    ref = reference.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else None


def parse_inspect(stdout: str) -> list[dict[str, Any]]:
    """`docker inspect` output -> one dict per container with what a deploy records."""
    try:
        items = json.loads(stdout or "[]")
    except json.JSONDecodeError:
        return []
    out = []
    for item in items if isinstance(items, list) else []:
        config = item.get("Config") or {}
        labels = config.get("Labels") or {}
        state = item.get("State") or {}
        health = state.get("Health") or {}
        log = health.get("Log") or []
        out.append(
            {
                "name": str(item.get("Name", "")).lstrip("/"),
                "service": labels.get("com.docker.compose.service", ""),
                "image": config.get("Image", ""),
                "image_id": item.get("Image", ""),
                "state": state.get("Status", ""),
                "exit_code": state.get("ExitCode"),
                "health": health.get("Status") if health else None,
                "health_output": (log[-1].get("Output", "") if log else "")[-300:],
            }
        )
    return out


def parse_repo_digests(stdout: str) -> dict[str, list[str]]:
    """`docker image inspect` output -> image id -> its RepoDigests."""
    try:
        items = json.loads(stdout or "[]")
    except json.JSONDecodeError:
        return {}
    return {
        str(i.get("Id", "")): [str(d) for d in i.get("RepoDigests") or []]
        for i in items
        if isinstance(i, dict)
    }


def pulled_digests(stdout: str) -> dict[str, str]:
    """`docker image inspect REF...` output -> "image REF" -> the registry digest of REF's own
    repository: the content a promotion is bound to (keyed as the verify record keys it)."""
    try:
        items = json.loads(stdout or "[]")
    except json.JSONDecodeError:
        return {}
    found: dict[str, str] = {}
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        digests = [str(d) for d in item.get("RepoDigests") or []]
        for tag in item.get("RepoTags") or []:
            repo = str(tag).rsplit(":", 1)[0]
            digest = next((d for d in digests if d.split("@", 1)[0] == repo), "")
            if "@" in digest:
                found[f"image {tag}"] = digest.split("@", 1)[1]
    return found


def image_digests(
    containers: list[dict[str, Any]], digests: Mapping[str, list[str]]
) -> dict[str, dict[str, str]]:
    """service -> the image reference it runs and its registry digest (from
    parse_repo_digests: the one of the image's own repository where there are several)."""
    out: dict[str, dict[str, str]] = {}
    for c in containers:
        repo = c["image"].split("@", 1)[0].rsplit(":", 1)[0] if c["image"] else ""
        known = digests.get(c["image_id"], [])
        digest = next((d for d in known if d.split("@", 1)[0] == repo), "")
        digest = digest or (known[0] if known else "")
        out[c["service"] or c["name"]] = {
            "image": c["image"],
            "digest": digest.split("@", 1)[1] if "@" in digest else "",
            "image_id": c["image_id"],
        }
    return out


def health_verdict(containers: list[dict[str, Any]]) -> tuple[str, str]:
    """('ok' | 'wait' | 'fail', why) for the containers of a project after `up`."""
    if not containers:
        return "fail", "no containers are running for this project"
    for c in containers:
        if c["health"] == "unhealthy":
            tail = f": {c['health_output'].strip()}" if c["health_output"].strip() else ""
            return "fail", f"{c['service'] or c['name']} is unhealthy{tail}"
        if c["state"] in ("exited", "dead"):
            return "fail", f"{c['service'] or c['name']} {c['state']} (exit {c['exit_code']})"
    waiting = [
        c["service"] or c["name"]
        for c in containers
        if c["state"] != "running" or c["health"] == "starting"
    ]
    if waiting:
        return "wait", "waiting for " + ", ".join(sorted(waiting))
    return "ok", f"{len(containers)} container(s) running" + (
        f", {sum(c['health'] == 'healthy' for c in containers)} healthy"
        if any(c["health"] for c in containers)
        else ""
    )
