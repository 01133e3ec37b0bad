"""Schema revision check and Alembic upgrade.

``Ledger.open`` compares ``alembic_version`` with HEAD_REVISION using the runtime
adapter; Alembic and SQLAlchemy are imported only when an upgrade is needed.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from releasegate.errors import ReleasegateError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import URL

    from releasegate.ledger.db import Database

# Must equal Alembic's script head (a unit test enforces it).
HEAD_REVISION = "0005"
MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
# Arbitrary constant: serializes concurrent first-time migrations on PostgreSQL.
_PG_MIGRATION_LOCK = 0x72656C67


def current_revision(db: Database) -> str | None:
    """The schema revision stored in the database, or None when it has no schema yet."""
    try:
        rows = db.execute("SELECT version_num FROM alembic_version")
    except Exception:  # the table is missing; every driver names that error differently
        return None
    return str(rows[0][0]) if rows else None


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    # ConfigParser interpolates '%', so a path holding one must be escaped.
    cfg.set_main_option("script_location", MIGRATIONS_DIR.replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    return cfg


def upgrade(url: str | URL) -> None:
    """Migrate the database at the SQLAlchemy ``url`` to HEAD_REVISION."""
    from alembic import command
    from alembic.util.exc import CommandError
    from sqlalchemy import text

    from releasegate.ledger.db import make_engine

    engine = make_engine(url)
    try:
        cfg = alembic_config()
        # One external transaction: on SQLite it is BEGIN IMMEDIATE (see make_engine), so
        # two processes opening a fresh ledger at once migrate one after the other and the
        # second finds the schema already at head.
        with engine.connect() as conn:
            conn.info["immediate"] = True
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(text(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})"))
                cfg.attributes["connection"] = conn
                try:
                    command.upgrade(cfg, "head")
                except CommandError as exc:
                    raise ReleasegateError(
                        f"cannot migrate the ledger schema: {exc}",
                        hint=f"this releasegate knows schema revisions up to {HEAD_REVISION}; "
                        "a newer releasegate may have written this ledger",
                    ) from exc
    finally:
        engine.dispose()
