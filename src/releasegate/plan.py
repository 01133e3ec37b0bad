"""Pure planning: a request + the stack's config + facts -> the ordered steps.

The same Plan value is what `--dry-run` prints, what the engine executes step by
step, and what the execution record lists, so the three can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from releasegate.execution.rollout import Rollout
from releasegate.model import Plan, Step

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig
    from releasegate.proxy.slots import SlotFacts

# Runtimes whose versions are image tags: pulled in prepare, promoted by digest.
IMAGE_RUNTIMES = ("compose", "swarm")


@dataclass(frozen=True)
class Facts:
    """What the hosts' survey and the ledger say before a run: the plan's only inputs
    besides the config (the executor passes them on; nothing asks the hosts twice)."""

    running: str | None  # the version the hosts run now
    rollback_target: str | None  # the last good version, if the release fails
    artifact: str | None  # where the version's artifact was found (None: missing)
    prepared: bool = False  # releases/<version> already complete on every host
    rollout: Rollout | None = None  # the hosts in batches (one host: one batch)
    window: Any = None  # the deploy window's verdict now (gates.windows.Verdict), if any
    slots: SlotFacts | None = None  # stacks with `proxy:`: the live slot, each slot's version


def _cmd(spec: Any) -> str:
    if spec is None:
        return ""
    argv = spec.argv()
    return argv[2] if argv[:2] == ["sh", "-c"] else " ".join(argv)


def _preflight_step(stack: StackConfig) -> Step:
    pf = stack.preflight
    rules = [f"disk free >= {pf.disk_free_min_percent:g}% on {stack.dir}"]
    rules += [f"command {c} present" for c in pf.require_commands]
    rules += [f"check {c.name}: {_cmd(c.run)}" for c in pf.commands]
    rules += [f"shared file shared/{e} present" for e in stack.shared if not e.endswith("/")]
    if stack.runtime == "compose":
        rules += ["compose files valid (docker compose config)"]
        rules += [f"network {n} exists" for n in stack.compose_settings.networks]
        rules += [f"rule {r}" for r in stack.compose_rules]
    if stack.runtime == "swarm":
        from releasegate.runtimes.swarm_commands import preflight_rules

        rules += preflight_rules(stack.compose_rules)
    return Step("preflight", "preflight: " + "; ".join(rules), {"rules": rules})


def _migrate_step(stack: StackConfig, migrate: bool) -> list[Step]:
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


def _timeout(stack: StackConfig) -> str:
    return f" (timeout {stack.fleet.command_timeout:g}s)"


def _prepare_step(stack: StackConfig, version: str, facts: Facts) -> Step:
    where = " on each host" if _many(facts) else ""
    if stack.runtime in IMAGE_RUNTIMES:
        title = f"pull images for {version}{where}: {facts.artifact or '(unknown)'}"
        return Step("prepare", title)
    if facts.prepared:
        return Step("prepare", f"reuse prepared release {stack.dir}/releases/{version}{where}")
    links = ", ".join(stack.shared) or "none"
    install = _cmd(stack.commands.install)
    title = (
        f"unpack {facts.artifact or '(artifact missing)'} to {stack.dir}/releases/{version}"
        f"{where}, link shared ({links})"
        + (f", run install: {install}{_timeout(stack)}" if install else "")
    )
    return Step("prepare", title, {"artifact": facts.artifact})


def _many(facts: Facts) -> bool:
    return facts.rollout is not None and sum(len(b) for b in facts.rollout.batches) > 1


def _batch_steps(stack: StackConfig, version: str, facts: Facts) -> list[Step]:
    """Switch, restart and smoke, batch by batch (one host, or one batch: as always)."""
    batches = facts.rollout.batches if facts.rollout is not None else (("local",),)
    steps: list[Step] = []
    for index, batch in enumerate(batches, start=1):
        hosts = list(batch)
        data = {"hosts": hosts, "batch": index, "batches": len(batches)}
        prefix = f"batch {index}/{len(batches)} ({', '.join(hosts)}): " if len(batches) > 1 else ""
        if stack.runtime == "compose":
            var = stack.compose_settings.version_var
            switch = f"set {var} in {stack.dir}/.env: {facts.running or '(none)'} -> {version}"
            restart = (
                f"docker compose -p {stack.compose_project} up -d; "
                f"wait for health (<= {stack.compose_settings.wait_timeout:g}s)"
            )
            if stack.commands.restart is not None:
                restart += f"; run restart: {_cmd(stack.commands.restart)}"
        elif stack.runtime == "swarm":
            from releasegate.runtimes.swarm_commands import plan_titles

            switch, restart = plan_titles(stack, version, facts.running)
        else:
            switch = f"switch {stack.dir}/current: {facts.running or '(none)'} -> {version}"
            restart = ""
            if stack.commands.restart is not None:
                restart = f"run restart: {_cmd(stack.commands.restart)}{_timeout(stack)}"
        if _many(facts) and len(batches) == 1:
            switch += " on each host"
        steps.append(Step("switch", prefix + switch, data))
        if restart:
            steps.append(Step("restart", prefix + restart, data))
        names = ", ".join(c.name for c in stack.smoke) or "no checks configured"
        checks = {"checks": [c.name for c in stack.smoke], **data}
        steps.append(Step("smoke", f"{prefix}smoke {version}: {names}", checks))
    return steps


def _window_step(stack: StackConfig, facts: Facts, forced: bool) -> list[Step]:
    if stack.windows is None or facts.window is None:
        return []
    verdict = facts.window
    title = f"deploy window: {'OPEN' if verdict.open else 'CLOSED'}: {verdict.describe()}"
    if forced and not verdict.open:
        title += " (FORCED: the gate records but does not stop)"
    return [Step("window", title, {"verdict": verdict.as_dict()})]


def _cron_step(stack: StackConfig, target: str | None) -> list[Step]:
    """After the switch: the release's scheduled jobs, on every host that runs it."""
    if stack.cron is None:
        return []
    from releasegate.cron.install import Target

    where = Target.of(stack.name, stack.cron).describe()
    if target is not None:  # a rollback: the jobs that went with the target release
        title = f"put back the scheduled jobs installed with {target} in {where}"
    else:
        names = ", ".join(j.name for j in stack.cron.jobs) or "none (the block is removed)"
        title = f"install scheduled jobs in {where}: {names} (what was there backed up first)"
    return [Step("cron", title)]


def _release_steps(stack: StackConfig, version: str, facts: Facts, *, migrate: bool) -> list[Step]:
    gate = []
    if migrate and stack.runtime in IMAGE_RUNTIMES and stack.promote_from:
        title = (
            f"promotion: the pulled images' digests must be those verified on {stack.promote_from}"
        )
        gate.append(Step("content-gate", title, {"source": stack.promote_from}))
    if stack.proxy is not None and facts.slots is not None:  # blue/green behind a proxy
        from releasegate.proxy.slots import slot_steps

        steps, prepare = slot_steps(stack, version, facts.slots, rollback=not migrate)
        if facts.slots.error:  # the hosts' proxies cannot be asked or disagree: stop first
            return steps
        return [
            *([_prepare_step(stack, version, facts)] if prepare else []),
            *gate,
            *_migrate_step(stack, migrate),
            *steps,
        ]
    return [
        _prepare_step(stack, version, facts),
        *gate,
        *_migrate_step(stack, migrate),
        *_batch_steps(stack, version, facts),
    ]


def plan_deploy(
    stack: StackConfig,
    version: str,
    facts: Facts,
    *,
    forced: bool = False,
    reason: str = "",
    skip_backup: bool = False,
) -> Plan:
    steps = [Step("lock", f"take the lock of {stack.name}")]
    steps += _window_step(stack, facts, forced)
    if stack.promote_from:
        title = f"promotion: {version} must be the version verified on {stack.promote_from}"
        if stack.runtime not in IMAGE_RUNTIMES:  # images: their digests, once pulled
            title += ", with the artifact sha256 verified there"
        steps.append(
            Step(
                "promotion",
                title + (" (FORCED: the gate records but does not stop)" if forced else ""),
                {"source": stack.promote_from},
            )
        )
    steps.append(_preflight_step(stack))
    if stack.migrations is not None:
        steps.append(
            Step(
                "migration-gate",
                f"migration gate: pending migrations of {stack.migrations.database} linted"
                + (
                    ", rehearsed on this version, no drift, none failed"
                    if stack.env == "prod"
                    else " (findings are evidence outside prod)"
                )
                + (" (FORCED: recorded, does not stop)" if forced else ""),
            )
        )
    files = list(stack.backup_files)
    sources = [f"{src.name} ({src.kind})" for src in stack.backup.sources]
    if (files or sources) and not skip_backup:
        what = [f"sources {', '.join(sources)}"] if sources else []
        if files:
            where = " on each host" if _many(facts) else ""
            what += [f"config files {', '.join(files)}{where}"]
        title = "back up " + "; ".join(what) + (f" (before {version})" if sources else "")
        steps.append(Step("backup", title, {"files": files, "sources": sources}))
    steps += _release_steps(stack, version, facts, migrate=True)
    steps += _cron_step(stack, None)
    steps.append(Step("verify", f"mark {version} verified for {stack.name}"))
    if stack.watch is not None:
        from releasegate.watch.plan import watch_step

        steps.append(watch_step(stack, version, facts.rollback_target))
        if stack.proxy is not None and facts.slots is not None and not facts.slots.error:
            # the old slot stayed warm through the window: it stops after it
            from releasegate.proxy.slots import stop_after_watch

            steps += stop_after_watch(stack, facts.slots)
    if stack.runtime not in IMAGE_RUNTIMES:  # images are removed by `releasegate prune`
        steps.append(
            Step(
                "cleanup",
                f"keep the last {stack.keep_releases} releases "
                "(and the verified and last good ones)",
            )
        )
    on_fail = facts.rollback_target or "nothing (no earlier good version)"
    notes = f"if switch, restart or smoke fails: roll back to {on_fail}"
    if _many(facts) and facts.rollout is not None:
        notes = (
            f"{facts.rollout.describe()}; "
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


def plan_rollback(stack: StackConfig, target: str, facts: Facts, *, reason: str = "") -> Plan:
    steps = [Step("lock", f"take the lock of {stack.name}")]
    # Migrations are not undone by switching back; the release's own code must cope (seed 003).
    steps += _release_steps(stack, target, facts, migrate=False)
    steps += _cron_step(stack, target)
    if stack.flags is not None:  # before the restart, so the release starts with its flags
        at = next((i + 1 for i, s in enumerate(steps) if s.name == "switch"), len(steps))
        steps.insert(at, Step("flags", f"put back the flags recorded with {target}"))
    return Plan(
        "rollback",
        stack.name,
        stack.env,
        target,
        tuple(steps),
        reason=reason,
        notes=f"from {facts.running or '(none)'}",
    )


def plan_restore(
    stack: StackConfig,
    backup_id: str,
    running: str | None,
    *,
    fresh_backup: bool,
    start: bool,
    config: bool = False,
) -> Plan:
    """Restore a backup: save the current state first, stop the writers (databases only),
    restore, then start and smoke what runs."""
    steps = [Step("lock", f"take the lock of {stack.name}")]
    sources = [f"{s.name} ({s.kind})" for s in stack.backup.sources]
    if fresh_backup:
        steps.append(Step("backup", "back up the current state first (a fresh backup)"))
    if stack.backup.sources:
        stop = _cmd(stack.backup.stop) or _cmd(stack.commands.stop) or "the runtime's stop"
        steps.append(Step("stop", f"stop the writers: {stop}"))
    what = sources + (["config files " + ", ".join(stack.backup_files)] if config else [])
    steps.append(Step("restore", f"restore {', '.join(what) or 'nothing'} from {backup_id}"))
    if start and running:
        steps.append(Step("restart", f"start {running} again"))
        names = ", ".join(c.name for c in stack.smoke) or "no checks configured"
        steps.append(Step("smoke", f"smoke {running}: {names}"))
    return Plan("restore", stack.name, stack.env, running or "", tuple(steps), notes=backup_id)
