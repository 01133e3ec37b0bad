"""What the engine asks of a runtime: the same plan (prepare, switch, restart, smoke)
carried out on release directories or on docker compose projects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from releasegate.model import CheckResult
from releasegate.ops import Program, chain, cmd
from releasegate.redact import Redactor
from releasegate.transport.base import CommandResult, Transport

EXCERPT = 2000  # characters of a command's output kept as evidence


@dataclass
class PhaseResult:
    ok: bool
    summary: str
    commands: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # e.g. containers, image digests

    def evidence(self) -> dict[str, Any]:
        return {"commands": self.commands, **self.facts}

    def run(
        self,
        transport: Transport,
        redact: Redactor,
        argv: list[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 120.0,
        label: str = "",
        stdin: str | None = None,
    ) -> CommandResult:
        """Run one command and keep it as evidence (argv and output redacted); a failure
        fails the phase."""
        result = transport.run(argv, cwd=cwd, env=env, timeout=timeout, stdin=stdin)
        return self.record(redact, argv, result, label)

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
        self.commands.append(
            {
                **({"phase": label} if label else {}),
                **what,
                "exit_code": result.exit_code,
                "duration_s": round(result.duration_s, 3),
                "output": redact(output[-EXCERPT:]),
                **({"error": result.error} if result.error else {}),
            }
        )
        if not result.ok:
            self.ok = False
        return result


class Runtime(Protocol):
    transport: Transport
    redact: Redactor
    root: PurePosixPath

    def running_version(self) -> str | None:
        """The version the service runs now, read from the runtime itself."""

    def describe_artifact(self, version: str) -> str | None:
        """Where `version` comes from (for plans and records); None if it cannot be found."""

    def is_prepared(self, version: str) -> bool: ...

    def preflight_checks(self, version: str | None) -> list[CheckResult]:
        """The runtime's own gates (artifact present, compose rules, networks, ...)."""

    def disk_path(self) -> PurePosixPath:
        """The file system whose free space the disk gate checks."""

    def smoke_cwd(self) -> Path | None:
        """Where command smoke checks run."""

    def env_for(self, version: str, previous: str | None = None) -> dict[str, str]: ...

    def prepare(self, version: str, previous: str | None) -> PhaseResult: ...

    def migrate(self, version: str, previous: str | None) -> PhaseResult: ...

    def switch(self, version: str) -> PhaseResult: ...

    def restart(self, version: str, previous: str | None) -> PhaseResult: ...

    def cleanup(self, newest_first: Sequence[str], protect: Iterable[str]) -> PhaseResult: ...

    def stop(self, command: Any = None) -> PhaseResult:
        """Stop the service's writers (before a database restore); `command` overrides."""
