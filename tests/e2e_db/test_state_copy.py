"""`releasegate state copy --to URL` from a demo workspace's SQLite ledger into the lab's
PostgreSQL: every row, the chain intact (`audit verify` gives the same head on both), the
password only from the environment, a non-empty target refused, and the workspace then
running on the copy."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.cli import RELEASEGATE
from tests.lab.db_fixtures import Database

pytestmark = pytest.mark.e2e


def rg(
    ws: Path, *args: str, password: str | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELEASEGATE_", "PG"))}
    env.update(NO_COLOR="1", COLUMNS="200", PGPASSFILE="/dev/null")
    if password is not None:
        env["RELEASEGATE_STATE_PASSWORD"] = password
    return subprocess.run(
        [RELEASEGATE, *args], cwd=ws, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_state_copy_from_a_demo_workspace(tmp_path: Path, pg_database: Database) -> None:
    ws = tmp_path / "demo"
    done = rg(tmp_path, "demo", "--dir", str(ws))
    assert done.returncode == 0, done.stdout + done.stderr
    server = pg_database.server
    url = f"postgresql+psycopg://{server.user}@{server.host}:{server.port}/{pg_database.name}"

    before = rg(ws, "audit", "verify", "--json")
    assert before.returncode == 0, before.stderr
    source = json.loads(before.stdout)
    history = rg(ws, "history", "--json", "--steps").stdout
    assert source["head_seq"] > 50  # the demo's whole story

    # The password on the command line: refused before anything is opened.
    leaked = url.replace(f"{server.user}@", f"{server.user}:{server.password}@")
    done = rg(ws, "state", "copy", "--to", leaked)
    assert done.returncode == 2 and "RELEASEGATE_STATE_PASSWORD" in done.stderr
    assert server.password not in done.stdout + done.stderr
    assert pg_database.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'entries'") == "0"

    # No password anywhere: libpq's own error, named, exit non-zero.
    done = rg(ws, "state", "copy", "--to", url)
    assert done.returncode == 1 and "cannot connect to the ledger" in done.stderr

    done = rg(ws, "state", "copy", "--to", url, "--json", password=server.password)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert (report["head_seq"], report["head_hash"]) == (source["head_seq"], source["head_hash"])
    assert report["rows"] == source["head_seq"]
    assert server.password not in done.stdout + done.stderr

    # Copying again is refused: a ledger is never merged into another one.
    again = rg(ws, "state", "copy", "--to", url, password=server.password)
    assert again.returncode == 2 and "already holds a ledger" in again.stderr
    assert pg_database.sql("SELECT count(*) FROM entries") == str(source["head_seq"])

    # The workspace switched to the copy: same head, same history, same verified versions.
    config = ws / "releasegate.yaml"
    sqlite_config = config.read_text()
    config.write_text(f"state: {url}\n" + sqlite_config)
    after = rg(ws, "audit", "verify", "--json", password=server.password)
    assert after.returncode == 0, after.stdout + after.stderr
    copied = json.loads(after.stdout)
    assert (copied["head_seq"], copied["head_hash"]) == (source["head_seq"], source["head_hash"])
    assert rg(ws, "history", "--json", "--steps", password=server.password).stdout == history
    verified = rg(ws, "verified", "--json", password=server.password)
    assert verified.returncode == 0, verified.stderr
    assert "web-prod" in verified.stdout

    # The chain on PostgreSQL is the chain: an edited row there is caught by its seq.
    pg_database.sql("UPDATE entries SET notes = 'edited' WHERE seq = 3")
    broken = rg(ws, "audit", "verify", "--json", password=server.password)
    assert broken.returncode == 6
    assert json.loads(broken.stdout)["first_bad_seq"] == 3
