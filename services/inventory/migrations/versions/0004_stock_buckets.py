"""Hot-SKU stock buckets: a row's reservable units split into sub-rows, and the bucket a line took.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # IF NOT EXISTS: 0001 builds stock and reservation_lines from store/tables.py, which declares these too
    op.execute(
        "ALTER TABLE stock ADD COLUMN IF NOT EXISTS buckets SMALLINT NOT NULL DEFAULT 0"
        " CONSTRAINT stock_buckets_range CHECK (buckets BETWEEN 0 AND 64)"
    )
    op.execute("ALTER TABLE reservation_lines ADD COLUMN IF NOT EXISTS bucket SMALLINT")
    op.create_table(
        "stock_buckets",
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("warehouse_id", sa.String(64), primary_key=True),
        sa.Column("bucket", sa.SmallInteger, primary_key=True),
        sa.Column("allotted", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("used", sa.BigInteger, nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(["sku", "warehouse_id"], ["stock.sku", "stock.warehouse_id"]),
        sa.CheckConstraint("bucket BETWEEN 0 AND 63", name="stock_buckets_bucket"),
        sa.CheckConstraint("used >= 0 AND used <= allotted", name="stock_buckets_never_oversold"),
    )


def downgrade() -> None:
    # the buckets' free units go back to their rows; units that lines hold stay reserved on the row
    op.execute(
        "UPDATE stock AS s SET reserved = s.reserved - f.free"
        " FROM (SELECT sku, warehouse_id, sum(allotted - used) AS free FROM stock_buckets"
        " GROUP BY sku, warehouse_id) AS f WHERE s.sku = f.sku AND s.warehouse_id = f.warehouse_id"
    )
    op.drop_table("stock_buckets")
    op.execute("ALTER TABLE reservation_lines DROP COLUMN IF EXISTS bucket")
    op.execute("ALTER TABLE stock DROP COLUMN IF EXISTS buckets")
