"""The SKU catalogue: goods type, category, weight and the customised flag.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add = op.add_column
    add("skus", sa.Column("goods_type", sa.String(16), nullable=False, server_default="normal"))
    add("skus", sa.Column("category", sa.String(64), nullable=False, server_default=""))
    add("skus", sa.Column("weight_g", sa.BigInteger, nullable=False, server_default="0"))
    add("skus", sa.Column("customised", sa.Boolean, nullable=False, server_default=sa.false()))
    add(
        "skus",
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.execute("UPDATE skus SET updated_at = created_at")
    op.create_check_constraint("skus_goods_type", "skus", "goods_type IN ('normal', 'fresh', 'cold_chain')")
    op.create_check_constraint("skus_weight_g", "skus", "weight_g BETWEEN 0 AND 1000000")
    op.create_index("skus_by_category", "skus", ["category", "sku"])


def downgrade() -> None:
    op.drop_index("skus_by_category", "skus")
    op.drop_constraint("skus_weight_g", "skus")
    op.drop_constraint("skus_goods_type", "skus")
    for column in ("updated_at", "customised", "weight_g", "category", "goods_type"):
        op.drop_column("skus", column)
