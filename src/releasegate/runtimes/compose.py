"""The `compose` runtime (seed 001): a version is an image tag; deploying it sets the
version variable in the run directory's .env, pulls (a tag missing from the registry
fails here, before anything running is touched), recreates the containers and waits
for Docker's own health status. The running version is read from the containers.

Each phase is a program of operations (releasegate.ops), carried out on each of the stack's
hosts by releasegate.execution.hosts. On an SSH host the files are the host's own.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

from releasegate import hosttext
from releasegate.model import CheckResult
from releasegate.ops import Program, Sleep, cmd, done
from releasegate.redact import Redactor
from releasegate.runtimes import compose_commands as cc
from releasegate.runtimes import compose_slots as cs
from releasegate.runtimes import releases_commands as rc
from releasegate.runtimes.base import HostSurvey, PhaseResult, base_env
from releasegate.transport.base import CommandResult, Transport

if TYPE_CHECKING:
    from releasegate.compose.lint import Finding
    from releasegate.config.schema import StackConfig

PULL_TIMEOUT_S = 900.0
UP_TIMEOUT_S = 600.0
POLL_S = 0.5

T = TypeVar("T")


class ComposeRuntime:
    def __init__(
        self,
        stack: StackConfig,
        transport: Transport,
        redact: Redactor,
        token: str,
        *,
        sleep: Any = time.sleep,
    ) -> None:
        self.stack = stack
        self.transport = transport
        self.redact = redact
        self.token = token
        self.root = PurePosixPath(str(stack.dir))
        self.project: str = stack.compose_project
        self.files: list[str] = stack.compose_files
        self.var: str = stack.compose_settings.version_var
        self.profiles: list[str] = list(stack.compose_settings.profiles)
        self.base = cc.base(self.project, self.root, self.files, self.profiles)
        self._sleep = sleep
        self._services: list[str] | None = None
        self.docker_error = ""

    # -- facts ---------------------------------------------------------------------------
    def containers_ops(self, base: list[str] | None = None) -> Program[list[dict[str, Any]]]:
        """The project's containers (`base`: a slot's project), inspected; [] when there are
        none or Docker failed (then `self.docker_error` says why)."""
        self.docker_error = ""
        ids: CommandResult = yield cmd(cc.container_ids(base or self.base), timeout=60)
        if not ids.ok:
            self.docker_error = f"docker compose ps failed: {self._tail(ids)}"
            return []
        found = ids.stdout.split()
        if not found:
            return []
        inspected: CommandResult = yield cmd(cc.inspect(found), timeout=60)
        if not inspected.ok:
            self.docker_error = f"docker inspect failed: {self._tail(inspected)}"
            return []
        return cc.parse_inspect(inspected.stdout)

    def version_services(self) -> list[str]:
        """Services whose image carries the version: `version_service`, or every service
        whose image, as written, uses the version variable."""
        if self._services is None:
            configured = self.stack.compose_settings.version_service
            # Not learnt from a survey: only the configured service is known.
            return [configured] if configured else []
        return self._services

    def learn_files(self, texts: Mapping[str, str]) -> None:
        """The compose files as a host has them (a fleet's survey read them): which services
        carry the version, without reading this machine's copy."""
        configured = self.stack.compose_settings.version_service
        self._services = [configured] if configured else cc.services_using_var(texts, self.var)

    def running_version_ops(self) -> Program[str | None]:
        containers = yield from self.containers_ops()
        return cc.running_tag(containers, self.version_services())

    def describe_artifact(self, version: str) -> str | None:
        result = self.transport.run(
            cc.config_images(self.base), env={self.var: version}, timeout=60
        )
        if not result.ok:
            return None
        images = sorted({line.strip() for line in result.stdout.splitlines() if line.strip()})
        wanted = [i for i in images if cc.image_tag(i) == version] or images
        return ", ".join(wanted) or None

    def env_for(self, version: str, previous: str | None = None) -> dict[str, str]:
        env = base_env(self.stack, version, previous)
        env["COMPOSE_PROJECT_NAME"] = self.project
        if version:
            env[self.var] = version
        return env

    # -- gates ---------------------------------------------------------------------------
    def controller_checks(self, version: str | None) -> list[CheckResult]:
        return []  # a tag missing from the registry fails each host's pull, before any switch

    def content(self, version: str) -> dict[str, str]:
        return {}  # image digests are known once pulled (see the deploy's verify record)

    def before_prepare(self, version: str) -> None:
        return None

    def smoke_dir(self) -> PurePosixPath:
        return self.root

    def check_dir(self) -> PurePosixPath | None:
        return self.root

    @property
    def remote(self) -> bool:
        return getattr(self.transport, "name", "local") != "local"

    def survey_ops(self) -> Program[HostSurvey]:
        """Disk and commands (as for releases), the compose files and .env, then the
        project's containers: the running tag is what the version services run."""
        argv = rc.survey(self.root, list(self.stack.preflight.require_commands), [])
        probe: CommandResult = yield cmd(argv, timeout=30)
        if not probe.ok:
            lost = probe.exit_code == -1 and bool(probe.error)
            return HostSurvey(False, probe.error or probe.describe(), probe=probe, lost=lost)
        texts: dict[str, str] = {}
        for name in [*self.files, ".env"]:
            read = yield from hosttext.read_program(self.root / name)
            if read.lost:
                return HostSurvey(False, read.error, probe=probe, lost=True)
            if not read.ok:  # too big, not text, unreadable: never half a file
                return HostSurvey(False, read.error, probe=probe)
            if read.text is not None:
                texts[name] = read.text
        self.learn_files({n: t for n, t in texts.items() if n != ".env"})
        root = rc.parse_survey(probe.stdout).root_exists
        if self.stack.proxy is not None:  # blue/green: a project per slot
            return (yield from self._slots_survey(probe, root, texts))
        containers = yield from self.containers_ops()
        if self.docker_error:
            return HostSurvey(False, self.docker_error, probe=probe, root_exists=root, files=texts)
        version = cc.running_tag(containers, self.version_services())
        return HostSurvey(
            True,
            version or "not running",
            version,
            probe=probe,
            root_exists=root,
            files=texts,
        )

    def _slots_survey(
        self, probe: CommandResult, root: bool, texts: dict[str, str]
    ) -> Program[HostSurvey]:
        """The running version of a slot stack: the one the `switch` step wrote to .env (as
        `current` for releases), if a slot's project runs it; each slot's tag as details."""
        tags: dict[str, str | None] = {}
        for slot in cs.SLOTS:
            containers = yield from self.containers_ops(self._slot_base(slot))
            if self.docker_error:
                return HostSurvey(
                    False, self.docker_error, probe=probe, root_exists=root, files=texts
                )
            tags[slot] = cc.running_tag(containers, self.version_services())
        switched = cc.env_value(texts.get(".env", ""), self.var)
        version = switched if switched and switched in tags.values() else None
        return HostSurvey(
            True,
            version or "not running",
            version,
            probe=probe,
            root_exists=root,
            files=texts,
            details={"slots": {k: v for k, v in tags.items() if v}},
        )

    def host_checks_ops(self, version: str | None, seen: HostSurvey) -> Program[list[CheckResult]]:
        """Disk and commands from the survey; the files are there, valid for this version,
        their networks exist, and the compose rules pass on the host's own files."""
        from releasegate.gates.preflight import probe_verdicts

        assert seen.probe is not None  # a survey that answered has probed
        checks = probe_verdicts(
            self.root,
            seen.probe,
            list(self.stack.preflight.require_commands),
            [],
            self.stack.preflight.disk_free_min_percent,
        )
        missing = [f for f in self.files if f not in seen.files]
        if missing:
            checks.append(
                CheckResult(
                    "compose-files",
                    False,
                    f"compose file(s) missing in {self.root}: {', '.join(missing)}",
                    {"missing": missing},
                    hint=f"`releasegate sync {self.stack.name}` copies them from the source dir"
                    if self.stack.compose_settings.source and not self.remote
                    else "put them in the stack's dir, or set compose.files",
                )
            )
            return checks
        checks += yield from self.docker_checks_ops(version)
        checks += self._host_rule_checks(seen.files, version)
        if self.stack.proxy is not None:  # two projects side by side, each on its own port
            checks += cs.slot_checks({n: t for n, t in seen.files.items() if n != ".env"})
        return checks

    def _host_rule_checks(self, texts: Mapping[str, str], version: str | None) -> list[CheckResult]:
        """The compose rules on the host's own files. On this machine they are read where
        they are (includes and extends resolve beside them); a remote host's are copied
        into a folder here, and findings named by their path on the host."""
        from releasegate.redact import read_env_file

        dotenv = read_env_file(texts.get(".env", ""))
        if not self.remote:
            root = Path(str(self.root))
            return self.rule_checks([root / f for f in self.files], root, dotenv, version)
        if not self.stack.compose_rules:
            return []
        import tempfile

        with tempfile.TemporaryDirectory(prefix="releasegate-compose-") as tmp:
            where = Path(tmp)
            paths = []
            for name in self.files:
                path = where / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(texts[name], encoding="utf-8")
                paths.append(path)
            found = self.rule_checks(paths, where, dotenv, version)
        prefix = f"{tmp}/"
        return [
            CheckResult(
                c.name,
                c.ok,
                c.summary.replace(prefix, f"{self.root}/"),
                {
                    k: (v.replace(prefix, f"{self.root}/") if isinstance(v, str) else v)
                    for k, v in c.evidence.items()
                },
                c.hint,
            )
            for c in found
        ]

    def docker_checks_ops(self, version: str | None) -> Program[list[CheckResult]]:
        """The files are valid for this version, and the networks they need exist."""
        env = {self.var: version} if version else {}
        valid: CommandResult = yield cmd(cc.config_check(self.base), env=env, timeout=60)
        checks = [
            CheckResult(
                "compose-valid",
                valid.ok,
                "docker compose config: valid"
                if valid.ok
                else f"docker compose config failed: {self._tail(valid)}",
                {"files": self.files},
                hint="" if valid.ok else "run `docker compose config` in the run dir",
            )
        ]
        for network in self.stack.compose_settings.networks:
            found: CommandResult = yield cmd(cc.network_exists(network), timeout=30)
            checks.append(
                CheckResult(
                    f"network:{network}",
                    found.ok,
                    f"network {network} exists" if found.ok else f"network {network} is missing",
                    hint="" if found.ok else f"docker network create {network}",
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
        """The stack's compose rules on `files` (read here), variables from `dotenv`."""
        rules = self.stack.compose_rules
        if not rules:
            return []
        from releasegate.compose.lint import lint_project
        from releasegate.compose.project import load_project
        from releasegate.errors import ReleasegateError

        env = dict(dotenv)
        if version:
            env[self.var] = version
        try:
            project = load_project(files, env=env, profiles=self.profiles, project_dir=project_dir)
        except ReleasegateError as exc:
            return [CheckResult("compose-rules", False, exc.message, hint=exc.hint)]
        findings = lint_project(project, rules=rules)
        if not findings:
            return [
                CheckResult("compose-rules", True, f"compose rules passed: {', '.join(rules)}", {})
            ]
        return finding_checks(findings)

    # -- phases --------------------------------------------------------------------------
    def prepare_ops(
        self, version: str, previous: str | None, *, prepared: bool = False, as_is: bool = False
    ) -> Program[PhaseResult]:
        """`docker compose pull` is the preparation (cheap when the images are cached)."""
        phase = PhaseResult(True, "")
        result = yield from self._run(
            phase, cc.pull(self.base), env={self.var: version}, timeout=PULL_TIMEOUT_S
        )
        if not result.ok:
            phase.summary = f"pull of {version} failed: {self._tail(result)}"
            return phase
        # What was pulled, by registry digest: promotion compares it with what was verified.
        listed: CommandResult = yield cmd(
            cc.config_images(self.base), env={self.var: version}, timeout=60
        )
        refs = sorted({ln.strip() for ln in listed.stdout.splitlines() if ln.strip()})
        if listed.ok and refs:
            inspected: CommandResult = yield cmd(cc.image_inspect(refs), timeout=60)
            if inspected.ok:
                phase.facts["content"] = cc.pulled_digests(inspected.stdout)
        phase.summary = f"images for {version} pulled"
        return phase

    def migrate_ops(self, version: str, previous: str | None) -> Program[PhaseResult]:
        phase = PhaseResult(True, "")
        spec = self.stack.commands.migrate
        if spec is not None:
            result = yield from self._run(
                phase,
                spec.argv(),
                cwd=self.root,
                env=self.env_for(version, previous),
                timeout=PULL_TIMEOUT_S,
                label="migrate",
            )
            phase.summary = (
                "migrate command passed"
                if result.ok
                else f"migrate command failed: {result.describe()}"
            )
        return phase

    def switch_ops(self, version: str) -> Program[PhaseResult]:
        """Set the version variable in <dir>/.env: written aside (the text on stdin, never in
        argv), given the old file's mode, then renamed over it; one round trip after the read."""
        phase = PhaseResult(True, "")
        env_path = self.root / ".env"
        current = yield from hosttext.read_program(env_path)
        if not current.ok:  # an unreadable or oversized .env is never rewritten from a guess
            phase.ok, phase.summary = False, current.error
            return phase
        text = current.text or ""
        old = cc.env_value(text, self.var)
        written = yield from phase.chain(
            self.redact,
            [hosttext.write_argv(env_path)],
            stdin=cc.set_env_value(text, self.var, version),
        )
        if not written.ok:
            phase.summary = f"could not write {self.var} to {env_path}: {self._tail(written)}"
            return phase
        phase.summary = f"{self.var}: {old or '(unset)'} -> {version} in {env_path}"
        return phase

    def restart_ops(self, version: str, previous: str | None) -> Program[PhaseResult]:
        """`up -d`, then wait for every container to run and, where Docker has a health
        check for it, to be healthy; unhealthy or exited fails at once. A slot stack
        (`proxy:`) restarts the slot whose containers carry `version` (a flag change, a
        restore), never a third project."""
        if self.stack.proxy is None:
            return (yield from self._up_ops(self.base, version, previous, {}))
        slot = yield from self._slot_of_ops(version)
        if slot is None:
            why = self.docker_error or f"no slot's project has containers of {version}"
            return PhaseResult(False, f"nothing to restart: {why}")
        return (
            yield from self._up_ops(
                self._slot_base(slot), version, previous, self._slot_extra(slot)
            )
        )

    def _slot_of_ops(self, version: str) -> Program[str | None]:
        """The slot whose containers (running first, else stopped) carry `version`."""
        found: dict[str, list[str]] = {}
        for slot in cs.SLOTS:
            containers = yield from self.containers_ops(self._slot_base(slot))
            wanted = set(self.version_services())
            found[slot] = [
                "running" if c["state"] == "running" else "stopped"
                for c in containers
                if cc.image_tag(c["image"]) == version and (not wanted or c["service"] in wanted)
            ]
        ranked = [s for s in cs.SLOTS if "running" in found[s]]
        ranked += [s for s in cs.SLOTS if found[s] and s not in ranked]
        return ranked[0] if ranked else None

    def _up_ops(
        self, base: list[str], version: str, previous: str | None, extra: dict[str, str]
    ) -> Program[PhaseResult]:
        """`up -d` of the project `base` names (with `extra` in the environment), the team's
        restart hook, then the health wait."""
        phase = PhaseResult(True, "")
        result = yield from self._run(
            phase, cc.up(base), env={self.var: version, **extra}, timeout=UP_TIMEOUT_S
        )
        if not result.ok:
            phase.summary = f"docker compose up failed: {self._tail(result)}"
            return phase
        spec = self.stack.commands.restart
        if spec is not None:
            hook = yield from self._run(
                phase,
                spec.argv(),
                cwd=self.root,
                env={**self.env_for(version, previous), **extra},
                timeout=UP_TIMEOUT_S,
                label="restart",
            )
            if not hook.ok:
                phase.summary = f"restart command failed: {hook.describe()}"
                return phase
        deadline = time.monotonic() + float(self.stack.compose_settings.wait_timeout)
        while True:
            containers = yield from self.containers_ops(base)
            verdict, why = cc.health_verdict(containers)
            if self.docker_error:
                verdict, why = "fail", self.docker_error
            if verdict != "wait" or time.monotonic() >= deadline:
                break
            yield Sleep(POLL_S)
        phase.facts["containers"] = containers
        phase.facts["images"] = yield from self._digests_ops(containers)
        if verdict == "wait":
            phase.ok = False
            phase.summary = (
                f"not healthy within {self.stack.compose_settings.wait_timeout:g}s: {why}"
            )
        elif verdict == "fail":
            phase.ok = False
            phase.summary = why
        else:
            phase.summary = why
        return phase

    def _digests_ops(self, containers: list[dict[str, Any]]) -> Program[dict[str, dict[str, str]]]:
        ids = sorted({c["image_id"] for c in containers if c["image_id"]})
        digests: dict[str, list[str]] = {}
        if ids:
            result: CommandResult = yield cmd(cc.image_inspect(ids), timeout=60)
            digests = cc.parse_repo_digests(result.stdout) if result.ok else {}
        return cc.image_digests(containers, digests)

    # -- blue/green slots (`proxy:`; workflows/slots.py calls these) -----------------------
    def _slot_base(self, slot: str) -> list[str]:
        return cs.slot_base(self.project, slot, self.root, self.files, self.profiles)

    def _slot_extra(self, slot: str) -> dict[str, str]:
        from releasegate.proxy.slots import slot_env, transport_host

        assert self.stack.proxy is not None  # slot steps are planned only with `proxy:`
        return {
            **slot_env(self.stack.proxy, slot, transport_host(self.transport)),
            "COMPOSE_PROJECT_NAME": cs.slot_project(self.project, slot),
        }

    def slot_start_ops(
        self, slot: str, version: str, previous: str | None, was: str | None
    ) -> Program[PhaseResult]:
        """`docker compose -p <project>-<slot> up -d` with the slot's port in the environment,
        next to the live slot's project, and the health wait. `up` recreates whatever the
        slot ran before (`was`): nothing to stop first."""
        phase = yield from self._up_ops(
            self._slot_base(slot), version, previous, self._slot_extra(slot)
        )
        where = cs.slot_project(self.project, slot)
        phase.summary = (
            f"{version} up in slot {slot} ({where}): {phase.summary}"
            if phase.ok
            else f"slot {slot} ({where}): {phase.summary}"
        )
        return phase

    def slot_stop_ops(self, slot: str, version: str) -> Program[PhaseResult]:
        """`docker compose -p <project>-<slot> stop`: the containers stay (not `down`)."""
        phase = PhaseResult(True, "")
        where = cs.slot_project(self.project, slot)
        result = yield from self._run(
            phase,
            cs.stop(self._slot_base(slot)),
            cwd=self.root,
            env={self.var: version, **self._slot_extra(slot)},
            timeout=UP_TIMEOUT_S,
            label=f"stop slot {slot}",
        )
        phase.summary = (
            f"slot {slot} stopped ({where})"
            if result.ok
            else f"could not stop slot {slot} ({where}): {self._tail(result)}"
        )
        phase.facts["stopped"] = result.ok
        return phase

    def stop_ops(self, command: Any = None) -> Program[PhaseResult]:
        if command is None and self.stack.proxy is not None:  # both slots write, both stop
            phase = PhaseResult(True, "")
            for slot in cs.SLOTS:
                yield from self._run(
                    phase, cs.stop(self._slot_base(slot)), cwd=self.root,
                    env=self._slot_extra(slot), timeout=UP_TIMEOUT_S, label=f"stop slot {slot}",
                )  # fmt: skip
            phase.summary = (
                "stopped: both slots" if phase.ok else "could not stop every slot of the stack"
            )
            return phase
        phase = PhaseResult(True, "")
        argv = command.argv() if command is not None else [*self.base, "stop"]
        result = yield from self._run(phase, argv, cwd=self.root, timeout=UP_TIMEOUT_S)
        phase.summary = (
            f"stopped: {' '.join(argv[-2:]) if command else 'docker compose stop'}"
            if result.ok
            else f"could not stop the stack: {self._tail(result)}"
        )
        return phase

    def cleanup_ops(
        self, newest_first: Sequence[str], protect: Iterable[str], names: Sequence[str] | None
    ) -> Program[PhaseResult]:
        return done(PhaseResult(True, "images are kept; `releasegate prune` removes old ones"))

    # -- running commands ------------------------------------------------------------------
    @staticmethod
    def _tail(result: CommandResult) -> str:
        text = (result.stderr or result.stdout).strip()
        return text.splitlines()[-1][-300:] if text else result.describe()

    def _run(self, phase: PhaseResult, argv: list[str], **kw: Any) -> Program[CommandResult]:
        return phase.step(self.redact, argv, **kw)


def finding_checks(findings: Iterable[Finding]) -> list[CheckResult]:
    """One failed check per rule finding (compose rules and Swarm rules alike), naming
    the file, line and service, with the finding's evidence."""
    return [
        CheckResult(
            f.rule,
            False,
            f"{f.file}:{f.line}: {f.service}: {f.rule}: {f.message}",
            {
                "rule": f.rule,
                "service": f.service,
                "file": str(f.file),
                "line": f.line,
                **f.evidence,
            },
            hint=f.hint,
        )
        for f in findings
    ]
