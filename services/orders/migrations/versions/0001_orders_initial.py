"""Orders and lines, plus the kit tables (outbox, inbox, dead letters, idempotency keys).

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.kit.schema import create_kit_tables, drop_kit_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_kit_tables(op)
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(36), primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("channel_order_id", sa.String(64), nullable=False),
        sa.Column("buyer_id", sa.String(128), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("shipping_fee_minor", sa.BigInteger, nullable=False),
        sa.Column("total_minor", sa.BigInteger, nullable=False),
        sa.Column("shipping_address", postgresql.JSONB, nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("channel", "channel_order_id", name="orders_channel_order_unique"),
        sa.CheckConstraint(
            "total_minor >= 0 AND shipping_fee_minor >= 0", name="orders_amounts_not_negative"
        ),
    )
    op.create_table(
        "order_lines",
        sa.Column(
            "order_id", sa.String(36), sa.ForeignKey("orders.order_id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_price_minor", sa.BigInteger, nullable=False),
        sa.CheckConstraint("quantity > 0 AND unit_price_minor >= 0", name="order_lines_positive"),
    )


def downgrade() -> None:
    op.drop_table("order_lines")
    op.drop_table("orders")
    drop_kit_tables(op)
