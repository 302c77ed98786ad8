"""Warehouses, SKUs, stock with its invariants, reservations, ledger, replenishment orders, kit tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

from services.inventory.store import metadata
from services.kit.schema import create_kit_tables, drop_kit_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The first revision creates the tables as store.py declares them today; later revisions must
# spell out their changes (op.add_column, …) instead of reading store.py.
TABLES = (
    "warehouses",
    "skus",
    "stock",
    "reservations",
    "reservation_lines",
    "ledger",
    "replenishment_orders",
)


def upgrade() -> None:
    create_kit_tables(op)
    bind = op.get_bind()
    metadata.create_all(bind, tables=[metadata.tables[name] for name in TABLES])
    op.execute("REVOKE UPDATE, DELETE ON ledger FROM PUBLIC")


def downgrade() -> None:
    bind = op.get_bind()
    metadata.drop_all(bind, tables=[metadata.tables[name] for name in reversed(TABLES)])
    drop_kit_tables(op)
