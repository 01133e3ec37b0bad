"""Deploy windows (seed 003, 8.1): when a deploy may start, judged on the stack's own wall
clock. Pure: rules + an aware datetime -> a verdict with the next opening.

Times are wall-clock times in the window's time zone (zoneinfo), so "17:00" stays 17:00
across a DST change; an opening that falls in a spring-forward gap opens at the first
instant after the gap. Freezes win over slots: a frozen day has no opening at all."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from releasegate.model import CheckResult

if TYPE_CHECKING:
    from releasegate.config.schedules import WindowRule, WindowsConfig

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEARCH_DAYS = 400  # how far ahead an opening is looked for (a year of freezes and then some)


@dataclass(frozen=True)
class Verdict:
    open: bool
    reason: str  # why open, or why closed
    now: datetime  # in the window's time zone
    next_open: datetime | None = None  # when closed: the next opening (None: none in reach)
    closes: datetime | None = None  # when open inside a slot: when that slot ends

    def describe(self) -> str:
        if self.open:
            return self.reason + (f" until {_show(self.closes)}" if self.closes else "")
        when = (
            f"; the next window opens {_show(self.next_open)}"
            if self.next_open
            else f"; no window opens in the next {SEARCH_DAYS} days"
        )
        return self.reason + when

    def as_dict(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "reason": self.reason,
            "now": self.now.isoformat(),
            "next_open": self.next_open.isoformat() if self.next_open else None,
            "next_open_utc": self.next_open.astimezone(UTC).isoformat() if self.next_open else None,
            "closes": self.closes.isoformat() if self.closes else None,
        }


def _show(moment: datetime | None) -> str:
    if moment is None:
        return "?"
    return f"{moment:%a %Y-%m-%d %H:%M} {moment.tzname()} ({moment.astimezone(UTC):%H:%M} UTC)"


def _hm(text: str) -> time | None:
    """HH:MM -> a time; 24:00 -> None (the end of the day)."""
    if text == "24:00":
        return None
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _freeze_reason(day: date, cfg: WindowsConfig) -> str | None:
    for spec in cfg.freeze.dates:
        first_text, _, last_text = spec.partition("..")
        first = date.fromisoformat(first_text)
        last = date.fromisoformat(last_text) if last_text else first
        if first <= day <= last:
            return f"frozen: {spec}"
    last_days = cfg.freeze.last_days
    month_end = date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])
    quarter_month = (day.month - 1) // 3 * 3 + 3
    quarter_end = date(day.year, quarter_month, calendar.monthrange(day.year, quarter_month)[1])
    # Days left after this one: the last N days are those with fewer than N after them.
    if last_days.year and (date(day.year, 12, 31) - day).days < last_days.year:
        return f"frozen: the last {last_days.year} day(s) of the year"
    if last_days.quarter and (quarter_end - day).days < last_days.quarter:
        return f"frozen: the last {last_days.quarter} day(s) of the quarter"
    if last_days.month and (month_end - day).days < last_days.month:
        return f"frozen: the last {last_days.month} day(s) of the month"
    return None


def _wall(day: date, at: time | None, tz: ZoneInfo) -> datetime:
    """The instant of a wall-clock time (24:00: the next midnight). In a spring-forward
    gap, the first instant after it (the gap's wall times do not exist)."""
    if at is None:
        return _wall(day + timedelta(days=1), time(0, 0), tz)
    naive = datetime.combine(day, at)
    local = naive.replace(tzinfo=tz)
    back = local.astimezone(UTC).astimezone(tz)
    if back.replace(tzinfo=None) != naive:  # a time in the gap: it does not exist
        # The two readings of the gap time (offset before / after the change) bracket the
        # change; the first instant whose wall time is past `naive` is the gap's end.
        low = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
        high = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
        low, high = min(low, high), max(low, high)
        while high - low > timedelta(seconds=1):
            mid = low + (high - low) / 2
            if mid.astimezone(tz).replace(tzinfo=None) >= naive:
                high = mid
            else:
                low = mid
        return high.replace(microsecond=0).astimezone(tz)
    return local


def _slot_label(rule: WindowRule) -> str:
    return f"{','.join(rule.days)} {rule.start}-{rule.end}"


def judge(cfg: WindowsConfig | None, now: datetime) -> Verdict:
    """Is a deploy allowed at `now` (aware), and if not, when is the next opening?"""
    if now.tzinfo is None:
        raise ValueError("judge needs an aware datetime")
    if cfg is None:
        return Verdict(True, "no deploy windows configured", now)
    tz = ZoneInfo(cfg.timezone)
    local = now.astimezone(tz)
    frozen = _freeze_reason(local.date(), cfg)
    if frozen is None:
        if not cfg.allow:
            return Verdict(True, f"no freeze today ({cfg.timezone})", local)
        for rule in cfg.allow:
            if DAYS[local.weekday()] not in rule.days:
                continue
            start = _wall(local.date(), _hm(rule.start), tz)
            end = _wall(local.date(), _hm(rule.end), tz)
            if start <= local < end:
                return Verdict(True, f"inside the window {_slot_label(rule)} {cfg.timezone}",
                               local, closes=end)  # fmt: skip
        reason = (
            "outside every deploy window ("
            + "; ".join(_slot_label(r) for r in cfg.allow)
            + f" {cfg.timezone})"
        )
    else:
        reason = f"{frozen} ({local:%Y-%m-%d} {cfg.timezone})"
    return Verdict(False, reason, local, next_open=next_opening(cfg, local))


def next_opening(cfg: WindowsConfig, after: datetime) -> datetime | None:
    """The first instant after `after` at which a deploy is allowed."""
    tz = ZoneInfo(cfg.timezone)
    local = after.astimezone(tz)
    for offset in range(SEARCH_DAYS):
        day = local.date() + timedelta(days=offset)
        if _freeze_reason(day, cfg) is not None:
            continue
        if not cfg.allow:  # any time: the day's first instant (or now, if that is later)
            start = _wall(day, time(0, 0), tz)
            return max(start, local)
        starts = []
        for rule in cfg.allow:
            if DAYS[day.weekday()] not in rule.days:
                continue
            start = _wall(day, _hm(rule.start), tz)
            end = _wall(day, _hm(rule.end), tz)
            if end > local:
                starts.append(max(start, local))
        if starts:
            return min(starts)
    return None


def window_check(cfg: WindowsConfig | None, now: datetime, *, forced: bool) -> CheckResult:
    """The deploy's gate: refused outside a window (with the next opening); `--force
    --reason` passes and is recorded as FORCED, as the promotion gate does."""
    verdict = judge(cfg, now)
    evidence = verdict.as_dict()
    if verdict.open:
        return CheckResult("window", True, verdict.describe(), evidence)
    if forced:
        return CheckResult("window", True, f"FORCED past the deploy window: {verdict.describe()}",
                           {**evidence, "forced": True})  # fmt: skip
    return CheckResult(
        "window",
        False,
        verdict.describe(),
        evidence,
        hint="deploy when the window opens, or, in an emergency, add --force --reason TEXT "
        "(recorded as FORCED)",
    )


def now() -> datetime:
    """The current instant (aware)."""
    return datetime.now(UTC)
