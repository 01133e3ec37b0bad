"""Cron expressions: validated and walked with cronsim (Vixie cron's semantics, as
Debian's cron runs them). The @macros cron knows are accepted and rendered as written."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from itertools import islice

# The macros Vixie cron accepts, and the 5-field expression each stands for.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MAX_LENGTH = 200


class CronInvalid(ValueError):
    pass


def expand(expr: str) -> str:
    """The 5-field form of an expression (macros expanded, spaces normalised)."""
    text = " ".join(expr.split())
    return MACROS.get(text.lower(), text)


def validate(expr: str) -> str:
    """The expression, normalised; CronInvalid says what is wrong with it."""
    from cronsim import CronSim, CronSimError

    if len(expr) > MAX_LENGTH or any(c in expr for c in "\n\r\0%"):
        raise CronInvalid(f"'{expr[:60]}' is not a cron schedule (one line, no '%')")
    text = " ".join(expr.split())
    if text.startswith("@") and text.lower() not in MACROS:
        raise CronInvalid(f"'{text}' is not a cron macro ({', '.join(MACROS)})")
    fields = expand(text)
    if len(fields.split(" ")) != 5:
        raise CronInvalid(
            f"'{text}' is not a cron schedule: 5 fields (minute hour day month weekday)"
        )
    try:
        CronSim(fields, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise CronInvalid(f"'{text}' is not a cron schedule: {exc}") from None
    return text


def next_runs(expr: str, after: datetime, count: int = 3) -> list[datetime]:
    """The next `count` times the schedule fires after `after` (same tzinfo as given)."""
    from cronsim import CronSim

    it: Iterator[datetime] = CronSim(expand(validate(expr)), after)
    return list(islice(it, count))
