"""Stack locks with a heartbeat: a holder on another machine proves it is alive by
refreshing `heartbeat` (the database's clock) well within its `lease_s`; a lock whose
heartbeat is older than its lease belongs to a dead holder and may be taken over.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Nullable: a lock taken by an older releasegate has no heartbeat (its holder's state
    # from another host stays unknown, as before).
    op.add_column("locks", sa.Column("heartbeat", sa.Text, nullable=True))
    op.add_column("locks", sa.Column("lease_s", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("locks") as batch:
        batch.drop_column("lease_s")
        batch.drop_column("heartbeat")
