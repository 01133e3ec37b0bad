"""The stack's `backup.sources` (config) -> the backup core's source objects."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from releasegate.backup.sources import (
    FilesSource,
    MySQLSource,
    PostgresSource,
    SanityCheck,
    SQLiteSource,
)

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig

Source = PostgresSource | MySQLSource | SQLiteSource | FilesSource


def _given(value: str | None, source: str, key: str) -> str:
    """A key the config's schema requires for this kind of source (checked there too)."""
    if not value:
        from releasegate.errors import BadInput

        raise BadInput(f"backup source {source}: {key} is required for its kind")
    return value


def sources_for(stack: StackConfig) -> list[Source]:
    base = Path(str(stack.dir))
    out: list[Source] = []
    for src in stack.backup.sources:
        checks = tuple(SanityCheck(c.query, c.expect) for c in src.checks)
        if src.kind == "postgres":
            out.append(
                PostgresSource(
                    name=src.name,
                    database=_given(src.database, src.name, "database"),
                    host=src.host,
                    port=src.port or 5432,
                    user=src.user or "postgres",
                    password_env=src.password_env,
                    container=src.container,
                    checks=checks,
                )
            )
        elif src.kind == "mysql":
            out.append(
                MySQLSource(
                    name=src.name,
                    database=_given(src.database, src.name, "database"),
                    host=src.host,
                    port=src.port or 3306,
                    user=src.user or "root",
                    password_env=src.password_env,
                    container=src.container,
                    checks=checks,
                )
            )
        elif src.kind == "sqlite":
            path = Path(_given(src.path, src.name, "path"))
            out.append(
                SQLiteSource(
                    name=src.name,
                    path=str(path if path.is_absolute() else base / path),
                    checks=checks,
                )
            )
        else:
            out.append(FilesSource(name=src.name, paths=tuple(src.paths), base_dir=str(base)))
    return out
