"""rename amount to total

Revision ID: c3d4e5f6a1b2
Revises: b2c3d4e5f6a1
"""

from alembic import op

revision = "c3d4e5f6a1b2"
down_revision = "b2c3d4e5f6a1"


def upgrade() -> None:
    op.alter_column("invoices", "amount", new_column_name="total")


def downgrade() -> None:
    op.alter_column("invoices", "total", new_column_name="amount")
