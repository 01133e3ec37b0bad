"""What the engine asks of a runtime: the same plan (prepare, switch, restart, smoke)
carried out on release directories or on docker compose projects."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

from releasegate.model import CheckResult
from releasegate.ops import Program, chain, cmd
from releasegate.redact import Redactor
from releasegate.transport.base import CommandResult, Transport, tail_for_terminal

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig

EXCERPT = 2000  # characters of a command's output kept as evidence


@dataclass
class PhaseResult:
    ok: bool
    summary: str
    commands: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # e.g. containers, image digests

    def evidence(self) -> dict[str, Any]:
        return {"commands": self.commands, **self.facts}

    def step(
        self, redact: Redactor, argv: list[str], *, label: str = "", **kw: Any
    ) -> Program[CommandResult]:
        """`run` as an operation: `result = yield from phase.step(redact, argv, ...)`."""
        result: CommandResult = yield cmd(argv, **kw)
        return self.record(redact, argv, result, label)

    def chain(
        self, redact: Redactor, commands: list[list[str]], *, stdin: str | Path | None = None
    ) -> Program[CommandResult]:
        """Several commands in one round trip (releasegate.ops.chain), kept as evidence by
        the commands themselves, not the shell script that carries them (nor their stdin)."""
        result: CommandResult = yield cmd(chain(commands), stdin=stdin)
        return self.record(redact, commands[0], result, shown=commands)

    def record(
        self,
        redact: Redactor,
        argv: list[str],
        result: CommandResult,
        label: str = "",
        *,
        shown: list[list[str]] | None = None,
    ) -> CommandResult:
        output = (result.stdout + result.stderr).strip()
        what: dict[str, Any] = (
            {"chain": [[redact(a) for a in c] for c in shown]}
            if shown
            else {"argv": [redact(a) for a in argv]}
        )
        entry: dict[str, Any] = {
            **({"phase": label} if label else {}),
            **what,
            "exit_code": result.exit_code,
            "duration_s": round(result.duration_s, 3),
            "output": redact(output[-EXCERPT:]),
            **({"error": result.error} if result.error else {}),
        }
        if result.note:  # who still holds the output, and how to detach it
            entry["note"] = redact(result.note)
        if not result.ok:  # what the terminal shows of a failure: bounded, masked
            entry["tail"] = tail_for_terminal(result, redact)
        self.commands.append(entry)
        if not result.ok:
            self.ok = False
        return result


def base_env(stack: StackConfig, version: str, previous: str | None) -> dict[str, str]:
    """What every team command sees, whatever the runtime: the stack's env_vars and the
    run's facts. Values travel in the environment, never in a shell line."""
    env = {str(k): str(v) for k, v in (stack.env_vars or {}).items()}
    env.update(
        RELEASEGATE_STACK=stack.name,
        RELEASEGATE_ENV=stack.env,
        RELEASEGATE_VERSION=version,
        RELEASEGATE_PREVIOUS_VERSION=previous or "",
        RELEASEGATE_DIR=str(stack.dir),
    )
    return env


@dataclass(frozen=True)
class HostSurvey:
    """One host as its runtime's survey saw it (one program, usually one round trip)."""

    ok: bool
    summary: str
    version: str | None = None  # what the host runs now
    prepared: frozenset[str] = frozenset()  # releases complete on the host
    names: tuple[str, ...] = ()  # every entry of releases/ (cleanup sorts these)
    probe: CommandResult | None = None  # disk, commands, shared files (gates.preflight)
    root_exists: bool = False  # the stack's dir exists on the host
    lost: bool = False  # the host could not be reached
    # A compose host's files as read (name -> text; .env included): memory only, secrets.
    files: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    # What else the runtime saw, for `status` (a swarm stack: each service's digest, replicas).
    details: dict[str, Any] = field(default_factory=dict, compare=False)


class HostRuntime(Protocol):
    """What a runtime supplies for one host: facts, and programs of operations per phase
    (releasegate.ops). execution.hosts carries them out on one host or many."""

    transport: Transport
    redact: Redactor
    root: PurePosixPath

    def describe_artifact(self, version: str) -> str | None:
        """Where `version` comes from (for plans and records); None if it cannot be found."""

    def controller_checks(self, version: str | None) -> list[CheckResult]:
        """Checks made once on this machine (the artifact to upload)."""

    def content(self, version: str) -> dict[str, str]:
        """What `version` is made of, as far as this machine can tell before a deploy (an
        artifact's sha256); what promotion binds to besides the name."""

    def before_prepare(self, version: str) -> None:
        """Work done once on this machine before the hosts prepare (pack an artifact)."""

    def env_for(self, version: str, previous: str | None = None) -> dict[str, str]: ...

    def smoke_dir(self) -> PurePosixPath:
        """Where command smoke checks run on the host."""

    def check_dir(self) -> PurePosixPath | None:
        """Where the team's preflight checks run (None: the stack's dir is not there yet)."""

    def survey_ops(self) -> Program[HostSurvey]: ...

    def host_checks_ops(self, version: str | None, seen: HostSurvey) -> Program[list[CheckResult]]:
        """The runtime's own gates on one host (disk, commands, files, compose rules, ...)."""

    def prepare_ops(
        self, version: str, previous: str | None, *, prepared: bool, as_is: bool = False
    ) -> Program[PhaseResult]:
        """`as_is`: a prepared release serves as it is (a rollback), its artifact unchecked."""

    def migrate_ops(self, version: str, previous: str | None) -> Program[PhaseResult]: ...

    def switch_ops(self, version: str) -> Program[PhaseResult]: ...

    def restart_ops(self, version: str, previous: str | None) -> Program[PhaseResult]: ...

    def cleanup_ops(
        self, newest_first: Sequence[str], protect: Iterable[str], names: Sequence[str] | None
    ) -> Program[PhaseResult]: ...

    def stop_ops(self, command: Any = None) -> Program[PhaseResult]:
        """Stop the service's writers (before a database restore); `command` overrides."""

    def slot_start_ops(
        self, slot: str, version: str, previous: str | None, was: str | None
    ) -> Program[PhaseResult]:
        """Blue/green (`proxy:`): start `version` in `slot` next to the live one, on the
        slot's address (releasegate.proxy.slots.slot_env); `was`: what the slot ran before."""

    def slot_stop_ops(self, slot: str, version: str) -> Program[PhaseResult]:
        """Stop what runs in `slot` (`version`); facts["stopped"] False: it keeps running."""
