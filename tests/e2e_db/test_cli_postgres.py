"""The command line on a real PostgreSQL: `backup`, `backup verify`, `restore`, and the
backup a deploy takes, for a stack whose database is PostgreSQL (seed 001's pg_dump)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Lab, _teardown, build_lab

pytestmark = pytest.mark.e2e


@pytest.fixture()
def pg_lab(tmp_path: Path, pg_database, monkeypatch):  # type: ignore[no-untyped-def]
    lab = build_lab(tmp_path / "ws")
    pg_database.sql("CREATE TABLE orders (id serial PRIMARY KEY, total int NOT NULL)")
    pg_database.sql("INSERT INTO orders (total) SELECT g FROM generate_series(1, 500) g")
    server = pg_database.server
    # The password reaches releasegate only through the environment.
    monkeypatch.setenv("SHOP_DB_PASSWORD", server.password)
    config = lab.config.read_text()
    head, sep, tail = config.partition("  web-prod:")
    stop = f'["{sys.executable}", "-m", "releasegate.demo.service", "stop"]'
    head = head.replace("    commands:\n", f"    commands:\n      stop: {stop}\n", 1)
    head += (
        "    backup:\n"
        "      sources:\n"
        "        - name: shop\n"
        "          kind: postgres\n"
        f"          database: {pg_database.name}\n"
        f"          host: {server.host}\n"
        f"          port: {server.port}\n"
        f"          user: {server.user}\n"
        "          password_env: SHOP_DB_PASSWORD\n"
        "          checks: [{query: 'SELECT count(*) FROM orders', expect: '=500'}]\n"
    )
    lab.config.write_text(head + sep + tail)
    yield lab, pg_database
    _teardown(lab)


def count(db) -> int:  # type: ignore[no-untyped-def]
    return int(db.sql("SELECT count(*) FROM orders").strip())


def test_backup_change_restore_and_compare(pg_lab) -> None:  # type: ignore[no-untyped-def]
    lab, db = pg_lab
    assert isinstance(lab, Lab)
    out = lab.rg("deploy", "web-staging", "staging", "v1")  # takes a backup (before v1)
    assert out.returncode == 0, out.stdout + out.stderr
    before = db.sql("SELECT sum(total) FROM orders").strip()
    out = lab.rg("backup", "web-staging", "staging")
    assert out.returncode == 0, out.stdout + out.stderr
    [newest, *_] = [
        json.loads(x) for x in lab.rg("backup", "list", "web-staging", "--json").stdout.splitlines()
    ]
    assert [s["name"] for s in newest["sources"]] == ["shop", "config"]
    out = lab.rg("backup", "verify", "web-staging", newest["id"])
    assert out.returncode == 0, out.stdout + out.stderr

    db.sql("DELETE FROM orders WHERE id > 100")
    db.sql("UPDATE orders SET total = 0")
    assert count(db) == 100

    out = lab.rg("restore", "web-staging", "staging", "--from", newest["id"], "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    assert count(db) == 500
    assert db.sql("SELECT sum(total) FROM orders").strip() == before
    assert lab.running_version("web-staging") == "v1"  # started again and smoked
    # the password never reached the ledger, the records or the output
    secret = db.server.password
    assert secret not in out.stdout + out.stderr
    assert secret not in lab.rg("history", "--json", "--steps").stdout
    for record in (lab.root / ".releasegate/records").glob("*.md"):
        assert secret not in record.read_text()
