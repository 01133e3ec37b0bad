"""Pure helpers for the `swarm` runtime: argv builders and parsers (tested as data).

Docker's answers are read through `--format` templates that print one small JSON object
per line: a transport keeps at most ~16 kB of a command's output, and a full `docker
service inspect` of a few services is already more than that. Ids are asked for in chunks
for the same reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

STACK_LABEL = "com.docker.stack.namespace"
CHUNK = 25  # ids per inspect: ~400 characters a line stays far below the output bound
MAX_TASKS = 1000  # tasks judged at most (a bigger stack is not this tool's lab)

_SERVICE_FORMAT = (
    '{"id":{{json .ID}},"name":{{json .Spec.Name}},'
    '"image":{{json .Spec.TaskTemplate.ContainerSpec.Image}},'
    '"mode":{{json .Spec.Mode}},"update":{{json .UpdateStatus}}}'
)
_TASK_FORMAT = (
    '{"id":{{json .ID}},"service":{{json .ServiceID}},"slot":{{json .Slot}},'
    '"state":{{json .Status.State}},"desired":{{json .DesiredState}},'
    '"image":{{json .Spec.ContainerSpec.Image}},"err":{{json .Status.Err}}}'
)
# UpdateStatus.State values (docker/api/types/swarm): what an update (or Swarm's own
# rollback of it) is doing.
WAITING_STATES = ("updating", "rollback_started")
FAILED_STATES = ("paused", "rollback_paused", "rollback_started", "rollback_completed")


# ---- argv -----------------------------------------------------------------------------------


def node_state() -> list[str]:
    return ["docker", "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"]


def deploy(stack: str, root: PurePosixPath, files: Sequence[str]) -> list[str]:
    # --resolve-image always: each service's spec pins the digest the tag has now, so what
    # runs can be compared with what was pulled and verified. No --prune: a service dropped
    # from the file would be removed, and `docker service rollback` cannot bring it back.
    argv = ["docker", "stack", "deploy", "--resolve-image", "always"]
    for name in files:
        argv += ["-c", str(root / name)]
    return [*argv, "--", stack]


def service_ids(stack: str) -> list[str]:
    return ["docker", "service", "ls", "--quiet", "--filter", f"label={STACK_LABEL}={stack}"]


def service_inspect(ids: Sequence[str]) -> list[str]:
    return ["docker", "service", "inspect", "--format", _SERVICE_FORMAT, "--", *ids]


def running_task_ids(service_ids: Sequence[str]) -> list[str]:
    return [
        "docker", "service", "ps", "--quiet", "--no-trunc",
        "--filter", "desired-state=running", "--", *service_ids,
    ]  # fmt: skip


def task_inspect(ids: Sequence[str]) -> list[str]:
    return ["docker", "inspect", "--type", "task", "--format", _TASK_FORMAT, "--", *ids]


def pull(ref: str) -> list[str]:
    # The engine pulls: its own registry settings and credentials answer, as for the tasks.
    return ["docker", "pull", "--quiet", "--", ref]


def rollback(service_id: str) -> list[str]:
    return ["docker", "service", "rollback", "--detach", "--quiet", "--", service_id]


def remove_service(service_id: str) -> list[str]:
    return ["docker", "service", "rm", "--", service_id]


def chunks(items: Sequence[str], size: int = CHUNK) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


# ---- facts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    id: str
    name: str  # short: without the stack's prefix
    image: str  # the reference as deployed, without the digest
    digest: str  # the digest the spec pins ("" if none)
    replicas: int | None  # None: global mode
    update_state: str  # "" when no update ran
    update_started: str
    update_message: str


@dataclass(frozen=True)
class Task:
    id: str
    service: str  # service id
    state: str  # new, pending, assigned, ..., starting, running, failed, ...
    desired: str
    digest: str
    error: str


def split_digest(reference: str) -> tuple[str, str]:
    """`repo:tag@sha256:...` -> (`repo:tag`, `sha256:...`)."""
    ref, _, digest = reference.partition("@")
    return ref, digest


def _lines(stdout: str) -> Iterable[dict[str, Any]]:
    for line in stdout.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue  # a cut line (output bound) or noise: not a fact
        if isinstance(item, dict):
            yield item


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any, limit: int = 300) -> str:
    return str(value)[:limit] if isinstance(value, str | int) else ""


def parse_services(stdout: str, stack: str) -> list[Service]:
    out = []
    for item in _lines(stdout):
        ref, digest = split_digest(_text(item.get("image"), 600))
        mode = _dict(item.get("mode"))
        replicated = mode.get("Replicated")
        replicas = replicated.get("Replicas") if isinstance(replicated, dict) else None
        update = _dict(item.get("update"))
        name = _text(item.get("name"))
        out.append(
            Service(
                id=_text(item.get("id"), 64),
                name=name.removeprefix(f"{stack}_"),
                image=ref,
                digest=digest,
                replicas=replicas if isinstance(replicas, int) and replicas >= 0 else None,
                update_state=_text(update.get("State"), 40),
                update_started=_text(update.get("StartedAt"), 64),
                update_message=_text(update.get("Message")),
            )
        )
    return sorted(out, key=lambda s: s.name)


def parse_tasks(stdout: str) -> list[Task]:
    out = []
    for item in _lines(stdout):
        _ref, digest = split_digest(_text(item.get("image"), 600))
        out.append(
            Task(
                id=_text(item.get("id"), 64),
                service=_text(item.get("service"), 64),
                state=_text(item.get("state"), 40),
                desired=_text(item.get("desired"), 40),
                digest=digest,
                error=_text(item.get("err")),
            )
        )
    return out


def image_tag(reference: str) -> str | None:
    ref = split_digest(reference)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else None


def running_tag(services: Sequence[Service], names: Sequence[str]) -> str | None:
    """The tag most of `names`' services (all, if none is named) are deployed with."""
    wanted = set(names)
    tags = [image_tag(s.image) for s in services if not wanted or s.name in wanted]
    found = [t for t in tags if t]
    return max(sorted(set(found)), key=found.count) if found else None


def replicas_text(service: Service, tasks: Sequence[Task]) -> str:
    running = sum(t.service == service.id and t.state == "running" for t in tasks)
    want = "global" if service.replicas is None else str(service.replicas)
    return f"{running}/{want}"


def service_facts(services: Sequence[Service], tasks: Sequence[Task]) -> dict[str, dict[str, str]]:
    """service -> image, digest, replicas ("2/2"): what status shows, and the `images` a
    deploy records (the deploy workflow makes `image REF: digest` of them for promotion)."""
    out: dict[str, dict[str, str]] = {}
    for s in services:
        digests = sorted({t.digest for t in tasks if t.service == s.id and t.state == "running"})
        out[s.name] = {
            "image": s.image,
            # what the running tasks run; the spec's pin until one does
            "digest": digests[0] if len(digests) == 1 else s.digest,
            "replicas": replicas_text(s, tasks),
        }
    return out


# ---- judging a rollout ------------------------------------------------------------------------


@dataclass(frozen=True)
class Before:
    """The stack's services just before `docker stack deploy`: what a failure goes back to."""

    version: str | None
    services: dict[str, Service] = field(default_factory=dict)

    def ours(self, s: Service) -> bool:
        """Has this run moved the service (an update started since, or a new service)?"""
        b = self.services.get(s.name)
        return b is None or s.update_started != b.update_started or s.digest != b.digest

    def changed(self, services: Sequence[Service]) -> list[Service]:
        return [s for s in services if self.ours(s)]


def _tasks_verdict(s: Service, tasks: Sequence[Task], digest: str) -> str | None:
    """Why the service's tasks are not all running `digest` yet (None: they are)."""
    mine = [t for t in tasks if t.service == s.id and t.desired == "running"]
    old = [t for t in mine if t.digest != digest]
    if old:
        return f"{s.name}: {len(old)} task(s) still on {old[0].digest[:19] or 'another image'}"
    starting = [t for t in mine if t.state != "running"]
    if starting:
        err = next((t.error for t in starting if t.error), "")
        return f"{s.name}: task {starting[0].state}" + (f" ({err})" if err else "")
    if s.replicas is not None and len(mine) != s.replicas:
        return f"{s.name}: {len(mine)}/{s.replicas} task(s) running"
    return None


def rollout_verdict(
    services: Sequence[Service], tasks: Sequence[Task], before: Before
) -> tuple[str, str]:
    """('ok' | 'wait' | 'fail', why) after `docker stack deploy`: every task of every service
    runs its spec's digest and is running (Swarm marks a task running once its healthcheck
    passes), the replicas are all there, and no update of this run was paused or rolled back."""
    if not services:
        return "fail", "no service of the stack exists"
    waiting = []
    for s in services:
        if before.ours(s) and s.update_state in FAILED_STATES:
            what = "rolled back by Swarm" if s.update_state.startswith("rollback") else "paused"
            return "fail", f"{s.name}: update {what} ({s.update_state}): {s.update_message}"
        b = before.services.get(s.name)
        if b is not None and s.digest != b.digest and s.update_started == b.update_started:
            waiting.append(f"{s.name}: update not started yet")
            continue
        if before.ours(s) and s.update_state == "updating":
            waiting.append(f"{s.name}: updating")
            continue
        why = _tasks_verdict(s, tasks, s.digest)
        if why:
            waiting.append(why)
    if waiting:
        return "wait", "; ".join(waiting)
    return "ok", f"{len(services)} service(s) converged: " + ", ".join(
        f"{s.name} {replicas_text(s, tasks)}" for s in services
    )


def back_verdict(
    services: Sequence[Service], tasks: Sequence[Task], before: Before
) -> tuple[str, str]:
    """('ok' | 'wait' | 'fail', why) after going back: every service that existed before
    runs the digest it ran then, on all its replicas; a service this run created is gone."""
    waiting = []
    known = {s.name for s in services}
    for name in sorted(before.services):
        if name not in known:
            return "fail", f"{name}: the service is gone"
    for s in services:
        b = before.services.get(s.name)
        if b is None:
            waiting.append(f"{s.name}: created by this run, not removed yet")
            continue
        if s.update_state in ("paused", "rollback_paused"):
            return "fail", f"{s.name}: {s.update_state}: {s.update_message}"
        if s.digest != b.digest:
            waiting.append(f"{s.name}: spec still on {s.digest[:19]}")
            continue
        if s.update_state in WAITING_STATES:
            waiting.append(f"{s.name}: {s.update_state}")
            continue
        why = _tasks_verdict(s, tasks, b.digest)
        if why:
            waiting.append(why)
    if waiting:
        return "wait", "; ".join(waiting)
    return "ok", "the earlier digests run again: " + ", ".join(
        f"{s.name} {s.digest[:19]} {replicas_text(s, tasks)}" for s in services
    )


def undo_commands(services: Sequence[Service], before: Before) -> list[tuple[Service, str]]:
    """What to do with each service this run moved: ("rollback" | "remove" | "") -- nothing
    where Swarm already rolled it back (a second rollback would go forward again)."""
    out = []
    for s in before.changed(services):
        if s.name not in before.services:
            out.append((s, "remove"))
        elif s.update_state in ("rollback_started", "rollback_completed"):
            out.append((s, ""))
        elif s.digest == before.services[s.name].digest and s.update_state != "updating":
            out.append((s, ""))  # moved and already back (or never really changed)
        else:
            out.append((s, "rollback"))
    return out


# ---- the compose file's images ------------------------------------------------------------------


def version_images(
    texts: Mapping[str, str], env: Mapping[str, str], services: Sequence[str] = ()
) -> list[str]:
    """The image references the compose files name once interpolated with `env` (the .env
    and the version), sorted; `services` narrows them. A file that does not parse adds
    nothing (the rules report it)."""
    import yaml

    from releasegate.compose.project import TemplateError, interpolate

    wanted = set(services)
    found: set[str] = set()
    for text in texts.values():
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        defined = data.get("services") if isinstance(data, dict) else None
        for name, spec in (defined if isinstance(defined, dict) else {}).items():
            image = spec.get("image") if isinstance(spec, dict) else None
            if not isinstance(image, str) or (wanted and str(name) not in wanted):
                continue
            try:
                found.add(interpolate(image, env.get).value)
            except TemplateError:
                continue
    return sorted(i for i in found if i)


# ---- the plan's words ---------------------------------------------------------------------------


def preflight_rules(compose_rules: Sequence[str]) -> list[str]:
    """What a swarm stack's preflight checks, as the plan lists it."""
    from releasegate.compose.swarm_rules import RULES

    return [
        "this engine is a Swarm manager",
        "every image of the version can be pulled from its registry",
        *(f"rule {r}" for r in compose_rules),
        *(f"rule {r}" for r in RULES if r != "swarm-file"),
    ]


def plan_titles(stack: Any, version: str, running: str | None) -> tuple[str, str]:
    """(switch, restart) step titles of a swarm stack."""
    settings = stack.compose_settings
    switch = f"set {settings.version_var} in {stack.dir}/.env: {running or '(none)'} -> {version}"
    restart = (
        f"docker stack deploy {stack.compose_project}; wait until every task of every service "
        f"runs the new digest, healthy, all replicas (<= {settings.wait_timeout:g}s); "
        "on failure: docker service rollback of each service that moved (unless Swarm rolled "
        "it back), then the earlier digests must run again"
    )
    return switch, restart
