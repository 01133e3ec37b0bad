"""SQL against an SQLite migration database, in process with the `sqlite3` module (no
`sqlite3` program is needed on the machine): what psql / mariadb do for the other
dialects in dbclient.py. The database is a file path: the live file, or the scratch copy
a rehearsal restored.

Reads open the file read-only (`mode=ro`: a query never creates or changes it); scripts
open it read-write but never create it. Every call is bounded: a busy timeout for the
app's locks, a deadline checked by a progress handler, and a cap on the rows read.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from releasegate.errors import ReleasegateError

MAX_ROWS = 100_000  # a schema or history query returns far fewer; more is not ours
BUSY_TIMEOUT = 30.0  # seconds waiting for the app's write lock before giving up


class SQLiteQueryFailed(ReleasegateError):
    pass


def uri(path: Path | str, mode: str) -> str:
    return f"{Path(path).resolve().as_uri()}?mode={mode}"


@contextmanager
def connect(path: Path | str, *, write: bool, deadline_s: float) -> Iterator[sqlite3.Connection]:
    """A connection that gives up at `deadline_s` (SQLite checks the handler every 1000
    virtual machine steps and interrupts the statement when it returns true)."""
    if not Path(path).is_file():
        raise SQLiteQueryFailed(f"SQLite database {path} does not exist")
    try:
        conn = sqlite3.connect(
            uri(path, "rw" if write else "ro"),
            uri=True,
            timeout=min(BUSY_TIMEOUT, deadline_s),
            isolation_level=None,  # scripts say BEGIN/COMMIT themselves
        )
    except sqlite3.Error as exc:
        raise SQLiteQueryFailed(f"cannot open {path}: {exc}") from None
    end = time.monotonic() + deadline_s
    conn.set_progress_handler(lambda: int(time.monotonic() > end), 1000)
    with closing(conn):
        yield conn


def cell(value: object) -> str:
    """A column as the command-line clients print it: NULL is '', tabs and newlines are
    spaces (rows are tab-separated lines elsewhere)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.hex()
    return str(value).replace("\t", " ").replace("\n", " ")


def query(
    path: Path | str, sql: str, params: tuple[str, ...] = (), *, deadline_s: float
) -> list[list[str]]:
    """Rows of one read-only query, as lists of column texts."""
    with connect(path, write=False, deadline_s=deadline_s) as conn:
        try:
            cursor = conn.execute(sql, params)
            rows = cursor.fetchmany(MAX_ROWS + 1)
        except sqlite3.Error as exc:
            raise SQLiteQueryFailed(f"query on {path} failed: {exc}") from None
    if len(rows) > MAX_ROWS:
        raise SQLiteQueryFailed(f"query on {path} returned more than {MAX_ROWS} rows")
    return [[cell(v) for v in row] for row in rows]


def script(path: Path | str, sql: str, *, single_transaction: bool, deadline_s: float) -> str:
    """Run a script; in one transaction when asked (SQLite's DDL is transactional, so a
    failing file leaves nothing behind). Returns '' or raises with SQLite's message."""
    body = f"BEGIN;\n{sql}\nCOMMIT;\n" if single_transaction else sql
    with connect(path, write=True, deadline_s=deadline_s) as conn:
        try:
            conn.executescript(body)
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.rollback()
            raise SQLiteQueryFailed(str(exc)) from None
    return ""


def table_exists(path: Path | str, table: str, *, deadline_s: float) -> bool:
    rows = query(
        path,
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
        (table,),
        deadline_s=deadline_s,
    )
    return bool(rows) and rows[0][0] not in ("", "0")
