"""The engine's shared parts: outcomes, the stack lock, ledger-recorded steps.

The engine never prints: it emits Events, and returns RunOutcomes that the CLI renders.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from releasegate import locks, names
from releasegate.errors import BadInput, ExitCode, LockHeld
from releasegate.execution.interrupts import Interrupted, LockLost
from releasegate.failpoint import pause_at
from releasegate.identity import Actor
from releasegate.ledger.trust import LedgerTampered
from releasegate.model import ActionRecord, CheckResult, Event, Plan, StepResult
from releasegate.redact import Redactor, read_env_file
from releasegate.runtimes.base import PhaseResult
from releasegate.smoke import HttpClientSource

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig
    from releasegate.execution.hosts import StackHosts
    from releasegate.ledger import Ledger

_log = logging.getLogger(__name__)
Emit = Callable[[Event], None]
LOCK_REFUSAL = {"refused_by": "lock"}


@dataclass(frozen=True)
class HostOptions:
    """How one run reaches a stack's hosts: the rollout options given on the command line
    (over the stack's `fleet:`), and whether new SSH host keys are accepted (and recorded)."""

    rollout: dict[str, Any] = field(default_factory=dict)
    accept_new_host_keys: bool = False


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
    # swarm: each service's image, running digest and replicas ("2/2"), as the survey saw them
    services: dict[str, Any] | None = None


def _failed_tail(evidence: Any, depth: int = 0) -> str:
    """The terminal tail of the first failed command in a step's evidence (one host's, or
    any host's of several), or ""."""
    if depth > 4:
        return ""
    if isinstance(evidence, dict):
        if evidence.get("tail"):
            return str(evidence["tail"])
        values: Any = evidence.values()
    elif isinstance(evidence, list):
        values = evidence
    else:
        return ""
    for value in values:
        if isinstance(value, dict | list) and (found := _failed_tail(value, depth + 1)):
            return found
    return ""


def _notes(evidence: Any, depth: int = 0) -> list[str]:
    """The transports' notes on the commands of a step (bounded depth: hosts, commands)."""
    if depth > 4:
        return []
    if isinstance(evidence, dict):
        found = [str(evidence["note"])] if evidence.get("note") else []
        return found + [n for v in evidence.values() for n in _notes(v, depth + 1)]
    if isinstance(evidence, list):
        return [n for v in evidence for n in _notes(v, depth + 1)]
    return []


def _evidence(step: StepResult) -> dict[str, Any]:
    return {"summary": step.summary, "checks": [c.as_dict() for c in step.checks], **step.evidence}


class Recorder:
    """Every run and step, whoever runs it (a deploy, a change record), written to the
    ledger the one way: a `running` row before it starts, closed with its outcome."""

    def __init__(self, ledger: Ledger, *, actor: Actor) -> None:
        self.ledger = ledger
        self.actor = actor

    def open_action(
        self,
        stack: str,
        env: str,
        action: str,
        version: str,
        *,
        parent: str | None = None,
        notes: str = "",
        forced: bool = False,
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> str:
        """Write an action's (or a step's, with `parent`) `running` row before it starts."""
        return self.ledger.begin_action(
            stack=stack,
            env=env,
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

    def close_action(
        self, action_id: str, status: str, summary: str, details: dict[str, Any] | None = None
    ) -> None:
        """Close a run's or a step's row with its outcome and evidence."""
        self.ledger.end_action(action_id, status, notes=summary[:500], details=details)


class EngineBase(Recorder):
    """Config, ledger, actor and the helpers every operation records its steps with."""

    def __init__(
        self, config: Any, ledger: Ledger, *, actor: Actor, emit: Emit | None = None
    ) -> None:
        super().__init__(ledger, actor=actor)
        self.config = config
        self.emit: Emit = emit or (lambda _e: None)
        self.http = HttpClientSource()  # smoke's HTTP client, built while commands run
        self._held: dict[str, _Lock] = {}  # stack name -> the lock this engine holds on it

    def close_action(
        self, action_id: str, status: str, summary: str, details: dict[str, Any] | None = None
    ) -> None:
        self._end(action_id, status, summary[:500], details)

    def _end(
        self, action_id: str, status: str, notes: str | None, details: dict[str, Any] | None
    ) -> None:
        """end_action, except for a row that the taker of this run's lock closed already (it
        judged this run dead): that row keeps the taker's word, and the run's `lock-lost`
        mark (`_lock_lost`) says what this run saw."""
        from releasegate.ledger.store import ActionClosed

        try:
            self.ledger.end_action(action_id, status, notes=notes, details=details)
        except ActionClosed:
            if not any(lock.lost_to() for lock in self._held.values()):
                raise

    def check_lock(self, stack: str) -> None:
        """At a step boundary: raise LockLost when this run's lock on `stack` is no longer
        its own. One read of the locks table: the heartbeat thread only learns it at its
        next beat, and a step must not start for a run that no longer owns the stack."""
        lock = self._held.get(stack)
        if lock is not None and (holder := lock.lost_to()):
            lock.told = True
            raise LockLost(stack, holder)

    def _lock_lost(self, out: RunOutcome, lost: LockLost) -> RunOutcome:
        """A run whose lock was taken over ends here: `aborted`, exit 5, nothing brought back
        (the new holder owns the stack and recovered what this run left). A `lock-lost` mark
        keeps the steps this run went through, whatever the taker wrote over its rows."""
        where = out.steps[-1].step if out.steps else "start"
        why = (
            f"this run's lock was {lost.holder} (during {where}): it stopped there and "
            "changed nothing more"
        )
        live = any(s.step == "verify" and s.ok for s in out.steps)
        if live:  # as for Ctrl-C after verify: the release was live, only the rest stopped
            why = f"{out.version} is live on {out.stack} (verified); {why}"
        status = "success" if live else "aborted"
        hint = f"releasegate history --stack {out.stack} shows what the new holder did"
        if out.action_id and out.ended_at is None:
            self._close(out, status, ExitCode.LOCKED, why, hint=hint)
        else:  # closed already (e.g. a follow-up's run): the outcome says it all the same
            out.status, out.exit_code, out.message, out.hint = status, ExitCode.LOCKED, why, hint
        steps = [{"step": s.step, "ok": s.ok, "summary": s.summary[:200]} for s in out.steps]
        self._mark_lock_lost(out.stack, out.env, out.version, why, run=out.action_id, steps=steps)
        return out

    def _mark_lock_lost(self, stack: str, env: str, version: str, why: str, **details: Any) -> None:
        self.ledger.mark(
            stack=stack,
            env=env,
            action="lock-lost",
            version=version,
            notes=why[:500],
            details=details,
            user=self.actor.user,
            host=self.actor.host,
            pid=self.actor.pid,
        )

    def _abandon(self, stack: StackConfig, lost: LockLost) -> None:
        """A lost lock met by an operation that does not handle it itself (backup, restore,
        migrate, sync, prune): this process's rows of the stack still open are closed
        `aborted`, steps first, and a `lock-lost` mark says why. Best effort: the LockLost
        goes on to the command line (exit 5) whatever happens here."""
        why = f"this run's lock was {lost.holder}: it stopped at a step boundary"
        try:
            mine = [
                a
                for a in self.ledger.open_actions(stack.name)
                if a.host == self.actor.host and a.pid == self.actor.pid
            ]
            for rec in sorted(mine, key=lambda a: a.parent_id is None):
                self._end(rec.action_id, "aborted", why, None)
            version = next((a.version for a in mine if a.parent_id is None), "")
            self._mark_lock_lost(
                stack.name, stack.env, version, why, closed=[a.action_id for a in mine]
            )
        except Exception as exc:  # e.g. the database away: the next run's recovery closes them
            _log.debug("closing the rows of a run whose lock was lost failed: %s", exc)

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

    def _hosts(
        self, stack: StackConfig, token: str, options: HostOptions | None = None
    ) -> StackHosts:
        """The stack's hosts for one run (one local host, or SSH hosts), close()d after."""
        from releasegate.execution.hosts import StackHosts

        opts = options or HostOptions()
        ssh = None
        parallel = 1
        if stack.on_ssh_hosts:
            from releasegate.execution.rollout import fd_limit, parallel_cap
            from releasegate.transport import ssh_options

            parallel = parallel_cap(
                opts.rollout.get("parallel") or stack.fleet.parallel, fd_limit()
            )
            ssh = ssh_options(
                connect_timeout=stack.fleet.connect_timeout, accept_new=opts.accept_new_host_keys
            )
        hosts = StackHosts(
            stack, self._redactor(stack), token, http=self.http, options=ssh, parallel=parallel
        )

        def progress(phase: str, host: str, ok: bool, summary: str) -> None:
            if len(hosts.hosts) > 1 or host != "local":
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

        hosts.on_host = progress
        return hosts

    def _env_sources(self, stack: StackConfig) -> list[dict[str, str]]:
        """Where secrets come from: the environment, env_vars, the stack's .env files."""
        envs: list[dict[str, str]] = [
            dict(os.environ),
            {str(k): str(v) for k, v in stack.env_vars.items()},
        ]
        paths = [Path(str(stack.dir)) / "shared" / entry for entry in stack.shared]
        if stack.runtime in ("compose", "swarm"):
            paths.append(Path(str(stack.dir)) / ".env")  # secrets beside the version var
        for path in paths:
            if path.name.startswith(".env") and path.is_file():
                envs.append(read_env_file(path.read_text(encoding="utf-8", errors="replace")))
        return envs

    def _redactor(self, stack: StackConfig) -> Redactor:
        return Redactor.from_env(*self._env_sources(stack))

    def _secrets(self, stack: StackConfig) -> dict[str, str]:
        """Values for `password_env` names: the stack's .env files win over the environment."""
        merged: dict[str, str] = {}
        for env in self._env_sources(stack):
            merged.update(env)
        return merged

    def _begin(self, stack: StackConfig, action: str, version: str, **kw: Any) -> str:
        """open_action for one of this config's stacks (parent, notes, forced, ...)."""
        return self.open_action(stack.name, stack.env, action, version, **kw)

    def _step(
        self,
        out: RunOutcome,
        stack: StackConfig,
        name: str,
        body: Callable[[], tuple[bool, str, list[CheckResult], dict[str, Any]]],
    ) -> StepResult:
        """Open the step's ledger row, run it, close the row with its outcome and evidence."""
        self.emit(Event("step_started", stack.name, step=name))
        started = datetime.now(UTC)
        step_id = self._begin(stack, name, out.version, parent=out.action_id)
        t0 = time.monotonic()
        try:
            pause_at(name)
            self.check_lock(stack.name)
            ok, summary, checks, evidence = body()
        except Interrupted as stop:  # Ctrl-C, SIGTERM or a lost lock: the step ends here
            why = f"aborted by {stop.name}"
            self.close_action(step_id, "aborted", why)
            out.steps.append(StepResult(name, False, started, time.monotonic() - t0, why))
            self.emit(Event("step_finished", stack.name, step=name, ok=False, message=why))
            raise
        except LedgerTampered as exc:  # a gate read a row that is not on the verified chain
            evidence = {"tampered_row": exc.seq}
            checks = [CheckResult(name, False, exc.message, evidence, hint=exc.hint)]
            ok, summary = False, exc.message
        except Exception as exc:  # a bug or an OS error must still close the row
            ok, summary, checks, evidence = False, f"{type(exc).__name__}: {exc}", [], {}
        result = StepResult(name, ok, started, time.monotonic() - t0, summary, checks, evidence)
        self.close_action(step_id, "success" if ok else "fail", summary, _evidence(result))
        out.steps.append(result)
        for note in _notes(evidence):  # e.g. a background child still holds the output
            self.emit(Event("message", stack.name, step=name, message=note))
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
                    **({"tail": tail} if (tail := _failed_tail(evidence)) and not ok else {}),
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
            self._end(
                out.action_id, ledger_status or status, notes, {"message": message, **out.details}
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

    def _locked(self, stack: StackConfig, action: str, version: str, token: str) -> _Lock:
        return _Lock(self, stack, action, version, token)


class _Lock:
    """Context manager around the stack lock; a refusal is itself recorded."""

    def __init__(
        self, engine: EngineBase, stack: StackConfig, action: str, version: str, token: str
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
        lease = float(getattr(e.config, "lock_lease", locks.DEFAULT_LEASE_S))
        try:
            locks.acquire(
                e.ledger,
                stack=self.stack.name,
                env=self.stack.env,
                run_id=self.run_id,
                actor=e.actor,
                lease_s=lease,
            )
        except LockHeld as exc:
            aid = e._begin(self.stack, self.action, self.version, notes=exc.message)
            # Marked: a run refused at the lock never touched the stack, so it is not the
            # stack's "last deploy" (that stays the holder's run, e.g. one that then died).
            e.ledger.end_action(aid, "refused", notes=exc.message, details=LOCK_REFUSAL)
            raise
        # Another machine judges this holder by its heartbeat (locks.py).
        self.beat = locks.Heartbeat(e.ledger, self.stack.name, self.run_id, lease).start()
        self.told = False  # a step boundary found the lock lost and said so (LockLost)
        e._held[self.stack.name] = self

    def lost_to(self) -> str:
        """ "" while this run holds its lock; else who has it now ("taken over by ...")."""
        try:
            holder = next(
                (i for i in self.engine.ledger.locks() if i.stack == self.stack.name), None
            )
        except Exception as exc:  # the database away: the heartbeat thread's verdict stands
            _log.debug("reading the locks failed: %s", exc)
            return "taken over (its heartbeat found another holder)" if self.beat.lost else ""
        if holder is not None and holder.run_id == self.run_id:
            return ""
        if holder is None:  # the taker finished meanwhile, or `lock release --force`
            return "taken over or released while this run was held up (nobody holds it now)"
        return f"taken over: {locks.describe(holder)}"

    def __exit__(self, _type: object, exc: object, _tb: object) -> None:
        from releasegate.ledger.store import LedgerWriteFailed

        if isinstance(exc, LockLost):  # no workflow handled it: its rows are closed here
            self.engine._abandon(self.stack, exc)
        self.engine._held.pop(self.stack.name, None)
        self.beat.stop()
        if self.beat.lost and not self.told:
            self.engine.emit(
                Event(
                    "message",
                    self.stack.name,
                    message="this run's lock was taken over while it ran (its heartbeat "
                    "lapsed): `releasegate history` shows by whom",
                )
            )
        try:
            locks.release(self.engine.ledger, self.stack.name, self.run_id)
        except LedgerWriteFailed:
            pass  # the ledger is full: its holder (this process) is dead for the next run
