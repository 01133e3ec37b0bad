"""The engine's shared parts: outcomes, the stack lock, ledger-recorded steps.

The engine never prints: it emits Events, and returns RunOutcomes that the CLI renders.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from releasegate import locks, names
from releasegate.errors import BadInput, ExitCode, LockHeld
from releasegate.identity import Actor
from releasegate.model import ActionRecord, CheckResult, Event, Plan, StepResult
from releasegate.redact import Redactor, read_env_file
from releasegate.runtimes.base import PhaseResult, Runtime
from releasegate.smoke import HttpClientSource, run_checks
from releasegate.transport import for_host

if TYPE_CHECKING:
    from releasegate.ledger import Ledger

Emit = Callable[[Event], None]


@dataclass
class RunOutcome:
    action: str
    stack: str
    env: str
    version: str
    status: str  # success | refused | rolled_back | failed
    exit_code: ExitCode
    message: str
    hint: str = ""
    action_id: str = ""
    plan: Plan | None = None
    steps: list[StepResult] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime | None = None
    followups: list[RunOutcome] = field(default_factory=list)  # automatic rollback, recovery
    record_path: Path | None = None
    notes: str = ""
    details: dict[str, Any] = field(default_factory=dict)  # kept on the ledger's close row


@dataclass
class StackStatus:
    stack: str
    env: str
    running: str | None
    last: ActionRecord | None
    verified: str | None
    promote_from: str | None
    lock: dict[str, Any] | None
    interrupted: list[ActionRecord]
    warnings: list[str]
    hosts: dict[str, str | None] | None = None  # fleets: each host's version ("unreachable")
    mixed: bool = False  # fleets: hosts run different versions


def _evidence(step: StepResult) -> dict[str, Any]:
    return {"summary": step.summary, "checks": [c.as_dict() for c in step.checks], **step.evidence}


class EngineBase:
    """Config, ledger, actor and the helpers every operation records its steps with."""

    def __init__(
        self, config: Any, ledger: Ledger, *, actor: Actor, emit: Emit | None = None
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.actor = actor
        self.emit: Emit = emit or (lambda _e: None)
        self.http = HttpClientSource()  # smoke's HTTP client, built while commands run
        # Fleets: --strategy/--batch/--parallel/... of this run (over the stack's `fleet:`).
        self.rollout_overrides: dict[str, Any] = {}
        # Accept (and record) host keys that known_hosts does not have: --accept-new-host-keys.
        self.accept_new_host_keys = False

    def stack(self, name: str, env: str) -> Any:
        names.check("stack", name)
        names.check("env", env)
        stack = self.config.stack(name)
        if stack.env != env:
            raise BadInput(
                f"stack {name} is the {stack.env} environment, not {env}",
                hint=f"releasegate ... {name} {stack.env} ...",
            )
        return stack

    def _runtime(self, stack: Any, token: str) -> Runtime:
        if stack.is_fleet:
            return self._fleet_runtime(stack, token)
        transport = for_host(str(stack.hosts[0]) if stack.hosts else "local")
        if stack.runtime == "compose":
            from releasegate.runtimes.compose import ComposeRuntime

            return ComposeRuntime(stack, transport, self._redactor(stack), token)
        from releasegate.runtimes.releases import ReleasesRuntime

        return ReleasesRuntime(stack, transport, self._redactor(stack), token)

    def _fleet_runtime(self, stack: Any, token: str) -> Runtime:
        from releasegate.fleet.runtime import FleetRuntime
        from releasegate.fleet.strategy import fd_limit, parallel_cap

        kind: type[FleetRuntime] = FleetRuntime
        if stack.runtime == "compose":
            from releasegate.fleet.compose import ComposeFleetRuntime

            kind = ComposeFleetRuntime
        from releasegate.transport import ssh_options

        wanted = self.rollout_overrides.get("parallel") or stack.fleet.parallel
        fleet = kind(
            stack,
            self._redactor(stack),
            token,
            options=ssh_options(
                connect_timeout=stack.fleet.connect_timeout,
                accept_new=self.accept_new_host_keys,
            ),
            parallel=parallel_cap(wanted, fd_limit()),
        )

        def progress(phase: str, host: str, ok: bool, summary: str) -> None:
            self.emit(
                Event(
                    "host",
                    stack.name,
                    step=phase,
                    ok=ok,
                    message=f"{host}: {summary}",
                    data={"host": host},
                )
            )

        fleet.on_host = progress
        return fleet  # type: ignore[return-value]  # Runtime.transport: the first host's

    @staticmethod
    def _release(runtime: Runtime) -> None:
        """Close what a runtime holds open (a fleet's SSH connections and event loop)."""
        close = getattr(runtime, "close", None)
        if close is not None:
            close()

    def _env_sources(self, stack: Any) -> list[dict[str, str]]:
        """Where secrets come from: the environment, env_vars, the stack's .env files."""
        envs: list[dict[str, str]] = [
            dict(os.environ),
            {str(k): str(v) for k, v in stack.env_vars.items()},
        ]
        paths = [Path(str(stack.dir)) / "shared" / entry for entry in stack.shared]
        if stack.runtime == "compose":
            paths.append(Path(str(stack.dir)) / ".env")  # secrets beside the version var
        for path in paths:
            if path.name.startswith(".env") and path.is_file():
                envs.append(read_env_file(path.read_text(encoding="utf-8", errors="replace")))
        return envs

    def _redactor(self, stack: Any) -> Redactor:
        return Redactor.from_env(*self._env_sources(stack))

    def _secrets(self, stack: Any) -> dict[str, str]:
        """Values for `password_env` names: the stack's .env files win over the environment."""
        merged: dict[str, str] = {}
        for env in self._env_sources(stack):
            merged.update(env)
        return merged

    def _begin(
        self,
        stack: Any,
        action: str,
        version: str,
        *,
        parent: str | None = None,
        notes: str = "",
        forced: bool = False,
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> str:
        return self.ledger.begin_action(
            stack=stack.name,
            env=stack.env,
            action=action,
            version=version,
            parent_id=parent,
            notes=notes,
            forced=forced,
            reason=reason,
            details=details,
            user=self.actor.user,
            host=self.actor.host,
            pid=self.actor.pid,
        )

    def _step(
        self,
        out: RunOutcome,
        stack: Any,
        name: str,
        body: Callable[[], tuple[bool, str, list[CheckResult], dict[str, Any]]],
    ) -> StepResult:
        """Open the step's ledger row, run it, close the row with its outcome and evidence."""
        self.emit(Event("step_started", stack.name, step=name))
        started = datetime.now(UTC)
        step_id = self._begin(stack, name, out.version, parent=out.action_id)
        t0 = time.monotonic()
        try:
            ok, summary, checks, evidence = body()
        except Exception as exc:  # a bug or an OS error must still close the row
            ok, summary, checks, evidence = False, f"{type(exc).__name__}: {exc}", [], {}
        result = StepResult(name, ok, started, time.monotonic() - t0, summary, checks, evidence)
        self.ledger.end_action(
            step_id, "success" if ok else "fail", notes=summary[:500], details=_evidence(result)
        )
        out.steps.append(result)
        self.emit(
            Event(
                "step_finished",
                stack.name,
                step=name,
                ok=ok,
                message=summary,
                data={
                    "duration_s": round(result.duration_s, 3),
                    "checks": [c.as_dict() for c in checks],
                },
            )
        )
        return result

    def _close(
        self,
        out: RunOutcome,
        status: str,
        exit_code: ExitCode,
        message: str,
        *,
        ledger_status: str | None = None,
        notes: str | None = None,
        hint: str = "",
    ) -> RunOutcome:
        out.status, out.exit_code, out.message, out.hint = status, exit_code, message, hint
        out.ended_at = datetime.now(UTC)
        if out.action_id:
            self.ledger.end_action(
                out.action_id,
                ledger_status or status,
                notes=notes,
                details={"message": message, **out.details},
            )
        self.emit(
            Event(
                "run_finished",
                out.stack,
                ok=status == "success",
                message=message,
                data={"status": status, "action": out.action},
            )
        )
        return out

    @staticmethod
    def _phase(phase: PhaseResult) -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
        return phase.ok, phase.summary, [], phase.evidence()

    def _smoke(
        self, stack: Any, runtime: Runtime, version: str
    ) -> tuple[bool, str, list[CheckResult], dict[str, Any]]:
        if not stack.smoke:
            return True, "no smoke checks configured", [], {}
        if getattr(runtime, "is_fleet", False):  # each host smoked on its own
            phase = runtime.smoke(version)  # type: ignore[attr-defined]
            checks = [
                CheckResult(f"{c['name']}@{h}", c["ok"], f"{h}: {c['summary']}")
                for h, o in phase.facts.get("hosts", {}).items()
                for c in o.get("checks", [])
            ]
            return phase.ok, phase.summary, checks, phase.facts
        results = run_checks(
            list(stack.smoke),
            version=version,
            transport=runtime.transport,
            cwd=runtime.smoke_cwd(),
            env=runtime.env_for(version),
            redact=runtime.redact,
            on_result=lambda c: self.emit(
                Event("check", stack.name, step="smoke", ok=c.ok, message=c.summary)
            ),
            clients=self.http,
        )
        failed = [c for c in results if not c.ok]
        summary = (
            f"{len(results)} check(s) passed"
            if not failed
            else "smoke failed: " + "; ".join(f"{c.name}: {c.summary}" for c in failed)
        )
        return not failed, summary, results, {}

    def _locked(self, stack: Any, action: str, version: str, token: str) -> _Lock:
        return _Lock(self, stack, action, version, token)


class _Lock:
    """Context manager around the stack lock; a refusal is itself recorded."""

    def __init__(
        self, engine: EngineBase, stack: Any, action: str, version: str, token: str
    ) -> None:
        self.engine, self.stack, self.action, self.version, self.run_id = (
            engine,
            stack,
            action,
            version,
            token,
        )

    def __enter__(self) -> None:
        e = self.engine
        try:
            locks.acquire(
                e.ledger,
                stack=self.stack.name,
                env=self.stack.env,
                run_id=self.run_id,
                actor=e.actor,
            )
        except LockHeld as exc:
            aid = e._begin(self.stack, self.action, self.version, notes=exc.message)
            e.ledger.end_action(aid, "refused", notes=exc.message)
            raise

    def __exit__(self, *exc: object) -> None:
        locks.release(self.engine.ledger, self.stack.name, self.run_id)
