"""add memo

Revision ID: b2c3d4e5f6a1
Revises: a1b2c3d4e5f6
"""

import sqlalchemy as sa
from alembic import op

revision = "b2c3d4e5f6a1"
down_revision = "a1b2c3d4e5f6"


def upgrade() -> None:
    op.add_column("invoices", sa.Column("memo", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("invoices", "memo")
