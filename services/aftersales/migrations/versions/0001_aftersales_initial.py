"""Tickets, their history, line claims, refunds, restocks, approval rule sets, kit tables.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

from services.aftersales.store.tables import metadata
from services.kit.schema import create_kit_tables, drop_kit_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The first revision creates the tables as store/tables.py declares them today; later revisions must
# spell out their changes instead of reading store/tables.py.
TABLES = (
    "tickets",
    "line_claims",
    "refunds",
    "restocks",
    "approval_rule_sets",
)


def upgrade() -> None:
    create_kit_tables(op)
    metadata.create_all(op.get_bind(), tables=[metadata.tables[name] for name in TABLES])


def downgrade() -> None:
    metadata.drop_all(op.get_bind(), tables=[metadata.tables[name] for name in reversed(TABLES)])
    drop_kit_tables(op)
