"""Pure planning: a request + the stack's config + facts -> the ordered steps.

The same Plan value is what `--dry-run` prints, what the engine executes step by
step, and what the execution record lists, so the three can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from releasegate.model import Plan, Step


@dataclass(frozen=True)
class Facts:
    running: str | None  # the version `current` points at now
    rollback_target: str | None  # the last good version, if the release fails
    artifact: str | None  # where the version's artifact was found (None: missing)
    prepared: bool = False  # releases/<version> already complete
    rollout: Any = None  # fleets: releasegate.fleet.strategy.Rollout (batches, failure policy)


def _cmd(spec: Any) -> str:
    if spec is None:
        return ""
    argv = spec.argv()
    return argv[2] if argv[:2] == ["sh", "-c"] else " ".join(argv)


def _preflight_step(stack: Any) -> Step:
    pf = stack.preflight
    rules = [f"disk free >= {pf.disk_free_min_percent:g}% on {stack.dir}"]
    rules += [f"command {c} present" for c in pf.require_commands]
    rules += [f"check {c.name}: {_cmd(c.run)}" for c in pf.commands]
    rules += [f"shared file shared/{e} present" for e in stack.shared if not e.endswith("/")]
    if stack.runtime == "compose":
        rules += ["compose files valid (docker compose config)"]
        rules += [f"network {n} exists" for n in stack.compose.networks]
        rules += [f"rule {r}" for r in stack.compose_rules]
    return Step("preflight", "preflight: " + "; ".join(rules), {"rules": rules})


def _compose_steps(stack: Any, version: str, facts: Facts, *, migrate: bool) -> list[Step]:
    var = stack.compose.version_var
    project = stack.compose_project
    where = " on each host" if facts.rollout is not None else ""
    steps = [Step("prepare", f"pull images for {version}{where}: {facts.artifact or '(unknown)'}")]
    steps += _migrate_step(stack, migrate)
    if facts.rollout is not None and migrate:  # a fleet deploy: batches of hosts
        return [*steps, _rollout_step(stack, version, facts)]
    steps.append(
        Step("switch", f"set {var} in {stack.dir}/.env: {facts.running or '(none)'} -> {version}")
    )
    restart = (
        f"docker compose -p {project} up -d; wait for health (<= {stack.compose.wait_timeout:g}s)"
    )
    if stack.commands.restart is not None:
        restart += f"; run restart: {_cmd(stack.commands.restart)}"
    steps.append(Step("restart", restart))
    names = ", ".join(c.name for c in stack.smoke) or "no checks configured"
    steps.append(
        Step("smoke", f"smoke {version}: {names}", {"checks": [c.name for c in stack.smoke]})
    )
    return steps


def _migrate_step(stack: Any, migrate: bool) -> list[Step]:
    tool = getattr(stack, "migrations", None)
    if migrate and tool is not None:
        title = (
            f"run pending migrations with {tool.tool} on {tool.database}; "
            "if that fails, restore the database from this deploy's backup"
        )
        return [Step("migrate", title)]
    if migrate and stack.commands.migrate is not None:
        return [Step("migrate", f"run migrate: {_cmd(stack.commands.migrate)}")]
    return []


def _release_steps(stack: Any, version: str, facts: Facts, *, migrate: bool) -> list[Step]:
    if stack.runtime == "compose":
        return _compose_steps(stack, version, facts, migrate=migrate)
    steps = []
    if facts.prepared:
        steps.append(Step("prepare", f"reuse prepared release {stack.dir}/releases/{version}"))
    else:
        links = ", ".join(stack.shared) or "none"
        install = _cmd(stack.commands.install)
        title = (
            f"unpack {facts.artifact or '(artifact missing)'} to {stack.dir}/releases/{version}, "
            f"link shared ({links})" + (f", run install: {install}" if install else "")
        )
        steps.append(Step("prepare", title, {"artifact": facts.artifact}))
    steps += _migrate_step(stack, migrate)
    if facts.rollout is not None and migrate:  # a fleet deploy: batches of hosts
        return [*steps, _rollout_step(stack, version, facts)]
    steps.append(
        Step("switch", f"switch {stack.dir}/current: {facts.running or '(none)'} -> {version}")
    )
    if stack.commands.restart is not None:
        steps.append(Step("restart", f"run restart: {_cmd(stack.commands.restart)}"))
    names = ", ".join(c.name for c in stack.smoke) or "no checks configured"
    steps.append(
        Step("smoke", f"smoke {version}: {names}", {"checks": [c.name for c in stack.smoke]})
    )
    return steps


def _rollout_step(stack: Any, version: str, facts: Facts) -> Step:
    rollout = facts.rollout
    restart = _cmd(stack.commands.restart)
    names = ", ".join(c.name for c in stack.smoke) or "no checks"
    if stack.runtime == "compose":
        switch = (
            f"set {stack.compose.version_var}={version} in {stack.dir}/.env, "
            f"docker compose -p {stack.compose_project} up -d, wait for health"
        )
    else:
        switch = f"switch {stack.dir}/current -> {version}"
    each = (
        f"on each host: {switch}"
        + (f", run restart: {restart}" if restart else "")
        + f", smoke ({names})"
    )
    batches = [list(b) for b in rollout.batches]
    return Step(
        "rollout",
        f"roll out {rollout.describe()}; {each}",
        {"batches": batches, "allowed_failures": rollout.allowed_failures},
    )


def plan_deploy(
    stack: Any,
    version: str,
    facts: Facts,
    *,
    forced: bool = False,
    reason: str = "",
    skip_backup: bool = False,
) -> Plan:
    steps = [Step("lock", f"take the lock of {stack.name}")]
    if stack.promote_from:
        title = f"promotion: {version} must be the version verified on {stack.promote_from}"
        steps.append(
            Step(
                "promotion",
                title + (" (FORCED: the gate records but does not stop)" if forced else ""),
                {"source": stack.promote_from},
            )
        )
    steps.append(_preflight_step(stack))
    files = list(stack.backup_files)
    sources = [f"{src.name} ({src.kind})" for src in stack.backup.sources]
    if (files or sources) and not skip_backup:
        what = [f"sources {', '.join(sources)}"] if sources else []
        if files:
            where = " on each host" if stack.is_fleet else ""
            what += [f"config files {', '.join(files)}{where}"]
        title = "back up " + "; ".join(what) + (f" (before {version})" if sources else "")
        steps.append(Step("backup", title, {"files": files, "sources": sources}))
    steps += _release_steps(stack, version, facts, migrate=True)
    steps.append(Step("verify", f"mark {version} verified for {stack.name}"))
    if stack.runtime != "compose":  # images are removed by `releasegate prune`
        steps.append(
            Step(
                "cleanup",
                f"keep the last {stack.keep_releases} releases "
                "(and the verified and last good ones)",
            )
        )
    on_fail = facts.rollback_target or "nothing (no earlier good version)"
    notes = f"if switch, restart or smoke fails: roll back to {on_fail}"
    if facts.rollout is not None:
        notes = (
            f"if more than {facts.rollout.allowed_failures} host(s) fail switch, restart or "
            f"smoke: every host that switched goes back to {on_fail}"
        )
    return Plan(
        "deploy",
        stack.name,
        stack.env,
        version,
        tuple(steps),
        forced=forced,
        reason=reason,
        notes=notes,
    )


def plan_rollback(stack: Any, target: str, facts: Facts, *, reason: str = "") -> Plan:
    steps = [Step("lock", f"take the lock of {stack.name}")]
    # Migrations are not undone by switching back; the release's own code must cope (seed 003).
    steps += _release_steps(stack, target, facts, migrate=False)
    return Plan(
        "rollback",
        stack.name,
        stack.env,
        target,
        tuple(steps),
        reason=reason,
        notes=f"from {facts.running or '(none)'}",
    )
