"""The backup core against the lab's real PostgreSQL 15: back up, change the data, restore,
compare; verify restores into a scratch database and drops it; a flipped byte is caught; a
dump killed half way leaves no complete-looking backup. The password reaches the tools only
through their environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from releasegate.backup.sets import (
    BackupProgress,
    list_backups,
    restore_backup,
    take_backup,
    verify_backup,
)
from releasegate.backup.sources import FilesSource, PostgresSource, SanityCheck
from releasegate.backup.stream import BackupFailed
from releasegate.errors import Refused
from tests.lab.db import DbServer
from tests.lab.db_fixtures import Database

pytestmark = pytest.mark.e2e

PW_VAR = "RG_LAB_DB_PASSWORD"

SCHEMA = """
CREATE TABLE partners (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE invoices (
  id bigserial PRIMARY KEY,
  partner_id int REFERENCES partners (id),
  number text UNIQUE,
  amount numeric(12,2),
  state text CHECK (state IN ('draft', 'posted')),
  created timestamptz DEFAULT now()
);
CREATE INDEX invoices_partner ON invoices (partner_id);
CREATE VIEW posted AS SELECT * FROM invoices WHERE state = 'posted';
CREATE FUNCTION total() RETURNS numeric LANGUAGE sql AS 'SELECT sum(amount) FROM invoices';
INSERT INTO partners (name) VALUES ('Ann'), ('béta ✓'), ('O''Brien');
INSERT INTO invoices (partner_id, number, amount, state)
  SELECT 1 + g % 3, 'INV/' || g, g * 1.25, CASE WHEN g % 2 = 0 THEN 'posted' ELSE 'draft' END
  FROM generate_series(1, 500) g;
"""


@pytest.fixture(autouse=True)
def _only_our_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PGPASSWORD or pgpass of the caller's may log the tools in in our place."""
    for key in [k for k in os.environ if k.startswith("PG")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PGPASSFILE", "/dev/null")


def source(db: Database, **kwargs: object) -> PostgresSource:
    server = db.server
    args: dict[str, object] = {
        "name": "db",
        "database": db.name,
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password_env": PW_VAR,
        "checks": (
            SanityCheck("SELECT count(*) FROM invoices", "=500"),
            SanityCheck("SELECT count(*) FROM partners", ">=3"),
            SanityCheck("SELECT total()", ">0"),
        ),
        **kwargs,
    }
    return PostgresSource(**args)  # type: ignore[arg-type]


def snapshot(db: Database) -> list[list[list[str]]]:
    return [
        db.rows("SELECT id, name FROM partners ORDER BY id"),
        db.rows("SELECT id, partner_id, number, amount, state FROM invoices ORDER BY id"),
        db.rows("SELECT count(*), sum(amount) FROM posted"),
        db.rows("SELECT total()"),
    ]


def scratch_databases(server: DbServer) -> list[str]:
    out = server.sql("SELECT datname FROM pg_database WHERE datname LIKE 'rg\\_verify\\_%'")
    return out.split()


def test_backup_verify_change_restore_compare(
    pg_database: Database, postgres_lab: DbServer, tmp_path: Path
) -> None:
    pg_database.sql(SCHEMA)
    before = snapshot(pg_database)
    secrets = {PW_VAR: postgres_lab.password}
    src = source(pg_database)
    scratch_before = scratch_databases(postgres_lab)

    taken = take_backup(
        stack="odoo18-prod", env="prod", sources=[src], root=tmp_path, running_version="v1",
        release="v2", secrets=secrets,
    )  # fmt: skip
    entry = taken.manifest["sources"][0]
    assert entry["tool"] == "pg_dump" and entry["tool_version"].startswith("pg_dump (PostgreSQL)")
    assert entry["database"] == pg_database.name and entry["raw_size"] > entry["compressed_size"]
    assert postgres_lab.password not in (taken.path / "manifest.json").read_text()

    report = verify_backup(taken, [src], secrets)
    assert report.ok, report
    [result] = report.results
    assert "3 sanity check(s) passed" in result.summary
    assert any("2 tables restored" in line for line in result.evidence["restore"])
    assert result.evidence["scratch"].startswith("rg_verify_")
    assert scratch_databases(postgres_lab) == scratch_before  # dropped

    pg_database.sql(
        "DELETE FROM invoices WHERE id > 100; UPDATE partners SET name = 'changed';"
        "DROP VIEW posted; CREATE TABLE added_later (x int);"
    )
    assert pg_database.sql("SELECT count(*) FROM invoices") == "100"
    restored = restore_backup(taken, [src], secrets)
    assert restored.ok, restored
    assert snapshot(pg_database) == before
    # --clean drops what the dump holds; objects made after the backup stay
    assert pg_database.sql("SELECT to_regclass('added_later') IS NOT NULL") == "t"


def test_a_flipped_byte_fails_verify_and_restore_is_refused(
    pg_database: Database, postgres_lab: DbServer, tmp_path: Path
) -> None:
    pg_database.sql(SCHEMA)
    secrets = {PW_VAR: postgres_lab.password}
    src = source(pg_database)
    taken = take_backup(stack="s", env="e", sources=[src], root=tmp_path, running_version=None,
                        release=None, secrets=secrets)  # fmt: skip
    file = taken.path / src.file_name
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x01
    file.write_bytes(bytes(data))

    report = verify_backup(taken, [src], secrets)
    assert not report.ok and "sha256 mismatch" in report.results[0].summary
    pg_database.sql("DELETE FROM invoices")
    with pytest.raises(Refused):
        restore_backup(taken, [src], secrets)
    assert pg_database.sql("SELECT count(*) FROM invoices") == "0"  # untouched


def test_a_dump_killed_half_way_leaves_no_complete_looking_backup(
    pg_database: Database, postgres_lab: DbServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import releasegate.backup.stream as stream

    monkeypatch.setattr(stream, "PROGRESS_EVERY_S", 0.0)  # report after every chunk
    pg_database.sql(
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) || repeat('x', 100) AS pad "
        "FROM generate_series(1, 400000) g"
    )
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / ".env").write_text("A=1\n")
    killed: list[str] = []

    def kill_pg_dump(event: BackupProgress) -> None:
        if event.source == "db" and event.phase == "bytes" and not killed:
            killed.append(
                postgres_lab.sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{pg_database.name}' AND application_name = 'pg_dump'"
                )
            )

    root = tmp_path / "backups"
    with pytest.raises(BackupFailed) as err:
        take_backup(
            stack="s", env="e",
            sources=[FilesSource(name="config", paths=(".env",), base_dir=conf),
                     source(pg_database)],
            root=root, running_version=None, release=None,
            secrets={PW_VAR: postgres_lab.password}, progress=kill_pg_dump,
        )  # fmt: skip
    assert killed == ["t"]
    assert err.value.source == "db"
    assert "backup of 'db' failed: pg_dump exited with status 1" in err.value.message
    assert "terminat" in err.value.message or "connection" in err.value.message
    assert list((root / "s").iterdir()) == []  # not even the partial folder
    assert list_backups(root, "s") == []


def test_a_wrong_password_is_reported_without_it(
    pg_database: Database, postgres_lab: DbServer, tmp_path: Path
) -> None:
    wrong = "Wrong-Password-123"
    with pytest.raises(BackupFailed) as err:
        take_backup(stack="s", env="e", sources=[source(pg_database)], root=tmp_path,
                    running_version=None, release=None, secrets={PW_VAR: wrong})  # fmt: skip
    assert "password authentication failed" in err.value.message
    assert wrong not in err.value.message + err.value.stderr
    assert list((tmp_path / "s").iterdir()) == []


def test_without_password_env_a_pgpass_file_serves(
    pg_database: Database, postgres_lab: DbServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg_database.sql(SCHEMA)
    monkeypatch.setenv("PGPASSFILE", str(postgres_lab.write_client_file(tmp_path / "pgpass")))
    src = source(pg_database, password_env=None)
    taken = take_backup(stack="s", env="e", sources=[src], root=tmp_path / "b",
                        running_version=None, release=None, secrets={})  # fmt: skip
    assert verify_backup(taken, [src], {}).ok


FAKE_DOCKER = """#!PYTHON
# `docker exec -i [-e NAME]... CONTAINER CMD...`, run here: CMD gets only PATH and the
# variables named with -e, as a container would; the call is logged.
import json, os, sys
args = sys.argv[1:]
assert args[0] == "exec", args
i, names = 1, []
while args[i].startswith("-"):
    if args[i] == "-e":
        names.append(args[i + 1])
        i += 2
    else:
        i += 1
container, cmd = args[i], args[i + 1:]
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(json.dumps({"container": container, "names": names, "argv": args}) + "\\n")
env = {"PATH": os.environ["PATH"], "PGPASSFILE": "/dev/null"}
env.update({n: os.environ[n] for n in names if n in os.environ})
os.execvpe(cmd[0], cmd, env)
"""


def install_fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `docker` on PATH that runs `docker exec` commands on this host; its log file."""
    bin_dir = tmp_path / "fake-docker-bin"
    bin_dir.mkdir()
    shim = bin_dir / "docker"
    shim.write_text(FAKE_DOCKER.replace("PYTHON", sys.executable))
    shim.chmod(0o755)
    log = tmp_path / "docker.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    return log


def test_inside_a_container_the_password_goes_by_name_with_docker_exec(
    pg_database: Database, postgres_lab: DbServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    pg_database.sql(SCHEMA)
    before = snapshot(pg_database)
    log = install_fake_docker(tmp_path, monkeypatch)
    secrets = {PW_VAR: postgres_lab.password}
    src = source(pg_database, container="seisei-db")
    taken = take_backup(stack="s", env="e", sources=[src], root=tmp_path / "b",
                        running_version=None, release=None, secrets=secrets)  # fmt: skip
    assert verify_backup(taken, [src], secrets).ok
    pg_database.sql("DELETE FROM invoices")
    assert restore_backup(taken, [src], secrets).ok
    assert snapshot(pg_database) == before
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    tools = [c["argv"][c["argv"].index("seisei-db") + 1] for c in calls]
    assert {"pg_dump", "createdb", "pg_restore", "psql", "dropdb"} <= set(tools)
    assert all(c["container"] == "seisei-db" for c in calls)
    assert all(c["names"] == ["PGPASSWORD"] for c in calls if "--version" not in c["argv"])
    assert postgres_lab.password not in log.read_text()
