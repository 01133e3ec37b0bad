"""Seed 003's module release on its own stack, Django on SQLite, done with releasegate:
a real Django project whose app `supplier_eval` brings three migrations, a releases stack
running the sample service, the live database a file in the stack's shared folder.

0002 (nullable fields and an index) lints clean, rehearses on a copy of the newest
verified backup and deploys; 0003 (NOT NULL without a default) is flagged by lint, fails
its rehearsal on the copy while the live file stays as it was, and a deploy that runs it
anyway puts the database back and leaves the old release answering. Seed 003's scenario 2
(`migrate supplier_eval zero`, or restoring the copy) is `migrate rollback --to
supplier_eval.zero`, then `restore --from` the backup it took."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import django_sqlite as dj
from tests.e2e.conftest import Lab, _teardown, build_lab

pytestmark = pytest.mark.e2e

STACK = "web-staging"
ROWS = 40


@pytest.fixture(scope="module")
def project_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Django project, written once for the module (each test copies it)."""
    return dj.write_project(tmp_path_factory.mktemp("django") / "project")


class SqliteLab:
    def __init__(self, lab: Lab, project: Path) -> None:
        self.lab = lab
        self.project = project
        self.db = lab.root / "srv" / STACK / "shared" / "db.sqlite3"

    def rg(self, *args: str) -> Any:
        return self.lab.rg(*args, timeout=300)

    def rg_json(self, *args: str) -> tuple[int, list[dict[str, Any]]]:
        out = self.rg(*args, "--json")
        lines = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
        assert lines, out.stdout + out.stderr
        return out.returncode, lines

    def result(self, *args: str) -> tuple[int, dict[str, Any]]:
        code, lines = self.rg_json(*args)
        return code, next(x["result"] for x in reversed(lines) if "result" in x)

    def status(self) -> dict[str, Any]:
        code, [status] = self.rg_json("migrate", "status", STACK)
        assert code == (3 if status["pending"] else 0), status  # 3: something is pending
        return status

    def ledger(self, action: str) -> list[dict[str, Any]]:
        out = self.rg("history", "--json", "--steps")
        assert out.returncode == 0, out.stderr
        rows = [json.loads(x) for x in out.stdout.splitlines() if x.strip()]
        return [r for r in rows if r.get("action") == action]

    def digest(self) -> str:
        return hashlib.sha256(self.db.read_bytes()).hexdigest()


@pytest.fixture()
def sq(tmp_path: Path, project_template: Path):  # type: ignore[no-untyped-def]
    lab = build_lab(tmp_path / "ws")
    project = dj.copy_project(project_template, lab.root / "app")
    config = lab.config.read_text()
    head, sep, tail = config.partition("  web-prod:")
    service = f'["{sys.executable}", "-m", "releasegate.demo.service"'
    head = head.replace("    commands:\n", f'    commands:\n      stop: {service}, "stop"]\n', 1)
    head += (
        "    backup:\n"
        "      sources:\n"
        "        - name: app-db\n"
        "          kind: sqlite\n"
        "          path: shared/db.sqlite3\n"
        f"          checks: [{{query: 'SELECT count(*) FROM {dj.TABLE}', expect: '>0'}}]\n"
        "    migrations:\n"
        "      tool: django\n"
        "      database: app-db\n"
        "      dir: app\n"
        f"      command: [{json.dumps(sys.executable)}, manage.py]\n"
        "      path_env: DATABASE_PATH\n"
        "      apps: [supplier_eval]\n"
    )
    lab.config.write_text(head + sep + tail)
    s = SqliteLab(lab, project)
    s.db.parent.mkdir(parents=True, exist_ok=True)
    # Production before the release: 0001 applied by hand, the app's rows in it.
    dj.manage(project, s.db, "migrate", "supplier_eval", "0001")
    dj.insert_rows(s.db, ROWS)
    yield s
    _teardown(lab)


def test_seed_003_release_rehearsed_gated_and_restored(sq: SqliteLab) -> None:
    out = sq.rg("deploy", STACK, "staging", "v1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert sq.status()["pending"] == []

    # -- 0002: nullable fields + an index: lint clean, rehearsal passes, deploy applies it
    dj.add_migration(sq.project, "0002_scores")
    code, lines = sq.rg_json("migrate", "lint", STACK)
    findings = [x["finding"] for x in lines if "finding" in x]
    assert code == 0 and all(f["risk"] == "LOW" for f in findings), findings
    assert lines[-1]["summary"]["migrations"] == ["supplier_eval.0002_scores"]

    out = sq.rg("backup", STACK, "staging")
    assert out.returncode == 0, out.stdout + out.stderr
    out = sq.rg("backup", "verify", STACK)
    assert out.returncode == 0, out.stdout + out.stderr
    before = sq.digest()
    code, result = sq.result("migrate", "rehearse", STACK, "--version", "v2")
    assert code == 0, result
    [rehearsal] = sq.ledger("migrate-rehearse")
    assert rehearsal["details"]["verdict"] == "pass" and rehearsal["details"]["backup_verified"]
    steps = {s["step"]: s for s in result["steps"]}
    assert steps["migrate"]["evidence"]["pending_before"] == ["supplier_eval.0002_scores"]
    assert steps["live-untouched"]["ok"]
    assert sq.digest() == before  # the rehearsal ran on a copy
    assert dj.applied(sq.db) == ["0001_initial"]  # read directly: no Django start-up

    code, result = sq.result("deploy", STACK, "staging", "v2")
    assert code == 0, result
    steps = {s["step"]: s for s in result["steps"]}
    assert steps["migrate"]["summary"].startswith("applied 1 migration(s)")
    assert "comprehensive_score" in dj.columns(sq.db)
    assert sq.lab.running_version(STACK) == "v2"

    # -- 0003: NOT NULL without a default: lint says HIGH, the rehearsal fails on the copy
    dj.add_migration(sq.project, "0003_grade")
    code, lines = sq.rg_json("migrate", "lint", STACK)
    rules = {(x["finding"]["rule"], x["finding"]["risk"]) for x in lines if "finding" in x}
    assert code == 3
    assert rules == {("add-column-not-null-no-default", "HIGH"), ("table-rebuild", "MEDIUM")}

    out = sq.rg("backup", STACK, "staging")
    assert out.returncode == 0, out.stdout + out.stderr
    before = sq.digest()
    code, result = sq.result("migrate", "rehearse", STACK, "--version", "v3")
    assert code == 1, result
    assert sq.ledger("migrate-rehearse")[-1]["details"]["verdict"] == "fail"
    assert "NOT NULL constraint failed" in result["message"], result["message"]
    assert sq.digest() == before  # production untouched
    assert "grade" not in dj.columns(sq.db)
    assert dj.applied(sq.db) == ["0001_initial", "0002_scores"]
    steps = {s["step"]: s for s in result["steps"]}
    assert not Path(steps["restore"]["evidence"]["scratch"]).parent.exists()  # copy removed

    # -- a deploy that runs it anyway (staging: the gate only reports): the migrate step
    # fails, the database is restored from the deploy's backup, v2 still answers.
    code, result = sq.result("deploy", STACK, "staging", "v3")
    assert code == 4, result
    steps = {s["step"]: s for s in result["steps"]}
    gate = steps["migration-gate"]["summary"]  # what would refuse it on prod, reported
    assert steps["migration-gate"]["ok"] and "not required outside prod" in gate
    assert "1 HIGH-risk lint finding(s)" in gate and "not rehearsed on v3" in gate
    assert not steps["migrate"]["ok"]
    assert "NOT NULL constraint failed" in steps["migrate"]["evidence"]["output"]
    assert "switch" not in steps
    [restore] = result["followups"]
    assert restore["action"] == "restore" and restore["status"] == "success", restore
    assert "the database was restored from" in result["message"]
    assert sq.lab.running_version(STACK) == "v2"
    assert "grade" not in dj.columns(sq.db) and "comprehensive_score" in dj.columns(sq.db)
    assert dj.scalar(sq.db, f"SELECT count(*) FROM {dj.TABLE}") == ROWS
    assert dj.scalar(sq.db, "PRAGMA integrity_check") == "ok"
    leftovers = (".restore", ".stale", "-journal")  # the restore's temporary and side files
    assert [p.name for p in sq.db.parent.iterdir() if p.name.endswith(leftovers)] == []
    assert sq.status()["pending"] == ["supplier_eval.0003_grade"]


def test_scenario_2_migrate_zero_then_the_copy_back(sq: SqliteLab) -> None:
    out = sq.rg("deploy", STACK, "staging", "v1")  # runs on 0001
    assert out.returncode == 0, out.stdout + out.stderr
    dj.add_migration(sq.project, "0002_scores")
    out = sq.rg("deploy", STACK, "staging", "v2")  # brings 0002
    assert out.returncode == 0, out.stdout + out.stderr
    assert dj.applied(sq.db) == ["0001_initial", "0002_scores"]

    # Back to what v1 ran on, as the ledger recorded it at v1's deploy; never forward.
    code, result = sq.result(
        "migrate", "rollback", STACK, "--to-release", "v1", "--reason", "v2 reverted"
    )
    assert code == 0, result
    assert sq.ledger("migrate-rollback")[-1]["details"]["targets"] == ["supplier_eval.0001_initial"]
    assert dj.applied(sq.db) == ["0001_initial"]
    assert "comprehensive_score" not in dj.columns(sq.db)
    code, result = sq.result("migrate", "rollback", STACK, "--to-release", "v2")
    assert code == 3 and "would migrate forward" in result["message"], result

    # Method A: undo the app's migrations (its table goes; a backup is taken first).
    code, result = sq.result(
        "migrate", "rollback", STACK, "--to", "supplier_eval.zero", "--reason", "scenario 2"
    )
    assert code == 0, result
    backup = sq.ledger("migrate-rollback")[-1]["details"]["backup"]
    steps = {s["step"]: s for s in result["steps"]}
    assert steps["downgrade"]["evidence"]["argv"][-2:] == ["supplier_eval", "zero"]
    status = sq.status()
    assert status["applied"] == [] and len(status["pending"]) == 2
    assert dj.TABLE not in str(dj.scalar(sq.db, "SELECT group_concat(name) FROM sqlite_master"))

    # Method B: the copy back (seed 003's `cp backups/db_backup_*.sqlite3 db.sqlite3`),
    # with the writers stopped, the service started again and smoked.
    out = sq.rg("restore", STACK, "staging", "--from", backup, "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    assert dj.scalar(sq.db, f"SELECT count(*) FROM {dj.TABLE}") == ROWS
    assert dj.applied(sq.db) == ["0001_initial"]
    assert sq.lab.running_version(STACK) == "v2"


def test_a_project_that_ignores_the_variable_fails_its_rehearsal(sq: SqliteLab) -> None:
    """Django's default settings name the file itself (`BASE_DIR / 'db.sqlite3'`): the
    rehearsal would migrate production. It must fail, saying so."""
    settings = sq.project / "site_cfg" / "settings.py"
    settings.write_text(
        settings.read_text().replace('os.environ["DATABASE_PATH"]', repr(str(sq.db)))
    )
    dj.add_migration(sq.project, "0002_scores")
    out = sq.rg("backup", STACK, "staging")
    assert out.returncode == 0, out.stdout + out.stderr
    code, result = sq.result("migrate", "rehearse", STACK, "--version", "v2")
    assert code == 1, result
    assert "the tool did not use the copy" in result["message"], result["message"]
    assert "DATABASE_URL or DATABASE_PATH" in result["message"]
    assert sq.ledger("migrate-rehearse")[-1]["details"]["verdict"] == "fail"

    # a wrong path is said, not papered over by Django creating an empty file there
    sq.db.rename(sq.db.with_name("moved.sqlite3"))
    out = sq.rg("migrate", "status", STACK)
    assert out.returncode == 2 and "does not exist" in out.stdout + out.stderr
    assert not sq.db.exists()


def test_on_prod_the_gate_wants_lint_clean_and_a_rehearsal(sq: SqliteLab) -> None:
    sq.lab.config.write_text(
        sq.lab.config.read_text().replace("    env: staging\n", "    env: prod\n", 1)
    )
    out = sq.rg("deploy", STACK, "prod", "v1")
    assert out.returncode == 0, out.stdout + out.stderr

    dj.add_migration(sq.project, "0002_scores")
    dj.add_migration(sq.project, "0003_grade")
    before = sq.digest()
    code, result = sq.result("deploy", STACK, "prod", "v2")
    assert code == 3, result  # refused: nothing ran
    gate = {s["step"]: s for s in result["steps"]}["migration-gate"]["summary"]
    assert "1 HIGH-risk lint finding(s)" in gate and "not rehearsed on v2" in gate
    assert sq.digest() == before
    assert sq.lab.running_version(STACK) == "v1"

    # seed 003's way: the NOT NULL column waits; 0002 alone, rehearsed, deploys.
    (sq.project / "supplier_eval" / "migrations" / "0003_grade.py").unlink()
    out = sq.rg("backup", STACK, "prod")
    assert out.returncode == 0, out.stdout + out.stderr
    code, result = sq.result("migrate", "rehearse", STACK, "--version", "v2")
    assert code == 0, result
    code, result = sq.result("deploy", STACK, "prod", "v2")
    assert code == 0, result
    gate = {s["step"]: s for s in result["steps"]}["migration-gate"]["summary"]
    assert "lint clean of HIGH, rehearsed" in gate
    assert dj.applied(sq.db) == ["0001_initial", "0002_scores"]
