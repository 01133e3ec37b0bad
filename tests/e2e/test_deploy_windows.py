"""Deploy windows end to end: the real CLI refuses a deploy outside its window (exit 3, the
next opening named), deploys inside one, and records `--force --reason` as FORCED.

The windows are built around the real clock: a fixed-offset zone puts the local time near
noon, far from midnight, so "today" cannot change under the test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.conftest import Lab, _teardown, build_lab

pytestmark = pytest.mark.e2e
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _noon_zone() -> tuple[str, datetime]:
    """A zone in which it is about noon now, and the local time there."""
    offset = 12 - datetime.now(UTC).hour  # -11 .. +12: all exist as Etc/GMT zones
    name = "Etc/GMT" + (f"{-offset:+d}" if offset else "")  # Etc/GMT-5 is UTC+5
    return name, datetime.now(ZoneInfo(name))


def _with_windows(lab: Lab, windows: str) -> None:
    text = lab.config.read_text(encoding="utf-8")
    lab.config.write_text(text.replace("  web-prod:", windows + "  web-prod:"), encoding="utf-8")


@pytest.fixture()
def wlab(tmp_path):
    lab = build_lab(tmp_path / "ws")
    yield lab
    _teardown(lab)


def test_closed_now_refuses_with_the_next_opening_and_force_is_recorded(wlab: Lab) -> None:
    zone, local = _noon_zone()
    today = DAYS[local.weekday()]
    others = [d for d in DAYS if d != today]
    _with_windows(
        wlab,
        f"    windows:\n      timezone: {zone}\n      allow:\n"
        f"        - {{days: [{', '.join(others)}], from: '00:00', to: '24:00'}}\n",
    )
    tomorrow = (local + timedelta(days=1)).date().isoformat()

    plan = wlab.rg("deploy", "web-staging", "staging", "v1", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "deploy window: CLOSED" in plan.stdout
    assert "the next window opens" in plan.stdout and tomorrow in plan.stdout

    refused = wlab.rg("deploy", "web-staging", "staging", "v1")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "REFUSED" in refused.stdout and f"{tomorrow} 00:00" in refused.stdout
    assert "--force --reason" in refused.stdout
    assert wlab.running_version("web-staging") is None  # nothing was deployed

    no_reason = wlab.rg("deploy", "web-staging", "staging", "v1", "--force")
    assert no_reason.returncode == 2

    forced = wlab.rg("deploy", "web-staging", "staging", "v1", "--force", "--reason", "hotfix 42")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "FORCED past the deploy window" in forced.stderr
    assert wlab.running_version("web-staging") == "v1"
    rows = wlab.history_rows("--stack", "web-staging")
    assert [r[5] for r in rows if r[3] == "deploy"] == ["refused", "success"]
    assert rows[0][6] == "refused: outside the deploy window"
    assert rows[1][6] == "FORCED: hotfix 42"
    steps = wlab.history_json("--stack", "web-staging", "--steps")
    window = [s for s in steps if s.get("action") == "window"]
    assert window, steps
    assert window[-1]["details"]["checks"][0]["evidence"]["forced"] is True


def test_open_now_deploys_and_a_freeze_today_refuses(wlab: Lab) -> None:
    zone, local = _noon_zone()
    today = DAYS[local.weekday()]
    far = (local + timedelta(days=40)).date().isoformat()
    _with_windows(
        wlab,
        f"    windows:\n      timezone: {zone}\n      allow:\n"
        f"        - {{days: [{today}], from: '00:00', to: '24:00'}}\n"
        f"      freeze:\n        dates: ['{far}']\n",
    )
    plan = wlab.rg("deploy", "web-staging", "staging", "v1", "--dry-run")
    assert "deploy window: OPEN" in plan.stdout, plan.stdout
    done = wlab.rg("deploy", "web-staging", "staging", "v1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert wlab.running_version("web-staging") == "v1"

    # The same stack frozen today (the seed's month/quarter/year ends are unit-tested).
    text = wlab.config.read_text(encoding="utf-8")
    wlab.config.write_text(text.replace(far, local.date().isoformat()), encoding="utf-8")
    frozen = wlab.rg("deploy", "web-staging", "staging", "v2")
    assert frozen.returncode == 3, frozen.stdout + frozen.stderr
    assert f"frozen: {local.date().isoformat()}" in frozen.stdout
    next_week = (local + timedelta(days=7)).date().isoformat()
    assert "the next window opens" in frozen.stdout and f"{next_week} 00:00" in frozen.stdout
    assert wlab.running_version("web-staging") == "v1"
