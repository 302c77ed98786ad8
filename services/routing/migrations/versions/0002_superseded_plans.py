"""A replan supersedes the order's planned decision: at most one current plan per order.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# 0001 creates the tables as store/tables.py declares them, so a new database already has all of this:
# every statement here is conditional.
def upgrade() -> None:
    op.execute("ALTER TABLE decisions ADD COLUMN IF NOT EXISTS superseded_by varchar(36) NOT NULL DEFAULT ''")
    op.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS decisions_one_current_plan_per_order ON decisions (order_id) "
        "WHERE parked_reason = '' AND superseded_by = ''"
    )
    op.execute("DROP INDEX IF EXISTS decisions_one_plan_per_order")


def downgrade() -> None:
    # superseded plans would break the old one-plan-per-order index: the log keeps only current plans
    op.execute("DELETE FROM decisions WHERE superseded_by <> ''")
    op.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS decisions_one_plan_per_order ON decisions (order_id) "
        "WHERE parked_reason = ''"
    )
    op.execute("DROP INDEX IF EXISTS decisions_one_current_plan_per_order")
    op.execute("ALTER TABLE decisions DROP COLUMN IF EXISTS superseded_by")
