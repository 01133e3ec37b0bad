"""A team on one ledger on the lab's PostgreSQL (issue 20's done-when): 8 operators as if on
4 machines deploy 4 stacks at once: the chain verifies, no action is lost, no stack ever
had two holders; a holder killed by SIGKILL on one "machine" is taken over from another
once its heartbeat lapses, and the takeover is recorded.

Counts: 8 processes x RG_TEAM_ATTEMPTS deploys each (default 20: the issue's 160 attempts
over 4 stacks, about 80 s on the 2-CPU CI machine; RG_TEAM_ATTEMPTS=4 for a quick local run).
`python benchmarks/ledger_pg.py --team` runs the same load as a benchmark.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli import RELEASEGATE
from tests.lab.db_fixtures import Database
from tests.lab.team_ledger import (
    Operator,
    check_team,
    cli_env,
    operators,
    rg,
    run_team,
    stack_names,
    summary,
    write_workspace,
)

pytestmark = pytest.mark.e2e

ATTEMPTS = int(os.environ.get("RG_TEAM_ATTEMPTS", "20"))
LIMIT_S = 60.0


def state_url(db: Database) -> str:
    server = db.server
    return f"postgresql+psycopg://{server.user}@{server.host}:{server.port}/{db.name}"


LEASE_S = 4.0  # short for the tests; a starved heartbeat thread under load still beats in it


def v1_on_two_machines(db: Database, tmp_path: Path) -> tuple[Path, str, Operator, Operator]:
    """One stack on the lab's PostgreSQL with a short lease, v1 deployed by alice on m1;
    bob on m2 beside her."""
    password = db.server.password
    ws = write_workspace(tmp_path / "ws", state_url(db), stacks=1, lease_s=LEASE_S)
    m1, m2 = Operator("alice", "m1"), Operator("bob", "m2")
    first = rg(ws, password, m1, "deploy", "s1", "staging", "v1")
    assert first.returncode == 0, first.stdout + first.stderr
    return ws, password, m1, m2


def lapsed(ws: Path, password: str, op: Operator) -> bool:
    """`lock status`, as `op` sees it, shows a lock whose heartbeat lapsed."""
    out = rg(ws, password, op, "lock", "status", "--json")
    return any(json.loads(line)["state"] == "lapsed" for line in out.stdout.splitlines())


def deploy_held_at_smoke(
    ws: Path, password: str, op: Operator, version: str, pause: Path
) -> subprocess.Popen[str]:
    """`deploy s1 staging VERSION` as `op`, held at its smoke step until `pause` is removed."""
    return subprocess.Popen(
        [RELEASEGATE, "deploy", "s1", "staging", version],
        cwd=ws,
        env=cli_env(
            ws, password, op, RELEASEGATE_PAUSE_AT="smoke", RELEASEGATE_PAUSE_FILE=str(pause)
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(what: str, probe, limit: float = LIMIT_S) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {limit:g}s waiting for {what}")


def test_eight_operators_on_four_machines(pg_database: Database, tmp_path: Path) -> None:
    password = pg_database.server.password
    ws = write_workspace(tmp_path / "ws", state_url(pg_database), lease_s=10)
    ops = operators(processes=8, machines=4)
    stacks = stack_names(4)
    results = run_team(ws, password, ops, ATTEMPTS, stacks)
    problems = check_team(pg_database.rows, results)
    assert not problems, "\n".join(problems)
    counts = summary(results)
    assert counts["attempts"] == 8 * ATTEMPTS
    assert counts["succeeded"] >= len(stacks)  # each stack was deployed at least once...
    total = pg_database.sql(
        "SELECT count(*) FROM entries WHERE kind = 'open' AND parent_id IS NULL"
        " AND action = 'deploy'"
    )
    assert int(total) == 8 * ATTEMPTS  # ...and every attempt is one recorded action
    done = rg(ws, password, ops[0], "audit", "verify", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["head_seq"] == int(
        pg_database.sql("SELECT max(seq) FROM entries")
    )
    # The machines wrote side by side: rows of every host identity in the one chain.
    hosts = {r[0] for r in pg_database.rows("SELECT DISTINCT host FROM entries")}
    assert hosts == {"m1", "m2", "m3", "m4"}


def test_a_dead_machines_lock_is_taken_over_after_its_heartbeat_lapses(
    pg_database: Database, tmp_path: Path
) -> None:
    lease = LEASE_S
    ws, password, m1, m2 = v1_on_two_machines(pg_database, tmp_path)

    # alice's deploy of v2 on m1 holds at smoke (after the switch), then m1 "dies".
    pause = tmp_path / "paused"
    victim = deploy_held_at_smoke(ws, password, m1, "v2", pause)
    try:
        wait_for("the deploy to hold at smoke", pause.exists)
        # Held, and beating: a run from m2 is refused, and told when a takeover would come.
        time.sleep(lease * 1.5)  # longer than the lease: only the heartbeat keeps it held
        refused = rg(ws, password, m2, "deploy", "s1", "staging", "v3")
        assert refused.returncode == 5, refused.stdout + refused.stderr
        assert "heartbeat" in refused.stderr and "m1" in refused.stderr
        status = rg(ws, password, m2, "lock", "status", "--json")
        [held] = [json.loads(line) for line in status.stdout.splitlines()]
        assert held["state"] == "beating" and held["host"] == "m1", held
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
    killed_at = time.monotonic()

    wait_for("the dead holder's heartbeat to lapse", lambda: lapsed(ws, password, m2))
    assert time.monotonic() - killed_at >= lease * 0.5  # not before the lease ran out

    # bob on m2 takes the lock over, recovers the stack (v2 had switched), deploys v3.
    done = rg(ws, password, m2, "deploy", "s1", "staging", "v3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (ws / "srv/s1/current").resolve().name == "v3"

    [takeover] = pg_database.rows(
        "SELECT host, \"user\", details FROM entries WHERE action = 'lock-takeover'"
    )
    host, user, details_text = takeover
    details = json.loads(details_text)
    assert (host, user) == ("m2", "bob")
    assert details["dead_host"] == "m1" and details["dead_user"] == "alice"
    assert details["holder_state"] == "lapsed" and details["taken_by_host"] == "m2"
    assert details["heartbeat_age_s"] > lease and details["lease_s"] == lease

    history = [
        json.loads(line) for line in rg(ws, password, m2, "history", "--json").stdout.splitlines()
    ]
    runs = [(r["action"], r["version"], r["status"], r["host"]) for r in history]
    assert ("deploy", "v2", "interrupted", "m1") in runs  # the dead run, closed by m2
    # the recovery rollback to v1 (v2 had switched), then v3; the lock refusal between
    assert runs[-2:] == [("rollback", "v1", "success", "m2"), ("deploy", "v3", "success", "m2")]
    assert ("deploy", "v3", "refused", "m2") in runs
    assert not [r for r in history if r["status"] == "running"]
    assert pg_database.sql("SELECT count(*) FROM locks") == "0"
    verify = rg(ws, password, m2, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_holder_whose_lock_was_taken_over_stops_at_its_next_step(
    pg_database: Database, tmp_path: Path
) -> None:
    """m1 is suspended mid-deploy (SIGSTOP: its heartbeat stops too) for longer than the
    lease; m2 takes the lock over, recovers and deploys v3. When m1 wakes up, its run finds
    the lock gone at its next step boundary: it stops there with exit 5 and touches nothing,
    the rows m2 closed keep m2's word, and a `lock-lost` mark says what m1 went through."""
    ws, password, m1, m2 = v1_on_two_machines(pg_database, tmp_path)

    pause = tmp_path / "paused"
    victim = deploy_held_at_smoke(ws, password, m1, "v2", pause)
    try:
        wait_for("the deploy to hold at smoke", pause.exists)
        victim.send_signal(signal.SIGSTOP)
        wait_for("the suspended holder's heartbeat to lapse", lambda: lapsed(ws, password, m2))
        done = rg(ws, password, m2, "deploy", "s1", "staging", "v3")
        assert done.returncode == 0, done.stdout + done.stderr
        victim.send_signal(signal.SIGCONT)
        pause.unlink()
        out, err = victim.communicate(timeout=LIMIT_S)
    finally:
        if victim.poll() is None:
            victim.send_signal(signal.SIGCONT)
            victim.kill()
            victim.communicate(timeout=30)

    assert victim.returncode == 5, out + err
    assert "taken over" in out + err and "during smoke" in out + err, out + err
    assert (ws / "srv/s1/current").resolve().name == "v3"  # m1 brought nothing back

    [(run_id, run_status)] = pg_database.rows(
        "SELECT o.action_id, c.status FROM entries o JOIN entries c"
        " ON c.action_id = o.action_id AND c.kind = 'close'"
        " WHERE o.kind = 'open' AND o.action = 'deploy' AND o.version = 'v2' AND o.host = 'm1'"
    )
    assert run_status == "interrupted"  # closed by m2 when it took over; m1 kept its word
    assert run_id.isalnum()
    steps = pg_database.rows(
        f"SELECT action FROM entries WHERE kind = 'open' AND parent_id = '{run_id}' ORDER BY seq"
    )
    assert [s for (s,) in steps][-1] == "smoke"  # no step opened after the takeover
    [(notes, details_text)] = pg_database.rows(
        "SELECT notes, details FROM entries WHERE action = 'lock-lost' AND host = 'm1'"
    )
    assert "taken over" in notes and "during smoke" in notes
    assert json.loads(details_text)["run"] == run_id
    assert pg_database.sql("SELECT count(*) FROM locks") == "0"
    verify = rg(ws, password, m2, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
