"""releasegate.yaml keys for time and data: deploy `windows:`, scheduled jobs `cron:`, and
the `sql` smoke check. Validation only; the rules live in releasegate.gates.windows,
releasegate.cron and releasegate.datachecks."""

# No `from __future__ import annotations`: see values.py.
import re
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from releasegate.config.values import Label, StrictModel, fail, unique

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_GROUPS = {"weekdays": DAYS[:5], "weekend": DAYS[5:], "daily": DAYS}
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
_DATE = r"\d{4}-\d{2}-\d{2}"
_DATES = re.compile(rf"^({_DATE})(?:\.\.({_DATE}))?$")


def _days(value: Any) -> Any:
    """`weekdays`, `weekend`, `daily`, or a list of mon..sun (groups allowed in the list)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        fail("expected a list of days (mon..sun) or weekdays, weekend, daily")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            fail("a day is a name: mon..sun, weekdays, weekend or daily")
        word = item.strip().lower()
        word = word[:3] if word in _FULL else word
        if word in _GROUPS:
            out += [d for d in _GROUPS[word] if d not in out]
        elif word in DAYS:
            if word not in out:
                out.append(word)
        else:
            fail(f"'{item}' is not a day: use mon..sun, weekdays, weekend or daily")
    return out


def _hhmm(value: str) -> str:
    if not _HHMM.match(value):
        fail(f"'{value}' is not a time of day: use HH:MM (00:00 .. 24:00), quoted in YAML")
    return value


HourMinute = Annotated[str, AfterValidator(_hhmm)]


class WindowRule(StrictModel):
    """One allowed slot: these days, from HH:MM up to (not including) HH:MM, local time."""

    days: Annotated[list[str], BeforeValidator(_days)]
    start: HourMinute = Field(validation_alias="from")
    end: HourMinute = Field(validation_alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            fail(
                f"from {self.start} to {self.end}: the end must be later the same day "
                "(a slot over midnight is two slots: ... to 24:00, and 00:00 to ...)"
            )
        return self


class LastDays(StrictModel):
    """Freeze the last N days of every month, quarter and/or year (0: no freeze)."""

    month: Annotated[int, Field(ge=0, le=27)] = 0
    quarter: Annotated[int, Field(ge=0, le=90)] = 0
    year: Annotated[int, Field(ge=0, le=365)] = 0


def _date_range(value: str) -> str:
    from datetime import date

    found = _DATES.match(value)
    if not found:
        fail(f"'{value}' is not a date (YYYY-MM-DD) or a range (YYYY-MM-DD..YYYY-MM-DD)")
    try:
        first = date.fromisoformat(found[1])
        last = date.fromisoformat(found[2]) if found[2] else first
    except ValueError as exc:
        fail(f"'{value}': {exc}")
    if last < first:
        fail(f"'{value}': the range ends before it starts")
    return value


class Freeze(StrictModel):
    dates: list[Annotated[str, AfterValidator(_date_range)]] = Field(default_factory=list)
    last_days: LastDays = Field(default_factory=LastDays)


def _timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        fail(f"'{value}' is not a known time zone (e.g. UTC, Europe/Moscow, Asia/Shanghai)")
    return value


class WindowsConfig(StrictModel):
    """When a deploy may start (seed 003: weekdays 17:00-18:00 or weekend mornings, never
    at month-, quarter- or year-end). No `allow`: any time outside a freeze."""

    timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"
    allow: list[WindowRule] = Field(default_factory=list)
    freeze: Freeze = Field(default_factory=Freeze)


# ---- scheduled jobs ------------------------------------------------------------------------

_JOB_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


def _schedule(value: str) -> str:
    from releasegate.cron.schedule import CronInvalid, validate

    try:
        validate(value)
    except CronInvalid as exc:
        fail(str(exc))
    return value


def _argv(value: list[str]) -> list[str]:
    if not value:
        fail("must not be empty: the program and its arguments, as a list")
    for word in value:
        if any(c in word for c in "\n\r\0"):
            fail("an argument must not contain a newline or a NUL (it would break the crontab)")
    return value


class CronJob(StrictModel):
    """One scheduled job: run `argv` in the current release, with the release's environment."""

    name: Annotated[str, Field(pattern=_JOB_NAME)]
    schedule: Annotated[str, AfterValidator(_schedule)]
    argv: Annotated[list[str], AfterValidator(_argv)]

    @field_validator("argv", mode="before")
    @classmethod
    def _not_shell(cls, value: Any) -> Any:
        if isinstance(value, str):
            fail("must be a list (e.g. [python3, sync.py, --all]), not a shell string")
        return value


def _unique_jobs(jobs: list[CronJob]) -> list[CronJob]:
    unique("job")([j.name for j in jobs])
    return jobs


_CRON_USER = r"^[a-z_][a-z0-9_-]{0,31}$"


class CronConfig(StrictModel):
    """Jobs installed with each release as one marked block: in `user`'s crontab
    (`crontab -l` / `crontab -`), or in /etc/cron.d/<stack> (`target: cron.d`)."""

    target: Literal["crontab", "cron.d"] = "crontab"
    user: Annotated[str, Field(pattern=_CRON_USER)] | None = None  # default: the SSH user
    cron_d_dir: Annotated[str, Field(pattern=r"^/[A-Za-z0-9_./-]*$")] = "/etc/cron.d"
    jobs: Annotated[list[CronJob], AfterValidator(_unique_jobs)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cron_d_user(self) -> Self:
        if self.target == "cron.d" and self.user is None:
            fail("user: required for target cron.d (its lines name the user they run as)")
        return self


# ---- the `sql` smoke check -------------------------------------------------------------------


class SqlCheckSpec(StrictModel):
    """The parts of a `sql` check besides the shared ones (schema.SqlCheck adds those)."""

    KIND: ClassVar[str] = "sql"

    sql: Annotated[str, Field(min_length=1, max_length=10_000)]
    source: Label  # a backup source of the stack (its connection and credentials)
    max_rows: Annotated[int, Field(ge=1, le=10_000)] = 100
    max_bytes: Annotated[int, Field(ge=1, le=16 * 1024 * 1024)] = 64 * 1024
    equals: str | int | None = None  # the first column of the first row, as text
    at_least: int | float | None = None  # the first column of the first row, a number
    at_most: int | float | None = None
    empty: bool | None = None  # True: no rows; False: at least one row

    @field_validator("sql")
    @classmethod
    def _one_statement(cls, value: str) -> str:
        # A second statement could end the read-only transaction (releasegate.datachecks).
        if ";" in value.strip().rstrip(";"):
            fail("one statement only: the query must not contain ';' (but at its end)")
        return value

    @model_validator(mode="after")
    def _one_expectation(self) -> Self:
        given = [
            k for k in ("equals", "at_least", "at_most", "empty") if getattr(self, k) is not None
        ]
        if not given:
            fail("needs an expectation: equals, at_least, at_most or empty")
        if "empty" in given and len(given) > 1:
            fail("empty cannot be combined with equals, at_least or at_most")
        return self


# ---- `releasegate check` ---------------------------------------------------------------------

_AGE = re.compile(r"^\s*(\d{1,6}(?:\.\d+)?)\s*([smhd])\s*$")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _age(value: Any) -> Any:
    """`26h`, `2d`, `90m` -> seconds (a plain number is seconds)."""
    if isinstance(value, str):
        found = _AGE.match(value)
        if not found:
            fail(f"'{value}' is not an age: a number and a unit (s, m, h, d), e.g. 26h")
        return float(found[1]) * _AGE_UNITS[found[2]]
    if isinstance(value, int):
        return float(value)
    return value


AgeSeconds = Annotated[float, BeforeValidator(_age), Field(gt=0)]


class HealthCheckConfig(StrictModel):
    """What `releasegate check STACK ENV` holds the stack to besides its checks."""

    max_backup_age: AgeSeconds | None = None  # the newest verified backup, at most this old
