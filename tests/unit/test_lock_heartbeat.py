"""Stack locks judged across machines (locks.py): states by heartbeat and lease, the
takeover of a lapsed holder with its run closed, the heartbeat thread, the host identity,
and `state copy` refusing what it must (on SQLite files; tests/e2e_db runs PostgreSQL)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from releasegate import locks
from releasegate.errors import BadInput, LockHeld, Tampered
from releasegate.identity import Actor, current_actor, host_id
from releasegate.ledger import Ledger
from releasegate.ledger.copy import check_target_url, copy_ledger
from releasegate.model import LockInfo

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def info(host: str = "m1", beat: datetime | None = T0, lease: float | None = 30.0) -> LockInfo:
    return LockInfo(
        stack="web", run_id="r1", user="alice", host=host, pid=999_999_999, pid_start="x",
        since=T0, heartbeat=beat, lease_s=lease,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("holder", "now", "state"),
    [
        (info(), T0 + timedelta(seconds=29), "beating"),
        (info(), T0 + timedelta(seconds=31), "lapsed"),
        (info(beat=None), T0 + timedelta(hours=9), "unknown"),  # an older releasegate's lock
        (info(lease=None), T0 + timedelta(hours=9), "unknown"),
        (info(host="here"), T0, "dead"),  # this host: the pid decides, not the heartbeat
    ],
)
def test_holder_state(holder: LockInfo, now: datetime, state: str) -> None:
    assert locks.holder_state(holder, "here", now) == state
    assert locks.state_note(holder, state)


def test_beat_interval_is_a_third_of_the_lease_bounded() -> None:
    assert locks.beat_interval(30) == 10
    assert locks.beat_interval(3) == 1
    assert locks.beat_interval(3600) == locks.MAX_BEAT_S
    assert locks.beat_interval(0.01) == locks.MIN_BEAT_S


def test_release_of_a_lapsed_remote_lock_needs_no_force() -> None:
    lapsed = info(beat=datetime.now(UTC) - timedelta(seconds=60))
    assert locks.check_release(lapsed, "here", force=False, reason="") == "lapsed"
    with pytest.raises(LockHeld):
        locks.check_release(info(beat=datetime.now(UTC)), "here", force=False, reason="")


def test_host_id_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELEASEGATE_HOST_ID", "ci-runner-7")
    assert host_id() == "ci-runner-7" and current_actor().host == "ci-runner-7"
    monkeypatch.setenv("RELEASEGATE_HOST_ID", "bad host; rm -rf")
    with pytest.raises(BadInput):
        host_id()
    monkeypatch.delenv("RELEASEGATE_HOST_ID")
    assert host_id()


def actor(host: str, user: str, pid: int) -> Actor:
    return Actor(user=user, host=host, pid=pid, pid_start="x")


def test_a_lapsed_holder_is_taken_over_and_its_run_closed(tmp_path: Path) -> None:
    with Ledger.open(str(tmp_path / "state.db")) as led:
        dead = actor("m1", "alice", 4242)
        assert locks.acquire(led, stack="web", env="staging", run_id="r1", actor=dead,
                             lease_s=1.0) is None  # fmt: skip
        who = {"user": "alice", "host": "m1", "pid": 4242}
        run = led.begin_action(stack="web", env="staging", action="deploy", version="v2", **who)
        step = led.begin_action(
            stack="web", env="staging", action="switch", version="v2", parent_id=run, **who
        )
        taker = actor("m2", "bob", 77)
        with pytest.raises(LockHeld, match="locked by alice"):  # still within its lease
            locks.acquire(led, stack="web", env="staging", run_id="r2", actor=taker, lease_s=1)
        time.sleep(1.2)
        holder = locks.acquire(led, stack="web", env="staging", run_id="r2", actor=taker)
        assert holder is not None and holder.host == "m1"
        assert [lk.run_id for lk in led.locks()] == ["r2"]
        assert led.get_action(step).status == "interrupted"  # type: ignore[union-attr]
        closed = led.get_action(run)
        assert closed is not None and closed.status == "interrupted"
        assert "stopped beating" in closed.notes and "m2" in closed.notes
        assert led.open_actions("web") == []
        assert led.verify_chain().ok


def test_the_heartbeat_thread_keeps_the_lock_fresh(tmp_path: Path) -> None:
    with Ledger.open(str(tmp_path / "state.db")) as led:
        me = actor("m1", "alice", 1)
        locks.acquire(led, stack="web", env="staging", run_id="r1", actor=me, lease_s=0.3)
        first = led.locks()[0].heartbeat
        beat = locks.Heartbeat(led, "web", "r1", 0.3).start()
        try:
            time.sleep(0.6)
        finally:
            beat.stop()
        assert beat.beats >= 2 and not beat.lost, beat.last_error
        later = led.locks()[0].heartbeat
        assert first is not None and later is not None and later > first
        # Taken over meanwhile: the thread notices and stops beating.
        assert led.release_lock("web", "r1")
        beat = locks.Heartbeat(led, "web", "r1", 0.15).start()
        time.sleep(0.4)
        beat.stop()
        assert beat.lost


def test_a_lock_refusal_is_not_the_last_deploy(tmp_path: Path) -> None:
    from releasegate.engine.base import LOCK_REFUSAL

    with Ledger.open(str(tmp_path / "state.db")) as led:
        who = {"user": "alice", "host": "m1", "pid": 1}
        run = led.begin_action(stack="web", env="staging", action="deploy", version="v2", **who)
        for _ in range(20):  # more than one window of last_deploy
            aid = led.begin_action(stack="web", env="staging", action="deploy", version="v3", **who)
            led.end_action(aid, "refused", notes="locked", details=LOCK_REFUSAL)
        last = led.last_deploy("web")
        assert last is not None and last.action_id == run


@pytest.mark.parametrize(
    "url",
    ["state.db", "postgresql+psycopg://rg:pw@h/db", "postgresql://rg@h/db?password=pw"],
)
def test_state_copy_refuses_a_target_url(url: str) -> None:
    with pytest.raises(BadInput):
        check_target_url(url)


def test_state_copy_between_sqlite_files(tmp_path: Path) -> None:
    src_path = tmp_path / "src.db"
    who = {"user": "alice", "host": "m1", "pid": 1}
    with Ledger.open(str(src_path)) as src:
        for v in ("v1", "v2"):
            src.mark(stack="web", env="staging", action="verify", version=v, **who)
        locks.acquire(src, stack="web", env="staging", run_id="r1", actor=actor("m1", "a", 1))
        report = copy_ledger(src, f"sqlite:///{tmp_path / 'dst.db'}")
        assert (report.rows, report.locks) == (2, 1)
        assert (report.head_seq, report.head_hash) == src.head()
        with pytest.raises(BadInput, match="already holds a ledger"):
            copy_ledger(src, f"sqlite:///{tmp_path / 'dst.db'}")
    with Ledger.open(str(tmp_path / "dst.db")) as dst:
        assert dst.verified_version("web") == "v2"
        assert [lk.run_id for lk in dst.locks()] == ["r1"]
    # A tampered source is never copied (a copy must not launder it).
    import sqlite3

    with sqlite3.connect(src_path) as conn:
        conn.execute("UPDATE entries SET version = 'v9' WHERE seq = 1")
    with Ledger.open(str(src_path)) as src, pytest.raises(Tampered):
        copy_ledger(src, f"sqlite:///{tmp_path / 'dst2.db'}")
