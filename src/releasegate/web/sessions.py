"""Dashboard sessions kept in the state database (table web_sessions, revision 0005), so a
restart of `releasegate serve`, or a second server on the same state, keeps everyone
signed in.

The cookie holds a random 256-bit token; the table holds only its SHA-256, so a copy of
the database signs nobody in. The session's CSRF token is derived from the token (a
SHA-256 under its own label), so it is not stored either. A session ends at its lifetime
(`web.session_hours` after sign-in), after `web.session_idle_minutes` without a request,
at sign-out, or when its user's password or role changes (their generation moves on);
rows past their end are deleted when met and pruned at each sign-in.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from releasegate.ledger.db import Database

MAX_SESSIONS = 10_000  # past it, the least recently used are dropped
MAX_TOKEN = 128  # a longer cookie is not one of ours: not even hashed
# `seen` is written at most this often per session (not on every request), a small part
# of the idle timeout so it stays accurate.
SEEN_EVERY_S = 60.0


@dataclass
class Session:
    user: str
    generation: int
    csrf: str
    created: float
    seen: float
    sso: bool = False


@dataclass(frozen=True)
class SessionPolicy:
    lifetime_s: float
    idle_s: float
    limit: int = MAX_SESSIONS
    clock: Callable[[], float] = time.time  # wall clock: it must mean the same after a restart


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_for(token: str) -> str:
    """The session's CSRF token: bound to it, and telling nothing about it."""
    return hashlib.sha256(b"releasegate-csrf\0" + token.encode("utf-8")).hexdigest()


class Sessions:
    """The sessions table over one connection of the state database (one per thread)."""

    def __init__(self, db: Database, policy: SessionPolicy) -> None:
        self.db = db
        self.policy = policy

    def create(self, user: str, generation: int, *, sso: bool = False) -> tuple[str, Session]:
        """A new session: (the token for the cookie, the session). Prunes ended ones first."""
        token = os.urandom(32).hex()
        now = self.policy.clock()
        with self.db.write_transaction():
            self._prune(now)
            self.db.execute(
                "INSERT INTO web_sessions (token_hash, owner, generation, sso, created, seen,"
                " expires) VALUES (:h, :u, :g, :s, :now, :now, :exp)",
                {"h": token_hash(token), "u": user, "g": int(generation), "s": int(sso),
                 "now": now, "exp": now + self.policy.lifetime_s},
            )  # fmt: skip
            self._bound()
        return token, Session(user, int(generation), csrf_for(token), now, now, sso)

    def get(self, token: str | None) -> Session | None:
        """The live session of `token`, or None (an ended one is deleted on the way)."""
        if not token or len(token) > MAX_TOKEN:
            return None
        key = token_hash(token)
        rows = self.db.execute(
            "SELECT owner, generation, sso, created, seen, expires FROM web_sessions"
            " WHERE token_hash = :h",
            {"h": key},
        )
        if not rows:
            return None
        owner, generation, sso, created, seen, expires = rows[0]
        now = self.policy.clock()
        if now >= float(expires) or now - float(seen) > self.policy.idle_s:
            self._delete(key)
            return None
        if now - float(seen) > min(SEEN_EVERY_S, self.policy.idle_s / 10):
            with self.db.write_transaction():
                self.db.execute(
                    "UPDATE web_sessions SET seen = :now WHERE token_hash = :h",
                    {"now": now, "h": key},
                )
            seen = now
        return Session(
            str(owner), int(generation), csrf_for(token), float(created), float(seen), bool(sso)
        )

    def drop(self, token: str | None) -> bool:
        """Sign-out: the session's row is deleted (True when there was one)."""
        if not token or len(token) > MAX_TOKEN:
            return False
        return self._delete(token_hash(token))

    def prune(self) -> int:
        """Delete every session past its lifetime or idle timeout; how many."""
        with self.db.write_transaction():
            return self._prune(self.policy.clock())

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM web_sessions")[0][0])

    def _delete(self, key: str) -> bool:
        with self.db.write_transaction():
            rows = self.db.execute(
                "DELETE FROM web_sessions WHERE token_hash = :h RETURNING token_hash", {"h": key}
            )
        return bool(rows)

    def _prune(self, now: float) -> int:
        rows = self.db.execute(
            "DELETE FROM web_sessions WHERE expires <= :now OR seen < :idle RETURNING token_hash",
            {"now": now, "idle": now - self.policy.idle_s},
        )
        return len(rows)

    def _bound(self) -> None:
        """Past `limit`, the least recently used sessions go (many SSO clients without
        cookies must not grow the table without end)."""
        over = self.count() - self.policy.limit
        if over > 0:
            oldest = self.db.execute(
                "SELECT token_hash FROM web_sessions ORDER BY seen LIMIT :n", {"n": over}
            )
            self.db.execute_many(
                "DELETE FROM web_sessions WHERE token_hash = :h", [{"h": r[0]} for r in oldest]
            )
