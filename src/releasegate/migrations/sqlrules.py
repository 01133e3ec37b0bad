"""releasegate's own rules for SQL migrations, without a database and without a SQL parser.

A migration file is split into statements (`split_statements`), each statement is
normalised (comments removed, string literals and dollar-quoted bodies blanked, whitespace
collapsed) and matched with regular expressions (`lint_sql`). The rules target what makes
a deploy or its rollback unsafe: the previous release must keep working on the new schema,
and the migration must not lock a busy table for long.

What is understood:
  - quotes: '...' (with '' and, for MySQL, backslash escapes), E'...', "identifiers",
    `backticks` (MySQL), `--` and `/* */` comments (nested in PostgreSQL), `#` comments
    (MySQL), dollar-quoted bodies ($$...$$, $tag$...$tag$; their content is never checked);
  - ALTER TABLE with several comma-separated actions, CREATE [UNIQUE] INDEX, DROP TABLE,
    MySQL RENAME TABLE, and tables created by CREATE TABLE earlier in the same file.

What is not understood (no finding, or a coarse one):
  - MySQL `DELIMITER` blocks (procedures, triggers): split at `;` like any other text;
  - SQL built dynamically (EXECUTE, PREPARE), procedural code, statements inside functions;
  - the current schema: MySQL MODIFY/CHANGE are reported as type changes because the old
    definition is unknown; row counts are unknown, so "large table" means "not created in
    this file";
  - a table created in this file is empty, so findings on it are downgraded to LOW; a table
    created by another file of the same run is not known to be new;
  - anything Squawk checks beyond these rules (the issue plans Squawk for PostgreSQL).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal, Protocol

Dialect = Literal["postgresql", "mysql", "sqlite"]
DIALECTS: tuple[Dialect, ...] = ("postgresql", "mysql", "sqlite")


class Risk(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Risk.LOW: 1, Risk.MEDIUM: 2, Risk.HIGH: 3}

# Stable rule ids -> what they catch (shown by `releasegate migrate lint --help`).
RULES: dict[str, str] = {
    "add-column-not-null-no-default": (
        "HIGH: ADD COLUMN ... NOT NULL without DEFAULT (fails on rows, old code's INSERTs fail)"
    ),
    "drop-column": "HIGH: DROP COLUMN (the previous release still reads it; breaks rollback)",
    "drop-table": "HIGH: DROP TABLE (the previous release still reads it; breaks rollback)",
    "rename-column": "HIGH: RENAME COLUMN, MySQL CHANGE old new (old code uses the old name)",
    "rename-table": "HIGH: RENAME TO, RENAME TABLE (old code uses the old name)",
    "alter-column-type": (
        "HIGH: ALTER COLUMN ... TYPE, MySQL MODIFY/CHANGE (table rewrite; old code may break)"
    ),
    "set-not-null": "MEDIUM: ALTER COLUMN ... SET NOT NULL (PostgreSQL: full scan under lock)",
    "create-index-not-concurrently": (
        "MEDIUM: CREATE INDEX without CONCURRENTLY (PostgreSQL: blocks writes); "
        "LOW on a table created in the same file, LOW on MySQL (InnoDB builds online)"
    ),
    "add-foreign-key-without-not-valid": (
        "MEDIUM: ADD FOREIGN KEY without NOT VALID (PostgreSQL: locks both tables to validate)"
    ),
    "table-rebuild": (
        "MEDIUM: SQLite: a table rebuilt (create new__T, copy every row, drop T, rename), "
        "as Django does for what ALTER TABLE cannot: the database is locked while it copies"
    ),
}


@dataclass(frozen=True)
class Statement:
    """One statement: `text` as written, `normalised` for matching, `line` 1-based."""

    text: str
    normalised: str
    line: int


@dataclass(frozen=True)
class Finding:
    rule: str
    risk: Risk
    file: str
    line: int
    statement_excerpt: str
    message: str
    hint: str


# -- splitting ------------------------------------------------------------------------------
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_WORD_CHAR = re.compile(r"[\w$]")


def split_statements(sql: str, dialect: Dialect = "postgresql") -> list[Statement]:
    """Split `sql` at top-level `;`. Comments, quotes and dollar quotes are respected; a
    statement's line is where its first non-comment character is. Empty statements (only
    comments or whitespace) are dropped."""
    mysql = dialect == "mysql"
    backticks = dialect in ("mysql", "sqlite")  # SQLite reads `x` as an identifier too
    dollars = dialect == "postgresql"
    statements: list[Statement] = []
    raw: list[str] = []  # the statement as written
    norm: list[str] = []  # comments -> space, literals -> '' / $$ $$
    start_line = 0  # 0: no significant character yet
    line = 1
    i = 0
    n = len(sql)

    def flush() -> None:
        nonlocal raw, norm, start_line
        text = "".join(raw).strip()
        normalised = " ".join("".join(norm).split())
        if start_line and normalised:
            statements.append(Statement(text=text, normalised=normalised, line=start_line))
        raw, norm, start_line = [], [], 0

    while i < n:
        c = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        # comments
        if (c == "-" and nxt == "-") or (mysql and c == "#"):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            raw.append(sql[i:end])
            norm.append(" ")
            i = end
            continue
        if c == "/" and nxt == "*":
            j, depth = i + 2, 1
            while j < n and depth:
                if sql.startswith("*/", j):
                    depth -= 1
                    j += 2
                elif dollars and sql.startswith("/*", j):
                    depth += 1
                    j += 2
                else:
                    j += 1
            chunk = sql[i:j]
            raw.append(chunk)
            norm.append(" ")
            line += chunk.count("\n")
            i = j
            continue
        if c == ";":
            raw.append(c)
            flush()
            i += 1
            continue
        if c.isspace():
            raw.append(c)
            norm.append(c)
            if c == "\n":
                line += 1
            i += 1
            continue
        if not start_line:
            start_line = line
        # quoted text
        if c in "'\"" or (backticks and c == "`"):
            backslash = mysql or (
                c == "'" and i > 0 and sql[i - 1] in "eE" and not _prev_is_word(sql, i - 1)
            )
            j = i + 1
            while j < n:
                if backslash and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            j = min(j + 1, n)
            chunk = sql[i:j]
            raw.append(chunk)
            norm.append("''" if c == "'" else chunk.replace("\n", " "))
            line += chunk.count("\n")
            i = j
            continue
        if c == "$" and dollars and not _prev_is_word(sql, i):
            m = _DOLLAR_TAG.match(sql, i)
            if m:
                tag = m.group(0)
                end = sql.find(tag, m.end())
                j = n if end < 0 else end + len(tag)
                chunk = sql[i:j]
                raw.append(chunk)
                norm.append("$$ $$")
                line += chunk.count("\n")
                i = j
                continue
        raw.append(c)
        norm.append(c)
        i += 1
    flush()
    return statements


def _prev_is_word(sql: str, i: int) -> bool:
    return i > 0 and bool(_WORD_CHAR.match(sql[i - 1]))


# -- rules ----------------------------------------------------------------------------------
_PART = r'(?:"[^"]*"|`[^`]*`|[\w$]+)'
_IDENT = rf"{_PART}(?:\s*\.\s*{_PART})*"
_FLAGS = re.IGNORECASE | re.DOTALL

ALTER_TABLE = re.compile(
    rf"^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?({_IDENT})\s*\*?\s+(.*)$", _FLAGS
)
CREATE_TABLE = re.compile(
    rf"^CREATE\s+(?:(?:GLOBAL\s+|LOCAL\s+)?(?:TEMP|TEMPORARY)\s+|UNLOGGED\s+)?TABLE\s+"
    rf"(?:IF\s+NOT\s+EXISTS\s+)?({_IDENT})",
    _FLAGS,
)
CREATE_INDEX = re.compile(
    rf"^CREATE\s+(?:UNIQUE\s+|FULLTEXT\s+|SPATIAL\s+)?INDEX\s+(CONCURRENTLY\s+)?"
    rf"(?:IF\s+NOT\s+EXISTS\s+)?(?:({_IDENT})\s+)?ON\s+(?:ONLY\s+)?({_IDENT})",
    _FLAGS,
)
_DROP_TABLE = re.compile(r"^DROP\s+(?:TEMPORARY\s+)?TABLE\s+(?:IF\s+EXISTS\s+)?(.*)$", _FLAGS)
_RENAME_TABLE = re.compile(r"^RENAME\s+TABLE\s+(.*)$", _FLAGS)

ADD_NOT_COLUMN = re.compile(
    r"^ADD\s+(?:CONSTRAINT|PRIMARY|FOREIGN|UNIQUE|CHECK|INDEX|KEY|FULLTEXT|SPATIAL|EXCLUDE"
    r"|PARTITION|PERIOD)\b",
    _FLAGS,
)
ADD_COLUMN = re.compile(
    rf"^ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?({_IDENT})\s*(.*)$", _FLAGS
)
_ADD_FK = re.compile(r"^ADD\s+(?:CONSTRAINT\s+\S+\s+)?FOREIGN\s+KEY\b", _FLAGS)
_ADD_UNIQUE_PK = re.compile(r"^ADD\s+(?:CONSTRAINT\s+\S+\s+)?(?:UNIQUE|PRIMARY\s+KEY)\b", _FLAGS)
_ADD_INDEX = re.compile(
    r"^ADD\s+(?:CONSTRAINT\s+\S+\s+)?(?:UNIQUE\s+|FULLTEXT\s+|SPATIAL\s+)?(?:INDEX|KEY)\b"
    r"|^ADD\s+(?:CONSTRAINT\s+\S+\s+)?(?:UNIQUE|PRIMARY\s+KEY)\b",
    _FLAGS,
)
_DROP_NOT_COLUMN = re.compile(
    r"^DROP\s+(?:CONSTRAINT|INDEX|KEY|PRIMARY|FOREIGN|CHECK|DEFAULT|PARTITION|PERIOD"
    r"|SYSTEM\s+VERSIONING|EXPRESSION|IDENTITY|NOT\s+NULL)\b",
    _FLAGS,
)
_DROP_COLUMN = re.compile(rf"^DROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?({_IDENT})", _FLAGS)
_RENAME_TO = re.compile(rf"^RENAME\s+(?:TO|AS)\s+({_IDENT})", _FLAGS)
_RENAME_NOT_COLUMN = re.compile(r"^RENAME\s+(?:CONSTRAINT|INDEX|KEY)\b", _FLAGS)
_RENAME_COLUMN = re.compile(rf"^RENAME\s+(?:COLUMN\s+)?({_IDENT})\s+TO\s+({_IDENT})", _FLAGS)
_ALTER_TYPE = re.compile(
    rf"^ALTER\s+(?:COLUMN\s+)?({_IDENT})\s+(?:SET\s+DATA\s+)?TYPE\s+(.*)$", _FLAGS
)
_SET_NOT_NULL = re.compile(rf"^ALTER\s+(?:COLUMN\s+)?({_IDENT})\s+SET\s+NOT\s+NULL\b", _FLAGS)
_MODIFY = re.compile(rf"^MODIFY\s+(?:COLUMN\s+)?({_IDENT})\s+(.*)$", _FLAGS)
_CHANGE = re.compile(rf"^CHANGE\s+(?:COLUMN\s+)?({_IDENT})\s+({_IDENT})\s+(.*)$", _FLAGS)

_NOT_NULL = re.compile(r"\bNOT\s+NULL\b", _FLAGS)
_DEFAULT = re.compile(r"\bDEFAULT\b", _FLAGS)
# Columns the database fills itself: no DEFAULT is needed.
_SELF_FILLED = re.compile(
    r"^(?:SMALL|BIG)?SERIAL\d?\b|\bGENERATED\b|\bAUTO_INCREMENT\b|\bAS\s*\(", _FLAGS
)
_NOT_VALID = re.compile(r"\bNOT\s+VALID\b", _FLAGS)
_USING_INDEX = re.compile(r"\bUSING\s+INDEX\b", _FLAGS)

_EXCERPT_LEN = 160


def lint_sql(sql: str, *, file: str = "<sql>", dialect: Dialect = "postgresql") -> list[Finding]:
    """The findings of one migration file's SQL, in statement order."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; expected one of {', '.join(DIALECTS)}")
    if dialect == "sqlite":
        from releasegate.migrations.sqliterules import lint_sqlite

        return lint_sqlite(split_statements(sql, dialect), file)
    findings: list[Finding] = []
    created: set[str] = set()
    for statement in split_statements(sql, dialect):
        findings.extend(_check(statement, file, dialect, created))
    return findings


def lint_file(path: Path, dialect: Dialect = "postgresql") -> list[Finding]:
    """`lint_sql` on a file (UTF-8); raises BadInput when it cannot be read."""
    from releasegate.errors import BadInput

    try:
        sql = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BadInput(
            f"cannot read {path}: {reason}", hint="pass a readable UTF-8 SQL file to --sql"
        ) from exc
    return lint_sql(sql, file=str(path), dialect=dialect)


def at_or_above(findings: list[Finding], threshold: Risk) -> list[Finding]:
    return [f for f in findings if f.risk.rank >= threshold.rank]


def name_key(name: str) -> str:
    """A table name for comparison: last dotted part, unquoted, lower case if unquoted."""
    last = re.split(r"\s*\.\s*(?=[\"`\w$])", name.strip())[-1]
    if last[:1] in '"`':
        return last[1:-1]
    return last.lower()


def _show(name: str) -> str:
    return " ".join(name.split())


def split_top(text: str) -> list[str]:
    """Split at commas outside parentheses (literals are already blanked)."""
    parts: list[str] = []
    depth, start = 0, 0
    for i, c in enumerate(text):
        if c == "(":
            depth += 1
        elif c == ")":
            depth = max(0, depth - 1)
        elif c == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def _excerpt(statement: Statement) -> str:
    text = statement.normalised
    return text if len(text) <= _EXCERPT_LEN else text[: _EXCERPT_LEN - 3] + "..."


def _check(statement: Statement, file: str, dialect: Dialect, created: set[str]) -> list[Finding]:
    s = statement.normalised
    out: list[Finding] = []

    def add(rule: str, risk: Risk, message: str, hint: str, table: str | None = None) -> None:
        if table is not None and name_key(table) in created and risk != Risk.LOW:
            risk = Risk.LOW
            message += f" (LOW: {_show(table)} is created in this file, so it is empty)"
        out.append(
            Finding(
                rule=rule,
                risk=risk,
                file=file,
                line=statement.line,
                statement_excerpt=_excerpt(statement),
                message=message,
                hint=hint,
            )
        )

    pg = dialect == "postgresql"

    if m := CREATE_TABLE.match(s):
        created.add(name_key(m.group(1)))
        return out

    if m := CREATE_INDEX.match(s):
        concurrently, table = m.group(1), m.group(3)
        if pg and not concurrently:
            add(
                "create-index-not-concurrently",
                Risk.MEDIUM,
                f"CREATE INDEX on {_show(table)} without CONCURRENTLY blocks writes to the "
                "table while the index builds",
                "use CREATE INDEX CONCURRENTLY, in a migration of its own (it cannot run "
                "inside a transaction)",
                table,
            )
        elif not pg:
            add(
                "create-index-not-concurrently",
                Risk.LOW,
                f"CREATE INDEX on {_show(table)}: InnoDB builds it online, but it still "
                "reads the whole table",
                "state ALGORITHM=INPLACE, LOCK=NONE so MySQL refuses rather than locks",
            )
        return out

    if m := _DROP_TABLE.match(s):
        tables = ", ".join(
            _show(t) for t in split_top(re.sub(r"\s+(CASCADE|RESTRICT)\s*$", "", m.group(1)))
        )
        add(
            "drop-table",
            Risk.HIGH,
            f"DROP TABLE {tables}: the previous release still reads it, so a rollback breaks",
            "drop it in a later release, once no running or rollback version uses it",
            None if "," in tables else tables,
        )
        return out

    if not pg and (m := _RENAME_TABLE.match(s)):
        add(
            "rename-table",
            Risk.HIGH,
            f"RENAME TABLE {_show(m.group(1))}: the previous release uses the old name",
            "create the new table (or a view with the old name), copy, switch code, "
            "then drop the old one in a later release",
        )
        return out

    m = ALTER_TABLE.match(s)
    if not m:
        return out
    table = m.group(1)
    for action in split_top(m.group(2)):
        _check_action(action, table, dialect, add)
    return out


class _Add(Protocol):  # the signature of `add` in _check
    def __call__(
        self, rule: str, risk: Risk, message: str, hint: str, table: str | None = None
    ) -> None: ...


def _check_action(action: str, table: str, dialect: Dialect, add: _Add) -> None:
    pg = dialect == "postgresql"
    t = _show(table)

    if action.upper().startswith("ADD"):
        if _ADD_FK.match(action):
            if pg and not _NOT_VALID.search(action):
                add(
                    "add-foreign-key-without-not-valid",
                    Risk.MEDIUM,
                    f"ADD FOREIGN KEY on {t} validates every row while both tables are locked",
                    "add it NOT VALID, then VALIDATE CONSTRAINT in a later migration",
                    table,
                )
            return
        if _ADD_INDEX.match(action):
            if not pg:
                add(
                    "create-index-not-concurrently",
                    Risk.LOW,
                    f"ADD INDEX on {t}: InnoDB builds it online, but it still reads the "
                    "whole table",
                    "state ALGORITHM=INPLACE, LOCK=NONE so MySQL refuses rather than locks",
                )
            elif _ADD_UNIQUE_PK.match(action) and not _USING_INDEX.search(action):
                add(
                    "create-index-not-concurrently",
                    Risk.MEDIUM,
                    f"ADD UNIQUE/PRIMARY KEY on {t} builds its index while writes are blocked",
                    "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT ... USING INDEX",
                    table,
                )
            return
        if ADD_NOT_COLUMN.match(action):
            return
        if col := ADD_COLUMN.match(action):
            definition = col.group(2)
            if (
                _NOT_NULL.search(definition)
                and not _DEFAULT.search(definition)
                and not _SELF_FILLED.search(definition)
            ):
                why = (
                    "fails on a table with rows"
                    if pg
                    else "gets an implicit value on existing rows and the previous "
                    "release's INSERTs fail in strict mode"
                )
                add(
                    "add-column-not-null-no-default",
                    Risk.HIGH,
                    f"ADD COLUMN {_show(col.group(1))} NOT NULL without DEFAULT on {t} {why}",
                    "add it NULL (or with a DEFAULT), backfill, and add NOT NULL in a later "
                    "release",
                    table,
                )
        return

    if action.upper().startswith("DROP"):
        if _DROP_NOT_COLUMN.match(action):
            return
        if col := _DROP_COLUMN.match(action):
            add(
                "drop-column",
                Risk.HIGH,
                f"DROP COLUMN {_show(col.group(1))} on {t}: the previous release still reads "
                "it, so a rollback breaks",
                "stop using it in one release, drop it in a later one",
                table,
            )
        return

    if action.upper().startswith("RENAME"):
        if to := _RENAME_TO.match(action):
            add(
                "rename-table",
                Risk.HIGH,
                f"RENAME {t} TO {_show(to.group(1))}: the previous release uses the old name",
                "create the new table (or a view with the old name) and migrate in steps",
                table,
            )
        elif not _RENAME_NOT_COLUMN.match(action) and (col := _RENAME_COLUMN.match(action)):
            add(
                "rename-column",
                Risk.HIGH,
                f"RENAME COLUMN {_show(col.group(1))} TO {_show(col.group(2))} on {t}: the "
                "previous release uses the old name",
                "add the new column, write both, backfill, switch reads, drop the old one "
                "in a later release",
                table,
            )
        return

    if pg or action.upper().startswith("ALTER"):
        if col := _ALTER_TYPE.match(action):
            add(
                "alter-column-type",
                Risk.HIGH,
                f"ALTER COLUMN {_show(col.group(1))} TYPE on {t} may rewrite the table under "
                "an exclusive lock, and the previous release may not handle the new type",
                "add a column of the new type, backfill, switch code, drop the old one later",
                table,
            )
        elif pg and (col := _SET_NOT_NULL.match(action)):
            add(
                "set-not-null",
                Risk.MEDIUM,
                f"SET NOT NULL on {t}.{_show(col.group(1))} scans the whole table under an "
                "exclusive lock",
                "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL "
                "(PostgreSQL 12+ skips the scan)",
                table,
            )
        return

    if col := _CHANGE.match(action):
        old, new = col.group(1), col.group(2)
        if name_key(old) != name_key(new):
            add(
                "rename-column",
                Risk.HIGH,
                f"CHANGE {_show(old)} {_show(new)} on {t} renames the column: the previous "
                "release uses the old name",
                "add the new column, write both, backfill, switch reads, drop the old one "
                "in a later release",
                table,
            )
        else:
            add(
                "alter-column-type",
                Risk.HIGH,
                f"CHANGE {_show(old)} on {t} redefines the column (type, nullability): "
                "usually a table copy, and the previous release may break",
                "add a column with the new definition, backfill, switch code, drop the old one",
                table,
            )
        return

    if col := _MODIFY.match(action):
        add(
            "alter-column-type",
            Risk.HIGH,
            f"MODIFY {_show(col.group(1))} on {t} redefines the column (type, nullability): "
            "usually a table copy, and the previous release may break",
            "add a column with the new definition, backfill, switch code, drop the old one",
            table,
        )
