"""Warehouses, SKUs, stock with its invariants, reservations, ledger, replenishment orders, kit tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.inventory.store import metadata
from services.kit.schema import create_kit_tables, drop_kit_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The first revision creates the tables as store.py declared them then; later revisions must
# spell out their changes (op.add_column, …) instead of reading store.py. `skus` has changed since
# (0002), so it is spelled out here as it was.
TABLES = (
    "warehouses",
    "stock",
    "reservations",
    "reservation_lines",
    "ledger",
    "replenishment_orders",
)


def upgrade() -> None:
    create_kit_tables(op)
    op.create_table(
        "skus",
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    bind = op.get_bind()
    metadata.create_all(bind, tables=[metadata.tables[name] for name in TABLES])
    op.execute("REVOKE UPDATE, DELETE ON ledger FROM PUBLIC")


def downgrade() -> None:
    bind = op.get_bind()
    metadata.drop_all(bind, tables=[metadata.tables[name] for name in reversed(TABLES)])
    op.drop_table("skus")
    drop_kit_tables(op)
