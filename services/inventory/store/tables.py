"""Inventory's tables: each column is named here once; the repositories write through them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    text,
)

metadata = MetaData()

warehouses_table = Table(
    "warehouses",
    metadata,
    Column("warehouse_id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

skus_table = Table(
    "skus",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("title", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # the catalogue attributes (revision 0002)
    Column("goods_type", String(16), nullable=False, server_default="normal"),
    Column("category", String(64), nullable=False, server_default=""),
    Column("weight_g", BigInteger, nullable=False, server_default="0"),
    Column("customised", Boolean, nullable=False, server_default="false"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("goods_type IN ('normal', 'fresh', 'cold_chain')", name="skus_goods_type"),
    CheckConstraint("weight_g BETWEEN 0 AND 1000000", name="skus_weight_g"),
    Index("skus_by_category", "category", "sku"),
)

stock_table = Table(
    "stock",
    metadata,
    Column("sku", String(64), ForeignKey("skus.sku"), primary_key=True),
    Column("warehouse_id", String(64), ForeignKey("warehouses.warehouse_id"), primary_key=True),
    Column("on_hand", BigInteger, nullable=False, server_default="0"),
    Column("reserved", BigInteger, nullable=False, server_default="0"),
    Column("normal_level", BigInteger, nullable=False, server_default="0"),
    Column("safety_level", BigInteger, nullable=False, server_default="0"),
    Column("sellable", Boolean, nullable=False, server_default="true"),
    Column("count_version", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # the moving average cost of a unit on hand, in minor units (0: no cost was ever given)
    Column("unit_cost_minor", BigInteger, nullable=False, server_default="0"),
    # how many buckets take new allotments (revision 0004); 0: the row is not split
    Column("buckets", SmallInteger, nullable=False, server_default="0"),
    CheckConstraint("on_hand >= 0", name="stock_on_hand_not_negative"),
    CheckConstraint("reserved >= 0", name="stock_reserved_not_negative"),
    CheckConstraint("reserved <= on_hand", name="stock_never_oversold"),
    CheckConstraint("safety_level >= 0 AND normal_level >= 0", name="stock_levels_not_negative"),
    CheckConstraint("buckets BETWEEN 0 AND 64", name="stock_buckets_range"),
)

# A hot row's reservable units split into sub-rows, so that concurrent reservations lock different rows.
# The stock row counts every allotted unit as reserved; a bucket's own reservations take from it.
stock_buckets_table = Table(
    "stock_buckets",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("warehouse_id", String(64), primary_key=True),
    Column("bucket", SmallInteger, primary_key=True),
    Column("allotted", BigInteger, nullable=False, server_default="0"),
    Column("used", BigInteger, nullable=False, server_default="0"),
    ForeignKeyConstraint(["sku", "warehouse_id"], ["stock.sku", "stock.warehouse_id"]),
    CheckConstraint("bucket BETWEEN 0 AND 63", name="stock_buckets_bucket"),
    CheckConstraint("used >= 0 AND used <= allotted", name="stock_buckets_never_oversold"),
)

reservations_table = Table(
    "reservations",
    metadata,
    Column("reservation_id", String(36), primary_key=True),
    Column("order_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("status IN ('ACTIVE', 'COMMITTED', 'RELEASED', 'EXPIRED')", name="reservations_status"),
    Index(
        "reservations_one_live_per_order",
        "order_id",
        unique=True,
        postgresql_where=text("status IN ('ACTIVE', 'COMMITTED')"),
    ),
    Index("reservations_by_order", "order_id", "created_at"),
    Index("reservations_active_by_expiry", "expires_at", postgresql_where=text("status = 'ACTIVE'")),
)

reservation_lines_table = Table(
    "reservation_lines",
    metadata,
    Column("reservation_id", String(36), ForeignKey("reservations.reservation_id"), primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("warehouse_id", String(64), primary_key=True),
    Column("quantity", BigInteger, nullable=False),
    # the stock bucket the units were taken from (revision 0004); NULL: from the stock row itself
    Column("bucket", SmallInteger, nullable=True),
    CheckConstraint("quantity > 0", name="reservation_lines_positive"),
)

ledger_table = Table(
    "ledger",
    metadata,
    Column("entry_id", BigInteger, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("warehouse_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("on_hand_delta", BigInteger, nullable=False),
    Column("reserved_delta", BigInteger, nullable=False),
    Column("order_id", String(64), nullable=False, server_default=""),
    Column("reference", String(64), nullable=False, server_default=""),
    Column("reason", Text, nullable=False, server_default=""),
    Column("trace_id", String(32), nullable=False, server_default=""),
    # the movement at cost: the unit cost it moved at, and on_hand_delta × that (minor units)
    Column("unit_cost_minor", BigInteger, nullable=False, server_default="0"),
    Column("value_minor", BigInteger, nullable=False, server_default="0"),
    Index("ledger_by_row", "sku", "warehouse_id", "entry_id"),
    Index("ledger_by_order", "order_id", postgresql_where=text("order_id <> ''")),
)

replenishment_table = Table(
    "replenishment_orders",
    metadata,
    Column("replenishment_order_id", String(36), primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("warehouse_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("suggested_quantity", BigInteger, nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(
        "replenishment_one_open_per_row",
        "sku",
        "warehouse_id",
        unique=True,
        postgresql_where=text("status IN ('OPEN', 'ORDERED')"),
    ),
)
