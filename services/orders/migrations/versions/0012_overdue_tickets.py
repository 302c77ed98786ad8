"""Customers with an after-sales ticket past its response limit (after-sales' events), for the policy
that holds their next order.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "overdue_tickets",
        sa.Column("ticket_id", sa.String(64), primary_key=True),
        sa.Column("buyer_id", sa.String(128), nullable=False),
        sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_overdue_tickets_buyer_id", "overdue_tickets", ["buyer_id"])


def downgrade() -> None:
    op.drop_table("overdue_tickets")
