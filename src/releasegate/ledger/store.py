"""The Ledger: append-only action rows on a hash chain, verified versions, stack locks."""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from releasegate.errors import BadInput, ReleasegateError
from releasegate.ledger.chain import CHAIN_SELECT, canonical_json, row_hash, verify_rows
from releasegate.ledger.db import (
    Database,
    PsycopgDatabase,
    SQLAlchemyDatabase,
    SQLiteDatabase,
    sqlite_path_from_url,
)
from releasegate.ledger.kinds import pick
from releasegate.ledger.schema import HEAD_REVISION, current_revision
from releasegate.ledger.trust import (
    BLOCK,
    LedgerTampered,
    check_checkpoints,
    ensure_extends,
    ensure_trusted,
    read_head,
    save_checkpoints,
)
from releasegate.ledger.url import uses_psycopg
from releasegate.model import ActionRecord, ChainReport, LockInfo
from releasegate.redact import mask_shapes

if TYPE_CHECKING:
    from types import TracebackType

    from sqlalchemy.engine import URL

_INSERT = (
    "INSERT INTO entries (seq, ts, kind, action_id, parent_id, stack, env, action, version, status,"
    ' notes, "user", host, pid, forced, reason, details, prev_hash, hash)'
    " VALUES (:seq, :ts, :kind, :action_id, :parent_id, :stack, :env, :action, :version, :status,"
    " :notes, :user, :host, :pid, :forced, :reason, :details, :prev_hash, :hash)"
)
_SET_HEAD = "UPDATE ledger_head SET seq = :seq, hash = :hash WHERE id = 1"

# An action is its open row LEFT JOIN its close row (found through the (action_id, kind) index).
_ACTIONS = (
    "SELECT o.seq, o.ts, o.action_id, o.parent_id, o.stack, o.env, o.action, o.version,"
    ' o.notes, o."user", o.host, o.pid, o.forced, o.reason, o.details,'
    " c.ts, c.status, c.notes, c.details"
    " FROM entries o LEFT JOIN entries c ON c.action_id = o.action_id AND c.kind = 'close'"
    " WHERE o.kind = 'open'"
)
_LOG_ROWS = (
    "SELECT o.ts, o.stack, o.env, o.action, o.version, COALESCE(c.status, 'running'),"
    " CASE WHEN c.seq IS NULL THEN o.notes ELSE c.notes END, o.forced, o.reason"
    " FROM entries o LEFT JOIN entries c ON c.action_id = o.action_id AND c.kind = 'close'"
    " WHERE o.kind = 'open'"
)
_LOCK_COLS = 'stack, run_id, "user", host, pid, pid_start, since, heartbeat, lease_s'

DEPLOY_ACTIONS = ("deploy", "rollback")


@dataclass(frozen=True)
class ActionFilter:
    """Which actions a listing keeps (history's, the dashboard's): None keeps every value;
    top_level_only keeps runs without their steps."""

    stack: str | None = None
    env: str | None = None
    action: str | None = None
    status: str | None = None
    forced: bool | None = None
    user: str | None = None
    top_level_only: bool = True
    any_action: tuple[str, ...] = ()  # any of these actions (a kind of history: ledger/kinds)


ALL = ActionFilter()


def _new_id() -> str:
    # 128 random bits as 32 hex digits, the shape of a uuid4 hex, without uuid's import cost.
    return os.urandom(16).hex()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _dumps(details: dict[str, Any] | None) -> str:
    return canonical_json(_scrub(details) if details else {})


def _scrub(value: Any) -> Any:
    """Every string of `value` with credentials masked by their shape (URLs, `password=`):
    the last net under what the callers already redacted. Before the JSON is written, so a
    mask can never cut an escape sequence."""
    if isinstance(value, str):
        return mask_shapes(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _loads(text: str | None) -> dict[str, Any]:
    if not text or text == "{}":  # the common case; skips the parser
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


def _record(row: Sequence[Any]) -> ActionRecord:
    (seq, ts, action_id, parent_id, stack, env, action, version, notes, user, host, pid,
     forced, reason, details, close_ts, close_status, close_notes, close_details) = row  # fmt: skip
    merged = _loads(details)
    if close_details:
        merged.update(_loads(close_details))
    closed = close_ts is not None
    return ActionRecord(
        action_id=action_id,
        parent_id=parent_id,
        seq=int(seq),
        started_at=datetime.fromisoformat(ts),
        ended_at=datetime.fromisoformat(close_ts) if closed else None,
        stack=stack,
        env=env,
        action=action,
        version=version,
        status=close_status if closed else "running",
        notes=close_notes if closed else notes,
        user=user,
        host=host,
        pid=int(pid),
        forced=bool(forced),
        reason=reason,
        details=merged,
    )


def _lock(row: Sequence[Any]) -> LockInfo:
    stack, run_id, user, host, pid, pid_start, since, heartbeat, lease_s = row
    return LockInfo(
        stack=stack,
        run_id=run_id,
        user=user,
        host=host,
        pid=int(pid),
        pid_start=pid_start,
        since=datetime.fromisoformat(since),
        heartbeat=datetime.fromisoformat(heartbeat) if heartbeat else None,
        lease_s=float(lease_s) if lease_s is not None else None,
    )


def _utc_text(when: datetime) -> str:
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def _lock_params(info: LockInfo) -> dict[str, Any]:
    return {
        "stack": info.stack,
        "run_id": info.run_id,
        "user": info.user,
        "host": info.host,
        "pid": info.pid,
        "pid_start": info.pid_start,
        "since": _utc_text(info.since),
        # A new lock's first heartbeat is its taking.
        "heartbeat": _utc_text(info.heartbeat or info.since),
        "lease_s": info.lease_s,
    }


class ActionClosed(ValueError):
    """The row was closed already: by this run (a bug), or by another machine that took the
    stack's lock over and closed the rows of the holder it judged dead (locks.py)."""


class Ledger:
    """Every action is written as ``running`` before it starts and closed with its outcome."""

    def __init__(self, db: Database, where: str = "") -> None:
        self._db = db
        # What opening it had to fix (files at rest tightened), for the command line to show.
        self.notices: list[str] = []
        self.where = where  # the file or URL, for messages (a full disk names it)
        self.url = where  # what Ledger.open takes to open this ledger again

    @classmethod
    def open(cls, url: str, *, force_sqlalchemy: bool = False, create: bool = True) -> Ledger:
        """Open (creating and migrating when needed) the ledger at a path or SQLAlchemy URL.

        A path or ``sqlite:///path`` uses stdlib sqlite3 (``force_sqlalchemy`` switches it to
        the SQLAlchemy adapter, for tests); any other URL uses SQLAlchemy. ``create=False``
        (read-only commands) refuses a ledger that does not exist yet: a mistyped `state:`
        must not look like an empty, intact ledger.
        """
        path = sqlite_path_from_url(url) if "://" in url else url
        db: Database
        file: str | None = None
        notices: list[str] = []
        if path is None:
            other = _sqlite_file_of(url)
            if other is not None:
                if not create and not os.path.isfile(other):
                    raise _no_ledger(other)
                notices = _private_sqlite(other)
            if not force_sqlalchemy and uses_psycopg(url):
                db = PsycopgDatabase(url)  # without SQLAlchemy's import, as for SQLite
            else:
                db = SQLAlchemyDatabase(url)
        else:
            if not path or path == ":memory:":
                raise BadInput(
                    f"ledger {url!r} is not a file",
                    hint="an audit ledger must outlive the process; give a file path",
                )
            file = os.path.abspath(os.path.expanduser(path))
            if not create and not os.path.isfile(file):
                raise _no_ledger(file)
            notices = _private_sqlite(file)
            if force_sqlalchemy:
                db = SQLAlchemyDatabase(_sqlite_url(file))
            else:
                db = SQLiteDatabase(file)
        try:
            revision = current_revision(db)
            if revision is None and not create:
                raise _no_ledger(file or _masked(url))
            if revision != HEAD_REVISION:
                # Only here do Alembic and SQLAlchemy get imported.
                from releasegate.ledger.schema import upgrade

                upgrade(url if file is None else _sqlite_url(file))
                found = current_revision(db)
                if found != HEAD_REVISION:
                    raise ReleasegateError(
                        f"ledger schema is at revision {found}, expected {HEAD_REVISION}"
                    )
        except BaseException:
            db.close()
            raise
        ledger = cls(db, file or url)
        ledger.notices = notices
        ledger.url = file or url
        return ledger

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A write transaction; a database that cannot be written (a full disk, a read-only
        file) raises LedgerWriteFailed naming the ledger, not a driver's internal error."""
        try:
            with self._db.write_transaction():
                yield
        except LedgerWriteFailed:
            raise
        except Exception as exc:
            if not _is_write_failure(exc):
                raise
            raise LedgerWriteFailed(self.where, str(exc).splitlines()[0][:200]) from exc

    def _append(self, fields: dict[str, Any]) -> None:
        """Append one row on top of the chain head; the caller holds the write transaction."""
        head_seq, head_hash = read_head(self._db)
        # ts is taken under the write lock, so time order and seq order always agree.
        row = {"seq": int(head_seq) + 1, "ts": _now(), **fields}
        for free_text in ("notes", "reason"):  # details: scrubbed by _dumps
            if row[free_text]:
                row[free_text] = mask_shapes(row[free_text])
        content = (
            row["seq"], row["ts"], row["kind"], row["action_id"], row["parent_id"],
            row["stack"], row["env"], row["action"], row["version"], row["status"],
            row["notes"], row["user"], row["host"], row["pid"], row["forced"],
            row["reason"], row["details"],
        )  # fmt: skip
        row["prev_hash"] = head_hash
        row["hash"] = row_hash(head_hash, content)
        self._db.execute(_INSERT, row)
        self._db.execute(_SET_HEAD, {"seq": row["seq"], "hash": row["hash"]})

    def begin_action(
        self,
        *,
        stack: str,
        env: str,
        action: str,
        version: str = "",
        parent_id: str | None = None,
        notes: str = "",
        forced: bool = False,
        reason: str = "",
        details: dict[str, Any] | None = None,
        user: str,
        host: str,
        pid: int,
    ) -> str:
        """Write the ``open`` row (status running) and return the new action_id."""
        action_id = _new_id()
        fields = {
            "kind": "open",
            "action_id": action_id,
            "parent_id": parent_id,
            "stack": stack,
            "env": env,
            "action": action,
            "version": version,
            "status": "running",
            "notes": notes,
            "user": user,
            "host": host,
            "pid": int(pid),
            "forced": int(bool(forced)),
            "reason": reason,
            "details": _dumps(details),
        }
        with self._writing():
            self._append(fields)
        return action_id

    def end_action(
        self,
        action_id: str,
        status: str,
        *,
        notes: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Write the ``close`` row; ``notes=None`` keeps the notes of the open row.

        ``details`` are stored on the close row; ActionRecord.details merges them over
        the open row's details.
        """
        if not status or status == "running":
            raise ValueError(f"cannot close action {action_id} with status {status!r}")
        with self._writing():
            rows = self._db.execute(
                'SELECT kind, parent_id, stack, env, action, version, notes, "user", host, pid,'
                " forced, reason, status FROM entries"
                " WHERE action_id = :action_id AND kind IN ('open', 'close')",
                {"action_id": action_id},
            )
            by_kind = {r[0]: r for r in rows}
            if "open" not in by_kind:
                raise ValueError(f"unknown action {action_id}")
            if "close" in by_kind:
                done = by_kind["close"][12]
                raise ActionClosed(f"action {action_id} is already closed ({done})")
            (_, parent_id, stack, env, action, version, open_notes, user, host, pid,
             forced, reason, _) = by_kind["open"]  # fmt: skip
            self._append(
                {
                    "kind": "close",
                    "action_id": action_id,
                    "parent_id": parent_id,
                    "stack": stack,
                    "env": env,
                    "action": action,
                    "version": version,
                    "status": status,
                    "notes": open_notes if notes is None else notes,
                    "user": user,
                    "host": host,
                    "pid": int(pid),
                    "forced": int(forced),
                    "reason": reason,
                    "details": _dumps(details),
                }
            )

    def mark(
        self,
        *,
        stack: str,
        env: str,
        action: str,
        version: str = "",
        notes: str = "",
        details: dict[str, Any] | None = None,
        user: str,
        host: str,
        pid: int,
    ) -> None:
        """A single-row fact (verify, lock, unlock, lock-takeover, ...), status success."""
        with self._writing():
            self._append(
                {
                    "kind": "mark",
                    "action_id": _new_id(),
                    "parent_id": None,
                    "stack": stack,
                    "env": env,
                    "action": action,
                    "version": version,
                    "status": "success",
                    "notes": notes,
                    "user": user,
                    "host": host,
                    "pid": int(pid),
                    "forced": 0,
                    "reason": "",
                    "details": _dumps(details),
                }
            )

    # -- reading -------------------------------------------------------------------------

    @staticmethod
    def _where(
        keep: ActionFilter,
        *,
        actions: Sequence[str] = (),
        since_seq: int | None = None,
        parent_id: str | None = None,
        open_only: bool = False,
        before_seq: int | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """The filters as SQL appended to _ACTIONS (aliases o = open row, c = close row);
        ``actions`` names several actions (the filter's ``action`` names one)."""
        where: list[str] = []
        params: dict[str, Any] = {}
        if parent_id is not None:
            where.append("o.parent_id = :parent_id")
            params["parent_id"] = parent_id
        elif keep.top_level_only:
            where.append("o.parent_id IS NULL")
        if keep.stack is not None:
            where.append("o.stack = :stack")
            params["stack"] = keep.stack
        if keep.env is not None:
            where.append("o.env = :env")
            params["env"] = keep.env
        if keep.action is not None or keep.any_action:
            actions = pick(keep.action, keep.any_action)
        if actions:
            names = [f":action{i}" for i in range(len(actions))]
            where.append(f"o.action IN ({', '.join(names)})")
            params.update({n[1:]: a for n, a in zip(names, actions, strict=True)})
        if open_only:
            where.append("c.seq IS NULL")
        elif keep.status is not None:
            where.append("COALESCE(c.status, 'running') = :status")
            params["status"] = keep.status
        if keep.forced is not None:
            where.append("o.forced = :forced")
            params["forced"] = int(keep.forced)
        if since_seq is not None:
            where.append("o.seq > :since_seq")
            params["since_seq"] = since_seq
        if keep.user is not None:
            where.append('o."user" = :user')
            params["user"] = keep.user
        if before_seq is not None:
            where.append("o.seq < :before_seq")
            params["before_seq"] = before_seq
        return "".join(f" AND {w}" for w in where), params

    def _newest(self, sql: str, params: dict[str, Any], last: int | None) -> list[tuple[Any, ...]]:
        """The rows oldest first; ``last`` keeps the newest N (through the index)."""
        if last is None:
            return self._db.execute(sql + " ORDER BY o.seq", params)
        params["last"] = int(last)
        return self._db.execute(sql + " ORDER BY o.seq DESC LIMIT :last", params)[::-1]

    def _actions(
        self, keep: ActionFilter = ALL, *, last: int | None = None, **extra: Any
    ) -> list[ActionRecord]:
        if last is not None and last <= 0:
            return []
        where, params = self._where(keep, **extra)
        return [_record(r) for r in self._newest(_ACTIONS + where, params, last)]

    def log_rows(
        self, keep: ActionFilter = ALL, *, last: int | None = None
    ) -> list[tuple[Any, ...]]:
        """(started ts, stack, env, action, version, status, notes, forced, reason) oldest
        first: the seed log's fields only, without building ActionRecords (history over 100k
        rows)."""
        if last is not None and last <= 0:
            return []
        where, params = self._where(keep)
        return self._newest(_LOG_ROWS + where, params, last)

    def actions(
        self,
        *,
        stack: str | None = None,
        env: str | None = None,
        action: str | None = None,
        status: str | None = None,
        forced: bool | None = None,
        last: int | None = None,
        top_level_only: bool = True,
        since_seq: int | None = None,
        any_action: tuple[str, ...] = (),
    ) -> list[ActionRecord]:
        """Actions oldest first; ``last`` keeps the newest N; ``since_seq``: seq > since_seq;
        ``any_action``: only these actions. The keywords are an ActionFilter's (see matching)."""
        keep = ActionFilter(
            stack=stack,
            env=env,
            action=action,
            status=status,
            forced=forced,
            top_level_only=top_level_only,
            any_action=any_action,
        )
        return self.matching(keep, last=last, since_seq=since_seq)

    def matching(
        self, keep: ActionFilter = ALL, *, last: int | None = None, since_seq: int | None = None
    ) -> list[ActionRecord]:
        """The actions ``keep`` keeps, oldest first; ``last`` keeps the newest N."""
        return self._actions(keep, last=last, since_seq=since_seq)

    def page(
        self, keep: ActionFilter = ALL, *, limit: int, before_seq: int | None = None
    ) -> list[ActionRecord]:
        """Top-level actions newest first, at most ``limit``, older than ``before_seq``: keyset
        pagination (the dashboard's history), as fast on page 1000 as on page 1."""
        where, params = self._where(keep, before_seq=before_seq)
        params["limit"] = max(0, int(limit))
        rows = self._db.execute(_ACTIONS + where + " ORDER BY o.seq DESC LIMIT :limit", params)
        return [_record(r) for r in rows]

    def entries_after(
        self, seq: int, *, limit: int, stack: str | None = None
    ) -> list[tuple[Any, ...]]:
        """Rows written after ``seq`` (oldest first, at most ``limit``): (seq, ts, kind,
        action_id, parent_id, stack, env, action, version, status, notes, user). What a live
        view polls for: a run's steps as they are opened and closed."""
        sql = (
            "SELECT seq, ts, kind, action_id, parent_id, stack, env, action, version, status,"
            ' notes, "user" FROM entries WHERE seq > :seq'
        )
        params: dict[str, Any] = {"seq": int(seq), "limit": max(0, int(limit))}
        if stack is not None:
            sql += " AND stack = :stack"
            params["stack"] = stack
        return self._db.execute(sql + " ORDER BY seq LIMIT :limit", params)

    @property
    def database(self) -> Database:
        """The state database itself, for the tables that live beside the ledger (the
        dashboard's users); the ledger's own rows are written only through this class."""
        return self._db

    def children(self, action_id: str) -> list[ActionRecord]:
        """The steps of a run, chronological."""
        return self._actions(parent_id=action_id)  # the parent decides, not top_level_only

    def get_action(self, action_id: str) -> ActionRecord | None:
        rows = self._db.execute(
            _ACTIONS + " AND o.action_id = :action_id", {"action_id": action_id}
        )
        return _record(rows[0]) if rows else None

    def open_actions(self, stack: str | None = None) -> list[ActionRecord]:
        """Actions opened and never closed (still running, or their process died), steps too."""
        return self._actions(ActionFilter(stack=stack, top_level_only=False), open_only=True)

    def verified_version(self, stack: str) -> str | None:
        """The version of the stack's newest verify mark, proven on the hash chain first
        (LedgerTampered, exit 6, names the row otherwise)."""
        rows = self._db.execute(
            "SELECT seq, version FROM entries WHERE stack = :stack AND action = 'verify'"
            " AND kind = 'mark' ORDER BY seq DESC LIMIT 1",
            {"stack": stack},
        )
        if not rows:
            self.ensure_trusted(())  # the newest verify row may have been cut off
            return None
        self.ensure_trusted([int(rows[0][0])])
        return str(rows[0][1])

    def verified_content(self, stack: str) -> tuple[str, dict[str, Any]] | None:
        """The newest verify mark's version and what it verified (the artifact's sha256, or
        each service's image digest), proven on the hash chain first."""
        rows = self._db.execute(
            "SELECT seq, version, details FROM entries WHERE stack = :stack AND action = 'verify'"
            " AND kind = 'mark' ORDER BY seq DESC LIMIT 1",
            {"stack": stack},
        )
        if not rows:
            self.ensure_trusted(())
            return None
        self.ensure_trusted([int(rows[0][0])])
        content = _loads(rows[0][2]).get("content")
        return str(rows[0][1]), content if isinstance(content, dict) else {}

    def verified_all(self) -> dict[str, tuple[str, datetime]]:
        """stack -> (version, when) of each stack's newest verify mark (proven first)."""
        rows = self._db.execute(
            "SELECT e.stack, e.version, e.ts, e.seq FROM entries e JOIN"
            " (SELECT MAX(seq) AS seq FROM entries WHERE kind = 'mark' AND action = 'verify'"
            " GROUP BY stack) m ON e.seq = m.seq ORDER BY e.stack"
        )
        self.ensure_trusted([int(r[3]) for r in rows])
        return {stack: (version, datetime.fromisoformat(ts)) for stack, version, ts, _ in rows}

    def good_versions(self, stack: str, limit: int | None = None) -> list[str]:
        """Versions of top-level deploys/rollbacks that ended in success, newest first, unique;
        the newest ``limit`` of them (default all), each proven on the hash chain first."""
        rows = self._db.execute(
            "SELECT seq, version FROM entries WHERE stack = :stack"
            " AND action IN ('deploy', 'rollback')"
            " AND kind = 'close' AND parent_id IS NULL AND status = 'success'"
            " ORDER BY seq DESC",
            {"stack": stack},
        )
        seen: dict[str, int] = {}
        for seq, version in rows:
            if limit is not None and len(seen) >= limit:
                break
            if version:
                seen.setdefault(version, int(seq))
        self.ensure_trusted(seen.values())
        return list(seen)

    def release_order(self, stack: str) -> list[str]:
        """Versions deployed or rolled back to on ``stack``, newest first, each once: the
        order cleanup and prune keep releases by (never directory or image dates)."""
        rows = self._db.execute(
            "SELECT version FROM entries WHERE stack = :stack AND action IN ('deploy', 'rollback')"
            " AND kind = 'open' AND parent_id IS NULL ORDER BY seq DESC",
            {"stack": stack},
        )
        seen: dict[str, None] = {}
        for (version,) in rows:
            if version:
                seen.setdefault(version, None)
        return list(seen)

    def ensure_trusted(self, seqs: Collection[int]) -> None:
        """For gates: raise LedgerTampered (exit 6) unless rows ``seqs`` are on the hash chain
        that ends at the ledger head. Re-hashes only rows written since the last check, and
        for older rows about one block of rows each."""
        ensure_trusted(self._db, seqs)

    def ensure_action_trusted(self, action_id: str) -> None:
        """ensure_trusted for every row of one action (its open and close rows): for a gate
        that acts on an ActionRecord (a rehearsal, a backup's verification)."""
        rows = self._db.execute(
            "SELECT seq FROM entries WHERE action_id = :action_id", {"action_id": action_id}
        )
        self.ensure_trusted([int(r[0]) for r in rows])

    def ensure_extends(self, seq: int, hash_: str, what: str) -> None:
        """Raise LedgerTampered unless row ``seq`` still has ``hash_`` and the chain from it
        verifies up to the head (an anchor's proof; ``what`` says where the pair came from,
        as "anchored on <time>"). Rows before ``seq`` are for verify_chain."""
        with self._db.read_transaction():
            ensure_extends(self._db, (seq, hash_), what)

    def last_deploy(self, stack: str) -> ActionRecord | None:
        """The newest top-level deploy or rollback of ``stack``, whatever its status, except
        runs refused at the stack lock: they never touched the stack (while they were
        refused, the holder's run is what ran, and what may need recovery)."""
        window = 8
        while True:
            found = self._actions(ActionFilter(stack=stack), actions=DEPLOY_ACTIONS, last=window)
            for rec in reversed(found):
                if not (rec.status == "refused" and rec.details.get("refused_by") == "lock"):
                    return rec
            if len(found) < window:
                return None
            window *= 4

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last row; LedgerTampered when the head row is missing."""
        return read_head(self._db)

    def verify_chain(self) -> ChainReport:
        """Walk every row in seq order; report the first edited, removed or reordered row,
        or a rewrite that no longer holds a checkpoint's hash. A chain that passes becomes
        the newest checkpoint."""

        def seqs_with_hash(value: str) -> list[int]:
            rows = self._db.execute(
                "SELECT seq FROM entries WHERE hash = :hash ORDER BY seq", {"hash": value}
            )
            return [int(r[0]) for r in rows]

        block_ends: list[tuple[int, str]] = []

        def keep(seq: int, hash_: str) -> None:
            if seq % BLOCK == BLOCK - 1:
                block_ends.append((seq, hash_))

        # One snapshot: rows appended while we walk must not look like forged rows.
        with self._db.read_transaction():
            try:
                head_seq, head_hash = self.head()
            except LedgerTampered as exc:
                return ChainReport(
                    ok=False,
                    rows_checked=0,
                    head_seq=0,
                    head_hash="",
                    problem="head missing",
                    message=exc.message,
                )
            with closing(self._db.stream(CHAIN_SELECT)) as rows:
                report = verify_rows(rows, head_seq, head_hash, seqs_with_hash, on_row=keep)
            report = check_checkpoints(self._db, report)
        if report.ok:
            save_checkpoints(self._db, [*block_ends, (head_seq, head_hash)])
        return report

    # -- locks (liveness is the caller's business) ----------------------------------------

    def try_acquire_lock(self, info: LockInfo) -> LockInfo | None:
        """Take the stack's lock; None on success, else the current holder."""
        with self._writing():
            rows = self._db.execute(
                f"SELECT {_LOCK_COLS} FROM locks WHERE stack = :stack",  # noqa: S608
                {"stack": info.stack},
            )
            if rows:
                return _lock(rows[0])
            self._db.execute(
                f"INSERT INTO locks ({_LOCK_COLS}) VALUES"  # noqa: S608
                " (:stack, :run_id, :user, :host, :pid, :pid_start, :since, :heartbeat,"
                " :lease_s)",
                _lock_params(info),
            )
        return None

    def replace_lock(self, stack: str, expected_run_id: str, new: LockInfo) -> bool:
        """Compare-and-swap takeover: False when the holder is no longer ``expected_run_id``."""
        if new.stack != stack:
            raise ValueError(f"lock for {new.stack!r} cannot replace the lock of {stack!r}")
        params = _lock_params(new)
        params["expected"] = expected_run_id
        with self._writing():
            rows = self._db.execute(
                'UPDATE locks SET run_id = :run_id, "user" = :user, host = :host, pid = :pid,'
                " pid_start = :pid_start, since = :since, heartbeat = :heartbeat,"
                " lease_s = :lease_s WHERE stack = :stack AND run_id = :expected"
                " RETURNING stack",
                params,
            )
        return bool(rows)

    def release_lock(self, stack: str, run_id: str | None = None) -> bool:
        """Release the lock; with ``run_id`` only if that run still holds it."""
        sql = "DELETE FROM locks WHERE stack = :stack"
        params = {"stack": stack}
        if run_id is not None:
            sql += " AND run_id = :run_id"
            params["run_id"] = run_id
        with self._writing():
            rows = self._db.execute(sql + " RETURNING stack", params)
        return bool(rows)

    def heartbeat(self, stack: str, run_id: str) -> bool:
        """The holder's sign of life: refresh its lock's heartbeat (the database's clock).
        False when ``run_id`` no longer holds the lock (taken over, or released by force).

        Not a chain append: it does not take the chain head, so a heartbeat never waits
        behind another machine's appends."""
        params = {"stack": stack, "run_id": run_id, "now": _utc_text(self.clock())}
        rows = self._db.execute(
            "UPDATE locks SET heartbeat = :now WHERE stack = :stack AND run_id = :run_id"
            " RETURNING stack",
            params,
        )
        return bool(rows)

    def clock(self) -> datetime:
        """Now, by the clock every writer shares: the database server's for PostgreSQL
        (machines' clocks drift; a lease judged on two clocks is judged on their skew), this
        machine's for a SQLite file (every writer is on this machine)."""
        if self._db.dialect == "postgresql":
            rows = self._db.execute("SELECT clock_timestamp()")
            now = rows[0][0]
            if isinstance(now, datetime):
                return now.astimezone(UTC)
        return datetime.now(UTC)

    def reopen(self) -> Ledger:
        """A second connection to the same ledger (for a heartbeat thread: a connection is
        never shared between threads)."""
        return Ledger.open(self.url, create=False)

    def locks(self) -> list[LockInfo]:
        rows = self._db.execute(f"SELECT {_LOCK_COLS} FROM locks ORDER BY stack")  # noqa: S608
        return [_lock(r) for r in rows]


def _no_ledger(where: str) -> BadInput:
    return BadInput(
        f"no ledger at {where}: nothing was ever recorded there",
        hint="check `state:` in the config (a mistyped path?); a deploy, rollback or backup "
        "creates the ledger, a read-only command never does",
    )


def _masked(url: str) -> str:
    """A database URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


def _sqlite_url(file: str) -> URL:
    """A SQLAlchemy URL for a SQLite file (built, not formatted: paths may hold '?' or '%')."""
    from sqlalchemy.engine import URL

    return URL.create("sqlite+pysqlite", database=file)


def _sqlite_file_of(url: str) -> str | None:
    """The file of a ``sqlite+driver:///path`` database (prepared like a plain path)."""
    scheme, _, rest = url.partition("://")
    if not scheme.startswith("sqlite") or not rest.startswith("/"):
        return None
    path = rest[1:].split("?", 1)[0]
    return os.path.abspath(path) if path and path != ":memory:" else None


def _private_sqlite(file: str) -> list[str]:
    """The database file 0600 before SQLite opens it (its WAL and -shm then get that mode);
    the default folder `.releasegate/` 0700. Notices name what was tightened."""
    from releasegate.private import private_sqlite

    folder = os.path.basename(os.path.dirname(file))
    return private_sqlite(file, own_folder=folder == ".releasegate")


class LedgerWriteFailed(ReleasegateError):
    """The ledger could not be written (its disk is full, or the file is read-only)."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(
            f"the ledger {where} could not be written: {why}",
            hint=f"free space on the disk of {where} (df -h), then `releasegate status`",
        )
        self.where = where
        self.why = why


def _is_write_failure(exc: BaseException) -> bool:
    """sqlite3's or SQLAlchemy's OperationalError for a full disk, I/O or read-only file."""
    # By name: sqlalchemy.exc.OperationalError is not imported for the stdlib path.
    if type(exc).__name__ != "OperationalError":
        return False
    text = str(exc).lower()
    return any(w in text for w in ("full", "disk i/o", "readonly", "read-only", "no space"))
