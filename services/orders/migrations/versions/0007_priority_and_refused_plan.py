"""The order's delivery priority, and the routing decision whose reservation was refused.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # STANDARD, EXPEDITED or MEMBER: fixed at acceptance, sent to routing with every plan
    op.add_column("orders", sa.Column("priority", sa.String(16), nullable=False, server_default="STANDARD"))
    # the plan inventory could not reserve (another order took its stock): the next plan asks routing
    # to decide again on live stock rather than answer with this decision
    op.add_column(
        "orders", sa.Column("refused_decision_id", sa.String(64), nullable=False, server_default="")
    )


def downgrade() -> None:
    op.drop_column("orders", "refused_decision_id")
    op.drop_column("orders", "priority")
