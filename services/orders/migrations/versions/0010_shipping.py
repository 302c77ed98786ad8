"""An order's parcels: routing's plan of them (kept when the stock is reserved) and logistics' shipments
with how far each got, in one JSON document (`shipping`); NULL for an order not shipped through logistics.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("shipping", JSONB, nullable=True))


def downgrade() -> None:
    op.drop_column("orders", "shipping")
