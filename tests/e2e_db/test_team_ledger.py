"""A team's ledger on the lab's PostgreSQL, written by several processes at once: the
schema migrated once under the advisory lock, one hash chain under concurrent appends
(the head row's FOR UPDATE), the password from the environment only, and a clear error
when the driver is missing."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from releasegate.ledger import Ledger
from releasegate.ledger.schema import HEAD_REVISION
from tests.lab.db_fixtures import Database

pytestmark = pytest.mark.e2e

# A worker: wait for the start file (all at once), then open the ledger (migrating it when
# it is new) and append N marks, each in its own transaction.
WORKER = """
import os, sys, time
from pathlib import Path
from releasegate.ledger import Ledger
# Imported before the start: the race is on the database, not on import times.
import alembic.command, alembic.runtime.migration, psycopg, sqlalchemy.dialects.postgresql
url, start, n, who = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
adapter = sys.argv[5]
deadline = time.monotonic() + 60
while not start.exists() and time.monotonic() < deadline:
    time.sleep(0.005)
with Ledger.open(url, force_sqlalchemy=adapter == "sqlalchemy") as led:
    for i in range(n):
        led.mark(stack="web", env="staging", action="note", version=f"{who}-{i}",
                 user="tester", host=who, pid=os.getpid())
"""


def url_of(db: Database) -> str:
    """The ledger's URL as a config file holds it: no password."""
    server = db.server
    return f"postgresql+psycopg://{server.user}@{server.host}:{server.port}/{db.name}"


def worker_env(db: Database) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "RELEASEGATE_"))}
    env["RELEASEGATE_STATE_PASSWORD"] = db.server.password
    env["PGPASSFILE"] = "/dev/null"
    return env


def run_workers(
    db: Database, tmp_path: Path, count: int, appends: int, adapter: str = "psycopg"
) -> None:
    start = tmp_path / "start"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url_of(db), str(start), str(appends), f"m{i}", adapter],
            env=worker_env(db),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    time.sleep(1.0)  # every worker is up and polling: they start within milliseconds
    start.write_text("go")
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, out + err


def test_two_processes_migrate_a_new_ledger_at_once(pg_database: Database, tmp_path: Path) -> None:
    # Without the advisory lock both would CREATE TABLE entries and one would fail.
    run_workers(pg_database, tmp_path, count=4, appends=1)
    assert pg_database.sql("SELECT version_num FROM alembic_version") == HEAD_REVISION
    assert pg_database.sql("SELECT count(*) FROM ledger_head") == "1"
    assert pg_database.sql("SELECT count(*) FROM entries") == "4"


@pytest.mark.parametrize("adapter", ["psycopg", "sqlalchemy"])
def test_concurrent_writers_keep_one_chain(
    pg_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, adapter: str
) -> None:
    """Both adapters: psycopg alone (what the CLI runs) and SQLAlchemy (any other URL)."""
    workers, appends = 6, 40
    run_workers(pg_database, tmp_path, count=workers, appends=appends, adapter=adapter)
    total = workers * appends
    # One chain: seq 1..total without gaps or twins, each row on its predecessor's hash.
    assert pg_database.sql("SELECT count(DISTINCT seq), min(seq), max(seq) FROM entries") == (
        f"{total}\t1\t{total}"
    )
    assert (
        pg_database.sql(
            "SELECT count(*) FROM entries e JOIN entries p ON p.seq = e.seq - 1"
            " WHERE e.prev_hash <> p.hash"
        )
        == "0"
    )
    assert pg_database.sql("SELECT count(DISTINCT prev_hash) FROM entries") == str(total)
    # Interleaved for real: writers took turns, not one after the other.
    hosts = pg_database.sql("SELECT string_agg(host, ',' ORDER BY seq) FROM entries").split(",")
    switches = sum(1 for a, b in itertools.pairwise(hosts) if a != b)
    assert switches > workers, "the writers never ran side by side"
    monkeypatch.setenv("RELEASEGATE_STATE_PASSWORD", pg_database.server.password)
    monkeypatch.setenv("PGPASSFILE", "/dev/null")
    with Ledger.open(url_of(pg_database), create=False) as led:
        report = led.verify_chain()
        assert report.ok, report.message
        assert report.rows_checked == total
        assert led.head()[0] == total


def test_no_driver_names_the_extra(tmp_path: Path) -> None:
    """The default install (no psycopg): a clear error, exit 2, not an internal error."""
    (tmp_path / "releasegate.yaml").write_text(
        "state: postgresql+psycopg://rg@127.0.0.1:1/ledger\n"
        "stacks:\n  web:\n    env: staging\n    runtime: releases\n    dir: ./srv\n"
        "    artifacts: ./artifacts\n"
    )
    # psycopg made unimportable, as in an install without the extra.
    code = (
        "import sys; sys.modules['psycopg'] = None; sys.argv[0] = 'releasegate';"
        "from releasegate.cli.main import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "history"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "releasegate[postgres]" in done.stderr
    assert "internal error" not in done.stderr
