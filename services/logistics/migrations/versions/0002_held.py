"""A shipment whose order is on hold or frozen is left alone by the warehouse (`held`: why).

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


def upgrade() -> None:
    # IF NOT EXISTS: revision 0001 creates the tables as store/tables.py declares them, so a database
    # created after this column was declared has it already
    op.execute("ALTER TABLE shipments ADD COLUMN IF NOT EXISTS held text NOT NULL DEFAULT ''")
    op.execute("ALTER TABLE shipments ADD COLUMN IF NOT EXISTS hold_changed_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE shipments DROP COLUMN IF EXISTS hold_changed_at")
    op.execute("ALTER TABLE shipments DROP COLUMN IF EXISTS held")
