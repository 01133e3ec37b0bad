"""Data checks end to end on SQLite: `sql` smoke checks run after the switch with the
others (a failing one rolls the release back), read-only (a write is refused by the
database, the data stays), bounded in time, and one statement only."""

from __future__ import annotations

import sqlite3

import pytest

from tests.e2e.conftest import Lab, _teardown, build_lab

pytestmark = pytest.mark.e2e

SOURCE = """\
    backup:
      sources:
        - {name: appdb, kind: sqlite, path: shared/app.db}
"""


def _setup(lab: Lab, checks: str) -> sqlite3.Connection:
    db = lab.root / "srv/web-staging/shared/app.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE inventory_data (source TEXT, warehouse_name TEXT)")
    con.executemany(
        "INSERT INTO inventory_data VALUES (?, ?)", [("ozon", "msk"), ("wildberries", "spb")]
    )
    con.commit()
    text = lab.config.read_text(encoding="utf-8")
    text = text.replace(
        "        timeout: 5\n  web-prod:", "        timeout: 5\n" + checks + SOURCE + "  web-prod:"
    )
    lab.config.write_text(text, encoding="utf-8")
    return con


@pytest.fixture()
def dlab(tmp_path):
    lab = build_lab(tmp_path / "ws")
    yield lab
    _teardown(lab)


CHECKS = """\
      - name: products
        sql: SELECT count(*) FROM inventory_data
        source: appdb
        at_least: 2
      - name: no-orphans
        sql: SELECT source FROM inventory_data WHERE warehouse_name IS NULL
        source: appdb
        empty: true
"""


def test_sql_checks_pass_then_a_failing_one_rolls_back(dlab: Lab) -> None:
    con = _setup(dlab, CHECKS)
    first = dlab.rg("deploy", "web-staging", "staging", "v1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "sql on appdb: 2 (at_least 2)" in first.stderr
    assert "2 data check(s) passed" in first.stderr

    # A row without a warehouse: seed 004's "every record updated" fails after v2's switch.
    con.execute("INSERT INTO inventory_data VALUES ('ozon', NULL)")
    con.commit()
    second = dlab.rg("deploy", "web-staging", "staging", "v2")
    assert second.returncode == 4, second.stdout + second.stderr
    assert "no-orphans: sql on appdb: 1 row(s), expected none" in second.stdout
    assert dlab.running_version("web-staging") == "v1"

    smoke = dlab.rg("smoke", "web-staging", "staging")
    assert smoke.returncode == 1 and "expected none" in smoke.stdout
    steps = dlab.history_json("--stack", "web-staging", "--steps")
    evidence = [
        c["evidence"]
        for s in steps
        if s.get("action") == "smoke"
        for c in s["details"].get("checks", [])
        if c["name"] == "no-orphans" and not c["ok"]
    ]
    assert evidence and evidence[0]["rows"] == [["ozon"]] and evidence[0]["kind"] == "sqlite"


def test_a_write_is_refused_a_long_query_stopped_and_two_statements_rejected(dlab: Lab) -> None:
    con = _setup(
        dlab,
        """\
      - name: sneaky
        sql: DELETE FROM inventory_data RETURNING source
        source: appdb
        empty: true
      - name: forever
        sql: >-
          WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)
          SELECT count(*) FROM n
        source: appdb
        at_least: 1
        timeout: 1
""",
    )
    smoke = dlab.rg("smoke", "web-staging", "staging")
    assert smoke.returncode == 1
    assert "readonly database" in smoke.stderr  # sneaky: mode=ro refuses the write
    assert "interrupted: past its timeout" in smoke.stderr  # forever: stopped
    assert con.execute("SELECT count(*) FROM inventory_data").fetchone()[0] == 2

    text = dlab.config.read_text(encoding="utf-8")
    dlab.config.write_text(
        text.replace("DELETE FROM inventory_data RETURNING source",
                     "SELECT 1; DELETE FROM inventory_data"),
        encoding="utf-8",
    )  # fmt: skip
    bad = dlab.rg("smoke", "web-staging", "staging")
    assert bad.returncode == 2 and "one statement only" in bad.stderr
