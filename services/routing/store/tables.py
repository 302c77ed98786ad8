"""Routing's tables: rule sets, expected decisions, the decision log, parked orders, daily load."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()

rule_sets_table = Table(
    "rule_sets",
    metadata,
    Column("version", BigInteger, primary_key=True),
    Column("status", String(16), nullable=False),
    Column("document", JSONB, nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("activated_at", DateTime(timezone=True)),
    Index("rule_sets_one_active", "status", unique=True, postgresql_where=text("status = 'active'")),
    Column("shadow", Boolean, nullable=False, server_default="false"),
    Index("rule_sets_one_shadow", "shadow", unique=True, postgresql_where=text("shadow")),
)

expected_decisions_table = Table(
    "expected_decisions",
    metadata,
    Column("name", Text, primary_key=True),
    Column("document", JSONB, nullable=False),
)

decisions_table = Table(
    "decisions",
    metadata,
    Column("decision_id", String(36), primary_key=True),
    Column("order_id", String(64), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("rule_set_version", BigInteger, nullable=False),
    Column("parked_reason", String(32), nullable=False, server_default=""),
    Column("inputs", JSONB, nullable=False),
    Column("result", JSONB, nullable=False),
    # what the shadow rule set (if one was running) decided instead, and whether that differs
    Column("shadow_version", BigInteger),
    Column("shadow_result", JSONB),
    Column("shadow_differs", Boolean, nullable=False, server_default="false"),
    # a plan whose stock the caller could not reserve, replaced by a later decision (a replan): the id
    # of that decision; "" for the order's current decision
    Column("superseded_by", String(36), nullable=False, server_default=""),
    Index("decisions_by_order", "order_id", "decided_at"),
    Index(
        "decisions_one_current_plan_per_order",
        "order_id",
        unique=True,
        postgresql_where=text("parked_reason = '' AND superseded_by = ''"),
    ),
    Index("decisions_recent", "decided_at"),
)

parked_orders_table = Table(
    "parked_orders",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("request", JSONB, nullable=False),
    Column("skus", ARRAY(Text), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("parked_at", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="1"),
    Column("retry_due", DateTime(timezone=True)),
    Index("parked_orders_by_sku", "skus", postgresql_using="gin"),
)

warehouse_load_table = Table(
    "warehouse_load",
    metadata,
    Column("day", Date, primary_key=True),
    Column("warehouse_id", String(64), primary_key=True),
    Column("orders", Integer, nullable=False),
)
