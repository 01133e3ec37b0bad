"""`state:` as a database URL: what the config may say, and what the engine connects with.

A team's ledger lives on PostgreSQL. Its password never sits in releasegate.yaml (a file
that is committed, copied and shown) nor on a command line (visible in `ps`): the URL
names host, port, user and database, and the password comes from the environment:
RELEASEGATE_STATE_PASSWORD, or libpq's own PGPASSWORD / PGPASSFILE (~/.pgpass), which
psycopg reads by itself.

Pure string work with urllib: this runs on every config load, where importing SQLAlchemy
would cost more than a whole `history` is allowed to take.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from releasegate.errors import BadInput, ReleasegateError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

PASSWORD_ENV = "RELEASEGATE_STATE_PASSWORD"  # noqa: S105 (a variable name)
EXTRA = "releasegate[postgres]"
# Bounds on every wait on the server (seconds): a connection, a row lock (the chain head),
# one statement. A ledger statement touches a few rows; a minute is already a sick server.
CONNECT_TIMEOUT_S = 10
LOCK_TIMEOUT_S = 30
STATEMENT_TIMEOUT_S = 120
# Query keys that carry a credential in libpq/psycopg URLs.
_SECRET_KEYS = frozenset({"password", "passfile", "sslpassword"})
# `postgresql://` alone means psycopg2 to SQLAlchemy; the extra brings psycopg (3).
_BARE_PG = ("postgresql://", "postgres://")


def password_problem(value: str) -> str | None:
    """Why a `state:` URL may not be written in a config file, or None when it may."""
    try:
        parts = urlsplit(value)
        password = parts.password
        _ = parts.port  # raises on a port out of range
    except ValueError as exc:  # a bad port, an unbalanced [ in the host
        return f"is not a valid URL ({exc})"
    if password is not None:
        return (
            "has a password in it, and the config file must not hold one; set it in the "
            f"environment as {PASSWORD_ENV} (or PGPASSWORD, or a ~/.pgpass file named by "
            "PGPASSFILE)"
        )
    keys = {k.lower() for k, _ in parse_qsl(parts.query, keep_blank_values=True)}
    if keys & _SECRET_KEYS:
        found = ", ".join(sorted(keys & _SECRET_KEYS))
        return (
            f"holds a credential in its query ({found}): give it in the environment "
            f"as {PASSWORD_ENV} (or PGPASSWORD / PGPASSFILE)"
        )
    return None


def engine_url(url: str | URL) -> URL:
    """The URL to connect with: bare `postgresql://` on psycopg (3), and the password from
    RELEASEGATE_STATE_PASSWORD when the URL has none (libpq reads PGPASSWORD/PGPASSFILE
    itself)."""
    from sqlalchemy.engine import make_url

    if isinstance(url, str) and url.lower().startswith(_BARE_PG):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return parsed
    secret = os.environ.get(PASSWORD_ENV)
    if parsed.password is None and secret:
        parsed = parsed.set(password=secret)
    return parsed


def engine_options(parsed: URL) -> dict[str, Any]:
    """create_engine() keyword arguments that bound every wait on a PostgreSQL server."""
    if parsed.get_backend_name() != "postgresql":
        return {}
    return {"connect_args": engine_options_pg(), "pool_pre_ping": False}


def uses_psycopg(url: str) -> bool:
    """A PostgreSQL URL on psycopg (3): `postgresql+psycopg://`, or a bare `postgresql://`."""
    scheme = url.partition("://")[0].lower()
    return scheme in ("postgresql", "postgres", "postgresql+psycopg")


def libpq_params(url: str) -> tuple[str, dict[str, Any], str]:
    """(conninfo, keyword parameters, the URL as it may be shown) for psycopg.connect():
    libpq takes the URL itself once the `+psycopg` is gone; the password comes from
    RELEASEGATE_STATE_PASSWORD when the URL has none (libpq reads PGPASSWORD/PGPASSFILE)."""
    from releasegate.redact import mask_url

    rest = url.split("://", 1)[1]
    conninfo = "postgresql://" + rest
    opts = engine_options_pg()
    params: dict[str, Any] = dict(opts)
    secret = os.environ.get(PASSWORD_ENV)
    if secret and urlsplit(conninfo).password is None:
        params["password"] = secret
    return conninfo, params, mask_url(url)


def engine_options_pg() -> dict[str, Any]:
    ms = 1000
    return {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "options": f"-c lock_timeout={LOCK_TIMEOUT_S * ms}"
        f" -c statement_timeout={STATEMENT_TIMEOUT_S * ms}"
        f" -c idle_in_transaction_session_timeout={STATEMENT_TIMEOUT_S * ms}",
        "application_name": "releasegate",
    }


def missing_driver(url: URL | str, exc: ModuleNotFoundError) -> ReleasegateError:
    """The error for a URL whose driver is not installed (not `internal error: ...`)."""
    backend = url if isinstance(url, str) else url.get_backend_name()
    if backend == "postgresql":
        return BadInput(
            f"`state:` is a PostgreSQL URL but its driver is not installed ({exc.name})",
            hint=f"pip install '{EXTRA}' (it brings psycopg); then use "
            "postgresql+psycopg://USER@HOST:PORT/DB",
        )
    return BadInput(
        f"`state:` names the {backend} database, whose driver is not installed ({exc.name})",
        hint=f"releasegate's ledger runs on SQLite (a path) or PostgreSQL (pip install '{EXTRA}')",
    )


def connect_failed(masked: str, exc: BaseException) -> ReleasegateError:
    """A connection refused, a wrong password, a missing database: named, with the way out."""
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    why = first[0][:300] if first else type(exc).__name__
    return ReleasegateError(
        f"cannot connect to the ledger at {masked}: {why}",
        hint=f"check `state:` and the server; the password comes from {PASSWORD_ENV}, "
        "PGPASSWORD or a ~/.pgpass file (PGPASSFILE), never from the config file",
    )
