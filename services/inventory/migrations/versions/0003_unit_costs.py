"""Unit costs: each stock row's moving average cost, and each ledger entry's value at cost.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # IF NOT EXISTS: 0001 builds the tables from store/tables.py, which declares these columns too
    op.execute("ALTER TABLE stock ADD COLUMN IF NOT EXISTS unit_cost_minor BIGINT NOT NULL DEFAULT 0")
    op.execute("ALTER TABLE ledger ADD COLUMN IF NOT EXISTS unit_cost_minor BIGINT NOT NULL DEFAULT 0")
    op.execute("ALTER TABLE ledger ADD COLUMN IF NOT EXISTS value_minor BIGINT NOT NULL DEFAULT 0")


def downgrade() -> None:
    op.execute("ALTER TABLE ledger DROP COLUMN IF EXISTS value_minor")
    op.execute("ALTER TABLE ledger DROP COLUMN IF EXISTS unit_cost_minor")
    op.execute("ALTER TABLE stock DROP COLUMN IF EXISTS unit_cost_minor")
