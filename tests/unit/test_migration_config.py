"""The `migrations:` section of a stack: defaults per tool, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from releasegate.config import load_config
from releasegate.errors import ConfigError

BASE = """\
stacks:
  shop-prod:
    env: prod
    runtime: releases
    dir: srv/shop
    artifacts: artifacts
    backup:
      sources:
        - {name: shop, kind: postgres, database: shop}
        - {name: uploads, kind: files, paths: [media/]}
    migrations:
"""


def load(tmp_path: Path, section: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "releasegate.yaml"
    path.write_text(BASE + section, encoding="utf-8")
    return load_config(path).stack("shop-prod")


def test_defaults_per_tool(tmp_path: Path) -> None:
    stack = load(tmp_path, "      tool: django\n      database: shop\n")
    cfg = stack.migrations
    assert cfg.argv == ["python", "manage.py"]
    assert cfg.url_env == "DATABASE_URL"
    assert cfg.dir is None
    prisma = load(tmp_path, "      tool: prisma\n      database: shop\n").migrations
    assert prisma.folder == "prisma/migrations"
    sql = load(tmp_path, "      tool: sql\n      database: shop\n      dir: app\n").migrations
    assert sql.folder == "migrations" and sql.dir == tmp_path / "app"


def test_database_must_be_a_database_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must name a backup source of kind postgres, mysql or"):
        load(tmp_path, "      tool: sql\n      database: uploads\n")
    with pytest.raises(ConfigError, match=r"\(sources: shop\)"):
        load(tmp_path, "      tool: sql\n      database: nope\n")


def test_commands_are_argv_lists(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="argv list"):
        load(
            tmp_path, "      tool: django\n      database: shop\n      command: python manage.py\n"
        )
    with pytest.raises(ConfigError, match="argv list"):
        load(
            tmp_path,
            "      tool: django\n      database: shop\n      previous_smoke: ./smoke.sh && true\n",
        )


def test_unknown_tool_and_bad_history_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tool"):
        load(tmp_path, "      tool: flyway\n      database: shop\n")
    with pytest.raises(ConfigError, match="history_table"):
        load(tmp_path, "      tool: sql\n      database: shop\n      history_table: x; drop\n")


def test_a_sqlite_source_may_be_the_migrations_database(tmp_path: Path) -> None:
    text = BASE.replace(
        "        - {name: uploads, kind: files, paths: [media/]}\n",
        "        - {name: uploads, kind: files, paths: [media/]}\n"
        "        - {name: local, kind: sqlite, path: shared/db.sqlite3}\n",
    )
    path = tmp_path / "releasegate.yaml"
    section = "      tool: django\n      database: local\n      path_env: DATABASE_PATH\n"
    path.write_text(text + section, encoding="utf-8")
    cfg = load_config(path).stack("shop-prod").migrations
    assert cfg.database == "local" and cfg.path_env == "DATABASE_PATH"
    path.write_text(text + "      tool: django\n      database: local\n", encoding="utf-8")
    assert load_config(path).stack("shop-prod").migrations.path_env is None
    with pytest.raises(ConfigError, match="path_env"):
        path.write_text(text + section.replace("DATABASE_PATH", "not a name"), encoding="utf-8")
        load_config(path)
