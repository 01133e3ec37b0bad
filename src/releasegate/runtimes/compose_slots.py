"""Blue/green slots for the `compose` runtime, pure: a slot is its own compose project
(`<project>-blue`, `<project>-green`) from the same files, the version in the image tag
variable as for any compose deploy, and the slot's host port in RELEASEGATE_SLOT_PORT, which
the compose file must publish (e.g. `"127.0.0.1:${RELEASEGATE_SLOT_PORT:-8080}:80"`).
Argv builders and the preflight rule, tested as data; compose.py runs them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from releasegate.model import CheckResult
from releasegate.runtimes import compose_commands as cc

SLOT_PORT_VAR = "RELEASEGATE_SLOT_PORT"
SLOTS = ("blue", "green")


def slot_project(project: str, slot: str) -> str:
    """The compose project of one slot."""
    if slot not in SLOTS:  # a slot name reaches argv: only the two known ones
        raise ValueError(f"not a slot: {slot!r}")
    return f"{project}-{slot}"


def slot_base(
    project: str, slot: str, root: PurePosixPath, files: Sequence[str], profiles: Sequence[str]
) -> list[str]:
    return cc.base(slot_project(project, slot), root, files, profiles)


def stop(base_argv: list[str]) -> list[str]:
    # stop, not down: the containers stay (a stopped slot starts again with `up -d`).
    return [*base_argv, "stop"]


def _ports_of(spec: Any) -> list[str]:
    """A service's `ports:` entries as written: short strings, or the long form's
    `published` (before interpolation)."""
    ports = spec.get("ports") if isinstance(spec, dict) else None
    found: list[str] = []
    for entry in ports if isinstance(ports, list) else []:
        if isinstance(entry, str | int):
            found.append(str(entry))
        elif isinstance(entry, dict) and entry.get("published") is not None:
            found.append(str(entry["published"]))
    return found


def _services(texts: Mapping[str, str]) -> list[tuple[str, Any]]:
    """(name, spec) of every service in these compose files (name -> text); a file that
    does not parse is skipped (`compose-valid` reports it)."""
    import yaml

    found: list[tuple[str, Any]] = []
    for text in texts.values():
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        services = data.get("services") if isinstance(data, dict) else None
        found += [(str(n), s) for n, s in (services if isinstance(services, dict) else {}).items()]
    return found


def publishing_services(texts: Mapping[str, str], var: str = SLOT_PORT_VAR) -> list[str]:
    """Services that publish a port through `var`."""
    return [n for n, spec in _services(texts) if any(cc.uses_var(p, var) for p in _ports_of(spec))]


def slot_checks(texts: Mapping[str, str]) -> list[CheckResult]:
    """Preflight: two slots run side by side only if each publishes its own port, and no
    container has a fixed name (two projects cannot both create it)."""
    named = [
        n for n, spec in _services(texts) if isinstance(spec, dict) and "container_name" in spec
    ]
    checks = []
    if named:
        checks.append(
            CheckResult(
                "compose-slot-names",
                False,
                f"container_name: set for {', '.join(named)}: the second slot's project "
                "cannot create a container of the same name",
                {"services": named},
                hint="remove container_name: (compose names containers by project)",
            )
        )
    services = publishing_services(texts)
    if services:
        why = f"{', '.join(services)} publish(es) the slot's port (${{{SLOT_PORT_VAR}}})"
        checks.append(CheckResult("compose-slot-port", True, why, {"services": services}))
        return checks
    example = f'ports: ["127.0.0.1:${{{SLOT_PORT_VAR}:-8080}}:80"]'
    checks.append(
        CheckResult(
            "compose-slot-port",
            False,
            f"no service publishes ${{{SLOT_PORT_VAR}}}: both slots would ask for the same "
            "host port, so the new version could not start next to the old one",
            {"files": sorted(texts)},
            hint=f"publish the slot's port in the compose file, e.g. {example}",
        )
    )
    return checks


def describe(project: str, slot: str, action: str) -> str:
    """What start-slot / stop-old-slot run, for the plan's titles."""
    verb = "up -d (then the health wait)" if action == "start" else "stop"
    return f"docker compose -p {slot_project(project, slot)} {verb}"
