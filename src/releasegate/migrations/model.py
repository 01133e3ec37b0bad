"""Plain values shared by the migration tools' adapters: a migration, a status, drift."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from releasegate.errors import ReleasegateError

State = Literal["applied", "pending", "failed"]


@dataclass(frozen=True)
class Migration:
    """One migration as its tool names it: Django `app.0002_x`, an Alembic revision id, a
    Prisma folder name, a SQL file's stem."""

    name: str
    state: State
    detail: str = ""  # the tool's own words: an Alembic message, a failure log line


@dataclass(frozen=True)
class SchemaObject:
    """Something a migration creates: a table, a column of a table, or an index."""

    kind: Literal["table", "column", "index"]
    table: str
    name: str = ""  # the column or index; "" for a table

    def __str__(self) -> str:
        if self.kind == "table":
            return f"table {self.table}"
        return f"{self.kind} {self.table}.{self.name}"


@dataclass(frozen=True)
class Drift:
    """A pending migration whose objects the database already has (seed 002): the history
    lacks a record the schema reflects. `present` / `missing` split its objects; evidence
    is the information_schema rows and the history lookup, as text."""

    migration: str
    verdict: Literal["applied-without-record", "partially-applied"]
    present: tuple[str, ...]
    missing: tuple[str, ...]
    evidence: tuple[str, ...]
    hint: str


@dataclass(frozen=True)
class Status:
    tool: str
    database: str  # the database name the tool was pointed at
    migrations: tuple[Migration, ...]
    drift: tuple[Drift, ...] = ()
    evidence: tuple[str, ...] = ()  # the commands run and what they said, briefly
    notes: tuple[str, ...] = field(default=())  # e.g. a checksum that changed after apply

    def named(self, state: State) -> list[str]:
        return [m.name for m in self.migrations if m.state == state]

    @property
    def applied(self) -> list[str]:
        return self.named("applied")

    @property
    def pending(self) -> list[str]:
        return self.named("pending")

    @property
    def failed(self) -> list[str]:
        return self.named("failed")

    @property
    def head(self) -> str:
        """The last migration known to the code (applied or not): what a deploy brings."""
        return self.migrations[-1].name if self.migrations else ""

    @property
    def clean(self) -> bool:
        return not self.pending and not self.failed and not self.drift


class ToolFailed(ReleasegateError):
    """A migration tool exited non-zero or printed what we cannot read."""

    def __init__(self, message: str, *, output: str = "", hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.output = output
