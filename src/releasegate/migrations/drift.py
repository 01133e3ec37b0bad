"""Drift between a migration history and the schema (seed 002): a pending migration whose
tables, columns or indexes the database already has. The history lacks a record that the
schema reflects; the evidence is the information_schema rows and the history lookup.

`created_objects` reads what a migration's SQL creates (the same statement splitter as the
lint rules); `schema_facts` asks the database; `find_drift` compares them. Pure except
`schema_facts`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from releasegate.migrations.dbclient import DbClient
from releasegate.migrations.model import Drift, SchemaObject
from releasegate.migrations.sqlrules import (
    ADD_COLUMN,
    ADD_NOT_COLUMN,
    ALTER_TABLE,
    CREATE_INDEX,
    CREATE_TABLE,
    Dialect,
    name_key,
    split_statements,
    split_top,
)


def _ident(name: str, dialect: Dialect) -> str:
    """An identifier as the catalog stores it: PostgreSQL folds unquoted names to lower
    case; MySQL keeps them as written (and compares columns without case, see norm)."""
    if dialect == "postgresql":
        return name_key(name)
    last = re.split(r"\s*\.\s*(?=[\"`\w$])", name.strip())[-1]
    return last[1:-1] if last[:1] in '"`' else last


def created_objects(sql: str, dialect: Dialect) -> list[SchemaObject]:
    """Tables, added columns and named indexes that `sql` creates, in statement order."""

    def key(name: str) -> str:
        return _ident(name, dialect)

    found: list[SchemaObject] = []
    statements = split_statements(sql, dialect)
    groups = {}
    if dialect == "sqlite":  # a table rebuild creates only its added columns
        from releasegate.migrations.sqliterules import rebuilds

        groups = {r.start: r for r in rebuilds(statements)}
    i = 0
    while i < len(statements):
        if (r := groups.get(i)) is not None:
            found.extend(SchemaObject("column", key(r.table), c) for c in r.added)
            i = r.end
            continue
        s = statements[i].normalised
        i += 1
        if m := CREATE_TABLE.match(s):
            found.append(SchemaObject("table", key(m.group(1))))
        elif m := CREATE_INDEX.match(s):
            if m.group(2):
                found.append(SchemaObject("index", key(m.group(3)), key(m.group(2))))
        elif m := ALTER_TABLE.match(s):
            table = key(m.group(1))
            for action in split_top(m.group(2)):
                if ADD_NOT_COLUMN.match(action):
                    continue
                if c := ADD_COLUMN.match(action):
                    found.append(SchemaObject("column", table, key(c.group(1))))
    return found


@dataclass(frozen=True)
class SchemaFacts:
    """What the database has, keyed for comparison; values are evidence lines."""

    dialect: Dialect
    tables: dict[str, str] = field(default_factory=dict)
    columns: dict[tuple[str, str], str] = field(default_factory=dict)
    indexes: dict[tuple[str, str], str] = field(default_factory=dict)

    def norm(self, name: str) -> str:
        # MySQL compares column and (on most setups) table names without case; SQLite
        # compares every identifier without case.
        return name.lower() if self.dialect in ("mysql", "sqlite") else name

    def lookup(self, obj: SchemaObject) -> str | None:
        t, n = self.norm(obj.table), self.norm(obj.name)
        if obj.kind == "table":
            return self.tables.get(t)
        if obj.kind == "column":
            return self.columns.get((t, n))
        return self.indexes.get((t, n))


_PG = {
    "tables": "SELECT table_name, table_type FROM information_schema.tables "
    "WHERE table_schema = current_schema()",
    "columns": "SELECT table_name, column_name, data_type, is_nullable, "
    "coalesce(column_default, 'NULL') FROM information_schema.columns "
    "WHERE table_schema = current_schema()",
    "indexes": "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = current_schema()",
}
_MY = {
    "tables": "SELECT table_name, table_type FROM information_schema.tables "
    "WHERE table_schema = DATABASE()",
    "columns": "SELECT table_name, column_name, column_type, is_nullable, "
    "coalesce(column_default, 'NULL') FROM information_schema.columns "
    "WHERE table_schema = DATABASE()",
    "indexes": "SELECT DISTINCT table_name, index_name FROM information_schema.statistics "
    "WHERE table_schema = DATABASE()",
}


# SQLite: the catalog is sqlite_master, a table's columns come from pragma_table_info
# (the table-valued form needs SQLite 3.16, 2017).
_SQLITE = {
    "tables": "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
    "AND name NOT LIKE 'sqlite_%'",
    "columns": "SELECT m.name, p.name, p.type, CASE p.\"notnull\" WHEN 1 THEN 'NO' ELSE 'YES' "
    "END, coalesce(p.dflt_value, 'NULL') FROM sqlite_master AS m "
    "JOIN pragma_table_info(m.name) AS p WHERE m.type = 'table'",
    "indexes": "SELECT tbl_name, name FROM sqlite_master WHERE type = 'index'",
}
_CATALOG = {
    "postgresql": ("information_schema.tables", "information_schema.columns", "pg_indexes"),
    "mysql": (
        "information_schema.tables",
        "information_schema.columns",
        "information_schema.statistics",
    ),
    "sqlite": ("sqlite_master", "pragma_table_info", "sqlite_master"),
}


def facts_from_rows(
    dialect: Dialect,
    tables: Sequence[Sequence[str]],
    columns: Sequence[Sequence[str]],
    indexes: Sequence[Sequence[str]],
) -> SchemaFacts:
    facts = SchemaFacts(dialect)
    in_tables, in_columns, where = _CATALOG[dialect]
    for row in tables:
        if len(row) >= 2:
            facts.tables[facts.norm(row[0])] = f"{in_tables}: {row[0]} ({row[1].lower()})"
    for row in columns:
        if len(row) >= 5:
            facts.columns[(facts.norm(row[0]), facts.norm(row[1]))] = (
                f"{in_columns}: {row[0]}.{row[1]} {row[2]} nullable={row[3]} default={row[4]}"
            )
    for row in indexes:
        if len(row) >= 2:
            facts.indexes[(facts.norm(row[0]), facts.norm(row[1]))] = (
                f"{where}: index {row[1]} on {row[0]}"
            )
    return facts


def schema_facts(client: DbClient, database: str) -> SchemaFacts:
    dialect: Dialect = (
        client.dialect if client.dialect in ("postgresql", "sqlite") else "mysql"  # type: ignore[assignment]
    )
    q = {"postgresql": _PG, "sqlite": _SQLITE}.get(dialect, _MY)
    return facts_from_rows(
        dialect,
        client.query(database, q["tables"]),
        client.query(database, q["columns"]),
        client.query(database, q["indexes"]),
    )


def find_drift(
    pending: Sequence[tuple[str, str]],
    facts: SchemaFacts,
    history: Mapping[str, str],
    *,
    resolve_hint: str,
) -> list[Drift]:
    """Drift for each pending (name, sql) whose created objects exist, wholly or in part.

    `history` maps a migration name to the history lookup as evidence (the row found, or
    "no row"); `resolve_hint` is formatted with {name}."""
    out: list[Drift] = []
    for name, sql in pending:
        objects = created_objects(sql, facts.dialect)
        if not objects:
            continue
        present, missing, evidence = [], [], []
        for obj in objects:
            row = facts.lookup(obj)
            if row is None:
                missing.append(str(obj))
            else:
                present.append(str(obj))
                evidence.append(row)
        if not present:
            continue
        evidence.append(history.get(name, f"history: no record of {name}"))
        if missing:
            out.append(
                Drift(
                    name,
                    "partially-applied",
                    tuple(present),
                    tuple(missing),
                    tuple(evidence),
                    f"{name} is half applied ({', '.join(missing)} missing): finish or undo "
                    "it by hand, then run it or resolve it; do not mark it applied as is",
                )
            )
        else:
            out.append(
                Drift(
                    name,
                    "applied-without-record",
                    tuple(present),
                    (),
                    tuple(evidence),
                    "the database already has everything it creates; the history lacks the "
                    "record: " + resolve_hint.format(name=name),
                )
            )
    return out
