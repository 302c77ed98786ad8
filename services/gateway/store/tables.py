"""The gateway's tables: the audit log and webhook receipts (each column named here, once)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, LargeBinary, MetaData, String, Table, Text
from sqlalchemy.dialects.postgresql import ARRAY

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
