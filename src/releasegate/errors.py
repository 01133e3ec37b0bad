"""Exceptions that end a command, each tied to a documented exit code."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Stable process exit codes; documented in the README and `releasegate --help`."""

    OK = 0
    FAILED = 1  # the action failed and nothing was rolled back (or the rollback failed too)
    BAD_INPUT = 2  # bad arguments, names or configuration
    REFUSED = 3  # a gate refused the action; nothing was changed
    ROLLED_BACK = 4  # the action failed and the previous good version was restored
    LOCKED = 5  # another run holds the stack's lock
    TAMPERED = 6  # the ledger failed verification: `audit verify`, an anchor, or a gate
    INTERRUPTED = 130  # Ctrl-C (SIGINT): the run stopped at a safe point (128 + 2)
    TERMINATED = 143  # SIGTERM: the run stopped at a safe point (128 + 15)


class ReleasegateError(Exception):
    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class BadInput(ReleasegateError):
    exit_code = ExitCode.BAD_INPUT


class ConfigError(BadInput):
    """A problem in releasegate.yaml; `message` already names file:line and the key."""


class Refused(ReleasegateError):
    exit_code = ExitCode.REFUSED


class LockHeld(ReleasegateError):
    exit_code = ExitCode.LOCKED


class Tampered(ReleasegateError):
    exit_code = ExitCode.TAMPERED
