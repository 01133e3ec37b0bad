"""Plain data shared by the planner, the engine, the ledger and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Step:
    """One step of a plan: what the engine will do, described before it is done."""

    name: str  # e.g. "promotion", "preflight", "backup", "switch", "smoke"
    title: str  # human sentence for --dry-run and the execution record
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    action: str  # "deploy" | "rollback"
    stack: str
    env: str
    version: str
    steps: tuple[Step, ...]
    forced: bool = False
    reason: str = ""
    notes: str = ""


@dataclass
class CheckResult:
    """The outcome of one gate rule or smoke check, kept as evidence."""

    name: str
    ok: bool
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    hint: str = ""

    def as_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: that deep-copies the evidence, and a fleet's steps carry
        # a check per host per rule.
        return {
            "name": self.name,
            "ok": self.ok,
            "summary": self.summary,
            "evidence": self.evidence,
            "hint": self.hint,
        }


@dataclass
class StepResult:
    step: str
    ok: bool
    started_at: datetime
    duration_s: float
    summary: str
    checks: list[CheckResult] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """What the core emits while it works; the CLI renders these, never the core."""

    # run_started | step_started | step_finished | check | message | run_finished
    kind: str
    stack: str
    step: str = ""
    ok: bool | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionRecord:
    """One action as the ledger knows it: its opening row joined with its closing row."""

    action_id: str
    parent_id: str | None
    seq: int  # seq of the opening row: the chronological order
    started_at: datetime  # UTC, timezone-aware
    ended_at: datetime | None
    stack: str
    env: str
    action: str
    version: str
    status: str  # running | success | fail | refused | interrupted
    notes: str
    user: str
    host: str
    pid: int
    forced: bool
    reason: str
    details: dict[str, Any]


@dataclass(frozen=True)
class LockInfo:
    stack: str
    run_id: str
    user: str
    host: str
    pid: int
    pid_start: str  # process start time token, to tell a reused pid from the holder
    since: datetime  # UTC
    # The holder's last sign of life (the ledger database's clock) and how long it may stay
    # silent before another machine takes its lock over; None from an older releasegate.
    heartbeat: datetime | None = field(default=None, compare=False)
    lease_s: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows_checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str = ""  # "edited" | "removed" | "reordered" | "truncated" | ""
    message: str = ""
