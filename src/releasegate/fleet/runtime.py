"""A stack on many SSH hosts: every phase fans out to the hosts on one event loop (one
asyncssh connection per host for the whole run, at most `parallel` hosts at once), and each
host's result is kept apart so the engine can judge the fleet and roll it back whole.

The per-host work is the runtime's own programs (releasegate.ops): the same commands as on
one host, awaited side by side instead of run in turn. FleetRuntime carries `releases`
stacks; releasegate.fleet.compose overrides what differs for `compose` stacks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from releasegate.gates import preflight as pf
from releasegate.imports import load_httpx
from releasegate.model import CheckResult
from releasegate.ops import Program, cmd, done, run_async
from releasegate.redact import Redactor
from releasegate.runtimes import releases_commands as rc
from releasegate.runtimes.base import PhaseResult
from releasegate.runtimes.releases import ReleasesRuntime
from releasegate.smoke import check_program
from releasegate.transport.base import CommandResult

if TYPE_CHECKING:
    import httpx

    from releasegate.transport.ssh import SshOptions, SshTransport

# Called on the caller's thread as each host finishes a phase: (phase, host, ok, summary).
HostProgress = Callable[[str, str, bool, str], None]


@dataclass
class HostOutcome:
    """One host's part of a phase."""

    host: str
    ok: bool
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)
    lost: bool = False  # the host could not be reached (its state is unknown)
    switched: bool = False  # `current` may have moved: the host goes back if the fleet does

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"ok": self.ok, "summary": self.summary, **self.evidence}
        if self.lost:
            data["lost"] = True
        if self.checks:
            data["checks"] = [
                {"name": c.name, "ok": c.ok, "summary": c.summary} for c in self.checks
            ]
        return data


def _lost(phases: Iterable[PhaseResult]) -> bool:
    """A command that never got an exit status: the connection is gone, not the command."""
    return any(c.get("exit_code") == -1 and "error" in c for p in phases for c in p.commands)


class FleetRuntime:
    """The Runtime protocol over a stack's hosts, plus the fleet's own operations."""

    is_fleet = True

    def __init__(
        self,
        stack: Any,
        redact: Redactor,
        token: str,
        *,
        options: SshOptions,
        parallel: int,
    ) -> None:
        from releasegate.transport.ssh import LoopRunner, SshTarget, SshTransport

        self.stack = stack
        self.redact = redact
        self.token = token
        self.root = PurePosixPath(str(stack.dir))
        self.runner = LoopRunner()
        self.parallel = parallel
        self.on_host: HostProgress | None = None
        self.hosts: dict[str, Any] = {}  # label -> its runtime (ReleasesRuntime here)
        self.addresses: dict[str, str] = {}
        self.roles: dict[str, tuple[str, ...]] = {}
        for host in stack.hosts:
            target = SshTarget(address=host.address, user=host.user, port=host.port)
            transport = SshTransport(target, options, runner=self.runner)
            self.hosts[host.label] = self._host_runtime(transport)
            self.addresses[host.label] = host.address
            self.roles[host.label] = tuple(host.roles)
        self.active: list[str] = list(self.hosts)  # the hosts the Runtime methods act on
        self.last: dict[str, HostOutcome] = {}  # each host's part of the last phase
        self._sem: asyncio.Semaphore | None = None
        self._survey: dict[str, HostOutcome] | None = None
        # Each host's last survey answer: preflight's probe, and the releases cleanup sorts.
        self._seen: dict[str, tuple[CommandResult, rc.Survey]] = {}
        self._prepared: dict[str, set[str]] = {}  # releases this run made, per host
        self._http: httpx.AsyncClient | None = None

    def _host_runtime(self, transport: SshTransport) -> Any:
        return ReleasesRuntime(self.stack, transport, self.redact, self.token)

    # -- the Runtime protocol --------------------------------------------------------------
    @property
    def transport(self) -> SshTransport:
        first: Any = self.hosts[self.active[0] if self.active else next(iter(self.hosts))]
        return first.transport  # type: ignore[no-any-return]

    def narrow(self, hosts: Sequence[str]) -> FleetRuntime:
        """Act on these hosts only from now on (a rollback of the hosts that switched)."""
        self.active = [h for h in self.hosts if h in set(hosts)]
        return self

    def versions(self) -> dict[str, str | None]:
        """Each active host's running version (None: no release, or unreachable)."""
        return {h: o.evidence.get("version") for h, o in self.survey().items()}

    def host_states(self) -> dict[str, str | None]:
        """Each host's version, "unreachable", or None (no release yet): for `status`."""
        return {
            h: "unreachable" if o.lost else o.evidence.get("version")
            for h, o in self.survey().items()
        }

    def survey(self) -> dict[str, HostOutcome]:
        """Each active host's `current`, releases, disk, required commands and shared files,
        read in one round trip and kept until a phase changes something (a deploy asks
        several times before it acts; preflight judges the same answer)."""
        if self._survey is not None and set(self.active) <= set(self._survey):
            return {h: self._survey[h] for h in self.active}
        self._survey = self.fan_out("survey", self._survey_ops, report=False)
        return dict(self._survey)

    def _probe_argv(self) -> list[str]:
        return rc.survey(self.root, self._required_commands(), self._shared_files())

    def _survey_ops(self, host: str, rt: Any) -> Program[HostOutcome]:
        result: CommandResult = yield cmd(self._probe_argv(), timeout=30)
        seen = rc.parse_survey(result.stdout)
        self._seen[host] = (result, seen)
        return HostOutcome(
            host,
            result.ok,
            result.error or (seen.current or "no release"),
            {"version": seen.current, "prepared": sorted(seen.prepared)},
            lost=result.exit_code == -1 and bool(result.error),
        )

    def running_version(self) -> str | None:
        """The version most active hosts run (a mixed fleet shows in `versions`)."""
        counts = Counter(v for v in self.versions().values() if v)
        return counts.most_common(1)[0][0] if counts else None

    def describe_artifact(self, version: str) -> str | None:
        found: str | None = self._first().describe_artifact(version)
        return found

    def is_prepared(self, version: str) -> bool:
        return all(version in o.evidence.get("prepared", ()) for o in self.survey().values())

    def preflight_checks(self, version: str | None) -> list[CheckResult]:
        return []  # the fleet's checks come from `preflight` (per host, after connecting)

    def disk_path(self) -> PurePosixPath:
        return self.root

    def smoke_cwd(self) -> Path | None:
        return None

    def env_for(self, version: str, previous: str | None = None) -> dict[str, str]:
        env: dict[str, str] = self._first().env_for(version, previous)
        return env

    def prepare(self, version: str, previous: str | None) -> PhaseResult:
        self._pack(version)
        known = self.survey()
        self._survey = None  # from here on the hosts change

        def one(host: str, rt: Any) -> Program[HostOutcome]:
            done = version in known[host].evidence.get("prepared", ())
            outcome = yield from self._wrap(host, rt.prepare_ops(version, previous, prepared=done))
            if outcome.ok:
                self._prepared.setdefault(host, set()).add(version)
            return outcome

        return self._phase("prepare", one)

    def migrate(self, version: str, previous: str | None) -> PhaseResult:
        """Once per fleet: on the first host with role `migrate`, else the first host."""
        host = next((h for h in self.active if "migrate" in self.roles[h]), self.active[0])
        result = self.fan_out(
            "migrate",
            lambda h, rt: self._wrap(h, rt.migrate_ops(version, previous)),
            hosts=[host],
        )
        return self._aggregate("migrate", result)

    def switch(self, version: str) -> PhaseResult:
        return self._phase("switch", lambda h, rt: self._wrap(h, rt.switch_ops(version)))

    def restart(self, version: str, previous: str | None) -> PhaseResult:
        return self._phase(
            "restart", lambda h, rt: self._wrap(h, rt.restart_ops(version, previous))
        )

    def smoke(self, version: str) -> PhaseResult:
        return self._phase("smoke", lambda h, rt: self._smoke_ops(h, rt, version))

    def cleanup(self, newest_first: Sequence[str], protect: Iterable[str]) -> PhaseResult:
        keep = list(protect)

        def one(host: str, rt: Any) -> Program[HostOutcome]:
            # releases/ as surveyed, plus what this run prepared: no round trip to list it
            # (a deploy holds the stack's lock, so nothing else adds releases meanwhile).
            names = None
            if host in self._seen:
                surveyed = [*self._seen[host][1].names, *self._prepared.get(host, ())]
                names = list(dict.fromkeys(surveyed))
            return self._wrap(host, rt.cleanup_ops(newest_first, keep, names=names))

        return self._phase("cleanup", one)

    def stop(self, command: Any = None) -> PhaseResult:
        return self._phase("stop", lambda h, rt: self._wrap(h, rt.stop_ops(command)))

    # -- the fleet's own operations ------------------------------------------------------------
    def preflight(self, version: str | None) -> list[CheckResult]:
        """Connect to every host (one that cannot be reached refuses the deploy), then each
        host's disk, required commands, shared files and the team's own checks."""
        cfg = self.stack.preflight
        checks = self._artifact_checks(version)
        surveyed = self.survey()  # usually kept from the plan: it also opened the connections

        def one(host: str, rt: Any) -> Program[HostOutcome]:
            if surveyed[host].lost:
                return HostOutcome(host, False, surveyed[host].summary, lost=True)
            found = yield from self._host_checks_ops(host, rt, version)
            for spec in cfg.commands:
                result: CommandResult = yield cmd(
                    spec.run.argv(), env=rt.env_for(version or ""), timeout=120
                )
                ok = result.ok and (not spec.expect_output or spec.expect_output in result.stdout)
                found.append(
                    CheckResult(
                        f"custom:{spec.name}",
                        ok,
                        f"{spec.name} passed" if ok else f"{spec.name}: {result.describe()}",
                    )
                )
            bad = [c for c in found if not c.ok]
            connected = self._connected(rt)
            return HostOutcome(
                host,
                not bad,
                "; ".join(c.summary for c in bad) or connected.summary,
                connected.evidence,
                checks=[CheckResult("host", True, connected.summary), *found],
            )

        for host, outcome in self.fan_out("preflight", one).items():
            if outcome.lost:
                checks.append(
                    CheckResult(
                        f"host:{host}",
                        False,
                        f"{host} unreachable: {outcome.summary}",
                        hint="every host must answer before a deploy starts; check the host, "
                        "its sshd and known_hosts (--accept-new-host-keys trusts a new key)",
                    )
                )
                continue
            for c in outcome.checks:
                name = f"host:{host}" if c.name == "host" else f"{c.name}@{host}"
                checks.append(CheckResult(name, c.ok, f"{host}: {c.summary}", c.evidence, c.hint))
        return checks

    def _artifact_checks(self, version: str | None) -> list[CheckResult]:
        """Checks of the artifact on this machine, once for the fleet."""
        return [self._first().artifact_check(version)] if version is not None else []

    def _host_checks_ops(
        self, host: str, rt: Any, version: str | None
    ) -> Program[list[CheckResult]]:
        """A host's own preflight checks: here all read from its survey (no round trip)."""
        probed, _ = self._seen[host]
        return done(
            pf.probe_verdicts(
                self.root,
                probed,
                self._required_commands(),
                self._shared_files(),
                self.stack.preflight.disk_free_min_percent,
            )
        )

    @staticmethod
    def _connected(rt: Any) -> HostOutcome:
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

    def rollout(
        self, hosts: Sequence[str], version: str, previous: str | None
    ) -> dict[str, HostOutcome]:
        """Switch, restart and smoke each host of a batch on its own: a host does not wait
        for the others between phases."""

        def pipeline(host: str, rt: Any) -> Program[HostOutcome]:
            switched, restarted = yield from rt.switch_restart_ops(version, previous)
            evidence: dict[str, Any] = {"switch": switched.evidence()}
            for phase in (switched, restarted):
                if phase is restarted:
                    evidence["restart"] = restarted.evidence()
                if not phase.ok:  # `current` may have moved either way: the host goes back
                    lost = _lost([phase])
                    return HostOutcome(
                        host, False, phase.summary, evidence, lost=lost, switched=True
                    )
            smoked = yield from self._smoke_ops(host, rt, version)
            smoked.evidence = {**evidence, **smoked.evidence}
            smoked.switched = True
            return smoked

        return self.fan_out("rollout", pipeline, hosts=hosts)

    def _smoke_dir(self) -> PurePosixPath:
        return self.root / "current"

    def _smoke_ops(self, host: str, rt: Any, version: str) -> Program[HostOutcome]:
        results: list[CheckResult] = []
        for check in self.stack.smoke:
            url = None
            if getattr(check, "http", None):
                url = check.http.replace("{host}", self.addresses[host])
            result = yield from check_program(
                check,
                version=version,
                url=url,
                cwd=self._smoke_dir(),
                env=rt.env_for(version),
                redact=self.redact,
            )
            results.append(result)
        failed = [c for c in results if not c.ok]
        lost = any(a.get("exit_code") == -1 for c in failed for a in c.evidence.get("attempts", []))
        summary = (
            f"{len(results)} check(s) passed"
            if not failed
            else "smoke failed: " + "; ".join(f"{c.name}: {c.summary}" for c in failed)
        )
        return HostOutcome(host, not failed, summary, checks=results, lost=lost)

    # -- fan-out ------------------------------------------------------------------------------
    def fan_out(
        self,
        phase: str,
        program: Callable[[str, Any], Program[HostOutcome]],
        *,
        hosts: Sequence[str] | None = None,
        report: bool = True,
    ) -> dict[str, HostOutcome]:
        """Run one program per host on the loop, at most `parallel` at once; results come
        back on this thread as each host finishes (progress is reported from here)."""
        chosen = list(self.active if hosts is None else hosts)
        if phase not in ("survey", "connect", "preflight", "check"):
            self._survey = None  # the hosts may change: read them again when asked
        futures = {self.runner.submit(self._one(h, program)): h for h in chosen}
        outcomes: dict[str, HostOutcome] = {}
        for future in concurrent.futures.as_completed(futures):
            host = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # a bug must still leave a per-host answer
                outcome = HostOutcome(host, False, f"{type(exc).__name__}: {exc}")
            outcomes[host] = outcome
            if report and self.on_host is not None:
                self.on_host(phase, host, outcome.ok, outcome.summary)
        self.last = {h: outcomes[h] for h in chosen}
        return self.last

    async def _one(
        self, host: str, program: Callable[[str, Any], Program[HostOutcome]]
    ) -> HostOutcome:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.parallel)
        rt = self.hosts[host]
        async with self._sem:
            transport: Any = rt.transport
            return await run_async(program(host, rt), transport.host, client=self._client())

    def _client(self) -> httpx.AsyncClient | None:
        if not any(getattr(c, "http", None) for c in self.stack.smoke):
            return None
        if self._http is None:
            load_httpx()
            import httpx

            # As on one host: no proxy from the environment, no redirects followed.
            tls = any(str(getattr(c, "http", "")).startswith("https:") for c in self.stack.smoke)
            self._http = httpx.AsyncClient(
                trust_env=False,
                follow_redirects=False,
                verify=tls,
                limits=httpx.Limits(max_connections=self.parallel),
            )
        return self._http

    def close(self) -> None:
        async def shut() -> None:
            if self._http is not None:
                await self._http.aclose()
            for rt in self.hosts.values():
                host: Any = rt.transport
                await host.host.close()

        try:
            self.runner.call(shut())
        finally:
            self.runner.close()

    # -- helpers ------------------------------------------------------------------------------
    def _required_commands(self) -> list[str]:
        return list(self.stack.preflight.require_commands)

    def _shared_files(self) -> list[str]:
        return [e for e in self.stack.shared if not e.endswith("/")]

    def _first(self) -> Any:
        return self.hosts[self.active[0] if self.active else next(iter(self.hosts))]

    def _pack(self, version: str) -> None:
        """Pack a folder artifact and hash it once, before the hosts ask for it side by side
        (on this thread, not the event loop's)."""
        from releasegate.runtimes.releases import file_sha256, upload_tarball

        found = self._first().find_artifact(version)
        if found is not None:
            file_sha256(upload_tarball(found, self.token))

    @staticmethod
    def _wrap(host: str, phase_ops: Program[PhaseResult]) -> Program[HostOutcome]:
        phase = yield from phase_ops
        return HostOutcome(host, phase.ok, phase.summary, phase.evidence(), lost=_lost([phase]))

    def _phase(self, name: str, program: Callable[[str, Any], Program[HostOutcome]]) -> PhaseResult:
        return self._aggregate(name, self.fan_out(name, program))

    @staticmethod
    def _aggregate(name: str, outcomes: dict[str, HostOutcome]) -> PhaseResult:
        failed = [h for h, o in outcomes.items() if not o.ok]
        if failed:
            summary = f"{name} failed on {len(failed)} of {len(outcomes)} host(s): " + "; ".join(
                f"{h}: {outcomes[h].summary}" for h in failed
            )
        else:
            summary = f"{name} passed on {len(outcomes)} host(s)"
        return PhaseResult(
            not failed, summary, facts={"hosts": {h: o.as_dict() for h, o in outcomes.items()}}
        )
