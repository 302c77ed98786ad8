"""SLA timers on orders (terms fixed on acceptance, the running stage and its levels, the next moment
the SLA job must look, owners), indexed by that moment; SLA owners per queue.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("orders", sa.Column("sla_terms", postgresql.JSONB()))
    op.add_column("orders", sa.Column("sla_stage", sa.String(16)))
    op.add_column("orders", sa.Column("sla_level", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("orders", sa.Column("sla_started_at", TZ))
    op.add_column("orders", sa.Column("sla_warn_at", TZ))
    op.add_column("orders", sa.Column("sla_deadline", TZ))
    op.add_column("orders", sa.Column("sla_due_at", TZ))
    for name in ("sla_owner", "sla_backup", "sla_escalated_to"):
        op.add_column("orders", sa.Column(name, sa.String(128), nullable=False, server_default=""))
    # the SLA job reads only what is due; the listing reads only amber and red timers
    op.create_index(
        "ix_orders_sla_due_at", "orders", ["sla_due_at"], postgresql_where=sa.text("sla_due_at IS NOT NULL")
    )
    op.create_index(
        "ix_orders_sla_warn_at",
        "orders",
        ["sla_warn_at"],
        postgresql_where=sa.text("sla_deadline IS NOT NULL"),
    )
    op.create_table(
        "sla_owners",
        sa.Column("queue", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("backup", sa.String(128), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sla_owners")
    op.drop_index("ix_orders_sla_warn_at", table_name="orders")
    op.drop_index("ix_orders_sla_due_at", table_name="orders")
    for name in (
        "sla_escalated_to",
        "sla_backup",
        "sla_owner",
        "sla_due_at",
        "sla_deadline",
        "sla_warn_at",
        "sla_started_at",
        "sla_level",
        "sla_stage",
        "sla_terms",
    ):
        op.drop_column("orders", name)
