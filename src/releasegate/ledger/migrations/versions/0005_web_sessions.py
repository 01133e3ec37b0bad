"""Dashboard sessions in the state database, so a restart of `releasegate serve` (or a
second server on the same state) keeps everyone signed in. Only the SHA-256 of a session's
token is stored; its CSRF token is derived from the token, so it is not stored at all.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.Text, primary_key=True),  # sha256 of a 256-bit token
        sa.Column("owner", sa.Text, nullable=False),  # the user ("user" is reserved in SQL)
        sa.Column("generation", sa.Integer, nullable=False),  # the user's, at sign-in
        sa.Column("sso", sa.Integer, nullable=False),  # 1: made for a trusted-header user
        # Unix seconds (the server's clock): sign-in, last use, the end of its lifetime.
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("seen", sa.Float, nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
    )
    op.create_index("ix_web_sessions_expires", "web_sessions", ["expires"])
    op.create_index("ix_web_sessions_seen", "web_sessions", ["seen"])


def downgrade() -> None:
    op.drop_index("ix_web_sessions_seen", "web_sessions")
    op.drop_index("ix_web_sessions_expires", "web_sessions")
    op.drop_table("web_sessions")
