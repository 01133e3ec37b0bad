"""A workspace for `releasegate migrate ...` against the lab's databases: a copy of one of
the real tool projects in tests/data/migrations, a releasegate.yaml whose stack backs up
the test database and migrates it with that tool, and the CLI run in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cli import RELEASEGATE

DATA = Path(__file__).resolve().parents[1] / "data" / "migrations"
PW_VAR = "SHOP_DB_PASSWORD"


@dataclass
class MigrateLab:
    root: Path
    project: Path
    stack: str
    env_name: str
    db: Any  # tests.lab.db_fixtures.Database

    @property
    def config(self) -> Path:
        return self.root / "releasegate.yaml"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RELEASEGATE_", "PG"))}
        env.update(
            RELEASEGATE_CONFIG=str(self.config),
            NO_COLOR="1",
            COLUMNS="200",
            RELEASEGATE_USER="tester",
            PGPASSFILE="/dev/null",
        )
        env[PW_VAR] = self.db.server.password
        return env

    def rg(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [RELEASEGATE, *args],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def rg_json(self, *args: str) -> tuple[int, list[dict[str, Any]]]:
        out = self.rg(*args, "--json")
        lines = [json.loads(x) for x in out.stdout.splitlines() if x.strip()]
        assert lines or out.returncode != 0, out.stderr
        return out.returncode, lines

    def tool(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The tool itself (manage.py / alembic), pointed at the live test database: how a
        team migrated before releasegate."""
        kind = "postgresql" if self.db.server.kind == "postgres" else "mysql"
        server = self.db.server
        url = f"{kind}://{server.user}:{server.password}@{server.host}:{server.port}/{self.db.name}"
        env = {**os.environ, "DATABASE_URL": url}
        if (self.project / "manage.py").is_file():
            argv = [sys.executable, "manage.py", *args]
        else:
            argv = [sys.executable, "-m", "alembic", *args]
        done = subprocess.run(
            argv, cwd=self.project, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def ledger(self, action: str) -> list[dict[str, Any]]:
        out = self.rg("history", "--json", "--steps")
        assert out.returncode == 0, out.stderr
        rows = [json.loads(x) for x in out.stdout.splitlines() if x.strip()]
        return [r for r in rows if r.get("action") == action]


def build(
    root: Path,
    db: Any,
    *,
    project: str,
    tool: str,
    env_name: str = "staging",
    checks: str = "",
    extra: str = "",
) -> MigrateLab:
    root.mkdir(parents=True)
    (root / "srv" / "shop").mkdir(parents=True)
    (root / "artifacts").mkdir()
    # SQL files go in app/migrations, the folder a `sql` stack reads by default.
    target = root / "app" / "migrations" if tool == "sql" else root / "app"
    shutil.copytree(DATA / project, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    server = db.server
    kind = "postgres" if server.kind == "postgres" else "mysql"
    command = {
        "django": f'["{sys.executable}", "manage.py"]',
        "alembic": f'["{sys.executable}", "-m", "alembic"]',
        "sql": "",
    }[tool]
    stack = f"shop-{env_name}"
    text = (
        "stacks:\n"
        f"  {stack}:\n"
        f"    env: {env_name}\n"
        "    runtime: releases\n"
        "    dir: srv/shop\n"
        "    artifacts: artifacts\n"
        "    backup:\n"
        "      sources:\n"
        "        - name: shop\n"
        f"          kind: {kind}\n"
        f"          database: {db.name}\n"
        f"          host: {server.host}\n"
        f"          port: {server.port}\n"
        f"          user: {server.user}\n"
        f"          password_env: {PW_VAR}\n"
        + (f"          checks: {checks}\n" if checks else "")
        + "    migrations:\n"
        f"      tool: {tool}\n"
        "      database: shop\n"
        "      dir: app\n" + (f"      command: {command}\n" if command else "") + extra
    )
    (root / "releasegate.yaml").write_text(text, encoding="utf-8")
    return MigrateLab(root, target, stack, env_name, db)
