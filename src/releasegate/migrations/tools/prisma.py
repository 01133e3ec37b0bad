"""Prisma: the migration folders (`prisma/migrations/<name>/migration.sql`, the SQL that
`migrate deploy` runs) against Prisma's own `_prisma_migrations` table, read with the
database's client; `migrate deploy` to apply, `migrate resolve --applied|--rolled-back`
to resolve (seed 002). Prisma has no down migrations: rollback is a backup restore."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from releasegate.errors import BadInput
from releasegate.migrations.model import Migration, Status
from releasegate.migrations.tools.base import (
    FolderAdapter,
    check_name,
    no_rollback,
    table_exists,
)
from releasegate.transport.base import CommandResult

TABLE = "_prisma_migrations"
# finished_at / rolled_back_at print as '' when NULL (see DbClient.query)
ROWS_SQL = (
    f"SELECT migration_name, coalesce(cast(finished_at AS char), ''), "
    f"coalesce(cast(rolled_back_at AS char), ''), coalesce(logs, '') FROM {TABLE} "
    "ORDER BY started_at"
)


def list_folders(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise BadInput(f"prisma migrations folder {folder} does not exist")
    return sorted(p.name for p in folder.iterdir() if (p / "migration.sql").is_file())


def merge(names: Sequence[str], rows: Sequence[Sequence[str]]) -> tuple[list[Migration], list[str]]:
    """Folders + `_prisma_migrations` rows -> migrations, as `prisma migrate status` judges
    them: a finished, not rolled back row is applied; a row neither finished nor rolled back
    is failed (deploy refuses until it is resolved); rolled back rows do not count."""
    latest: dict[str, Sequence[str]] = {}
    for row in rows:
        if len(row) >= 3 and not row[2]:  # rolled-back attempts are history only
            latest[row[0]] = row
    out: list[Migration] = []
    for name in names:
        found = latest.pop(name, None)
        row = found if found is not None else ()
        if not row:
            out.append(Migration(name, "pending"))
        elif row[1]:
            out.append(Migration(name, "applied", f"finished {row[1]}"))
        else:
            log = (row[3] if len(row) > 3 else "").strip().splitlines()
            out.append(Migration(name, "failed", log[0][:200] if log else "did not finish"))
    notes = [f"{n}: recorded in {TABLE} but no folder has that name" for n in latest]
    return out, notes


class PrismaAdapter(FolderAdapter):
    def _rows(self) -> list[list[str]]:
        if not table_exists(self.ctx.client, self.ctx.database, TABLE):
            return []
        sql = ROWS_SQL if self.dialect == "mysql" else ROWS_SQL.replace("AS char", "AS text")
        return self.ctx.client.query(self.ctx.database, sql)

    def status(self) -> Status:
        names = list_folders(self.folder)
        migrations, notes = merge(names, self._rows())
        return Status(
            "prisma",
            self.ctx.database,
            tuple(migrations),
            evidence=(f"{len(names)} folder(s) in {self.folder}; table {TABLE}",),
            notes=tuple(notes),
        )

    def migration_sql(self, names: list[str]) -> list[tuple[str, str]]:
        out = []
        for name in names:
            path = self.folder / check_name(name) / "migration.sql"
            if not path.is_file():
                raise BadInput(f"no migration {name} in {self.folder}")
            out.append((name, path.read_text(encoding="utf-8")))
        return out

    def history_evidence(self, name: str) -> str:
        rows = [r for r in self._rows() if r and r[0] == check_name(name)]
        if not rows:
            return f"{TABLE}: no row for {name}"
        return f"{TABLE}: " + " | ".join(rows[-1][:3])

    def resolve_hint(self) -> str:
        return "releasegate migrate resolve STACK {name} --applied (prisma migrate resolve)"

    def apply(self) -> CommandResult:
        return self.ctx.run("migrate", "deploy")

    def resolve(self, name: str, *, applied: bool, status: Status) -> CommandResult:
        flag = "--applied" if applied else "--rolled-back"
        return self.ctx.run("migrate", "resolve", flag, check_name(name))

    def rollback(self, to: str, *, status: Status) -> CommandResult:
        raise no_rollback("Prisma")
