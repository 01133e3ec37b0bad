"""The backup core against the lab's real MariaDB: back up (mysqldump --single-transaction,
one database, no CREATE DATABASE/USE), change the data, restore, compare; verify replays the
dump into a scratch database and drops it; a flipped byte is caught; a dump killed half
way leaves no complete-looking backup. The password reaches the tools only through a 0600
option file that is deleted afterwards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from releasegate.backup.sets import (
    BackupProgress,
    list_backups,
    restore_backup,
    take_backup,
    verify_backup,
)
from releasegate.backup.sources import MySQLSource, SanityCheck
from releasegate.backup.stream import BackupFailed, iter_decompressed
from releasegate.errors import Refused
from tests.e2e_db.test_backup_postgres import install_fake_docker
from tests.lab.db import DbServer
from tests.lab.db_fixtures import Database

pytestmark = pytest.mark.e2e

PW_VAR = "RG_LAB_DB_PASSWORD"

SCHEMA = """
CREATE TABLE partners (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL)
  ENGINE=InnoDB;
CREATE TABLE invoices (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  partner_id INT, number VARCHAR(40) UNIQUE, amount DECIMAL(12,2),
  state ENUM('draft', 'posted'), payload BLOB,
  FOREIGN KEY (partner_id) REFERENCES partners (id)
) ENGINE=InnoDB;
CREATE TABLE audit (invoice_id BIGINT, note VARCHAR(100)) ENGINE=InnoDB;
CREATE TRIGGER invoices_audit AFTER INSERT ON invoices FOR EACH ROW
  INSERT INTO audit VALUES (NEW.id, 'created');
CREATE PROCEDURE total() SELECT SUM(amount) FROM invoices;
CREATE VIEW posted AS SELECT * FROM invoices WHERE state = 'posted';
INSERT INTO partners (name) VALUES ('Ann'), ('béta ✓'), ('O''Brien');
INSERT INTO invoices (partner_id, number, amount, state, payload)
  SELECT 1 + seq % 3, CONCAT('INV/', seq), seq * 1.25, IF(seq % 2 = 0, 'posted', 'draft'),
         UNHEX(MD5(seq))
  FROM seq_1_to_500;
"""


@pytest.fixture(autouse=True)
def _only_our_password(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith(("MYSQL", "MARIADB"))]:
        monkeypatch.delenv(key)


def source(db: Database, **kwargs: object) -> MySQLSource:
    server = db.server
    args: dict[str, object] = {
        "name": "shop",
        "database": db.name,
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password_env": PW_VAR,
        "checks": (
            SanityCheck("SELECT COUNT(*) FROM invoices", "=500"),
            SanityCheck("SELECT COUNT(*) FROM audit", "=500"),
            SanityCheck("SELECT SUM(amount) FROM posted", ">0"),
        ),
        **kwargs,
    }
    return MySQLSource(**args)  # type: ignore[arg-type]


def snapshot(db: Database) -> list[list[list[str]]]:
    return [
        db.rows("SELECT id, name FROM partners ORDER BY id"),
        db.rows("SELECT id, partner_id, number, amount, state, HEX(payload) FROM invoices"
                " ORDER BY id"),
        db.rows("SELECT COUNT(*), SUM(amount) FROM posted"),
        db.rows("SELECT COUNT(*) FROM audit"),
        db.rows("SELECT routine_name FROM information_schema.routines"
                f" WHERE routine_schema = '{db.name}'"),
        db.rows("SELECT trigger_name FROM information_schema.triggers"
                f" WHERE trigger_schema = '{db.name}'"),
    ]  # fmt: skip


def scratch_databases(server: DbServer) -> list[str]:
    out = server.sql(
        "SELECT schema_name FROM information_schema.schemata"
        " WHERE schema_name LIKE 'rg\\_verify\\_%'"
    )
    return out.split()


def test_backup_verify_change_restore_compare(
    maria_database: Database, mariadb_lab: DbServer, tmp_path: Path
) -> None:
    maria_database.sql(SCHEMA)
    before = snapshot(maria_database)
    secrets = {PW_VAR: mariadb_lab.password}
    src = source(maria_database)
    scratch_before = scratch_databases(mariadb_lab)

    taken = take_backup(
        stack="inventory", env="prod", sources=[src], root=tmp_path, running_version="v1",
        release="v2", secrets=secrets,
    )  # fmt: skip
    entry = taken.manifest["sources"][0]
    assert entry["tool"] in {"mariadb-dump", "mysqldump"} and "MariaDB" in entry["tool_version"]
    assert mariadb_lab.password not in (taken.path / "manifest.json").read_text()
    dump = b"".join(iter_decompressed(taken.path / src.file_name)).decode()
    assert "CREATE DATABASE" not in dump and "\nUSE " not in dump
    assert "CREATE TABLE `invoices`" in dump and "invoices_audit" in dump

    report = verify_backup(taken, [src], secrets)
    assert report.ok, report
    [result] = report.results
    assert "3 sanity check(s) passed" in result.summary
    assert any("3 tables restored" in line for line in result.evidence["restore"])
    assert scratch_databases(mariadb_lab) == scratch_before  # dropped

    maria_database.sql(
        "DELETE FROM invoices WHERE id > 100; UPDATE partners SET name = 'changed';"
        "DROP PROCEDURE total; DROP VIEW posted;"
    )
    assert maria_database.sql("SELECT COUNT(*) FROM invoices") == "100"
    restored = restore_backup(taken, [src], secrets)
    assert restored.ok, restored
    assert snapshot(maria_database) == before


def test_a_flipped_byte_fails_verify_and_restore_is_refused(
    maria_database: Database, mariadb_lab: DbServer, tmp_path: Path
) -> None:
    maria_database.sql(SCHEMA)
    secrets = {PW_VAR: mariadb_lab.password}
    src = source(maria_database)
    taken = take_backup(stack="s", env="e", sources=[src], root=tmp_path, running_version=None,
                        release=None, secrets=secrets)  # fmt: skip
    file = taken.path / src.file_name
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x01
    file.write_bytes(bytes(data))

    report = verify_backup(taken, [src], secrets)
    assert not report.ok and "sha256 mismatch" in report.results[0].summary
    maria_database.sql("DELETE FROM audit")
    with pytest.raises(Refused):
        restore_backup(taken, [src], secrets)
    assert maria_database.sql("SELECT COUNT(*) FROM audit") == "0"  # untouched


def test_a_dump_killed_half_way_leaves_no_complete_looking_backup(
    maria_database: Database,
    mariadb_lab: DbServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import releasegate.backup.stream as stream

    monkeypatch.setattr(stream, "PROGRESS_EVERY_S", 0.0)
    maria_database.sql(
        "CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(200)) ENGINE=InnoDB;"
        "INSERT INTO big SELECT seq, CONCAT(MD5(seq), REPEAT('x', 150)) FROM seq_1_to_400000;"
    )
    killed: list[str] = []

    def kill_dump(event: BackupProgress) -> None:
        if event.phase == "bytes" and not killed:
            ids = mariadb_lab.sql(
                "SELECT id FROM information_schema.processlist "
                f"WHERE db = '{maria_database.name}' AND id <> CONNECTION_ID()"
            ).split()
            for pid in ids:
                mariadb_lab.sql(f"KILL {int(pid)}", check=False)
            killed.extend(ids)

    root = tmp_path / "backups"
    with pytest.raises(BackupFailed) as err:
        take_backup(
            stack="s", env="e", sources=[source(maria_database)], root=root,
            running_version=None, release=None, secrets={PW_VAR: mariadb_lab.password},
            progress=kill_dump,
        )  # fmt: skip
    assert killed
    assert err.value.source == "shop"
    assert "backup of 'shop' failed:" in err.value.message
    assert "Lost connection" in err.value.message or "Error" in err.value.message
    assert list((root / "s").iterdir()) == []
    assert list_backups(root, "s") == []


def test_a_wrong_password_is_reported_without_it(
    maria_database: Database, mariadb_lab: DbServer, tmp_path: Path
) -> None:
    wrong = "Wrong-Password-123"
    with pytest.raises(BackupFailed) as err:
        take_backup(stack="s", env="e", sources=[source(maria_database)], root=tmp_path,
                    running_version=None, release=None, secrets={PW_VAR: wrong})  # fmt: skip
    assert "Access denied" in err.value.message
    assert wrong not in err.value.message + err.value.stderr
    assert list((tmp_path / "s").iterdir()) == []


def test_inside_a_container_the_password_goes_as_mysql_pwd_by_name(
    maria_database: Database,
    mariadb_lab: DbServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    maria_database.sql(SCHEMA)
    before = snapshot(maria_database)
    log = install_fake_docker(tmp_path, monkeypatch)
    secrets = {PW_VAR: mariadb_lab.password}
    src = source(maria_database, container="shop-db")
    taken = take_backup(stack="s", env="e", sources=[src], root=tmp_path / "b",
                        running_version=None, release=None, secrets=secrets)  # fmt: skip
    assert verify_backup(taken, [src], secrets).ok
    maria_database.sql("DELETE FROM audit")
    assert restore_backup(taken, [src], secrets).ok
    assert snapshot(maria_database) == before
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    work = [c for c in calls if "--version" not in c["argv"]]
    assert work and all(c["names"] == ["MYSQL_PWD"] for c in work)
    assert not any("--defaults-extra-file" in " ".join(c["argv"]) for c in calls)
    assert mariadb_lab.password not in log.read_text()
