"""What after-sales refunded of an order, and whether a refund is in progress, in one JSON document
(`refunds`); NULL until the order's first ticket.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("refunds", JSONB, nullable=True))


def downgrade() -> None:
    op.drop_column("orders", "refunds")
