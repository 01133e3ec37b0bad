"""Rules a stack file must pass before `docker stack deploy` (the `swarm` runtime's preflight,
beside the seed's compose rules of releasegate.compose.lint).

Swarm rolls a service out by its `deploy.update_config` and goes back by its
`deploy.rollback_config`: without them a failed update is left half done (the default
failure action is `pause`) and a rollback runs with defaults nobody chose. A service that
takes traffic through the routing mesh must start its new task before stopping the old one
(`order: start-first`), or it drops requests during every update. A port published in
`mode: host` is the other way round: the new task cannot bind the port the old one still
holds on that node, so a start-first update waits forever ("host-mode port already in
use", seen on the lab's single node).

Pure: the files' texts in, Findings out (rule ids are stable). Files are read as YAML with
positions; several files merge per service and key, the later one winning, as `docker
stack deploy -c A -c B` does for these keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from releasegate.compose.lint import Finding

RULES: dict[str, str] = {
    "swarm-update-config": "the service has no deploy.update_config (how Swarm rolls it out)",
    "swarm-rollback-config": "the service has no deploy.rollback_config (how Swarm goes back)",
    "swarm-start-first": "the service publishes a port through the routing mesh but updates "
    "stop-first: it drops traffic during each update",
    "swarm-host-port-order": "the service publishes a port in mode host and updates "
    "start-first: the new task cannot bind the port, the update never ends",
    "swarm-file": "the stack file cannot be read as YAML, or has no services",
}


def _plain(node: Any) -> Any:
    """A yaml node -> plain data, each mapping as (dict, {key: line}) pairs kept aside."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        return {
            str(k.value) if isinstance(k, yaml.ScalarNode) else str(k): _plain(v)
            for k, v in node.value
        }
    if isinstance(node, yaml.SequenceNode):
        return [_plain(v) for v in node.value]
    if isinstance(node, yaml.ScalarNode):
        return node.value
    return None


def _services(text: str, name: str) -> tuple[dict[str, tuple[dict[str, Any], int]], str]:
    """service -> (its mapping, the line its name is on); or an error message."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        return {}, f"{name}: not valid YAML: {str(exc).splitlines()[0][:200]}"
    if not isinstance(root, yaml.MappingNode):
        return {}, ""
    found: dict[str, tuple[dict[str, Any], int]] = {}
    for key, value in root.value:
        if getattr(key, "value", None) != "services" or not isinstance(value, yaml.MappingNode):
            continue
        for skey, svalue in value.value:
            data = _plain(svalue)
            found[str(skey.value)] = (
                data if isinstance(data, dict) else {},
                skey.start_mark.line + 1,
            )
    return found, ""


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _ports(spec: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(ports published through the routing mesh, ports published in mode host)."""
    mesh: list[str] = []
    host: list[str] = []
    ports = spec.get("ports")
    for port in ports if isinstance(ports, list) else []:
        if isinstance(port, dict):
            if port.get("published") in (None, ""):
                continue  # not published: reached only inside the stack's networks
            shown = f"{port.get('published')}:{port.get('target')}"
            (host if port.get("mode") == "host" else mesh).append(shown)
        elif isinstance(port, str | int):
            text = str(port)
            # the short syntax "80" publishes on a random port of the mesh; "8080:80" too
            mesh.append(text)
    return mesh, host


def lint_stack(texts: Mapping[str, str]) -> list[Finding]:
    """Findings for the stack files (name -> text, in `-c` order)."""
    merged: dict[str, dict[str, Any]] = {}
    where: dict[str, tuple[str, int]] = {}
    findings: list[Finding] = []
    for name, text in texts.items():
        services, error = _services(text, name)
        if error:
            findings.append(Finding("swarm-file", "-", name, 1, error, "fix the file's syntax"))
            continue
        for service, (spec, line) in services.items():
            merged[service] = _merge(merged.get(service, {}), spec)
            where.setdefault(service, (name, line))
    if not merged and not findings:
        first = next(iter(texts), "?")
        findings.append(
            Finding("swarm-file", "-", first, 1, "no services are defined", "add services:")
        )
    for service, spec in merged.items():
        findings += _judge(service, spec, *where[service])
    return findings


def _judge(service: str, spec: Mapping[str, Any], file: str, line: int) -> list[Finding]:
    out: list[Finding] = []
    found_deploy = spec.get("deploy")
    deploy: dict[str, Any] = found_deploy if isinstance(found_deploy, dict) else {}
    update = deploy.get("update_config")
    back = deploy.get("rollback_config")
    mesh, host = _ports(spec)

    def found(rule: str, message: str, hint: str, **evidence: Any) -> None:
        out.append(Finding(rule, service, file, line, message, hint, evidence))

    if not isinstance(update, dict):
        found(
            "swarm-update-config",
            "has no deploy.update_config",
            "set deploy.update_config: order, delay, monitor, failure_action: rollback",
        )
    if not isinstance(back, dict):
        found(
            "swarm-rollback-config",
            "has no deploy.rollback_config",
            "set deploy.rollback_config: order, delay, monitor",
        )
    order = update.get("order", "stop-first") if isinstance(update, dict) else "stop-first"
    back_order = back.get("order", "stop-first") if isinstance(back, dict) else "stop-first"
    if mesh and order != "start-first":
        found(
            "swarm-start-first",
            f"publishes {', '.join(mesh)} through the routing mesh with update order {order}",
            "set deploy.update_config.order: start-first (the new task serves before the old "
            "one stops)",
            ports=mesh,
            order=order,
        )
    if host and "start-first" in (order, back_order):
        found(
            "swarm-host-port-order",
            f"publishes {', '.join(host)} in mode host with start-first: the new task cannot "
            "bind the port the old one holds, so the update never completes",
            "use order: stop-first for host-mode ports (or publish through the routing mesh "
            "and keep start-first)",
            ports=host,
            order=order,
            rollback_order=back_order,
        )
    return out
