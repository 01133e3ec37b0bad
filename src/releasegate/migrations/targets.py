"""Where `migrate rollback --to-release V` goes: the migration state the ledger recorded when
V was last deployed (its migrate step's applied list), turned into the tool's downgrade
targets. Pure: the engine reads the ledger and the current status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from releasegate.errors import BadInput, Refused
from releasegate.migrations.model import Status


def recorded_applied(evidence: dict[str, Any]) -> list[str] | None:
    """The applied migrations a deploy's migrate step recorded (None when it did not:
    a deploy older than this record, or a failed step)."""
    status = evidence.get("status")
    applied = status.get("applied") if isinstance(status, dict) else evidence.get("applied")
    if not isinstance(applied, list) or not all(isinstance(x, str) for x in applied):
        return None
    return list(applied)


def _app(name: str) -> str:
    return name.split(".", 1)[0]


def rollback_targets(tool: str, current: Status, recorded: Sequence[str]) -> list[str]:
    """The downgrade targets that bring `current` back to `recorded`: per Django app its last
    recorded migration (APP.zero when none was), for Alembic the recorded revision. Only
    backwards: a target that is not applied now would migrate forward, and is refused."""
    if tool == "django":
        apps = list(dict.fromkeys(_app(m.name) for m in current.migrations))
        out = []
        for app in apps:
            now = [m for m in current.applied if _app(m) == app]
            then = [m for m in recorded if _app(m) == app]
            target = then[-1] if then else f"{app}.zero"
            if (now[-1] if now else f"{app}.zero") == target:
                continue
            if not target.endswith(".zero") and target not in now:
                raise Refused(
                    f"{target} is not applied now: going there would migrate forward",
                    hint="migrate rollback only goes back; deploy that release instead",
                )
            out.append(target)
        return out
    if tool == "alembic":
        revision = recorded[-1] if recorded else "base"
        current_rev = current.applied[-1] if current.applied else "base"
        if revision == current_rev:
            return []
        if revision != "base" and revision not in current.applied:
            raise Refused(
                f"{revision} is not applied now: going there would migrate forward",
                hint="migrate rollback only goes back; deploy that release instead",
            )
        return [revision]
    raise BadInput(f"--to-release needs a tool with down migrations (django, alembic), not {tool}")
