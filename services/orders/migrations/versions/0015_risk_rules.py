"""Risk rule sets (versioned: draft, active, retired) and every order's risk evaluation (the rule set
version, each rule's facts, the score, the outcome and its review).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "risk_rule_sets",
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("document", postgresql.JSONB(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("activated_at", TZ),
        sa.Column("activated_by", sa.String(128), nullable=False, server_default=""),
    )
    op.create_index(
        "risk_rule_sets_one_active",
        "risk_rule_sets",
        ["status"],
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "risk_evaluations",
        sa.Column("evaluation_id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.String(36), nullable=False),
        sa.Column("evaluated_at", TZ, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("frozen", sa.Boolean(), nullable=False),
        sa.Column(
            "facts_sealed", sa.Text(), nullable=False
        ),  # every fact, sealed: the address is personal data
        sa.Column("results", postgresql.JSONB(), nullable=False),
        sa.Column("hits", postgresql.ARRAY(sa.String(64)), nullable=False),
        sa.Column("review", sa.String(16), nullable=False, server_default=""),
        sa.Column("reviewed_by", sa.String(128), nullable=False, server_default=""),
        sa.Column("reviewed_at", TZ),
        sa.Column("review_note", sa.Text(), nullable=False, server_default=""),
    )
    op.create_index("ix_risk_evaluations_order_id", "risk_evaluations", ["order_id"])
    op.create_index("ix_risk_evaluations_evaluated_at", "risk_evaluations", ["evaluated_at"])
    op.create_index(
        "ix_risk_evaluations_to_review",
        "risk_evaluations",
        ["evaluated_at"],
        postgresql_where=sa.text("outcome = 'held' AND review = ''"),
    )
    # the velocity rule's window: orders to one phone in the last hour
    op.create_index("ix_orders_phone_hash_created_at", "orders", ["phone_hash", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_orders_phone_hash_created_at", table_name="orders")
    op.drop_table("risk_evaluations")
    op.drop_table("risk_rule_sets")
