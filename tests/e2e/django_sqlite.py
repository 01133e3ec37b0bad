"""Seed 003's Django project on SQLite, written out as files: a tiny site with the app
`supplier_eval` and its three migrations as the seed's release brings them.

  0001_initial   the SupplierEvaluation model (the seed's section 3.1)
  0002_scores    nullable score fields and an index: backward compatible, passes clean
  0003_grade     a NOT NULL column without a default: passes on an empty table (a
                 developer's db_dev.sqlite3), fails on production's rows

The settings read the database file from DATABASE_PATH, which releasegate sets for every
run (`migrations.path_env`): the live file, or the scratch copy a rehearsal restored.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

MANAGE = """\
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_cfg.settings")
from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
"""

SETTINGS = """\
import os

SECRET_KEY = "test-only"
INSTALLED_APPS = ["supplier_eval"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["DATABASE_PATH"],
    }
}
"""

HEAD = "from django.db import migrations, models\n\n\nclass Migration(migrations.Migration):\n"

MIGRATIONS = {
    "0001_initial": HEAD
    + """\
    initial = True
    operations = [
        migrations.CreateModel(
            name="SupplierEvaluation",
            fields=[
                ("evaluation_code", models.CharField(max_length=50, primary_key=True)),
                ("supplier_name", models.CharField(max_length=200, db_index=True)),
            ],
        ),
    ]
""",
    "0002_scores": HEAD
    + """\
    dependencies = [("supplier_eval", "0001_initial")]
    operations = [
        migrations.AddField(
            "supplierevaluation",
            "comprehensive_score",
            models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True),
        ),
        migrations.AddField(
            "supplierevaluation",
            "last_evaluation_score",
            models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True),
        ),
        migrations.AddIndex(
            "supplierevaluation",
            models.Index(fields=["supplier_name"], name="supplier_name_idx"),
        ),
    ]
""",
    "0003_grade": HEAD
    + """\
    dependencies = [("supplier_eval", "0002_scores")]
    operations = [
        migrations.AddField("supplierevaluation", "grade", models.CharField(max_length=2)),
    ]
""",
}

TABLE = "supplier_eval_supplierevaluation"


def write_project(root: Path) -> Path:
    """The project with 0001 only; `add_migration` brings the later ones."""
    (root / "site_cfg").mkdir(parents=True)
    (root / "supplier_eval" / "migrations").mkdir(parents=True)
    (root / "manage.py").write_text(MANAGE)
    (root / "site_cfg" / "__init__.py").write_text("")
    (root / "site_cfg" / "settings.py").write_text(SETTINGS)
    (root / "supplier_eval" / "__init__.py").write_text("")
    (root / "supplier_eval" / "migrations" / "__init__.py").write_text("")
    add_migration(root, "0001_initial")
    return root


def add_migration(project: Path, name: str) -> None:
    (project / "supplier_eval" / "migrations" / f"{name}.py").write_text(MIGRATIONS[name])


def copy_project(template: Path, target: Path) -> Path:
    shutil.copytree(template, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def manage(project: Path, db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """manage.py on `db` directly: how the team migrated before releasegate."""
    env = {**os.environ, "DATABASE_PATH": str(db)}
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def insert_rows(db: Path, count: int) -> None:
    """The app's production data."""
    conn = sqlite3.connect(db)
    try:
        conn.executemany(
            f"INSERT INTO {TABLE} (evaluation_code, supplier_name) VALUES (?, ?)",
            [(f"E{i:04d}", f"supplier {i % 7}") for i in range(count)],
        )
        conn.commit()
    finally:
        conn.close()


def columns(db: Path) -> list[str]:
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({TABLE})")]
    finally:
        conn.close()


def scalar(db: Path, sql: str) -> object:
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = conn.execute(sql).fetchone()
        return row[0] if row else None
    finally:
        conn.close()


def applied(db: Path) -> list[str]:
    """supplier_eval's rows in django_migrations, read without starting Django."""
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT name FROM django_migrations WHERE app = 'supplier_eval' ORDER BY id"
        ).fetchall()
        return [r[0] for r in rows]
    finally:
        conn.close()
