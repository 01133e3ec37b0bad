"""releasegate's rules for SQLite migrations, on the SQL Django's `sqlmigrate` prints for
SQLite (or any SQL file), with the same risk model as the PostgreSQL and MySQL rules.

SQLite's ALTER TABLE only adds, drops and renames columns and renames tables. Anything
else (a NOT NULL column without a default, a changed type, a new UNIQUE or foreign key, a
changed default) Django does with the "12-step" table rebuild:

    CREATE TABLE "new__T" (...);
    INSERT INTO "new__T" (cols) SELECT exprs FROM "T";
    DROP TABLE "T";
    ALTER TABLE "new__T" RENAME TO "T";
    CREATE INDEX ... ON "T" ...;            -- T's indexes again

`rebuilds` finds those groups; `lint_sqlite` reads each as one change: the copy itself
(MEDIUM: the whole database is write-locked while every row is copied, time grows with the
table), a NOT NULL column filled with NULL (HIGH: fails on a table with rows, passes on an
empty one, which is how it slips through a developer's database), a column that is not
copied (HIGH: dropped) or copied under another name (HIGH: renamed). The group's DROP TABLE
and RENAME are not reported on their own.

What is known about the tables: only what the same SQL creates (CREATE TABLE, a rebuild,
ADD/DROP COLUMN). A rebuild of a table created elsewhere cannot show a dropped column; a
table created in the same SQL is empty, so findings on it are LOW (as for PostgreSQL).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from releasegate.migrations.sqlrules import (
    _DEFAULT,
    _DROP_COLUMN,
    _DROP_NOT_COLUMN,
    _DROP_TABLE,
    _FLAGS,
    _IDENT,
    _NOT_NULL,
    _PART,
    _RENAME_COLUMN,
    _RENAME_NOT_COLUMN,
    _RENAME_TO,
    _SELF_FILLED,
    ADD_COLUMN,
    ADD_NOT_COLUMN,
    ALTER_TABLE,
    CREATE_INDEX,
    CREATE_TABLE,
    Finding,
    Risk,
    Statement,
    _excerpt,
    _show,
    split_top,
)

REBUILD_PREFIX = "new__"
_INSERT_SELECT = re.compile(
    rf"^INSERT\s+INTO\s+({_IDENT})\s*\((.*?)\)\s*SELECT\s+(.*)\s+FROM\s+({_IDENT})\s*$", _FLAGS
)
_COLUMN_DEF = re.compile(rf"^({_PART})\s*(.*)$", _FLAGS)
_TABLE_CONSTRAINT = re.compile(
    r"^(?:CONSTRAINT|PRIMARY\s+KEY|UNIQUE|CHECK|FOREIGN\s+KEY)\b", _FLAGS
)
_COLUMN_REF = re.compile(rf"^{_PART}$", _FLAGS)
_NOT_A_COLUMN = re.compile(
    r"^(?:NULL|TRUE|FALSE|CURRENT_(?:DATE|TIME|TIMESTAMP)|[-+]?[\d.]+(?:e[-+]?\d+)?)$", re.I
)


def key(name: str) -> str:
    """A name for comparison: last dotted part, unquoted, lower case (SQLite compares
    identifiers without case, quoted or not)."""
    last = re.split(r"\s*\.\s*(?=[\"`\w$\[])", name.strip())[-1]
    if last[:1] in '"`[' and len(last) >= 2:
        last = last[1:-1]
    return last.lower()


def column_defs(create: str) -> dict[str, str]:
    """A CREATE TABLE statement's columns: key -> the definition after the name."""
    start, end = create.find("("), create.rfind(")")
    if start < 0 or end <= start:
        return {}
    out: dict[str, str] = {}
    for part in split_top(create[start + 1 : end]):
        if _TABLE_CONSTRAINT.match(part):
            continue
        if m := _COLUMN_DEF.match(part):
            out[key(m.group(1))] = m.group(2)
    return out


def _is_column(expr: str) -> bool:
    e = expr.strip()
    return bool(_COLUMN_REF.match(e)) and not _NOT_A_COLUMN.match(e) and e != "''"


def _coalesced(expr: str) -> str | None:
    """`coalesce("col", default)` (Django making a column NOT NULL) -> 'col'."""
    m = re.match(rf"^coalesce\s*\(\s*({_PART})\s*,", expr.strip(), _FLAGS)
    return key(m.group(1)) if m else None


@dataclass(frozen=True)
class Rebuild:
    """One table rebuild: statements [start, end) of the SQL."""

    table: str  # as written in the DROP/INSERT (quoted)
    start: int
    end: int
    line: int
    columns: dict[str, str]  # the new table's columns: key -> definition
    # new column key -> the SELECT expression that fills it (normalised text)
    filled: dict[str, str] = field(default_factory=dict)

    @property
    def copied(self) -> dict[str, str]:
        """new column -> the old column it is copied from (directly or coalesced)."""
        out = {}
        for col, expr in self.filled.items():
            if _is_column(expr):
                out[col] = key(expr)
            elif (src := _coalesced(expr)) is not None:
                out[col] = src
        return out

    @property
    def added(self) -> list[str]:
        """New columns that no old column fills: Django's AddField through a rebuild."""
        copied = self.copied
        return [c for c in self.columns if c not in copied]


def rebuilds(statements: Sequence[Statement]) -> list[Rebuild]:
    out: list[Rebuild] = []
    i = 0
    while i < len(statements):
        s = statements[i].normalised
        m = CREATE_TABLE.match(s)
        if not m or not key(m.group(1)).startswith(REBUILD_PREFIX):
            i += 1
            continue
        new = key(m.group(1))
        target = new[len(REBUILD_PREFIX) :]
        columns = column_defs(s)
        j, filled, table = i + 1, {}, m.group(1)
        if j < len(statements) and (ins := _INSERT_SELECT.match(statements[j].normalised)):
            if key(ins.group(1)) == new:
                names = [key(c) for c in split_top(ins.group(2))]
                exprs = split_top(ins.group(3))
                if len(names) == len(exprs):
                    filled = dict(zip(names, exprs, strict=True))
                table = ins.group(4)
                j += 1
        if j < len(statements) and (d := _DROP_TABLE.match(statements[j].normalised)):
            if key(d.group(1)) == target:
                table = d.group(1)
                j += 1
        if j < len(statements) and (a := ALTER_TABLE.match(statements[j].normalised)):
            to = _RENAME_TO.match(a.group(2))
            if key(a.group(1)) == new and to and key(to.group(1)) == target:
                j += 1
        # T's own indexes, made again on the new table
        while j < len(statements) and (ix := CREATE_INDEX.match(statements[j].normalised)):
            if key(ix.group(3)) != target:
                break
            j += 1
        out.append(Rebuild(table, i, j, statements[i].line, columns, filled))
        i = j
    return out


def _needs_value(definition: str) -> bool:
    """NOT NULL with nothing to fill existing rows: no DEFAULT, not filled by SQLite."""
    return (
        bool(_NOT_NULL.search(definition))
        and not _DEFAULT.search(definition)
        and not _SELF_FILLED.search(definition)
        and not re.search(r"\bPRIMARY\s+KEY\b", definition, re.I)
    )


class _Linter:
    def __init__(self, file: str) -> None:
        self.file = file
        self.findings: list[Finding] = []
        self.created: set[str] = set()  # tables created in this SQL: empty
        self.known: dict[str, set[str]] = {}  # their columns, as far as this SQL tells

    def add(
        self, st: Statement, rule: str, risk: Risk, message: str, hint: str, table: str | None
    ) -> None:
        if table is not None and key(table) in self.created and risk != Risk.LOW:
            risk = Risk.LOW
            message += f" (LOW: {_show(table)} is created in this file, so it is empty)"
        self.findings.append(Finding(rule, risk, self.file, st.line, _excerpt(st), message, hint))

    def rebuild(self, st: Statement, r: Rebuild) -> None:
        t = _show(r.table)
        target = key(r.table)
        self.add(
            st, "table-rebuild", Risk.MEDIUM,
            f"{t} is rebuilt (a new table, every row copied, the old one dropped, the new "
            "one renamed): the whole database is locked for writes while it copies, and "
            "the time grows with the table",
            "fine on a small table; on a large one run it in a quiet window, rehearse it "
            "for its duration (migrate rehearse), or make the change one ALTER TABLE can do "
            "(a nullable column, or one with a DEFAULT)",
            r.table,
        )  # fmt: skip
        for col in r.added:
            definition = r.columns[col]
            expr = r.filled.get(col, "")
            if _needs_value(definition) and (not expr or expr.upper() == "NULL"):
                self.add(
                    st, "add-column-not-null-no-default", Risk.HIGH,
                    f"column {col} NOT NULL without a default is added to {t} by copying "
                    "NULL into it: it fails on a table with rows (NOT NULL constraint "
                    "failed) and passes on an empty one; the previous release's INSERTs "
                    "fail too",
                    "add it null=True (or with a default), backfill, and make it NOT NULL "
                    "in a later release",
                    r.table,
                )  # fmt: skip
        copied = r.copied
        for col, src in copied.items():
            if src != col:
                self.add(
                    st, "rename-column", Risk.HIGH,
                    f"column {src} of {t} is copied into {col}: a rename, and the previous "
                    "release uses the old name",
                    "add the new column, write both, backfill, switch reads, drop the old "
                    "one in a later release",
                    r.table,
                )  # fmt: skip
        before = self.known.get(target)
        if before is not None and r.filled:
            for col in sorted(before - set(copied.values())):
                self.add(
                    st, "drop-column", Risk.HIGH,
                    f"column {col} of {t} is not copied into the rebuilt table: it is "
                    "dropped, and the previous release still reads it",
                    "stop using it in one release, drop it in a later one",
                    r.table,
                )  # fmt: skip
        self.known[target] = set(r.columns)

    def statement(self, st: Statement) -> None:
        s = st.normalised
        if m := CREATE_TABLE.match(s):
            self.created.add(key(m.group(1)))
            self.known[key(m.group(1))] = set(column_defs(s))
            return
        if m := CREATE_INDEX.match(s):
            table = m.group(3)
            if key(table) not in self.created:
                self.add(
                    st, "create-index-not-concurrently", Risk.LOW,
                    f"CREATE INDEX on {_show(table)}: SQLite cannot build it concurrently; "
                    "writers wait while it reads the whole table",
                    "nothing to change; a large table wants a quiet window",
                    None,
                )  # fmt: skip
            return
        if m := _DROP_TABLE.match(s):
            tables = ", ".join(_show(t) for t in split_top(m.group(1)))
            self.add(
                st, "drop-table", Risk.HIGH,
                f"DROP TABLE {tables}: the previous release still reads it, so a rollback "
                "breaks",
                "drop it in a later release, once no running or rollback version uses it",
                None if "," in tables else tables,
            )  # fmt: skip
            return
        m = ALTER_TABLE.match(s)
        if m:
            self.alter(st, m.group(1), m.group(2).strip())

    def alter(self, st: Statement, table: str, action: str) -> None:
        t = _show(table)
        columns = self.known.get(key(table))
        if to := _RENAME_TO.match(action):
            self.add(
                st, "rename-table", Risk.HIGH,
                f"RENAME {t} TO {_show(to.group(1))}: the previous release uses the old name",
                "create the new table (or a view with the old name) and migrate in steps",
                table,
            )  # fmt: skip
            if columns is not None:
                self.known[key(to.group(1))] = self.known.pop(key(table))
            return
        if action.upper().startswith("ADD"):
            if ADD_NOT_COLUMN.match(action) or not (col := ADD_COLUMN.match(action)):
                return
            if columns is not None:
                columns.add(key(col.group(1)))
            if _needs_value(col.group(2)):
                self.add(
                    st, "add-column-not-null-no-default", Risk.HIGH,
                    f"ADD COLUMN {_show(col.group(1))} NOT NULL without DEFAULT on {t}: "
                    "SQLite refuses it (Cannot add a NOT NULL column with default value "
                    "NULL), and the previous release's INSERTs would fail",
                    "add it NULL (or with a DEFAULT), backfill, and add NOT NULL in a later "
                    "release",
                    table,
                )  # fmt: skip
            return
        if action.upper().startswith("DROP"):
            if _DROP_NOT_COLUMN.match(action) or not (col := _DROP_COLUMN.match(action)):
                return
            if columns is not None:
                columns.discard(key(col.group(1)))
            self.add(
                st, "drop-column", Risk.HIGH,
                f"DROP COLUMN {_show(col.group(1))} on {t}: SQLite rewrites the table to drop "
                "it, and the previous release still reads it, so a rollback breaks",
                "stop using it in one release, drop it in a later one",
                table,
            )  # fmt: skip
            return
        if (
            action.upper().startswith("RENAME")
            and not _RENAME_NOT_COLUMN.match(action)
            and (col := _RENAME_COLUMN.match(action))
        ):
            if columns is not None:
                columns.discard(key(col.group(1)))
                columns.add(key(col.group(2)))
            self.add(
                st, "rename-column", Risk.HIGH,
                f"RENAME COLUMN {_show(col.group(1))} TO {_show(col.group(2))} on {t}: the "
                "previous release uses the old name",
                "add the new column, write both, backfill, switch reads, drop the old one "
                "in a later release",
                table,
            )  # fmt: skip


def lint_sqlite(statements: Sequence[Statement], file: str) -> list[Finding]:
    """The findings of one migration's SQL on SQLite, in statement order."""
    linter = _Linter(file)
    groups = {r.start: r for r in rebuilds(statements)}
    i = 0
    while i < len(statements):
        if (r := groups.get(i)) is not None:
            linter.rebuild(statements[i], r)
            i = r.end
            continue
        linter.statement(statements[i])
        i += 1
    return linter.findings
