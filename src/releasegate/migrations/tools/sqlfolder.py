"""Plain SQL files `NNNN_name.sql` applied in order, with a history table releasegate
creates. PostgreSQL runs each file and its history row in one transaction (psql -1);
MySQL commits DDL as it goes, so there a failed file can leave part of it applied (drift
shows it). Files must not hold their own BEGIN/COMMIT."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from releasegate.errors import BadInput
from releasegate.migrations.model import Migration, Status
from releasegate.migrations.tools.base import (
    FolderAdapter,
    check_name,
    literal,
    no_rollback,
    table_exists,
)
from releasegate.transport.base import CommandResult

FILE_RE = re.compile(r"^(\d+)_([A-Za-z0-9_\-]+)\.sql$")


@dataclass(frozen=True)
class SqlFile:
    name: str  # the stem: 0002_add_shipment_file
    path: Path
    checksum: str


def list_files(folder: Path) -> list[SqlFile]:
    """The folder's migration files in numeric order; other files are ignored, a number
    used twice is an error."""
    if not folder.is_dir():
        raise BadInput(f"migrations folder {folder} does not exist")
    found: dict[int, SqlFile] = {}
    for path in folder.iterdir():
        m = FILE_RE.match(path.name)
        if not m or not path.is_file():
            continue
        number = int(m[1])
        if number in found:
            raise BadInput(
                f"two migrations numbered {m[1]}: {found[number].path.name}, {path.name}"
            )
        data = path.read_bytes()
        found[number] = SqlFile(path.stem, path, hashlib.sha256(data).hexdigest())
    return [found[n] for n in sorted(found)]


def merge(
    files: Sequence[SqlFile], rows: Sequence[Sequence[str]]
) -> tuple[list[Migration], list[str]]:
    """Files + history rows (name, checksum, applied_at) -> migrations, notes."""
    history = {r[0]: r for r in rows if r}
    notes = []
    out = []
    for f in files:
        row = history.pop(f.name, None)
        if row is None:
            out.append(Migration(f.name, "pending"))
            continue
        if len(row) > 1 and row[1] and row[1] != f.checksum:
            notes.append(f"{f.name}: the file changed after it was applied (checksum differs)")
        out.append(Migration(f.name, "applied", f"applied {row[2]}" if len(row) > 2 else ""))
    for name in history:
        notes.append(f"{name}: in the history table but no file has that name")
    return out, notes


class SqlFolderAdapter(FolderAdapter):
    @property
    def table(self) -> str:
        return self.ctx.history_table  # checked against a plain identifier pattern in config

    def _table_exists(self) -> bool:
        return table_exists(self.ctx.client, self.ctx.database, self.table)

    def _rows(self) -> list[list[str]]:
        if not self._table_exists():
            return []
        return self.ctx.client.query(
            self.ctx.database,
            f"SELECT name, checksum, applied_at FROM {self.table} ORDER BY name",
        )

    def status(self) -> Status:
        files = list_files(self.folder)
        migrations, notes = merge(files, self._rows())
        return Status(
            "sql",
            self.ctx.database,
            tuple(migrations),
            evidence=(f"{len(files)} file(s) in {self.folder}; history table {self.table}",),
            notes=tuple(notes),
        )

    def _file(self, name: str) -> SqlFile:
        for f in list_files(self.folder):
            if f.name == check_name(name):
                return f
        raise BadInput(f"no migration file {name}.sql in {self.folder}")

    def migration_sql(self, names: list[str]) -> list[tuple[str, str]]:
        return [(n, self._file(n).path.read_text(encoding="utf-8")) for n in names]

    def history_evidence(self, name: str) -> str:
        if not self._table_exists():
            return f"{self.table}: the history table does not exist yet"
        rows = self.ctx.client.query(
            self.ctx.database,
            f"SELECT name, checksum, applied_at FROM {self.table} WHERE name = {literal(name)}",
        )
        return f"{self.table}: " + (" | ".join(rows[0]) if rows else f"no row for {name}")

    def resolve_hint(self) -> str:
        return "releasegate migrate resolve STACK {name} --applied (writes the history row)"

    def _create_table(self) -> str:
        stamp = {"postgresql": "timestamptz", "sqlite": "text"}.get(self.dialect, "timestamp")
        return (
            f"CREATE TABLE IF NOT EXISTS {self.table} (name varchar(200) PRIMARY KEY, "
            f"checksum char(64) NOT NULL, applied_at {stamp} NOT NULL DEFAULT "
            "CURRENT_TIMESTAMP, applied_by varchar(100) NOT NULL);\n"
        )

    def _insert(self, f: SqlFile) -> str:
        return (
            f"INSERT INTO {self.table} (name, checksum, applied_by) VALUES "
            f"({literal(f.name)}, {literal(f.checksum)}, {literal(self.ctx.actor[:100])});\n"
        )

    def apply(self) -> CommandResult:
        status = self.status()
        result = self.ctx.client.script(
            self.ctx.database, self._create_table(), single_transaction=False
        )
        if not result.ok:
            return result
        for name in status.pending:
            f = self._file(name)
            body = f.path.read_text(encoding="utf-8")
            # The file and its history row commit together where the dialect allows.
            script = body.rstrip() + ("\n" if body.rstrip().endswith(";") else ";\n")
            result = self.ctx.client.script(
                self.ctx.database,
                script + self._insert(f),
                single_transaction=self.dialect in ("postgresql", "sqlite"),
            )
            if not result.ok:
                return result
        return result

    def resolve(self, name: str, *, applied: bool, status: Status) -> CommandResult:
        f = self._file(name)
        if applied:
            sql = self._create_table() + self._insert(f)
        else:
            sql = f"DELETE FROM {self.table} WHERE name = {literal(f.name)};\n"
        return self.ctx.client.script(self.ctx.database, sql, single_transaction=True)

    def rollback(self, to: str, *, status: Status) -> CommandResult:
        raise no_rollback("a folder of SQL files")
