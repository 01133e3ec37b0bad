"""A stack's hosts: one executor for one host and many (pyinfra's shape).

Every stack is a set of one or more hosts. A phase is one program of operations per host
(releasegate.ops), supplied by the stack's runtime; this module only decides *how* the
programs are carried out: in turn on this thread for a local host (no event loop, no
asyncio import), or side by side on one event loop for SSH hosts (one asyncssh
connection per host for the whole run, at most `parallel` hosts at once). Each host's
result is kept apart, so a workflow can judge the hosts and send back the ones that moved.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

from releasegate.config.schema import HttpCheck
from releasegate.model import CheckResult
from releasegate.ops import Program, cmd, run_async, run_sync
from releasegate.redact import Redactor
from releasegate.runtimes.base import HostRuntime, HostSurvey, PhaseResult
from releasegate.smoke import check_program
from releasegate.transport.base import CommandResult

if TYPE_CHECKING:
    import asyncio

    import httpx

    from releasegate.config.schema import StackConfig
    from releasegate.smoke import HttpClientSource
    from releasegate.transport.ssh import LoopRunner, SshOptions

# Called on the caller's thread as each host finishes a phase: (phase, host, ok, summary).
HostProgress = Callable[[str, str, bool, str], None]
LOCAL = "local"
T = TypeVar("T")


@dataclass
class HostOutcome:
    """One host's part of a phase."""

    host: str
    ok: bool
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)
    lost: bool = False  # the host could not be reached (its state is unknown)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"ok": self.ok, "summary": self.summary, **self.evidence}
        if self.lost:
            data["lost"] = True
        if self.checks:
            data["checks"] = [
                {"name": c.name, "ok": c.ok, "summary": c.summary} for c in self.checks
            ]
        return data


def lost(phase: PhaseResult) -> bool:
    """A command that never got an exit status: the connection is gone, not the command."""
    return any(c.get("exit_code") == -1 and "error" in c for c in phase.commands)


def _runtime_class(stack: StackConfig) -> Any:
    if stack.runtime == "compose":
        from releasegate.runtimes.compose import ComposeRuntime

        return ComposeRuntime
    if stack.runtime == "swarm":
        from releasegate.runtimes.swarm import SwarmRuntime

        return SwarmRuntime
    from releasegate.runtimes.releases import ReleasesRuntime

    return ReleasesRuntime


class StackHosts:
    """The hosts of one stack for one run, and the phases carried out on them."""

    def __init__(
        self,
        stack: StackConfig,
        redact: Redactor,
        token: str,
        *,
        http: HttpClientSource,
        options: SshOptions | None = None,
        parallel: int = 1,
    ) -> None:
        self.stack = stack
        self.redact = redact
        self.token = token
        self.root = PurePosixPath(str(stack.dir))
        self.http = http
        self.parallel = max(1, parallel)
        self.on_host: HostProgress | None = None
        kind = _runtime_class(stack)
        self.hosts: dict[str, HostRuntime] = {}
        self.addresses: dict[str, str] = {}
        self.roles: dict[str, tuple[str, ...]] = {}
        self.runner: LoopRunner | None = None
        remote = [h for h in stack.hosts if not h.is_local]
        if not remote:
            from releasegate.transport.local import LocalTransport

            self.hosts[LOCAL] = kind(stack, LocalTransport(), redact, token)
            self.addresses[LOCAL] = "127.0.0.1"
            self.roles[LOCAL] = ("migrate",)
        else:
            from releasegate.transport import ssh_options
            from releasegate.transport.ssh import LoopRunner, SshTarget, SshTransport

            self.runner = LoopRunner()
            for host in remote:
                assert host.address is not None  # an ssh:// host always has one
                target = SshTarget(address=host.address, user=host.user, port=host.port)
                transport = SshTransport(target, options or ssh_options(), runner=self.runner)
                self.hosts[host.label] = kind(stack, transport, redact, token)
                self.addresses[host.label] = host.address
                self.roles[host.label] = tuple(host.roles)
        self.active: list[str] = list(self.hosts)  # the hosts the phases act on
        self._survey: dict[str, HostSurvey] | None = None
        self._prepared: dict[str, set[str]] = {}  # releases this run made, per host
        self._sem: asyncio.Semaphore | None = None
        self._aclient: httpx.AsyncClient | None = None

    @property
    def labels(self) -> list[str]:
        return list(self.hosts)

    @property
    def first(self) -> HostRuntime:
        return self.hosts[self.active[0] if self.active else next(iter(self.hosts))]

    def narrow(self, hosts: Iterable[str]) -> StackHosts:
        """Act on these hosts only from now on (a rollback of the hosts that switched)."""
        chosen = set(hosts)
        self.active = [h for h in self.hosts if h in chosen]
        return self

    # -- what the hosts run ---------------------------------------------------------------
    def survey(self) -> dict[str, HostSurvey]:
        """Each active host's running version, releases, disk, commands and files, read in
        one program per host and kept until a phase changes something: the plan, preflight
        and the deploy's `previous` all judge the same answer (no second `readlink`)."""
        if self._survey is not None and set(self.active) <= set(self._survey):
            return {h: self._survey[h] for h in self.active}
        found = self.run_programs(
            "survey",
            lambda h, rt: rt.survey_ops(),
            hosts=None,
            report=False,
            failed=lambda h, why: HostSurvey(False, why),
        )
        self._survey = {**(self._survey or {}), **found}
        return found

    def forget(self) -> None:
        """The hosts have changed: the next question reads them again."""
        self._survey = None

    def versions(self) -> dict[str, str | None]:
        return {h: s.version for h, s in self.survey().items()}

    def host_states(self) -> dict[str, str | None]:
        """Each host's version, "unreachable", or None (nothing deployed yet)."""
        return {h: "unreachable" if s.lost else s.version for h, s in self.survey().items()}

    def running_version(self) -> str | None:
        """The version most hosts run (a mixed set shows in `host_states`)."""
        counts = Counter(v for v in self.versions().values() if v)
        return counts.most_common(1)[0][0] if counts else None

    def health_flags(self, running: str | None) -> list[Any]:
        """Is what runs still there and answering, on every host (releasegate.health):
        `current`'s release present, the health URL answering. One list, each flag once."""
        from releasegate.health import stack_flags_ops

        found = self.run_programs(
            "health",
            lambda h, rt: stack_flags_ops(self.stack, running),
            hosts=None,
            report=False,
            failed=lambda h, why: [],
        )
        flags: dict[str, Any] = {}
        for host_flags in found.values():
            for flag in host_flags:
                flags.setdefault(flag.message, flag)
        return list(flags.values())

    def is_prepared(self, version: str) -> bool:
        return all(version in s.prepared for s in self.survey().values())

    def describe_artifact(self, version: str) -> str | None:
        return self.first.describe_artifact(version)

    # -- phases ---------------------------------------------------------------------------
    def preflight(self, version: str | None) -> list[CheckResult]:
        """The one preflight: the artifact (once, on this machine), then on every host its
        disk, required commands and files (from the survey), the runtime's own checks and
        the team's checks (run in the stack's dir, output and exit code kept). A host that
        cannot be reached refuses the run."""
        checks = self.first.controller_checks(version)
        surveyed = self.survey()
        cfg = self.stack.preflight
        many = len(self.hosts) > 1 or LOCAL not in self.hosts

        def one(host: str, rt: HostRuntime) -> Program[HostOutcome]:
            seen = surveyed[host]
            if seen.lost:
                return HostOutcome(host, False, seen.summary, lost=True)
            found = yield from rt.host_checks_ops(version, seen)
            env = rt.env_for(version or "", seen.version)
            for spec in cfg.commands:
                found.append((yield from _custom_check(rt, spec, env, self.root, self.redact)))
            bad = [c for c in found if not c.ok]
            connected = _connected(rt)
            found = [CheckResult("host", True, connected.summary), *found] if many else found
            return HostOutcome(
                host,
                not bad,
                "; ".join(c.summary for c in bad) or connected.summary,
                connected.evidence,
                checks=found,
            )

        for host, outcome in self.fan_out("preflight", one).items():
            if outcome.lost:
                checks.append(
                    CheckResult(
                        f"host:{host}",
                        False,
                        f"{host} unreachable: {outcome.summary}",
                        hint="every host must answer before a run starts; check the host, "
                        "its sshd and known_hosts (--accept-new-host-keys trusts a new key)",
                    )
                )
                continue
            for c in outcome.checks:
                if not many:
                    checks.append(c)
                    continue
                name = f"host:{host}" if c.name == "host" else f"{c.name}@{host}"
                checks.append(CheckResult(name, c.ok, f"{host}: {c.summary}", c.evidence, c.hint))
        return checks

    def prepare(
        self, version: str, previous: str | None, *, reprepare: bool = False, as_is: bool = False
    ) -> PhaseResult:
        known = self.survey()
        self.first.before_prepare(version)
        self.forget()  # from here on the hosts change

        def one(host: str, rt: HostRuntime) -> Program[HostOutcome]:
            done = version in known[host].prepared and not reprepare
            program = rt.prepare_ops(version, previous, prepared=done, as_is=as_is)
            outcome = yield from _wrap(host, program)
            if outcome.ok:
                self._prepared.setdefault(host, set()).add(version)
            return outcome

        return self._phase("prepare", one)

    def migrate(self, version: str, previous: str | None) -> PhaseResult:
        """Once per stack: on the first host with role `migrate`, else the first host."""
        host = next((h for h in self.active if "migrate" in self.roles[h]), self.active[0])
        result = self.fan_out(
            "migrate", lambda h, rt: _wrap(h, rt.migrate_ops(version, previous)), hosts=[host]
        )
        return aggregate("migrate", result)

    def switch(self, version: str, hosts: Sequence[str]) -> dict[str, HostOutcome]:
        self.forget()
        return self.fan_out("switch", lambda h, rt: _wrap(h, rt.switch_ops(version)), hosts=hosts)

    def restart(
        self, version: str, previous: str | None, hosts: Sequence[str]
    ) -> dict[str, HostOutcome]:
        return self.fan_out(
            "restart", lambda h, rt: _wrap(h, rt.restart_ops(version, previous)), hosts=hosts
        )

    def smoke(self, version: str, hosts: Sequence[str] | None = None) -> dict[str, HostOutcome]:
        return self.fan_out("smoke", lambda h, rt: self._smoke_ops(h, rt, version), hosts=hosts)

    def cleanup(self, newest_first: Sequence[str], protect: Iterable[str]) -> PhaseResult:
        keep = list(protect)
        known = self._survey or {}

        def one(host: str, rt: HostRuntime) -> Program[HostOutcome]:
            # releases/ as surveyed plus what this run prepared: no round trip to list it
            # (the run holds the stack's lock, so nothing else adds releases meanwhile).
            names = None
            if host in known:
                surveyed = [*known[host].names, *self._prepared.get(host, ())]
                names = list(dict.fromkeys(surveyed))
            return _wrap(host, rt.cleanup_ops(newest_first, keep, names=names))

        return self._phase("cleanup", one)

    def stop(self, command: Any = None) -> PhaseResult:
        return self._phase("stop", lambda h, rt: _wrap(h, rt.stop_ops(command)))

    def run_each(
        self, phase: str, program: Callable[[str, HostRuntime], Program[PhaseResult]]
    ) -> PhaseResult:
        """Any per-host program (a backup's file archive, a config restore) as one phase."""
        return self._phase(phase, lambda h, rt: _wrap(h, program(h, rt)))

    def _smoke_ops(self, host: str, rt: HostRuntime, version: str) -> Program[HostOutcome]:
        results: list[CheckResult] = []
        for check in self.stack.smoke:
            if check.kind == "sql":  # once per step, from this machine (releasegate.datachecks)
                continue
            url = None
            if isinstance(check, HttpCheck):
                url = check.http.replace("{host}", self.addresses[host])
            result = yield from check_program(
                check,
                version=version,
                url=url,
                cwd=rt.smoke_dir(),
                env=rt.env_for(version),
                redact=self.redact,
            )
            results.append(result)
        failed = [c for c in results if not c.ok]
        gone = any(a.get("exit_code") == -1 for c in failed for a in c.evidence.get("attempts", []))
        summary = (
            f"{len(results)} check(s) passed"
            if not failed
            else "smoke failed: " + "; ".join(f"{c.name}: {c.summary}" for c in failed)
        )
        return HostOutcome(host, not failed, summary, checks=results, lost=gone)

    # -- carrying programs out ------------------------------------------------------------
    def fan_out(
        self,
        phase: str,
        program: Callable[[str, HostRuntime], Program[HostOutcome]],
        *,
        hosts: Sequence[str] | None = None,
        report: bool = True,
    ) -> dict[str, HostOutcome]:
        """One program per host, each answering a HostOutcome (see run_programs)."""
        return self.run_programs(
            phase,
            program,
            hosts=hosts,
            report=report,
            failed=lambda host, why: HostOutcome(host, False, why),
        )

    def run_programs(
        self,
        phase: str,
        program: Callable[[str, HostRuntime], Program[T]],
        *,
        hosts: Sequence[str] | None,
        report: bool,
        failed: Callable[[str, str], T],
    ) -> dict[str, T]:
        """One program per host; results in host order, progress reported as each ends.
        `failed` makes a host's answer out of a bug's message."""
        chosen = list(self.active if hosts is None else hosts)
        outcomes: dict[str, T] = {}
        if self.runner is None:  # this machine: in turn, on this thread
            for host in chosen:
                rt = self.hosts[host]
                outcomes[host] = run_sync(program(host, rt), rt.transport, http=self.http)
                self._report(report, phase, host, outcomes[host])
            return outcomes
        import concurrent.futures  # SSH hosts only: this machine's runs need no threads

        futures = {self.runner.submit(self._one(h, program)): h for h in chosen}
        for future in concurrent.futures.as_completed(futures):
            host = futures[future]
            try:
                outcomes[host] = future.result()
            except Exception as exc:  # a bug must still leave a per-host answer
                why = f"{type(exc).__name__}: {exc}"
                outcomes[host] = failed(host, why)
            self._report(report, phase, host, outcomes[host])
        return {h: outcomes[h] for h in chosen}

    def _report(self, report: bool, phase: str, host: str, outcome: Any) -> None:
        if report and self.on_host is not None:
            self.on_host(phase, host, bool(outcome.ok), str(outcome.summary))

    async def _one(self, host: str, program: Callable[[str, HostRuntime], Program[T]]) -> T:
        import asyncio

        if self._sem is None:
            self._sem = asyncio.Semaphore(self.parallel)
        rt = self.hosts[host]
        async with self._sem:
            transport: Any = rt.transport
            return await run_async(program(host, rt), transport.host, client=self._client())

    def _client(self) -> httpx.AsyncClient | None:
        if not any(getattr(c, "http", None) for c in self.stack.smoke):
            return None
        if self._aclient is None:
            from releasegate.imports import load_httpx

            load_httpx()
            import httpx

            # As on this machine: no proxy from the environment, no redirects followed.
            tls = any(str(getattr(c, "http", "")).startswith("https:") for c in self.stack.smoke)
            self._aclient = httpx.AsyncClient(
                trust_env=False,
                follow_redirects=False,
                verify=tls,
                limits=httpx.Limits(max_connections=self.parallel),
            )
        return self._aclient

    def close(self) -> None:
        """Close what the run holds open (SSH connections, the event loop)."""
        if self.runner is None:
            return
        runner = self.runner

        async def shut() -> None:
            if self._aclient is not None:
                await self._aclient.aclose()
            for rt in self.hosts.values():
                transport: Any = rt.transport
                await transport.host.close()

        try:
            runner.call(shut())
        finally:
            runner.close()

    def _phase(
        self, name: str, program: Callable[[str, HostRuntime], Program[HostOutcome]]
    ) -> PhaseResult:
        return aggregate(name, self.fan_out(name, program))


def aggregate(name: str, outcomes: dict[str, HostOutcome]) -> PhaseResult:
    """The hosts' parts of a phase as one result; one host's evidence stays as it is."""
    failed = [h for h, o in outcomes.items() if not o.ok]
    if len(outcomes) == 1 and LOCAL in outcomes:
        only = outcomes[LOCAL]
        phase = PhaseResult(only.ok, only.summary, facts=dict(only.evidence))
        return phase
    if failed:
        summary = f"{name} failed on {len(failed)} of {len(outcomes)} host(s): " + "; ".join(
            f"{h}: {outcomes[h].summary}" for h in failed
        )
    else:
        summary = f"{name} passed on {len(outcomes)} host(s)"
    return PhaseResult(
        not failed, summary, facts={"hosts": {h: o.as_dict() for h, o in outcomes.items()}}
    )


def _wrap(host: str, phase_ops: Program[PhaseResult]) -> Program[HostOutcome]:
    phase = yield from phase_ops
    return HostOutcome(host, phase.ok, phase.summary, phase.evidence(), lost=lost(phase))


def _custom_check(
    rt: HostRuntime, spec: Any, env: dict[str, str], root: PurePosixPath, redact: Redactor
) -> Program[CheckResult]:
    """A team's own preflight check, run in the stack's dir, its output and exit code kept."""
    result: CommandResult = yield cmd(spec.run.argv(), cwd=rt.check_dir(), env=env, timeout=120)
    output = redact((result.stdout + result.stderr).strip()[-1000:])
    evidence = {
        "exit_code": result.exit_code,
        "output": output,
        "duration_s": round(result.duration_s, 3),
    }
    name = f"custom:{spec.name}"
    if not result.ok:
        return CheckResult(name, False, f"{spec.name}: {result.describe()}", evidence)
    if spec.expect_output and spec.expect_output not in result.stdout:
        summary = f"{spec.name}: output does not contain {spec.expect_output!r}"
        return CheckResult(name, False, summary, evidence)
    return CheckResult(name, True, f"{spec.name} passed", evidence)


def _connected(rt: HostRuntime) -> HostOutcome:
    accepted = getattr(rt.transport, "accepted_key", None)
    if accepted is None:
        return HostOutcome("", True, "connected, host key known")
    # Recorded with the preflight step: which key was trusted, and where it was written.
    return HostOutcome(
        "",
        True,
        f"connected; NEW host key {accepted.fingerprint} accepted and added to "
        f"{accepted.known_hosts}",
        {"accepted_key": {"fingerprint": accepted.fingerprint, "line": accepted.line}},
    )
