"""The stack's `backup.sources` (config) -> the backup core's source objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from releasegate.backup.sources import (
    FilesSource,
    MySQLSource,
    PostgresSource,
    SanityCheck,
    SQLiteSource,
)

Source = PostgresSource | MySQLSource | SQLiteSource | FilesSource


def sources_for(stack: Any) -> list[Source]:
    base = Path(str(stack.dir))
    out: list[Source] = []
    for src in stack.backup.sources:
        checks = tuple(SanityCheck(c.query, c.expect) for c in src.checks)
        if src.kind == "postgres":
            out.append(
                PostgresSource(
                    name=src.name,
                    database=src.database,
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
                    database=src.database,
                    host=src.host,
                    port=src.port or 3306,
                    user=src.user or "root",
                    password_env=src.password_env,
                    container=src.container,
                    checks=checks,
                )
            )
        elif src.kind == "sqlite":
            path = Path(src.path)
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
