"""After-sales' tables: tickets (with the order as it was when each opened, its voucher and decision),
the per-line claims that keep refunds within what was paid, refunds at the providers
(the execution queue and the finance ledger), returns waiting to be restocked, and approval rule sets."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from services.aftersales.domain.approval import RuleSetStatus
from services.aftersales.domain.lifecycle import OPEN_STATUSES

metadata = MetaData()
TZ = DateTime(timezone=True)

# statuses in which a ticket still holds its reason on the order (one open ticket per reason)
_OPEN = ", ".join(f"'{status.value}'" for status in sorted(OPEN_STATUSES))

tickets_table = Table(
    "tickets",
    metadata,
    Column("ticket_id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("channel", String(32), nullable=False, server_default=""),
    Column("kind", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("damage_reported", Boolean, nullable=False),
    # flagged by the SLA and not answered since: the overdue queue
    Column("overdue", Boolean, nullable=False, server_default="false"),
    # the caller's request id (a repeat answers the ticket it opened); '' when none was given
    Column("request_id", String(128), nullable=False, server_default=""),
    # the current refund attempt's provider number (`Ticket.refund_no`); '' before the refund is asked
    # for (earlier attempts' numbers are in refunds.out_refund_no)
    Column("refund_no", String(64), nullable=False, server_default=""),
    # the whole ticket (rows.ticket_document): the order as it was when it opened, its lines, quote,
    # decision, received units, voucher and refund attempts; the other columns are read from it
    Column("state", JSONB, nullable=False),
    Column("opened_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
    # the ticket's next response-time deadline (flag, then escalate); NULL once answered
    Column("next_deadline", TZ),
    # when the approval rules decided it (NULL: they never did), for the dry runs of new rule sets
    Column("decided_at", TZ),
    Column("version", Integer, nullable=False),
    Index("tickets_by_order", "order_id"),
    Index("tickets_by_time", "opened_at", "ticket_id"),
    Index("tickets_by_customer", "customer_id", "opened_at"),
    Index("tickets_by_status", "status", "opened_at"),
    Index("tickets_due", "next_deadline", postgresql_where=text("next_deadline IS NOT NULL")),
    Index("tickets_decided", "decided_at", postgresql_where=text("decided_at IS NOT NULL")),
    Index(
        "tickets_one_open_per_reason",
        "order_id",
        "reason",
        unique=True,
        postgresql_where=text(f"status IN ({_OPEN})"),
    ),
    Index("tickets_by_request", "request_id", unique=True, postgresql_where=text("request_id <> ''")),
    Index("tickets_by_refund_no", "refund_no", unique=True, postgresql_where=text("refund_no <> ''")),
    # an exchange's ticket by its replacement order, when orders says how that order ended
    Index(
        "tickets_by_replacement",
        text("(state->>'replacement_shipment_id')"),
        postgresql_where=text("state->>'replacement_shipment_id' <> ''"),
    ),
)

# the buckets a line's claims are kept in: its units and each of its money buckets (minor units)
CLAIM_BUCKETS = ("units", "goods", "promotion", "coupon", "points", "shipping")

# What the tickets of an order have claimed of each line, per bucket (units, goods, promotion, coupon,
# points, shipping), against what was paid: the CHECK refuses a claim past it, so two tickets approved at
# the same moment can never refund more than was paid (the second waits for the first's row lock and
# then finds the line taken).
line_claims_table = Table(
    "line_claims",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("line_index", Integer, primary_key=True),
    Column("bucket", String(16), primary_key=True),
    Column("paid", BigInteger, nullable=False),
    Column("claimed", BigInteger, nullable=False),
    CheckConstraint("claimed >= 0 AND claimed <= paid", name="line_claims_within_paid"),
)

# One row per refund attempt at a provider: the execution queue (status, attempts, next_attempt_at)
# and the finance ledger (who approved, when, the amount per bucket, the provider's reference).
refunds_table = Table(
    "refunds",
    metadata,
    # the provider's refund number (WeChat out_refund_no, Alipay out_request_no): `RF<ticket>` and, for
    # a person's new attempt after CLOSED, `RF<ticket>_<n>`; every send of an attempt uses the same
    # number, so the provider refunds once
    Column("out_refund_no", String(64), primary_key=True),
    Column("ticket_id", String(64), nullable=False),
    # the ticket's refund attempt this row is (1, then 2, … after CLOSED)
    Column("attempt", Integer, nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("transaction_id", String(64), nullable=False),
    Column("merchant_order_no", String(64), nullable=False),
    Column("provider_refund_id", String(64), nullable=False, server_default=""),
    # PENDING (not sent yet), SENDING (sent, the answer unknown), PROCESSING, SUCCESS, CLOSED,
    # ABNORMAL, REFUSED
    Column("status", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    # minor units: the money back through the provider, and the voucher's totals per bucket
    Column("cash", BigInteger, nullable=False),
    Column("goods", BigInteger, nullable=False),
    Column("promotion", BigInteger, nullable=False),
    Column("coupon", BigInteger, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("shipping", BigInteger, nullable=False),
    # the payment's whole amount (WeChat's amount.total)
    Column("total_paid", BigInteger, nullable=False),
    Column("approved_by", String(128), nullable=False),
    Column("requested_at", TZ, nullable=False),
    Column("settled_at", TZ),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", TZ),
    Column("last_error", Text, nullable=False, server_default=""),
    Index("refunds_by_ticket", "ticket_id"),
    Index("refunds_due", "next_attempt_at", postgresql_where=text("next_attempt_at IS NOT NULL")),
    Index("refunds_by_time", "requested_at", "out_refund_no"),
)

# a received return waiting for inventory to put its intact units back (idempotent on the return id)
restocks_table = Table(
    "restocks",
    metadata,
    Column("return_id", String(64), primary_key=True),
    # restock (inventory puts the intact units back) or replacement (orders ships an exchange's goods)
    Column("kind", String(16), nullable=False, server_default="restock"),
    Column("ticket_id", String(64), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("warehouse_id", String(64), nullable=False),
    # [[sku, units], …]
    Column("lines", JSONB, nullable=False),
    Column("received_at", TZ, nullable=False),
    Column("restocked_at", TZ),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", TZ),
    Column("last_error", Text, nullable=False, server_default=""),
    Index("restocks_due", "next_attempt_at", postgresql_where=text("next_attempt_at IS NOT NULL")),
)

rule_sets_table = Table(
    "approval_rule_sets",
    metadata,
    Column("version", Integer, primary_key=True),
    # draft, active, retired (`RuleSetStatus`)
    Column("status", String(16), nullable=False),
    # the rule set as operations wrote it (`approval.parse_rule_set` reads it)
    Column("document", JSONB, nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    Column("created_by", String(128), nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("activated_at", TZ),
    Index(
        "approval_rule_sets_one_active",
        "status",
        unique=True,
        postgresql_where=text(f"status = '{RuleSetStatus.ACTIVE.value}'"),
    ),
)
