"""Dashboard users, their API tokens, and the indexes the dashboard's history filters use.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "web_users",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("password_hash", sa.Text, nullable=False),  # argon2id, never the password
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("created", sa.Text, nullable=False),
        # Bumped by passwd/remove: sessions made before it no longer count.
        sa.Column("generation", sa.Integer, nullable=False),
    )
    op.create_table(
        "web_tokens",
        sa.Column("token_hash", sa.Text, primary_key=True),  # sha256 of a 256-bit token
        sa.Column("owner", sa.Text, nullable=False),  # the user ("user" is reserved in SQL)
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("created", sa.Text, nullable=False),
    )
    op.create_index("ix_web_tokens_owner", "web_tokens", ["owner"])
    # History filtered by who did it, newest first (keyset pagination on seq).
    op.create_index("ix_entries_user_seq", "entries", ["user", "seq"])
    op.create_index("ix_entries_action_seq", "entries", ["action", "seq"])


def downgrade() -> None:
    op.drop_index("ix_entries_action_seq", "entries")
    op.drop_index("ix_entries_user_seq", "entries")
    op.drop_index("ix_web_tokens_owner", "web_tokens")
    op.drop_table("web_tokens")
    op.drop_table("web_users")
