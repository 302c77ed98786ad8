"""Logistics' tables: shipments (with their waybill), tracking events, waybill batches and requests
(the retry queue and the dead letters), pick lists, quarantined pushes, raised anomalies and the
carriers' breaker states."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

shipments_table = Table(
    "shipments",
    metadata,
    Column("shipment_id", String(36), primary_key=True),
    Column("order_id", String(64), nullable=False),
    Column("warehouse_id", String(64), nullable=False),
    Column("carrier", String(16), nullable=False),
    Column("service", String(32), nullable=False, server_default=""),
    Column("status", String(20), nullable=False),
    Column("lines", JSONB, nullable=False),
    Column("priority", String(16), nullable=False),
    # the pick order's first two keys, kept as columns so the warehouse's queue is one indexed read
    Column("expedited", Boolean, nullable=False),
    Column("perishable", Boolean, nullable=False),
    Column("deadline", DateTime(timezone=True)),
    Column("destination", JSONB, nullable=False),
    # name, phone and street: AES-256-GCM under the service's key ring, bound to the shipment id
    Column("recipient_sealed", Text, nullable=False),
    # a keyed hash of the whole address (blind index) for the repeated-returns rule
    Column("address_key", String(64), nullable=False),
    Column("origin", JSONB, nullable=False),
    Column("customer_id", String(64), nullable=False, server_default=""),
    Column("channel", String(32), nullable=False, server_default=""),
    Column("decision_id", String(64), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("pick_list_id", String(36), nullable=False, server_default=""),
    Column("picked_at", DateTime(timezone=True)),
    Column("packed_at", DateTime(timezone=True)),
    Column("scanned_out_at", DateTime(timezone=True)),
    Column("delivered_at", DateTime(timezone=True)),
    Column("waybill_no", String(40), unique=True),
    Column("waybill", JSONB),
    Column("last_node", String(20)),
    Column("last_node_at", DateTime(timezone=True)),
    Column("furthest_node", String(20)),
    Column("exception", Text, nullable=False, server_default=""),
    # why the order is on hold or frozen ('' when it is not): the warehouse leaves the shipment alone
    Column("held", Text, nullable=False, server_default=""),
    Column("hold_changed_at", DateTime(timezone=True)),
    # when the tracking poll next asks the carrier about this parcel
    Column("next_poll_at", DateTime(timezone=True)),
    UniqueConstraint("order_id", "warehouse_id", name="shipments_one_per_order_and_warehouse"),
    Index("shipments_by_warehouse_status", "warehouse_id", "status"),
    Index("shipments_by_order", "order_id"),
    Index("shipments_due_poll", "next_poll_at", postgresql_where=text("next_poll_at IS NOT NULL")),
    Index("shipments_by_customer", "customer_id"),
    Index("shipments_by_address", "address_key"),
)

tracking_events_table = Table(
    "tracking_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("shipment_id", String(36), nullable=False),
    Column("node", String(20), nullable=False),
    Column("carrier_code", String(16), nullable=False),
    Column("description", Text, nullable=False),
    Column("area", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("source", String(8), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    # a push repeated, a whole Kuaidi100 track pushed again, a poll finding known scans: one row each
    UniqueConstraint(
        "shipment_id", "carrier_code", "occurred_at", "description", name="tracking_events_once"
    ),
)

waybill_batches_table = Table(
    "waybill_batches",
    metadata,
    Column("batch_id", String(36), primary_key=True),
    Column("request_id", String(128), unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("total", Integer, nullable=False),
)

waybill_requests_table = Table(
    "waybill_requests",
    metadata,
    Column("batch_id", String(36), primary_key=True),
    Column("shipment_id", String(36), primary_key=True),
    Column("order_id", String(64), nullable=False),
    Column("carrier", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    # an attempt got no answer: the carrier is asked before it is asked for a waybill again
    Column("uncertain", Boolean, nullable=False, server_default="false"),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("waybill_no", String(40), nullable=False, server_default=""),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # one request under way per shipment, whichever batch it is in
    Index(
        "waybill_requests_one_pending",
        "shipment_id",
        unique=True,
        postgresql_where=text("state IN ('queued', 'in_flight', 'retrying')"),
    ),
    Index(
        "waybill_requests_due",
        "next_attempt_at",
        postgresql_where=text("state IN ('queued', 'retrying')"),
    ),
    Index("waybill_requests_in_flight", "updated_at", postgresql_where=text("state = 'in_flight'")),
    Index("waybill_requests_dead", "updated_at", postgresql_where=text("state = 'dead'")),
)

pick_lists_table = Table(
    "pick_lists",
    metadata,
    Column("pick_list_id", String(36), primary_key=True),
    Column("warehouse_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

quarantined_pushes_table = Table(
    "quarantined_pushes",
    metadata,
    Column("quarantine_id", String(36), primary_key=True),
    Column("carrier", String(32), nullable=False),
    Column("content_type", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("reason", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

anomalies_table = Table(
    "anomalies",
    metadata,
    # `<rule>:<what it is about>`: each anomaly is raised once
    Column("anomaly_key", Text, primary_key=True),
    Column("rule", String(32), nullable=False),
    Column("shipment_id", String(36), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("source", String(8), nullable=False),
    Column("message", Text, nullable=False),
    Column("raised_at", DateTime(timezone=True), nullable=False),
)

carrier_breakers_table = Table(
    "carrier_breakers",
    metadata,
    Column("carrier", String(16), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)
