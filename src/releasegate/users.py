"""The dashboard's users and API tokens, kept in the state database beside the ledger.

Passwords are stored as argon2id hashes (argon2-cffi), API tokens as the SHA-256 of a
256-bit random token (a token is never typed, so a slow hash adds nothing). Every change
is also a ledger mark (stack "web"), so who gave whom which role is audited like a deploy.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from releasegate import names
from releasegate.errors import BadInput

if TYPE_CHECKING:
    from argon2 import PasswordHasher

    from releasegate.identity import Actor
    from releasegate.ledger import Ledger
    from releasegate.ledger.db import Database

ROLES = ("viewer", "operator", "approver", "admin")
# What each role may do beyond reading. admin: everything, and only admin is all of them.
PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset(),
    "operator": frozenset({"operate"}),
    "approver": frozenset({"approve"}),
    "admin": frozenset({"operate", "approve"}),
}
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 hashes anything, but a megabyte "password" is an attack
TOKEN_PREFIX = "rgt_"  # noqa: S105 - a prefix that makes a leaked token greppable
LEDGER_STACK = "web"  # ledger marks of user changes: stack "web", env "-", version = the name
LEDGER_ENV = "-"


@dataclass(frozen=True)
class User:
    name: str
    role: str
    created: str
    generation: int

    def may(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())


def _hasher() -> PasswordHasher:
    # Imported on use: the CLI's other commands never pay for argon2.
    from argon2 import PasswordHasher

    return PasswordHasher()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_role(role: str) -> str:
    if role not in ROLES:
        raise BadInput(f"unknown role {role!r}", hint=f"one of: {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise BadInput(f"the password is too short: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise BadInput(f"the password is too long: at most {MAX_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    return str(_hasher().hash(check_password(password)))


# A hash of a password nobody has: checking an unknown name costs the same as a known one,
# so the time of a refusal does not tell which names exist.
_DUMMY_HASH: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(str(_hasher().hash(os.urandom(16).hex())))
    return _DUMMY_HASH[0]


class Users:
    """Users and tokens over the state database (one Ledger's connection)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.db: Database = ledger.database

    # -- reading ------------------------------------------------------------------------
    def get(self, name: str) -> User | None:
        rows = self.db.execute(
            "SELECT name, role, created, generation FROM web_users WHERE name = :name",
            {"name": name},
        )
        return User(*rows[0]) if rows else None

    def all(self) -> list[User]:
        rows = self.db.execute(
            "SELECT name, role, created, generation FROM web_users ORDER BY name"
        )
        return [User(*r) for r in rows]

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when `password` is theirs, else None (same work for an unknown name)."""
        from argon2.exceptions import InvalidHashError, VerificationError

        rows = self.db.execute(
            "SELECT password_hash FROM web_users WHERE name = :name", {"name": name}
        )
        stored = str(rows[0][0]) if rows else _dummy_hash()
        if len(password) > MAX_PASSWORD:
            return None
        try:
            _hasher().verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        return self.get(name) if rows else None

    def token_user(self, token: str) -> User | None:
        """The owner of an API token, or None."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        digest = _token_hash(token)
        rows = self.db.execute(
            "SELECT token_hash, owner FROM web_tokens WHERE token_hash = :h", {"h": digest}
        )
        if not rows or not hmac.compare_digest(str(rows[0][0]), digest):
            return None
        return self.get(str(rows[0][1]))

    def tokens(self, name: str) -> list[tuple[str, str, str]]:
        """(short id, label, created) of a user's tokens: the id is the hash's first 12 digits."""
        rows = self.db.execute(
            "SELECT token_hash, label, created FROM web_tokens WHERE owner = :u ORDER BY created",
            {"u": name},
        )
        return [(str(h)[:12], str(label), str(c)) for h, label, c in rows]

    # -- writing (each one also a ledger mark) ------------------------------------------
    def add(self, name: str, password: str, role: str, *, by: Actor) -> User:
        names.check("user", name)
        check_role(role)
        digest = hash_password(password)
        with self.db.write_transaction():
            if self.db.execute("SELECT 1 FROM web_users WHERE name = :n", {"n": name}):
                raise BadInput(
                    f"user {name} already exists",
                    hint=f"releasegate user passwd {name}, or user remove {name} first",
                )
            self.db.execute(
                "INSERT INTO web_users (name, password_hash, role, created, generation)"
                " VALUES (:n, :h, :r, :c, 1)",
                {"n": name, "h": digest, "r": role, "c": _now()},
            )
        self._mark("user-add", name, f"{by.user} added {name} as {role}", by, {"role": role})
        user = self.get(name)
        assert user is not None
        return user

    def passwd(self, name: str, password: str, *, by: Actor, role: str | None = None) -> None:
        """A new password (and role, if given); the user's sessions end."""
        self._require(name)
        digest = hash_password(password)
        if role is not None:
            check_role(role)
        with self.db.write_transaction():
            self.db.execute(
                "UPDATE web_users SET password_hash = :h, generation = generation + 1,"
                " role = COALESCE(:r, role) WHERE name = :n",
                {"h": digest, "n": name, "r": role},
            )
            self._end_sessions(name)
        details = {"role": role} if role else {}
        self._mark("user-passwd", name, f"{by.user} set the password of {name}", by, details)

    def set_role(self, name: str, role: str, *, by: Actor) -> None:
        self._require(name)
        check_role(role)
        with self.db.write_transaction():
            self.db.execute(
                "UPDATE web_users SET role = :r, generation = generation + 1 WHERE name = :n",
                {"r": role, "n": name},
            )
            self._end_sessions(name)
        self._mark("user-role", name, f"{by.user} made {name} {role}", by, {"role": role})

    def remove(self, name: str, *, by: Actor) -> None:
        self._require(name)
        with self.db.write_transaction():
            self.db.execute("DELETE FROM web_tokens WHERE owner = :n", {"n": name})
            self.db.execute("DELETE FROM web_users WHERE name = :n", {"n": name})
            self._end_sessions(name)
        self._mark("user-remove", name, f"{by.user} removed {name}", by, {})

    def new_token(self, name: str, label: str, *, by: Actor) -> str:
        """A new API token for `name`: shown once, stored only as its hash."""
        self._require(name)
        if len(label) > 100 or any(ord(ch) < 32 for ch in label):
            raise BadInput("a token label is one line of at most 100 characters")
        token = TOKEN_PREFIX + os.urandom(32).hex()
        with self.db.write_transaction():
            self.db.execute(
                "INSERT INTO web_tokens (token_hash, owner, label, created)"
                " VALUES (:h, :u, :l, :c)",
                {"h": _token_hash(token), "u": name, "l": label, "c": _now()},
            )
        self._mark("token-add", name, f"{by.user} made a token for {name}", by, {"label": label})
        return token

    def revoke_tokens(self, name: str, *, by: Actor, short_id: str | None = None) -> int:
        self._require(name)
        with self.db.write_transaction():
            rows = self.db.execute(
                "DELETE FROM web_tokens WHERE owner = :u RETURNING token_hash", {"u": name}
            ) if short_id is None else self.db.execute(
                "DELETE FROM web_tokens WHERE owner = :u AND substr(token_hash, 1, 12) = :s"
                " RETURNING token_hash",
                {"u": name, "s": short_id},
            )  # fmt: skip
        self._mark("token-revoke", name, f"{by.user} revoked {len(rows)} token(s)", by, {})
        return len(rows)

    def _end_sessions(self, name: str) -> None:
        """The user's dashboard sessions end (their generation moved on, or they are gone):
        the rows go now rather than at their next use (web/sessions.py)."""
        self.db.execute("DELETE FROM web_sessions WHERE owner = :n", {"n": name})

    def _require(self, name: str) -> User:
        names.check("user", name)
        user = self.get(name)
        if user is None:
            raise BadInput(f"no user {name}", hint="releasegate user list")
        return user

    def _mark(self, action: str, name: str, notes: str, by: Actor, details: dict[str, str]) -> None:
        self.ledger.mark(
            stack=LEDGER_STACK,
            env=LEDGER_ENV,
            action=action,
            version=name,
            notes=notes,
            details=details,
            user=by.user,
            host=by.host,
            pid=by.pid,
        )


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
