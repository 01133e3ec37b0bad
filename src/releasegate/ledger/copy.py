"""`releasegate state copy --to URL`: move a ledger (a SQLite file, usually) into another
database (a team's PostgreSQL) with its hash chain intact.

Every row is copied as it is (seq, timestamps, prev_hash, hash): the chain is the same
chain, so `audit verify` on the copy ends on the same head, and anchors kept outside the
database (`audit anchor`) still prove the copy. The copy also takes the locks, the chain
checkpoints and the head. It refuses a source whose chain does not verify (a copy must not
launder a tampered ledger) and a target that already holds anything, then verifies the
copy end to end before it reports success.

Verified versions and takeovers are rows of the chain, so they come along; change records
and anchors are files beside the config, which the copy does not touch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from releasegate.errors import BadInput, ReleasegateError, Tampered
from releasegate.ledger.url import password_problem

if TYPE_CHECKING:
    from releasegate.ledger.db import Database
    from releasegate.ledger.store import Ledger

BATCH = 1000
_ENTRY_COLS = (
    "seq", "ts", "kind", "action_id", "parent_id", "stack", "env", "action", "version",
    "status", "notes", "user", "host", "pid", "forced", "reason", "details", "prev_hash",
    "hash",
)  # fmt: skip
_LOCK_COLS = (
    "stack", "run_id", "user", "host", "pid", "pid_start", "since", "heartbeat", "lease_s",
)  # fmt: skip
_CHECKPOINT_COLS = ("seq", "hash", "ts")


def _quoted(cols: tuple[str, ...]) -> str:
    return ", ".join('"user"' if c == "user" else c for c in cols)


def _select(table: str, cols: tuple[str, ...], order: str) -> str:
    return f"SELECT {_quoted(cols)} FROM {table} ORDER BY {order}"  # noqa: S608 (constants)


def _insert(table: str, cols: tuple[str, ...]) -> str:
    values = ", ".join(f":{c}" for c in cols)
    return f"INSERT INTO {table} ({_quoted(cols)}) VALUES ({values})"  # noqa: S608 (constants)


@dataclass(frozen=True)
class CopyReport:
    source: str
    target: str
    rows: int
    locks: int
    checkpoints: int
    head_seq: int
    head_hash: str
    message: str


def check_target_url(url: str) -> None:
    """The target as given on the command line: a database URL, without a password (argv
    is visible to every user of the machine in `ps`)."""
    if "://" not in url:
        raise BadInput(
            f"--to {url!r} is not a database URL",
            hint="e.g. --to postgresql+psycopg://USER@HOST:5432/DB, the password in "
            "RELEASEGATE_STATE_PASSWORD or PGPASSWORD",
        )
    problem = password_problem(url)
    if problem:
        raise BadInput(f"--to {problem.replace('the config file', 'the command line')}")


def _count(db: Database, table: str) -> int:
    return int(db.execute(f"SELECT count(*) FROM {table}")[0][0])  # noqa: S608 (constants)


def _batches(db: Database, sql: str, cols: tuple[str, ...]) -> Any:
    batch: list[dict[str, Any]] = []
    for row in db.stream(sql, batch=BATCH):
        batch.append(dict(zip(cols, row, strict=True)))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def copy_ledger(source: Ledger, target_url: str) -> CopyReport:
    """Copy `source` into the (new or empty) ledger at `target_url`; verify the copy."""
    from releasegate.ledger.store import Ledger

    check_target_url(target_url)
    before = source.verify_chain()
    if not before.ok:
        raise Tampered(
            f"the ledger {source.where} does not verify, so it is not copied: {before.message}",
            hint="`releasegate audit verify` names the row; restore the ledger from a copy "
            "you trust first",
        )
    src: Database = source._db
    with Ledger.open(target_url) as target:
        dst: Database = target._db
        with target._writing(), src.read_transaction():  # the head is locked: no writer
            held = {t: _count(dst, t) for t in ("entries", "locks", "chain_checkpoints")}
            head = target.head()
            if any(held.values()) or head[0] != 0:
                what = ", ".join(f"{n} {t}" for t, n in held.items() if n) or f"head {head[0]}"
                raise BadInput(
                    f"the target {target.where} already holds a ledger ({what}): not copied",
                    hint="copy into a new, empty database; a ledger is never merged into "
                    "another (two chains cannot become one)",
                )
            rows = 0
            for batch in _batches(src, _select("entries", _ENTRY_COLS, "seq"), _ENTRY_COLS):
                dst.execute_many(_insert("entries", _ENTRY_COLS), batch)
                rows += len(batch)
            locks = 0
            for batch in _batches(src, _select("locks", _LOCK_COLS, "stack"), _LOCK_COLS):
                dst.execute_many(_insert("locks", _LOCK_COLS), batch)
                locks += len(batch)
            marks = 0
            cp_sql = _select("chain_checkpoints", _CHECKPOINT_COLS, "seq")
            for batch in _batches(src, cp_sql, _CHECKPOINT_COLS):
                dst.execute_many(_insert("chain_checkpoints", _CHECKPOINT_COLS), batch)
                marks += len(batch)
            src_head = source.head()
            dst.execute(
                "UPDATE ledger_head SET seq = :seq, hash = :hash WHERE id = 1",
                {"seq": src_head[0], "hash": src_head[1]},
            )
        after = target.verify_chain()
        if not after.ok or (after.head_seq, after.head_hash) != src_head:
            raise ReleasegateError(
                f"the copy in {target.where} does not verify as the source does: {after.message}",
                hint="drop that database and copy again; the source ledger was not changed",
            )
        return CopyReport(
            source=source.where,
            target=target.where,
            rows=rows,
            locks=locks,
            checkpoints=marks,
            head_seq=after.head_seq,
            head_hash=after.head_hash,
            message=f"{rows} rows, {locks} locks and {marks} checkpoints copied; the copy "
            f"verifies and ends on the same head (row {after.head_seq}, "
            f"hash {after.head_hash[:12]}…)",
        )
