"""Why the process manager stopped an order is a field (`hold_cause`), not a prefix of its reason text.

Rows stopped before this revision get theirs from the reason text the process manager wrote then.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("hold_cause", sa.String(24), nullable=False, server_default=""))
    for cause, status, pattern in (
        ("OUT_OF_STOCK", "ON_HOLD", "unroutable: out%"),
        ("UNROUTABLE", "ON_HOLD", "unroutable: %"),
        ("PAID_OUT_OF_STOCK", "EXCEPTION", "paid, out of stock (%"),
    ):
        op.execute(
            sa.text(
                "UPDATE orders SET hold_cause = :cause "
                "WHERE status = :status AND status_reason LIKE :pattern AND hold_cause = ''"
            ).bindparams(cause=cause, status=status, pattern=pattern)
        )


def downgrade() -> None:
    op.drop_column("orders", "hold_cause")
