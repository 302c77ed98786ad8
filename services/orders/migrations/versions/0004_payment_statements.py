"""Imported payment statements and their rows, with the stored reconciliation report.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payment_statements",
        sa.Column("statement_id", sa.String(64), primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("report", postgresql.JSONB, nullable=False),
    )
    op.create_table(
        "payment_statement_rows",
        sa.Column("statement_id", sa.String(64), primary_key=True),
        sa.Column("transaction_id", sa.String(64), primary_key=True),
        sa.Column("merchant_order_no", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("payments_provider_paid", "payments", ["provider", "paid_at"])


def downgrade() -> None:
    op.drop_index("payments_provider_paid", "payments")
    op.drop_table("payment_statement_rows")
    op.drop_table("payment_statements")
