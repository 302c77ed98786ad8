"""When an order's process-manager step last failed (the dead-letter list's time).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("step_failed_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("orders", "step_failed_at")
