"""The gateway's tables: the audit log, webhook receipts and alert records (each column named here, once)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, LargeBinary, MetaData, SmallInteger, String, Table, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()
TZ = DateTime(timezone=True)

audit_table = Table(
    "audit_log",
    metadata,
    Column("audit_id", String(36), primary_key=True),
    Column("at", TZ, nullable=False),
    Column("principal", String(128), nullable=False),
    Column("principal_kind", String(16), nullable=False),
    Column("roles", ARRAY(String(32)), nullable=False),
    Column("source_ip", String(64), nullable=False),
    Column("method", String(128), nullable=False),
    Column("target_ids", ARRAY(String(128)), nullable=False),
    Column("result", String(32), nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    # more than 1 for a record that counts failed attempts of one window (domain/attempts.py)
    Column("attempts", Integer, nullable=False),
)

receipts_table = Table(
    "webhook_receipts",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("sender", String(32), primary_key=True),
    Column("body_sha256", String(64), primary_key=True),
    Column("response", LargeBinary, nullable=False),
    Column("received_at", TZ, nullable=False),
)

# one open record per fold key (a partial unique index, migration 0003); repeats count into it
alerts_table = Table(
    "alerts",
    metadata,
    Column("alert_id", String(36), primary_key=True),
    Column("fold_key", String(300), nullable=False),
    Column("state", String(16), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("severity", SmallInteger, nullable=False),
    Column("source", String(32), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("roles", ARRAY(String(32)), nullable=False),
    Column("count", Integer, nullable=False),
    Column("first_seen", TZ, nullable=False),
    Column("last_seen", TZ, nullable=False),
    # who is told, in order (domain Recipient documents), and how far down it the alert is
    Column("chain", JSONB, nullable=False),
    Column("level", SmallInteger, nullable=False),
    Column("assigned_to", String(80), nullable=False),
    Column("escalate_after_s", Integer, nullable=True),
    Column("escalate_at", TZ, nullable=True),
    Column("acknowledged_by", String(128), nullable=False),
    Column("acknowledged_at", TZ, nullable=True),
    Column("acknowledge_note", Text, nullable=False),
    Column("resolved_by", String(128), nullable=False),
    Column("resolved_at", TZ, nullable=True),
    Column("resolution", Text, nullable=False),
    Column("notified_level", SmallInteger, nullable=True),
)

# every event folded into an alert, once: a redelivered event is not counted again
alert_events_table = Table(
    "alert_events",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("alert_id", String(36), nullable=True),
    Column("received_at", TZ, nullable=False),
)

# console users (domain/users.py): a PBKDF2 hash only, never the password
users_table = Table(
    "console_users",
    metadata,
    Column("subject", String(128), primary_key=True),
    Column("password_hash", String(200), nullable=False),
    Column("roles", ARRAY(String(32)), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
)
