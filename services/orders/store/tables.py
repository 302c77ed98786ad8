"""Orders' tables (SQLAlchemy Core). Each column is named here once; `rows` maps the aggregates onto them.

A column's `info` says when an order's row writes it: FIXED columns once, when the order is accepted;
STEP columns when the process manager's next step is scheduled; every other column on each save.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

FIXED: dict[Any, Any] = {"written": "on acceptance"}
STEP: dict[Any, Any] = {"written": "when a step is scheduled"}

metadata = MetaData()
TZ = DateTime(timezone=True)

orders_table = Table(
    "orders",
    metadata,
    Column("order_id", String(36), primary_key=True, info=FIXED),
    Column("channel", String(16), nullable=False, info=FIXED),
    Column("channel_order_id", String(64), nullable=False, info=FIXED),
    Column("buyer_id", String(128), nullable=False, info=FIXED),
    Column("currency", String(3), nullable=False, info=FIXED),
    Column("status", String(32), nullable=False),
    Column("shipping_fee_minor", BigInteger, nullable=False, info=FIXED),
    Column("total_minor", BigInteger, nullable=False, info=FIXED),
    Column("shipping_address", JSONB, nullable=False),
    Column("placed_at", TZ, nullable=False, info=FIXED),
    Column("created_at", TZ, nullable=False, info=FIXED),
    Column("updated_at", TZ, nullable=False),
    Column("discounts", JSONB, nullable=False, info=FIXED),
    Column("channel_status", String(64), nullable=False),
    Column("channel_modified_at", TZ),
    Column("paid_at", TZ),
    Column("buyer_note", Text, nullable=False),
    Column("resume_status", String(32)),
    Column("status_reason", Text, nullable=False),
    Column("status_changed_at", TZ),
    Column("warehouses", ARRAY(String(64)), nullable=False),
    Column("waybill_no", String(64), nullable=False),
    Column("scanned_out_at", TZ),
    Column("version", Integer, nullable=False),
    Column("pii_sealed", Text),
    Column("phone_hash", String(64)),
    Column("stock_state", String(16), nullable=False),
    Column("step", String(16), info=STEP),
    Column("step_due_at", TZ, info=STEP),
    Column("step_attempts", Integer, nullable=False, info=STEP),
    Column("step_error", Text, nullable=False, info=STEP),
    Column("step_dead", Boolean, nullable=False, info=STEP),
    Column("step_failed_at", TZ),
    Column("step_paused_since", TZ, info=STEP),
    Column("step_pauses", Integer, nullable=False, info=STEP),
    Column("step_waiting_for", String(16), info=STEP),
    Column("traceparent", String(64), nullable=False, info=FIXED),
    Column("step_traceparent", String(64), nullable=False, info=STEP),
    Column("priority", String(16), nullable=False, info=FIXED),
    Column("refused_decision_id", String(64), nullable=False),
    Column("hold_cause", String(24), nullable=False, server_default=""),
    # routing's parcels and logistics' shipments (rows.shipping_document); NULL until a plan is kept
    Column("shipping", JSONB),
    # after-sales' refunds as the order follows them (rows.refunds_document); NULL until a ticket
    Column("refunds", JSONB),
    # the SLA timer (domain/sla.py): terms fixed on acceptance; the running stage, its levels, the
    # highest level acted on, and when the SLA job must next look (indexed: it reads only what is due)
    Column("sla_terms", JSONB, info=FIXED),
    Column("sla_stage", String(16)),
    Column("sla_level", Integer, nullable=False, server_default="0"),
    Column("sla_started_at", TZ),
    Column("sla_warn_at", TZ),
    Column("sla_deadline", TZ),
    Column("sla_due_at", TZ),
    Column("sla_owner", String(128), nullable=False, server_default=""),
    Column("sla_backup", String(128), nullable=False, server_default=""),
    Column("sla_escalated_to", String(128), nullable=False, server_default=""),
)

order_lines_table = Table(
    "order_lines",
    metadata,
    Column("order_id", String(36), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("title", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_minor", BigInteger, nullable=False),
    Column("discount_minor", BigInteger, nullable=False),
    Column("goods_minor", BigInteger, nullable=False),
    Column("promotion_minor", BigInteger, nullable=False),
    Column("coupon_minor", BigInteger, nullable=False),
    Column("points_minor", BigInteger, nullable=False),
    Column("shipping_minor", BigInteger, nullable=False),
    Column("paid_minor", BigInteger, nullable=False),
)

channel_payloads_table = Table(
    "channel_payloads",
    metadata,
    Column("order_id", String(36), primary_key=True),
    Column("sealed", Text, nullable=False),
    Column("size_bytes", Integer, nullable=False),
    Column("received_at", TZ, nullable=False),
)

timeline_table = Table(
    "order_timeline",
    metadata,
    Column("sequence", BigInteger, primary_key=True),
    Column("order_id", String(36), nullable=False),
    Column("at", TZ, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actor_type", String(16), nullable=False),
    Column("actor_id", String(128), nullable=False),
    Column("source", String(64), nullable=False),
    Column("from_status", String(32)),
    Column("to_status", String(32)),
    Column("detail", Text, nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("linked_trace_id", String(32), nullable=False),
)

payments_table = Table(
    "payments",
    metadata,
    Column("payment_id", String(36), primary_key=True),
    Column("provider", String(32), nullable=False),
    Column("transaction_id", String(64), nullable=False),
    Column("merchant_order_no", String(64), nullable=False),
    Column("order_id", String(36)),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("paid_at", TZ, nullable=False),
    Column("status", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", TZ),
    Column("received_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
)

source_reports_table = Table(
    "source_reports",
    metadata,
    Column("report_id", BigInteger, primary_key=True),
    Column("order_id", String(36), nullable=False),
    Column("source", String(32), nullable=False),
    Column("fields", JSONB, nullable=False),
    Column("rule", String(64), nullable=False),
    Column("rules_version", Integer, nullable=False),
    Column("reported_at", TZ, nullable=False),
    Column("received_at", TZ, nullable=False),
)

source_status_table = Table(
    "source_status",
    metadata,
    Column("order_id", String(36), primary_key=True),
    Column("source", String(32), primary_key=True),
    Column("raw_status", Text, nullable=False),
    Column("means", ARRAY(String(32)), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("reported_at", TZ, nullable=False),
    Column("received_at", TZ, nullable=False),
)

quarantine_table = Table(
    "quarantine",
    metadata,
    Column("quarantine_id", String(36), primary_key=True),
    Column("channel", String(16), nullable=False),
    Column("channel_order_id", String(128), nullable=False),
    Column("error_field", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("sealed_payload", Text, nullable=False),
    Column("received_at", TZ, nullable=False),
)

# a statement id is the importer's own: the key includes who imported it (their principal's subject)
statements_table = Table(
    "payment_statements",
    metadata,
    Column("owner", String(128), primary_key=True),
    Column("statement_id", String(64), primary_key=True),
    Column("provider", String(32), nullable=False),
    Column("imported_at", TZ, nullable=False),
    Column("report", JSONB, nullable=False),
)

statement_rows_table = Table(
    "payment_statement_rows",
    metadata,
    Column("owner", String(128), primary_key=True),
    Column("statement_id", String(64), primary_key=True),
    Column("transaction_id", String(64), primary_key=True),
    Column("merchant_order_no", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("paid_at", TZ, nullable=False),
)

customer_assignments_table = Table(
    "customer_assignments",
    metadata,
    Column("agent_id", String(128), primary_key=True),
    Column("buyer_id", String(128), primary_key=True),
    Column("assigned_at", TZ, nullable=False),
)

# customers with an after-sales ticket past its response limit, as after-sales' events tell (a new
# order of theirs is held when the policy says so)
overdue_tickets_table = Table(
    "overdue_tickets",
    metadata,
    Column("ticket_id", String(64), primary_key=True),
    Column("buyer_id", String(128), nullable=False, index=True),
    Column("flagged_at", TZ, nullable=False),
)

drift_reports_table = Table(
    "drift_reports",
    metadata,
    Column("report_id", String(36), primary_key=True),
    Column("generated_at", TZ, nullable=False),
    Column("drift_count", Integer, nullable=False),
    Column("per_source", JSONB, nullable=False),
    Column("drifts", JSONB, nullable=False),
)

# who owns each SLA queue ("fulfilment/fresh", …): told at amber; the backup is escalated to at red
sla_owners_table = Table(
    "sla_owners",
    metadata,
    Column("queue", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("backup", String(128), nullable=False),
    Column("updated_at", TZ, nullable=False),
    Column("updated_by", String(128), nullable=False),
)

# risk rule sets (domain/risk.py documents): drafts, the one active, retired ones
risk_rule_sets_table = Table(
    "risk_rule_sets",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("status", String(16), nullable=False),
    Column("document", JSONB, nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("activated_at", TZ),
    Column("activated_by", String(128), nullable=False, server_default=""),
)

# every order's risk evaluation: what each rule saw, the score, the outcome, and the review of a hold
risk_evaluations_table = Table(
    "risk_evaluations",
    metadata,
    Column("evaluation_id", BigInteger, primary_key=True, autoincrement=True),
    Column("order_id", String(36), nullable=False),
    Column("evaluated_at", TZ, nullable=False),
    Column("version", Integer, nullable=False),
    Column("score", Integer, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("frozen", Boolean, nullable=False),
    Column("facts_sealed", Text, nullable=False),  # every fact, sealed (the address is personal data)
    Column("results", JSONB, nullable=False),
    Column("hits", ARRAY(String(64)), nullable=False),
    Column("review", String(16), nullable=False, server_default=""),
    Column("reviewed_by", String(128), nullable=False, server_default=""),
    Column("reviewed_at", TZ),
    Column("review_note", Text, nullable=False, server_default=""),
)

# the channels orders polls (docs/runbook.md, CHANNEL_CONNECTIONS): secret and tokens sealed, the poll
# cursor, the rolling window of API calls ([[unix seconds, latency ms, error code], …]), open alerts
channel_connections_table = Table(
    "channel_connections",
    metadata,
    Column("channel", String(16), primary_key=True),
    Column("api_url", Text, nullable=False),
    Column("app_key", String(128), nullable=False),
    Column("shop_id", String(64), nullable=False),
    Column("sealed_secret", Text, nullable=False),
    Column("sealed_refresh_token", Text, nullable=False),
    Column("sealed_access_token", Text),
    Column("token_expires_at", TZ),
    Column("token_lifetime_s", Integer, nullable=False),
    Column("refresh_failed", Boolean, nullable=False),
    Column("refresh_error", Text, nullable=False),
    Column("poll_cursor", TZ),
    Column("last_poll_at", TZ),
    Column("last_poll_error", Text, nullable=False),
    Column("calls", JSONB, nullable=False),
    Column("open_alerts", ARRAY(String(32)), nullable=False),
    Column("connected_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
)
