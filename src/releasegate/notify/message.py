"""What a notification says: pure functions from a run's outcome to the events it raises
and to the title and body sent. Every text goes through the caller's redactor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

LABELS = {
    "started": "STARTED",
    "forced": "FORCED",
    "live": "LIVE",
    "failed": "FAILED",
    "rolled_back": "ROLLED BACK",
    "refused": "REFUSED",
    "watch_failed": "WATCH FAILED, ROLLED BACK",
    "approval_needed": "APPROVAL NEEDED",
}
MAX_MESSAGE = 1000


@dataclass(frozen=True)
class Notice:
    """One notification's facts (no secret among them once redacted)."""

    event: str
    action: str  # deploy | rollback | change
    stack: str
    env: str
    version: str
    user: str
    outcome: str  # the run's status: running, success, rolled_back, refused, failed, ...
    message: str
    record: str = ""  # the execution record's path
    action_id: str = ""
    forced: bool = False


def outcome_event(action: str, status: str, *, watch_failed: bool = False) -> str | None:
    """The event a finished run raises (None: none worth a notification)."""
    if action == "deploy":
        if status == "rolled_back":
            return "watch_failed" if watch_failed else "rolled_back"
        return {
            "success": "live",
            "refused": "refused",
            "failed": "failed",
            "aborted": "failed",
        }.get(status)
    if action == "rollback":  # a rollback asked for by hand
        return {"success": "rolled_back", "failed": "failed", "aborted": "failed"}.get(status)
    return None


def start_event(*, forced: bool) -> str:
    return "forced" if forced else "started"


def render(notice: Notice, redact: Callable[[str], str]) -> tuple[str, str]:
    """(title, body): the stack, env, version, who, the outcome and the record's path."""
    label = LABELS.get(notice.event, notice.event.upper())
    if notice.forced and notice.event != "forced":
        label += " (FORCED)"
    title = (
        f"releasegate: {notice.action} {notice.version} on {notice.stack} ({notice.env}): {label}"
    )
    lines = [
        f"Stack: {notice.stack}",
        f"Environment: {notice.env}",
        f"Action: {notice.action}",
        f"Version: {notice.version or '-'}",
        f"By: {notice.user}",
        f"Outcome: {notice.outcome}",
    ]
    if notice.message:
        lines.append(f"Message: {notice.message[:MAX_MESSAGE]}")
    if notice.record:
        lines.append(f"Record: {notice.record}")
    if notice.action_id:
        lines.append(f"Ledger action: {notice.action_id}")
    return redact(title), redact("\n".join(lines))
