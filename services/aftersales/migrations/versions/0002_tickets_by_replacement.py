"""An exchange's ticket found by its replacement order (orders' delivered or cancelled replacement).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # IF NOT EXISTS: 0001 builds the tables from store/tables.py, which declares this index too
    op.execute(
        "CREATE INDEX IF NOT EXISTS tickets_by_replacement ON tickets "
        "((state->>'replacement_shipment_id')) WHERE state->>'replacement_shipment_id' <> ''"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS tickets_by_replacement")
