"""The `swarm` runtime: a stack's compose file deployed to Docker Swarm with `docker stack
deploy`, the version in the image tag (the same variable as the compose runtime, kept in
the run directory's .env, whose values `docker stack deploy` gets in its environment).

Swarm rolls each service out itself (its `update_config`), and rolls it back itself when
`failure_action: rollback` says so; releasegate gates that, waits for it with a deadline,
and checks the outcome: every task of every service running the digest its spec pins, all
replicas there (a task counts as running once its healthcheck passes). On a failure the
services this run moved go back with `docker service rollback` (except those Swarm already
rolled back: a second rollback would go forward again), and the earlier digests must run
again before the rollback counts as done.

The manager is the stack's one host (local, or one ssh:// host): every command is a
program of operations, like the compose runtime's, which this class builds on (the .env
switch, the compose rules, the migrate hook).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from releasegate import hosttext
from releasegate.model import CheckResult
from releasegate.ops import Program, Sleep, cmd, done
from releasegate.redact import Redactor, read_env_file
from releasegate.runtimes import compose_commands as cc
from releasegate.runtimes import releases_commands as rc
from releasegate.runtimes import swarm_commands as sc
from releasegate.runtimes.base import HostSurvey, PhaseResult
from releasegate.runtimes.compose import ComposeRuntime, finding_checks
from releasegate.transport.base import CommandResult, Transport

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig

PULL_TIMEOUT_S = 900.0
DEPLOY_TIMEOUT_S = 300.0
POLL_S = 1.0


class SwarmRuntime(ComposeRuntime):
    def __init__(
        self,
        stack: StackConfig,
        transport: Transport,
        redact: Redactor,
        token: str,
        *,
        sleep: Any = time.sleep,
    ) -> None:
        super().__init__(stack, transport, redact, token, sleep=sleep)
        self.stack_name = self.project  # `docker stack deploy ... NAME`
        self._texts: dict[str, str] = {}  # the files as the survey read them (.env too)
        # The stack as it was just before this run's `docker stack deploy`: a failure goes
        # back to it (the runtime lives for the whole run, its way back included).
        self._before: sc.Before | None = None

    # -- facts ---------------------------------------------------------------------------
    def state_ops(self) -> Program[tuple[list[sc.Service], list[sc.Task]]]:
        """The stack's services and their tasks meant to run; ([], []) when there are none
        or Docker failed (then `self.docker_error` says why)."""
        self.docker_error = ""
        listed: CommandResult = yield cmd(sc.service_ids(self.stack_name), timeout=60)
        if not listed.ok:
            self.docker_error = f"docker service ls failed: {self._tail(listed)}"
            return [], []
        ids = listed.stdout.split()[: sc.MAX_TASKS]
        services: list[sc.Service] = []
        for chunk in sc.chunks(ids):
            found: CommandResult = yield cmd(sc.service_inspect(chunk), timeout=60)
            if not found.ok and not found.stdout.strip():
                self.docker_error = f"docker service inspect failed: {self._tail(found)}"
                return [], []
            services += sc.parse_services(found.stdout, self.stack_name)
        if not services:
            return [], []
        listed = yield cmd(sc.running_task_ids([s.id for s in services]), timeout=60)
        if not listed.ok:
            self.docker_error = f"docker service ps failed: {self._tail(listed)}"
            return sorted(services, key=lambda s: s.name), []
        tasks: list[sc.Task] = []
        for chunk in sc.chunks(listed.stdout.split()[: sc.MAX_TASKS]):
            # A task removed between the two commands fails its part only: keep the rest.
            found = yield cmd(sc.task_inspect(chunk), timeout=60)
            tasks += sc.parse_tasks(found.stdout)
        return sorted(services, key=lambda s: s.name), tasks

    def _files_ops(self) -> Program[dict[str, str] | hosttext.HostText]:
        """The stack files and .env as the host has them (name -> text), or why not."""
        texts: dict[str, str] = {}
        for name in [*self.files, ".env"]:
            read = yield from hosttext.read_program(self.root / name)
            if not read.ok:  # lost, too big, unreadable: never half a file
                return read
            if read.text is not None:
                texts[name] = read.text
        return texts

    def _images(self, version: str) -> list[str]:
        env = read_env_file(self._texts.get(".env", ""))
        env[self.var] = version
        files = {n: t for n, t in self._texts.items() if n != ".env"}
        return sc.version_images(files, env)

    def describe_artifact(self, version: str) -> str | None:
        if not self._texts:
            from releasegate.ops import run_sync

            found = run_sync(self._files_ops(), self.transport)
            if isinstance(found, dict):
                self._texts = found
        images = self._images(version)
        wanted = [i for i in images if sc.image_tag(i) == version] or images
        return ", ".join(wanted) or None

    def survey_ops(self) -> Program[HostSurvey]:
        """Disk and commands, the stack files and .env, then the stack's services: the
        running version is the tag the version services are deployed with."""
        argv = rc.survey(self.root, list(self.stack.preflight.require_commands), [])
        probe: CommandResult = yield cmd(argv, timeout=30)
        if not probe.ok:
            lost = probe.exit_code == -1 and bool(probe.error)
            return HostSurvey(False, probe.error or probe.describe(), probe=probe, lost=lost)
        texts = yield from self._files_ops()
        if isinstance(texts, hosttext.HostText):
            return HostSurvey(False, texts.error, probe=probe, lost=texts.lost)
        self._texts = texts
        self.learn_files({n: t for n, t in texts.items() if n != ".env"})
        services, tasks = yield from self.state_ops()
        root = rc.parse_survey(probe.stdout).root_exists
        if self.docker_error:
            return HostSurvey(False, self.docker_error, probe=probe, root_exists=root, files=texts)
        version = sc.running_tag(services, self.version_services())
        return HostSurvey(
            True,
            version or "not running",
            version,
            probe=probe,
            root_exists=root,
            files=texts,
            details={"services": sc.service_facts(services, tasks)},
        )

    # -- gates ---------------------------------------------------------------------------
    def docker_checks_ops(self, version: str | None) -> Program[list[CheckResult]]:
        """This engine is a Swarm manager, and every image of the version is in its
        registry: pulled here by the engine (its registry settings and credentials), so a
        missing tag refuses the deploy before anything is touched."""
        state: CommandResult = yield cmd(sc.node_state(), timeout=30)
        words = state.stdout.split()
        manager = state.ok and words[:2] == ["active", "true"]
        checks = [
            CheckResult(
                "swarm-manager",
                manager,
                "this engine is a Swarm manager"
                if manager
                else "this engine is not a Swarm manager: "
                + (state.stdout.strip()[:80] or self._tail(state)),
                hint="" if manager else "docker swarm init (or run releasegate on a manager)",
            )
        ]
        if version is None or not manager:
            return checks
        images = self._images(version)
        if not images:
            checks.append(
                CheckResult("image-tag", False, "the stack files name no image for this version")
            )
        for ref in images:
            pulled: CommandResult = yield cmd(sc.pull(ref), timeout=PULL_TIMEOUT_S)
            checks.append(
                CheckResult(
                    "image-tag",
                    pulled.ok,
                    f"image {ref} is in its registry"
                    if pulled.ok
                    else f"image {ref} cannot be pulled: {self._tail(pulled)}",
                    {"image": ref},
                    hint="" if pulled.ok else "push the image first, or check the version",
                )
            )
        return checks

    def rule_checks(
        self,
        files: list[Path],
        project_dir: Path,
        dotenv: Mapping[str, str],
        version: str | None,
    ) -> list[CheckResult]:
        """The stack's compose rules, then the Swarm rules (always: they decide whether
        an update and its rollback can work at all)."""
        from releasegate.compose.swarm_rules import lint_stack

        checks = super().rule_checks(files, project_dir, dotenv, version)
        texts = {str(p): p.read_text(encoding="utf-8", errors="replace") for p in files}
        findings = lint_stack(texts)
        if not findings:
            return [*checks, CheckResult("swarm-rules", True, "swarm rules passed", {})]
        return [*checks, *finding_checks(findings)]

    # -- phases --------------------------------------------------------------------------
    def prepare_ops(
        self, version: str, previous: str | None, *, prepared: bool = False, as_is: bool = False
    ) -> Program[PhaseResult]:
        """Pull the version's images on the manager and read their registry digests: what
        promotion compares with what was verified (as the compose runtime does)."""
        phase = PhaseResult(True, "")
        refs = self._images(version)
        if not refs:
            phase.ok = False
            phase.summary = f"the stack files name no image for {version}"
            return phase
        for ref in refs:
            result = yield from self._run(phase, sc.pull(ref), timeout=PULL_TIMEOUT_S)
            if not result.ok:
                phase.summary = f"pull of {ref} failed: {self._tail(result)}"
                return phase
        inspected: CommandResult = yield cmd(cc.image_inspect(refs), timeout=60)
        if inspected.ok:
            phase.facts["content"] = cc.pulled_digests(inspected.stdout)
        phase.summary = f"images for {version} pulled: {', '.join(refs)}"
        return phase

    def _deploy_env(self, version: str) -> Program[dict[str, str]]:
        """`docker stack deploy` reads no .env: its values (the switch just wrote the
        version there) travel in the command's environment, never in argv."""
        read = yield from hosttext.read_program(self.root / ".env")
        env = read_env_file(read.text or "")
        env[self.var] = version
        return env

    def restart_ops(self, version: str, previous: str | None) -> Program[PhaseResult]:
        """`docker stack deploy`, then wait (bounded) until every service has converged;
        or, on the way back from this run's failure, the services go back instead."""
        phase = PhaseResult(True, "")
        services, tasks = yield from self.state_ops()
        if self.docker_error:
            phase.ok, phase.summary = False, self.docker_error
            return phase
        before = self._before
        if before is not None and before.version == version:
            return (yield from self._undo_ops(phase, services, tasks, before))
        names = self.version_services()
        self._before = sc.Before(sc.running_tag(services, names), {s.name: s for s in services})
        env = yield from self._deploy_env(version)
        deployed = yield from self._run(
            phase,
            sc.deploy(self.stack_name, self.root, self.files),
            cwd=self.root,
            env=env,
            timeout=DEPLOY_TIMEOUT_S,
        )
        if not deployed.ok:
            phase.summary = f"docker stack deploy failed: {self._tail(deployed)}"
            return phase
        verdict, why, services, tasks = yield from self._wait_ops(
            lambda s, t: sc.rollout_verdict(s, t, self._before or sc.Before(None))
        )
        return self._judged(phase, verdict, why, services, tasks)

    def _undo_ops(
        self,
        phase: PhaseResult,
        services: list[sc.Service],
        tasks: list[sc.Task],
        before: sc.Before,
    ) -> Program[PhaseResult]:
        """Each service this run moved goes back: `docker service rollback`, unless Swarm
        already did it; one this run created is removed. Then wait until the digests that
        ran before run again."""
        undone: list[dict[str, str]] = []
        for service, action in sc.undo_commands(services, before):
            if action == "rollback":
                result = yield from self._run(phase, sc.rollback(service.id), timeout=120)
            elif action == "remove":
                result = yield from self._run(phase, sc.remove_service(service.id), timeout=120)
            else:
                undone.append(
                    {"service": service.name, "by": "swarm", "state": service.update_state}
                )
                continue
            undone.append({"service": service.name, "by": f"docker service {action}"})
            if not result.ok:
                phase.summary = (
                    f"docker service {action} {service.name} failed: {self._tail(result)}"
                )
                phase.facts["undone"] = undone
                return phase
        phase.facts["undone"] = undone
        verdict, why, services, tasks = yield from self._wait_ops(
            lambda s, t: sc.back_verdict(s, t, before)
        )
        self._before = None  # back where the run started
        phase = self._judged(phase, verdict, why, services, tasks)
        if phase.ok:
            moved = ", ".join(f"{u['service']} ({u['by']})" for u in undone) or "none moved"
            phase.summary = f"back: {moved}; {why}"
        return phase

    def _wait_ops(self, judge: Any) -> Program[tuple[str, str, list[sc.Service], list[sc.Task]]]:
        deadline = time.monotonic() + float(self.stack.compose_settings.wait_timeout)
        while True:
            services, tasks = yield from self.state_ops()
            verdict, why = judge(services, tasks)
            if self.docker_error:
                verdict, why = "fail", self.docker_error
            if verdict != "wait" or time.monotonic() >= deadline:
                return verdict, why, services, tasks
            yield Sleep(POLL_S)

    def _judged(
        self,
        phase: PhaseResult,
        verdict: str,
        why: str,
        services: Sequence[sc.Service],
        tasks: Sequence[sc.Task],
    ) -> PhaseResult:
        facts = sc.service_facts(services, tasks)
        phase.facts["services"] = facts
        # What the deploy records next to the tag (and promotion compares): the running digests.
        phase.facts["images"] = {
            name: {"image": f["image"], "digest": f["digest"]} for name, f in facts.items()
        }
        if verdict == "wait":
            phase.ok = False
            phase.summary = (
                f"not converged within {self.stack.compose_settings.wait_timeout:g}s: {why}"
            )
        else:
            phase.ok = phase.ok and verdict == "ok"
            phase.summary = why
        return phase

    def stop_ops(self, command: Any = None) -> Program[PhaseResult]:
        if command is not None:
            return super().stop_ops(command)
        return done(
            PhaseResult(
                False,
                "a swarm stack's writers are not stopped by releasegate: set backup.stop",
            )
        )
