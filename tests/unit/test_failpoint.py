"""The crash tests' failpoint (RELEASEGATE_PAUSE_AT): it holds only at the named step, says
where it holds, and lets go when its file is removed or a signal handler raises."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from releasegate import failpoint


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RELEASEGATE_PAUSE_AT", "RELEASEGATE_PAUSE_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(failpoint, "_paused", [])  # each test is a process of its own


def test_holds_once_per_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A rollback's step of the same name (after an interrupted deploy's) must not hold.
    marker = tmp_path / "paused"
    monkeypatch.setenv("RELEASEGATE_PAUSE_AT", "restart")
    monkeypatch.setenv("RELEASEGATE_PAUSE_FILE", str(marker))
    threading.Timer(0.3, marker.unlink).start()
    failpoint.pause_at("restart")
    t0 = time.monotonic()
    failpoint.pause_at("restart")
    assert time.monotonic() - t0 < 0.2 and not marker.exists()


def test_without_the_variable_nothing_holds(tmp_path: Path) -> None:
    t0 = time.monotonic()
    failpoint.pause_at("switch")
    assert time.monotonic() - t0 < 1


def test_holds_at_the_named_step_until_its_file_goes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    marker = tmp_path / "paused"
    monkeypatch.setenv("RELEASEGATE_PAUSE_AT", "switch")
    monkeypatch.setenv("RELEASEGATE_PAUSE_FILE", str(marker))
    failpoint.pause_at("prepare")
    assert not marker.exists()
    seen: list[str] = []

    def release() -> None:
        text = ""
        while not text.endswith("\n"):  # created, then written: wait for the whole line
            time.sleep(0.01)
            text = marker.read_text() if marker.exists() else ""
        seen.append(text)
        marker.unlink()

    helper = threading.Thread(target=release)
    helper.start()
    t0 = time.monotonic()
    failpoint.pause_at("switch")
    helper.join(timeout=10)
    assert seen == [f"{os.getpid()} switch\n"]
    assert time.monotonic() - t0 < failpoint.LIMIT_S / 2  # let go by the file, not the limit


def test_a_signal_whose_handler_raises_ends_the_hold(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RELEASEGATE_PAUSE_AT", "smoke")
    monkeypatch.setenv("RELEASEGATE_PAUSE_FILE", str(tmp_path / "paused"))

    def handler(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt  # as the safe points' handler raises Interrupted

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            failpoint.pause_at("smoke")
        assert time.monotonic() - t0 < failpoint.LIMIT_S / 2
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
