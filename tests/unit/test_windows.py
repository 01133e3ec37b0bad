"""Deploy windows as data: a config and an instant in, a verdict and the next opening out
(seed 003: weekdays 17:00-18:00, weekend mornings, never at month/quarter/year end)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from releasegate.config.schedules import WindowsConfig
from releasegate.gates.windows import judge, next_opening, window_check

SHANGHAI = ZoneInfo("Asia/Shanghai")
SEED_003 = WindowsConfig.model_validate(
    {
        "timezone": "Asia/Shanghai",
        "allow": [
            {"days": "weekdays", "from": "17:00", "to": "18:00"},
            {"days": ["sat", "sun"], "from": "10:00", "to": "11:00"},
        ],
        "freeze": {"last_days": {"month": 2, "quarter": 3, "year": 5}},
    }
)


def at(text: str, tz: ZoneInfo = SHANGHAI) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz)


@pytest.mark.parametrize(
    ("now", "is_open", "next_open", "why"),
    [
        # Wednesday 2026-01-14
        ("2026-01-14 17:00", True, None, "inside"),
        ("2026-01-14 17:59", True, None, "inside"),
        ("2026-01-14 18:00", False, "2026-01-15 17:00", "outside"),  # the end is excluded
        ("2026-01-14 16:59", False, "2026-01-14 17:00", "outside"),
        # Friday evening after the window: Saturday morning is next
        ("2026-01-16 19:00", False, "2026-01-17 10:00", "outside"),
        ("2026-01-17 10:30", True, None, "inside"),  # Saturday morning
        ("2026-01-17 17:30", False, "2026-01-18 10:00", "outside"),  # weekdays' slot: not sat
        # month end: 2026-01-30 and 31 frozen (last 2 days); Feb 1 is a Sunday
        ("2026-01-30 17:30", False, "2026-02-01 10:00", "month"),
        ("2026-01-29 17:30", True, None, "inside"),
        # quarter end: the last 3 days of March (29, 30, 31); April 1 is a Wednesday
        ("2026-03-29 10:30", False, "2026-04-01 17:00", "quarter"),
        ("2026-03-27 17:30", True, None, "inside"),  # Friday before: open
        ("2026-06-28 10:30", False, "2026-07-01 17:00", "quarter"),
        ("2026-09-30 17:30", False, "2026-10-01 17:00", "quarter"),
        # year end: the last 5 days (27..31); 2027-01-01 is a Friday
        ("2026-12-27 10:30", False, "2027-01-01 17:00", "year"),
        ("2026-12-24 17:30", True, None, "inside"),
    ],
)
def test_seed_003_windows(now: str, is_open: bool, next_open: str | None, why: str) -> None:
    verdict = judge(SEED_003, at(now))
    assert verdict.open is is_open, verdict.describe()
    assert why in verdict.reason
    if next_open is None:
        assert verdict.next_open is None
    else:
        assert verdict.next_open == at(next_open)


def test_the_instant_is_judged_in_the_windows_zone() -> None:
    # 09:30 UTC is 17:30 in Shanghai: open, whatever zone `now` comes in.
    assert judge(SEED_003, datetime(2026, 1, 14, 9, 30, tzinfo=UTC)).open
    assert not judge(SEED_003, datetime(2026, 1, 14, 17, 30, tzinfo=UTC)).open


def test_freeze_dates_and_ranges() -> None:
    cfg = WindowsConfig.model_validate(
        {"timezone": "UTC", "freeze": {"dates": ["2026-05-01", "2026-05-10..2026-05-12"]}}
    )
    assert not judge(cfg, datetime(2026, 5, 1, 12, tzinfo=UTC)).open
    assert judge(cfg, datetime(2026, 5, 2, 0, 0, tzinfo=UTC)).open
    closed = judge(cfg, datetime(2026, 5, 11, 8, tzinfo=UTC))
    assert not closed.open and "2026-05-10..2026-05-12" in closed.reason
    assert closed.next_open == datetime(2026, 5, 13, tzinfo=UTC)  # the first free midnight


BERLIN = ZoneInfo("Europe/Berlin")
NIGHT = WindowsConfig.model_validate(
    {"timezone": "Europe/Berlin", "allow": [{"days": "daily", "from": "02:30", "to": "03:30"}]}
)


def test_dst_spring_forward_gap_opens_after_the_gap() -> None:
    # 2026-03-29: Berlin's clocks jump 02:00 -> 03:00; 02:30 does not exist that night.
    before = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 01:30 CET
    opening = next_opening(NIGHT, before)
    assert opening is not None
    assert opening.astimezone(UTC) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert judge(NIGHT, datetime(2026, 3, 29, 1, 15, tzinfo=UTC)).open  # 03:15 CEST
    assert not judge(NIGHT, datetime(2026, 3, 29, 1, 31, tzinfo=UTC)).open  # 03:31 CEST


def test_dst_fall_back_keeps_wall_clock_times() -> None:
    # 2026-10-25: 03:00 CEST -> 02:00 CET. 17:00 stays 17:00 local: 16:00 UTC after the change.
    cfg = WindowsConfig.model_validate(
        {"timezone": "Europe/Berlin", "allow": [{"days": "daily", "from": "17:00", "to": "18:00"}]}
    )
    opening = next_opening(cfg, datetime(2026, 10, 25, 12, tzinfo=UTC))
    assert opening is not None and opening.astimezone(UTC) == datetime(2026, 10, 25, 16, tzinfo=UTC)
    day_before = next_opening(cfg, datetime(2026, 10, 24, 12, tzinfo=UTC))
    assert day_before is not None
    assert day_before.astimezone(UTC) == datetime(2026, 10, 24, 15, tzinfo=UTC)


def test_to_midnight_and_no_allow_list() -> None:
    late = WindowsConfig.model_validate(
        {"allow": [{"days": ["mon"], "from": "22:00", "to": "24:00"}]}
    )
    verdict = judge(late, datetime(2026, 1, 12, 23, 59, tzinfo=UTC))  # a Monday
    assert verdict.open and verdict.closes == datetime(2026, 1, 13, tzinfo=UTC)
    assert judge(WindowsConfig(), datetime(2026, 1, 31, tzinfo=UTC)).open  # no rules: open
    assert judge(None, datetime(2026, 1, 31, tzinfo=UTC)).open


def test_always_frozen_has_no_opening() -> None:
    cfg = WindowsConfig.model_validate({"freeze": {"dates": ["2026-01-01..2027-12-31"]}})
    verdict = judge(cfg, datetime(2026, 6, 1, tzinfo=UTC))
    assert not verdict.open and verdict.next_open is None
    assert "no window opens" in verdict.describe()


def test_the_gate_refuses_and_forced_passes_recorded() -> None:
    when = at("2026-01-14 19:00")
    refused = window_check(SEED_003, when, forced=False)
    assert not refused.ok and "next window opens Thu 2026-01-15 17:00" in refused.summary
    assert "--force --reason" in refused.hint
    forced = window_check(SEED_003, when, forced=True)
    assert forced.ok and forced.summary.startswith("FORCED past the deploy window")
    assert forced.evidence["forced"] is True
    assert forced.evidence["next_open_utc"] == "2026-01-15T09:00:00+00:00"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "not a known time zone"),
        ({"allow": [{"days": ["mon"], "from": "18:00", "to": "17:00"}]}, "the end must be later"),
        ({"allow": [{"days": ["funday"], "from": "1:00", "to": "2:00"}]}, "is not a day"),
        ({"allow": [{"days": ["mon"], "from": "7:00", "to": "8:00"}]}, "HH:MM"),
        ({"freeze": {"dates": ["2026-02-30"]}}, "2026-02-30"),
        ({"freeze": {"dates": ["2026-03-02..2026-03-01"]}}, "ends before it starts"),
        ({"freeze": {"last_days": {"month": 40}}}, "less than or equal"),
    ],
)
def test_bad_windows_config(value: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WindowsConfig.model_validate(value)
