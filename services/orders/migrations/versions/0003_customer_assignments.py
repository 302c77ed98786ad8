"""Which customers each customer-service agent looks after (row-level scope).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_assignments",
        sa.Column("agent_id", sa.String(128), primary_key=True),
        sa.Column("buyer_id", sa.String(128), primary_key=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("customer_assignments_buyer", "customer_assignments", ["buyer_id"])


def downgrade() -> None:
    op.drop_table("customer_assignments")
