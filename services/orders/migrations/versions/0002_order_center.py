"""The order center: money buckets, lifecycle and orchestration state, sealed PII, payments,
timeline, source reports, quarantine and drift reports.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    add = op.add_column
    add("orders", sa.Column("discounts", postgresql.JSONB, nullable=False, server_default="[]"))
    add("orders", sa.Column("channel_status", sa.String(64), nullable=False, server_default=""))
    add("orders", sa.Column("channel_modified_at", TZ))
    add("orders", sa.Column("paid_at", TZ))
    add("orders", sa.Column("buyer_note", sa.Text, nullable=False, server_default=""))
    add("orders", sa.Column("resume_status", sa.String(32)))
    add("orders", sa.Column("status_reason", sa.Text, nullable=False, server_default=""))
    add("orders", sa.Column("status_changed_at", TZ))
    add(
        "orders",
        sa.Column("warehouses", postgresql.ARRAY(sa.String(64)), nullable=False, server_default="{}"),
    )
    add("orders", sa.Column("waybill_no", sa.String(64), nullable=False, server_default=""))
    add("orders", sa.Column("scanned_out_at", TZ))
    add("orders", sa.Column("version", sa.Integer, nullable=False, server_default="1"))
    # personal data: sealed (AES-256-GCM) with the key id inside the value; a keyed hash for lookups
    add("orders", sa.Column("pii_sealed", sa.Text))
    add("orders", sa.Column("phone_hash", sa.String(64)))
    # the process manager's state: the next step, when it is due, how often it failed
    add("orders", sa.Column("stock_state", sa.String(16), nullable=False, server_default="NONE"))
    add("orders", sa.Column("step", sa.String(16)))
    add("orders", sa.Column("step_due_at", TZ))
    add("orders", sa.Column("step_attempts", sa.Integer, nullable=False, server_default="0"))
    add("orders", sa.Column("step_error", sa.Text, nullable=False, server_default=""))
    add("orders", sa.Column("step_dead", sa.Boolean, nullable=False, server_default=sa.false()))
    op.execute("UPDATE orders SET status_changed_at = updated_at")
    op.create_index("orders_created", "orders", ["created_at", "order_id"])
    op.create_index("orders_status", "orders", ["status"])
    op.create_index("orders_buyer", "orders", ["buyer_id"])
    op.create_index("orders_phone_hash", "orders", ["phone_hash"])
    op.create_index("orders_warehouses", "orders", ["warehouses"], postgresql_using="gin")
    op.create_index(
        "orders_step_due",
        "orders",
        ["step_due_at"],
        postgresql_where=sa.text("step IS NOT NULL AND NOT step_dead"),
    )
    op.create_index("orders_step_dead", "orders", ["order_id"], postgresql_where=sa.text("step_dead"))

    for name in ("discount", "goods", "promotion", "coupon", "points", "shipping", "paid"):
        add("order_lines", sa.Column(f"{name}_minor", sa.BigInteger, nullable=False, server_default="0"))
    op.execute(
        "UPDATE order_lines"
        " SET goods_minor = quantity * unit_price_minor, paid_minor = quantity * unit_price_minor"
    )
    op.create_check_constraint(
        "order_lines_buckets_not_negative",
        "order_lines",
        "discount_minor >= 0 AND goods_minor >= 0 AND promotion_minor >= 0 AND coupon_minor >= 0"
        " AND points_minor >= 0 AND shipping_minor >= 0 AND paid_minor >= 0"
        " AND paid_minor = goods_minor - promotion_minor - coupon_minor - points_minor + shipping_minor",
    )

    op.create_table(
        "channel_payloads",
        sa.Column(
            "order_id", sa.String(36), sa.ForeignKey("orders.order_id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("sealed", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
    )
    op.create_table(
        "order_timeline",
        sa.Column("sequence", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("order_id", sa.String(36), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor_type", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(128), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("from_status", sa.String(32)),
        sa.Column("to_status", sa.String(32)),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
    )
    op.create_index("order_timeline_order", "order_timeline", ["order_id", "sequence"])
    op.create_index("order_timeline_status", "order_timeline", ["to_status", "at"])
    # the history is append-only: an UPDATE or DELETE fails loudly instead of rewriting it
    op.execute(
        "CREATE FUNCTION order_timeline_append_only() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'order_timeline is append-only'; END $$"
    )
    op.execute(
        "CREATE TRIGGER order_timeline_append_only BEFORE UPDATE OR DELETE ON order_timeline"
        " FOR EACH ROW EXECUTE FUNCTION order_timeline_append_only()"
    )

    op.create_table(
        "payments",
        sa.Column("payment_id", sa.String(36), primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("transaction_id", sa.String(64), nullable=False),
        sa.Column("merchant_order_no", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(36)),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("paid_at", TZ, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TZ),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("provider", "transaction_id", name="payments_transaction_unique"),
    )
    op.create_index("payments_state", "payments", ["state", "received_at"])
    op.create_index("payments_order", "payments", ["order_id"])
    op.create_index(
        "payments_retry_due", "payments", ["next_attempt_at"], postgresql_where=sa.text("state = 'RECEIVED'")
    )

    op.create_table(
        "source_reports",
        sa.Column("report_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("order_id", sa.String(36), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("fields", postgresql.JSONB, nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("rules_version", sa.Integer, nullable=False),
        sa.Column("reported_at", TZ, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
    )
    op.create_index("source_reports_order", "source_reports", ["order_id", "report_id"])
    op.create_table(
        "source_status",
        sa.Column("order_id", sa.String(36), primary_key=True),
        sa.Column("source", sa.String(32), primary_key=True),
        sa.Column("raw_status", sa.Text, nullable=False),
        sa.Column("means", postgresql.ARRAY(sa.String(32)), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("reported_at", TZ, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
    )
    op.create_table(
        "quarantine",
        sa.Column("quarantine_id", sa.String(36), primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("channel_order_id", sa.String(128), nullable=False),
        sa.Column("error_field", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("sealed_payload", sa.Text, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
    )
    op.create_index("quarantine_received", "quarantine", ["received_at"])
    op.create_table(
        "drift_reports",
        sa.Column("report_id", sa.String(36), primary_key=True),
        sa.Column("generated_at", TZ, nullable=False),
        sa.Column("drift_count", sa.Integer, nullable=False),
        sa.Column("per_source", postgresql.JSONB, nullable=False),
        sa.Column("drifts", postgresql.JSONB, nullable=False),
    )


def downgrade() -> None:
    for table in ("drift_reports", "quarantine", "source_status", "source_reports", "payments"):
        op.drop_table(table)
    op.drop_table("order_timeline")
    op.execute("DROP FUNCTION order_timeline_append_only()")
    op.drop_table("channel_payloads")
    op.drop_constraint("order_lines_buckets_not_negative", "order_lines")
    for name in ("discount", "goods", "promotion", "coupon", "points", "shipping", "paid"):
        op.drop_column("order_lines", f"{name}_minor")
    for index in (
        "orders_created",
        "orders_status",
        "orders_buyer",
        "orders_phone_hash",
        "orders_warehouses",
        "orders_step_due",
        "orders_step_dead",
    ):
        op.drop_index(index, "orders")
    for column in (
        "discounts",
        "channel_status",
        "channel_modified_at",
        "paid_at",
        "buyer_note",
        "resume_status",
        "status_reason",
        "status_changed_at",
        "warehouses",
        "waybill_no",
        "scanned_out_at",
        "version",
        "pii_sealed",
        "phone_hash",
        "stock_state",
        "step",
        "step_due_at",
        "step_attempts",
        "step_error",
        "step_dead",
    ):
        op.drop_column("orders", column)
