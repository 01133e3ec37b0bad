"""Ledger behaviour, run against both adapters (stdlib sqlite3 and SQLAlchemy) on SQLite files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from releasegate.errors import BadInput
from releasegate.ledger import Ledger
from releasegate.ledger.db import SQLAlchemyDatabase, SQLiteDatabase
from releasegate.model import LockInfo

WHO = {"user": "alice", "host": "build1", "pid": 4242}
BACKENDS = ["sqlite3", "sqlalchemy"]


def ledger_url(path: Path, backend: str) -> str:
    return str(path) if backend == "sqlite3" else f"sqlite+pysqlite:///{path}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "ledger.db"


@pytest.fixture
def ledger(db_path: Path, backend: str) -> Iterator[Ledger]:
    led = Ledger.open(ledger_url(db_path, backend))
    yield led
    led.close()


def deploy(
    led: Ledger,
    stack: str,
    version: str,
    status: str = "success",
    *,
    action: str = "deploy",
    forced: bool = False,
) -> str:
    aid = led.begin_action(
        stack=stack, env="prod", action=action, version=version, forced=forced, **WHO
    )
    led.end_action(aid, status)
    return aid


# -- opening --------------------------------------------------------------------------------


def test_open_picks_adapter_by_url(tmp_path: Path) -> None:
    plain = Ledger.open(str(tmp_path / "a" / "b" / "l.db"))
    url = Ledger.open(f"sqlite:///{tmp_path / 'u.db'}")
    sa = Ledger.open(f"sqlite+pysqlite:///{tmp_path / 's.db'}")
    forced = Ledger.open(str(tmp_path / "f.db"), force_sqlalchemy=True)
    try:
        assert (tmp_path / "a" / "b" / "l.db").is_file()
        assert isinstance(plain._db, SQLiteDatabase)
        assert isinstance(url._db, SQLiteDatabase)
        assert isinstance(sa._db, SQLAlchemyDatabase)
        assert isinstance(forced._db, SQLAlchemyDatabase)
    finally:
        for led in (plain, url, sa, forced):
            led.close()


def test_open_refuses_memory() -> None:
    with pytest.raises(BadInput):
        Ledger.open("sqlite:///:memory:")


def test_new_ledger_is_empty_and_verifies(ledger: Ledger) -> None:
    assert ledger.head() == (0, "0" * 64)
    assert ledger.actions() == []
    report = ledger.verify_chain()
    assert report.ok and report.rows_checked == 0 and report.head_seq == 0


def test_sqlite_pragmas(db_path: Path) -> None:
    with Ledger.open(str(db_path)) as led:
        db = led._db
        assert db.execute("PRAGMA journal_mode") == [("wal",)]
        assert db.execute("PRAGMA busy_timeout") == [(15000,)]
        assert db.execute("PRAGMA synchronous") == [(2,)]  # FULL


# -- actions --------------------------------------------------------------------------------


def test_begin_end_round_trip(ledger: Ledger) -> None:
    before = datetime.now(UTC)
    aid = ledger.begin_action(
        stack="web-prod",
        env="prod",
        action="deploy",
        version="v2",
        notes="FORCED",
        forced=True,
        reason="hotfix",
        details={"plan": ["backup", "switch"], "n": 1},
        **WHO,
    )
    running = ledger.get_action(aid)
    assert running is not None
    assert running.status == "running" and running.ended_at is None
    assert running.parent_id is None and running.seq == 1
    assert running.started_at.tzinfo is not None and running.started_at >= before

    ledger.end_action(aid, "fail", details={"error": "smoke failed", "n": 2})
    rec = ledger.get_action(aid)
    assert rec is not None
    assert (rec.stack, rec.env, rec.action, rec.version) == ("web-prod", "prod", "deploy", "v2")
    assert (rec.status, rec.notes, rec.forced, rec.reason) == ("fail", "FORCED", True, "hotfix")
    assert (rec.user, rec.host, rec.pid) == ("alice", "build1", 4242)
    assert rec.details == {"plan": ["backup", "switch"], "n": 2, "error": "smoke failed"}
    assert rec.ended_at is not None and rec.ended_at >= rec.started_at
    assert ledger.head()[0] == 2


def test_end_action_notes_replace_and_keep(ledger: Ledger) -> None:
    a = ledger.begin_action(stack="s", env="prod", action="deploy", notes="first", **WHO)
    b = ledger.begin_action(stack="s", env="prod", action="deploy", notes="first", **WHO)
    ledger.end_action(a, "success")
    ledger.end_action(b, "success", notes="replaced")
    assert [r.notes for r in ledger.actions()] == ["first", "replaced"]


def test_end_action_errors(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="unknown action"):
        ledger.end_action("nope", "success")
    aid = ledger.begin_action(stack="s", env="prod", action="deploy", **WHO)
    with pytest.raises(ValueError):
        ledger.end_action(aid, "running")
    ledger.end_action(aid, "success")
    with pytest.raises(ValueError, match="already closed"):
        ledger.end_action(aid, "fail")
    rec = ledger.get_action(aid)
    assert rec is not None and rec.status == "success"
    assert ledger.head()[0] == 2  # the refused closes wrote nothing
    assert ledger.verify_chain().ok


def test_children_and_top_level(ledger: Ledger) -> None:
    run = ledger.begin_action(stack="web", env="prod", action="deploy", version="v1", **WHO)
    steps = []
    for name in ("preflight", "backup", "switch"):
        sid = ledger.begin_action(
            stack="web", env="prod", action=name, version="v1", parent_id=run, **WHO
        )
        ledger.end_action(sid, "success")
        steps.append(sid)
    ledger.end_action(run, "success")

    kids = ledger.children(run)
    assert [k.action for k in kids] == ["preflight", "backup", "switch"]
    assert [k.action_id for k in kids] == steps
    assert all(k.parent_id == run and k.status == "success" for k in kids)
    assert [r.action_id for r in ledger.actions()] == [run]
    assert [r.action for r in ledger.actions(top_level_only=False)] == [
        "deploy",
        "preflight",
        "backup",
        "switch",
    ]
    assert ledger.children(steps[0]) == []
    assert ledger.get_action("missing") is None


def test_filters_and_last(ledger: Ledger) -> None:
    deploy(ledger, "web", "v1")
    deploy(ledger, "api", "a1", "fail")
    deploy(ledger, "web", "v2", "fail", forced=True)
    deploy(ledger, "web", "v1", action="rollback")
    ledger.begin_action(stack="web", env="staging", action="deploy", version="v3", **WHO)
    ledger.mark(stack="web", env="prod", action="verify", version="v1", **WHO)  # not an action

    def versions(**kw: Any) -> list[str]:
        return [r.version for r in ledger.actions(**kw)]

    assert versions() == ["v1", "a1", "v2", "v1", "v3"]
    assert versions(stack="web") == ["v1", "v2", "v1", "v3"]
    assert versions(env="staging") == ["v3"]
    assert versions(action="rollback") == ["v1"]
    assert versions(status="fail") == ["a1", "v2"]
    assert versions(status="running") == ["v3"]
    assert versions(forced=True) == ["v2"]
    assert versions(forced=False) == ["v1", "a1", "v1", "v3"]
    assert versions(last=2) == ["v1", "v3"]
    assert versions(stack="web", status="fail", last=5) == ["v2"]
    assert versions(last=0) == []
    seqs = [r.seq for r in ledger.actions()]
    assert seqs == sorted(seqs)
    assert versions(since_seq=seqs[2]) == ["v1", "v3"]


def test_open_actions(ledger: Ledger) -> None:
    deploy(ledger, "web", "v1")
    crashed = ledger.begin_action(stack="web", env="prod", action="deploy", version="v2", **WHO)
    step = ledger.begin_action(
        stack="web", env="prod", action="switch", version="v2", parent_id=crashed, **WHO
    )
    other = ledger.begin_action(stack="api", env="prod", action="deploy", version="a1", **WHO)
    assert [r.action_id for r in ledger.open_actions()] == [crashed, step, other]
    assert [r.action_id for r in ledger.open_actions("api")] == [other]
    assert all(r.status == "running" for r in ledger.open_actions())
    ledger.end_action(step, "interrupted")
    ledger.end_action(crashed, "interrupted")
    assert [r.action_id for r in ledger.open_actions()] == [other]
    assert ledger.open_actions("web") == []


def test_good_versions_and_last_deploy(ledger: Ledger) -> None:
    assert ledger.good_versions("web") == []
    assert ledger.last_deploy("web") is None
    deploy(ledger, "web", "v1")
    deploy(ledger, "web", "v2")
    deploy(ledger, "web", "v3", "fail")
    deploy(ledger, "web", "v1", action="rollback")
    deploy(ledger, "api", "a9")
    # a successful step of a run is not a good version of the stack
    run = ledger.begin_action(stack="web", env="prod", action="deploy", version="v4", **WHO)
    step = ledger.begin_action(
        stack="web", env="prod", action="deploy", version="v5", parent_id=run, **WHO
    )
    ledger.end_action(step, "success")
    ledger.end_action(run, "refused")

    assert ledger.good_versions("web") == ["v1", "v2"]
    assert ledger.good_versions("api") == ["a9"]
    last = ledger.last_deploy("web")
    assert last is not None and (last.version, last.status) == ("v4", "refused")
    deploy(ledger, "web", "v1", action="restart")  # not a deploy or rollback
    last = ledger.last_deploy("web")
    assert last is not None and last.version == "v4"


def test_verified_versions(ledger: Ledger) -> None:
    assert ledger.verified_version("web") is None
    assert ledger.verified_all() == {}
    ledger.mark(stack="web", env="prod", action="verify", version="v1", **WHO)
    ledger.mark(stack="api", env="prod", action="verify", version="a1", **WHO)
    ledger.mark(stack="web", env="prod", action="lock", version="v9", **WHO)
    ledger.mark(stack="web", env="prod", action="verify", version="v2", notes="ok", **WHO)
    assert ledger.verified_version("web") == "v2"
    assert ledger.verified_version("api") == "a1"
    every = ledger.verified_all()
    assert {k: v[0] for k, v in every.items()} == {"web": "v2", "api": "a1"}
    assert every["web"][1] > every["api"][1]
    assert every["web"][1].tzinfo is not None
    assert ledger.actions() == []  # marks are facts, not actions
    assert ledger.head()[0] == 4


# -- locks ----------------------------------------------------------------------------------


def lock(stack: str, run_id: str, pid: int = 100) -> LockInfo:
    since = datetime(2026, 1, 30, 10, 0, 0, 123456, tzinfo=UTC) + timedelta(minutes=pid)
    return LockInfo(
        stack=stack, run_id=run_id, user="bob", host="h", pid=pid, pid_start="st", since=since
    )


def test_locks(ledger: Ledger) -> None:
    first = lock("web", "run-1")
    assert ledger.try_acquire_lock(first) is None
    assert ledger.try_acquire_lock(lock("web", "run-2", pid=200)) == first
    assert ledger.try_acquire_lock(lock("api", "run-3")) is None
    assert [lk.stack for lk in ledger.locks()] == ["api", "web"]

    taker = lock("web", "run-4", pid=400)
    assert ledger.replace_lock("web", "run-2", taker) is False  # not the holder
    assert ledger.locks()[1] == first
    assert ledger.replace_lock("web", "run-1", taker) is True
    assert ledger.locks()[1] == taker
    with pytest.raises(ValueError):
        ledger.replace_lock("api", "run-3", taker)

    assert ledger.release_lock("web", "run-1") is False  # taken over: no longer ours
    assert ledger.release_lock("web", "run-4") is True
    assert ledger.release_lock("web") is False
    assert ledger.release_lock("api") is True  # None releases whoever holds it
    assert ledger.locks() == []
    assert ledger.try_acquire_lock(lock("web", "run-5")) is None
    assert ledger.head() == (0, "0" * 64)  # locks are not chain rows


# -- chain ----------------------------------------------------------------------------------


def test_chain_ok_and_persists(db_path: Path, backend: str) -> None:
    with Ledger.open(ledger_url(db_path, backend)) as led:
        run = led.begin_action(stack="web", env="prod", action="deploy", version="v1", **WHO)
        led.mark(stack="web", env="prod", action="verify", version="v1", **WHO)
        led.end_action(run, "success", details={"ünïcode": "✓"})
        head = led.head()
    # the other adapter reads and verifies what this one wrote
    other = "sqlalchemy" if backend == "sqlite3" else "sqlite3"
    with Ledger.open(ledger_url(db_path, other)) as led:
        report = led.verify_chain()
        assert report.ok, report.message
        assert (report.rows_checked, report.head_seq, report.head_hash) == (3, *head)
        assert report.first_bad_seq is None and report.problem == ""
        assert led.head() == head
        rec = led.get_action(run)
        assert rec is not None and rec.details == {"ünïcode": "✓"}


WRITER = textwrap.dedent(
    """
    import os, sys, time
    from releasegate.ledger import Ledger
    url, go, name, other, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    led = Ledger.open(url)
    while not os.path.exists(go):
        time.sleep(0.001)
    for i in range(n):
        aid = led.begin_action(stack=name, env="prod", action="deploy", version=f"v{i}",
                               user="u", host="h", pid=os.getpid())
        if i == 0:
            # Rendezvous: neither writer goes on until both have appended, so both are
            # writing at once from here on whatever the scheduler does.
            open(os.path.join(os.path.dirname(go), name), "w").close()
            while not os.path.exists(os.path.join(os.path.dirname(go), other)):
                time.sleep(0.001)
        led.end_action(aid, "success")
    led.close()
    """
)


def test_concurrent_writers_keep_one_chain(db_path: Path, backend: str, tmp_path: Path) -> None:
    url = ledger_url(db_path, backend)
    Ledger.open(url).close()
    go = tmp_path / "go"
    n = 100  # 100 actions = 200 appends per process
    names = ("alpha", "beta")
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, str(go), name, other, str(n)])
        for name, other in (names, names[::-1])
    ]
    go.touch()
    for p in procs:
        assert p.wait(timeout=120) == 0
    with Ledger.open(url) as led:
        # The chain: every row links to the one before, with no gap and no fork.
        report = led.verify_chain()
        assert report.ok, report.message
        assert report.rows_checked == 4 * n == report.head_seq
        assert report.first_bad_seq is None
        for name in names:
            done = led.actions(stack=name)
            assert [r.version for r in done] == [f"v{i}" for i in range(n)]
            assert {r.status for r in done} == {"success"}
        pids = {r.pid for r in led.actions()}
        assert len(pids) == 2 and os.getpid() not in pids


def test_credentials_are_masked_in_every_row_written(tmp_path):
    """The last net under the callers' own redaction: notes, reason and details."""
    from releasegate.ledger import Ledger

    with Ledger.open(str(tmp_path / "state.db")) as ledger:
        action = ledger.begin_action(
            stack="s", env="e", action="deploy", version="v1", user="u", host="h", pid=1,
            notes="GET http://u:pw-secret@h/x?token=tok-secret", reason="password=pw2-secret",
            details={"url": "http://h/?api_key=key-secret", "quote": 'token=a"b\\'},
        )  # fmt: skip
        ledger.end_action(action, "fail", notes="again http://u:pw-secret@h/")
        [rec] = ledger.actions()
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    for secret in (b"pw-secret", b"tok-secret", b"pw2-secret", b"key-secret"):
        assert secret not in raw
    assert rec.notes == "again http://u:***@h/" and rec.reason == "password=***"
    assert rec.details["url"] == "http://h/?api_key=***" and rec.details["quote"] == 'token=***"b\\'
