"""The seed's deploy-history.log line and verified/<stack>.txt files, byte for byte."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from releasegate.ledger import (
    ActionFilter,
    Ledger,
    export_verified,
    format_log_line,
    format_log_row,
    shown_notes,
)
from releasegate.model import ActionRecord

WHO = {"user": "alice", "host": "build1", "pid": 4242}
SEED_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \| [^|]+ \| [^|]+ \| [^|]+ \| [^|]* \| [^|]+ \|( [^|]*)?$"
)


def record(**changes: Any) -> ActionRecord:
    base: dict[str, Any] = {
        "action_id": "a" * 32,
        "parent_id": None,
        "seq": 1,
        "started_at": datetime(2026, 1, 30, 10, 0, 0, 123456, tzinfo=UTC),
        "ended_at": None,
        "stack": "odoo18-prod",
        "env": "prod",
        "action": "deploy",
        "version": "sha-19b9b98",
        "status": "success",
        "notes": "",
        "user": "alice",
        "host": "build1",
        "pid": 1,
        "forced": False,
        "reason": "",
        "details": {},
    }
    return ActionRecord(**{**base, **changes})


def test_the_seeds_own_lines_come_out_exactly() -> None:
    # Lines copied from seed 001's deploy-history.log example.
    assert (
        format_log_line(record(), UTC)
        == "2026-01-30 10:00:00 | odoo18-prod | prod | deploy | sha-19b9b98 | success |"
    )
    assert (
        format_log_line(record(version="sha-abc123", status="fail", notes="smoke failed"), UTC)
        == "2026-01-30 10:00:00 | odoo18-prod | prod | deploy | sha-abc123 | fail | smoke failed"
    )
    rollback = record(action="rollback", notes="from sha-abc123")
    assert format_log_line(rollback, UTC).endswith(
        "| rollback | sha-19b9b98 | success | from sha-abc123"
    )


def test_local_time_is_shown_in_the_given_zone() -> None:
    tokyo = timezone(timedelta(hours=9))
    assert format_log_line(record(), tokyo).startswith("2026-01-30 19:00:00 |")


@pytest.mark.parametrize(
    ("notes", "shown"),
    [
        ("a | b", "a / b"),  # '|' only ever separates fields
        ("line1\nline2\r\nline3", "line1 line2 line3"),  # one action, one line
        ("  padded  ", "padded"),
    ],
)
def test_notes_can_never_break_the_line(notes: str, shown: str) -> None:
    line = format_log_line(record(notes=notes), UTC)
    assert line.endswith(f"| success | {shown}")
    assert SEED_LINE.match(line) and "\n" not in line


def test_a_tampered_field_still_gives_one_seven_field_line() -> None:
    line = format_log_line(record(version="v1 | success | FORCED\nfake"), UTC)
    assert "\n" not in line and line.count(" | ") == 5


def test_grep_recipes_from_the_seed_still_work() -> None:
    lines = [
        format_log_line(record(), UTC),
        format_log_line(record(status="fail", notes="smoke failed"), UTC),
        format_log_line(record(notes="FORCED: hotfix INC-42", forced=True), UTC),
    ]
    assert [ln for ln in lines if re.search(r"\| .* \| fail \|", ln)] == [lines[1]]
    assert [ln for ln in lines if re.search(r"\| .* \| .* \| FORCED", ln)] == [lines[2]]


@pytest.mark.parametrize(
    ("notes", "forced", "reason", "shown"),
    [
        ("", False, "", ""),
        ("smoke failed", False, "", "smoke failed"),
        ("FORCED: INC-1", True, "INC-1", "FORCED: INC-1"),  # the open row's own notes
        ("smoke failed", True, "INC-1", "FORCED: INC-1; smoke failed"),  # a failed forced run
        ("", True, "INC-1", "FORCED: INC-1"),
        ("BACKUP SKIPPED: INC-1 (FORCED)", True, "INC-1", "BACKUP SKIPPED: INC-1 (FORCED)"),
    ],
)
def test_a_forced_action_says_forced_whatever_its_outcome(
    notes: str, forced: bool, reason: str, shown: str
) -> None:
    assert shown_notes(notes, forced, reason) == shown
    line = format_log_line(record(status="fail", notes=notes, forced=forced, reason=reason), UTC)
    assert line.endswith(f"| fail | {shown}" if shown else "| fail |")
    assert ("| FORCED" in line or "(FORCED)" in line) is forced


def test_log_rows_give_the_same_lines_as_records(tmp_path: Path) -> None:
    led = Ledger.open(str(tmp_path / "state.db"))
    for i, (stack, status, notes) in enumerate(
        [("web", "success", ""), ("api", "fail", "smoke failed: a|b"), ("web", "refused", "no")]
    ):
        aid = led.begin_action(stack=stack, env="prod", action="deploy", version=f"v{i}", **WHO)
        led.end_action(aid, status, notes=notes)
        step = led.begin_action(
            stack=stack, env="prod", action="smoke", version=f"v{i}", parent_id=aid, **WHO
        )
        led.end_action(step, "success")
    forced = led.begin_action(
        stack="api", env="prod", action="deploy", version="v8", notes="FORCED: INC-1",
        forced=True, reason="INC-1", **WHO,
    )  # fmt: skip
    led.end_action(forced, "fail", notes="smoke failed")
    led.begin_action(stack="web", env="prod", action="deploy", version="v9", notes="n", **WHO)
    for filters in (
        {},
        {"stack": "web"},
        {"status": "fail"},
        {"forced": True},
        {"status": "running"},
        {"last": 2},
        {"top_level_only": False},
        {"action": "smoke", "top_level_only": False},
    ):
        via_records = [format_log_line(r) for r in led.actions(**filters)]
        last = filters.pop("last", None)
        keep = ActionFilter(**filters)
        via_rows = [format_log_row(r) for r in led.log_rows(keep, last=last)]
        assert led.matching(keep, last=last) == led.actions(**filters, last=last)
        assert via_rows == via_records, filters
        assert via_rows and all(SEED_LINE.match(ln) for ln in via_rows)
    led.close()


def test_verified_files_are_the_seeds_shape(tmp_path: Path) -> None:
    led = Ledger.open(str(tmp_path / "state.db"))
    led.mark(stack="web-prod", env="prod", action="verify", version="sha-1", **WHO)
    led.mark(stack="web-prod", env="prod", action="verify", version="sha-2", **WHO)
    led.mark(stack="web-staging", env="staging", action="verify", version="sha-3", **WHO)
    out = tmp_path / "verified"
    written = export_verified(led, out)
    assert sorted(p.name for p in written) == ["web-prod.txt", "web-staging.txt"]
    assert (out / "web-prod.txt").read_text() == "sha-2\n"
    assert (out / "web-staging.txt").read_text() == "sha-3\n"
    assert sorted(p.name for p in out.iterdir()) == ["web-prod.txt", "web-staging.txt"]
    led.close()
