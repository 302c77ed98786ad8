"""Orders' tables and repositories (SQLAlchemy Core on asyncpg).

Personal data is sealed here, on the way into the database, and opened on the way out: the rest of
the service only ever sees the plain `Address`, and the tables only ever hold ciphertext.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
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
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, aggregate_order_by, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kit.schema import outbox_table
from services.kit.sealing import KeyRing
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.masking import normalise_phone
from services.orders.domain.model import (
    Address,
    Channel,
    Discount,
    DiscountKind,
    Order,
    OrderLine,
    Priority,
    StatusChanged,
)
from services.orders.domain.money import LineShare
from services.orders.domain.timeline import Entry

metadata = MetaData()
TZ = DateTime(timezone=True)

orders_table = Table(
    "orders",
    metadata,
    Column("order_id", String(36), primary_key=True),
    Column("channel", String(16), nullable=False),
    Column("channel_order_id", String(64), nullable=False),
    Column("buyer_id", String(128), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(32), nullable=False),
    Column("shipping_fee_minor", BigInteger, nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("shipping_address", JSONB, nullable=False),
    Column("placed_at", TZ, nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
    Column("discounts", JSONB, nullable=False),
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
    Column("step", String(16)),
    Column("step_due_at", TZ),
    Column("step_attempts", Integer, nullable=False),
    Column("step_error", Text, nullable=False),
    Column("step_dead", Boolean, nullable=False),
    Column("step_failed_at", TZ),
    Column("step_paused_since", TZ),
    Column("step_pauses", Integer, nullable=False),
    Column("step_waiting_for", String(16)),
    Column("traceparent", String(64), nullable=False),
    Column("step_traceparent", String(64), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("refused_decision_id", String(64), nullable=False),
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

drift_reports_table = Table(
    "drift_reports",
    metadata,
    Column("report_id", String(36), primary_key=True),
    Column("generated_at", TZ, nullable=False),
    Column("drift_count", Integer, nullable=False),
    Column("per_source", JSONB, nullable=False),
    Column("drifts", JSONB, nullable=False),
)

_PII_FIELDS = ("recipient_name", "phone", "detail", "postal_code")
_PLAIN_ADDRESS_FIELDS = ("country_code", "province", "city", "district")
_BUCKETS = ("goods", "promotion", "coupon", "points", "shipping")

# One round trip for a whole batch of new orders: the orders, their lines, timelines, raw payloads
# and events. The unique constraint on (channel, channel order id) decides inside the statement
# which are new; children join on the orders actually inserted, so a repeat writes nothing.
_INSERT_NEW = text(
    """
WITH o AS (
  INSERT INTO orders (order_id, channel, channel_order_id, buyer_id, currency, status,
    shipping_fee_minor, total_minor, shipping_address, placed_at, created_at, updated_at, discounts,
    channel_status, channel_modified_at, paid_at, buyer_note, status_reason, status_changed_at,
    warehouses, waybill_no, version, pii_sealed, phone_hash, stock_state, step, step_due_at,
    step_attempts, step_error, step_dead, step_pauses, traceparent, step_traceparent, priority,
    refused_decision_id)
  SELECT x.order_id, x.channel, x.channel_order_id, x.buyer_id, x.currency, x.status,
    x.shipping_fee_minor, x.total_minor, x.shipping_address, x.placed_at, x.created_at, x.created_at,
    x.discounts, x.channel_status, x.channel_modified_at, x.paid_at, x.buyer_note, x.status_reason,
    x.created_at, '{}', '', 1, x.pii_sealed, x.phone_hash, 'NONE', x.step,
    CASE WHEN x.step IS NULL THEN NULL ELSE x.created_at END, 0, '', false, 0, x.traceparent,
    x.traceparent, x.priority, ''
  FROM jsonb_to_recordset(CAST(:orders AS jsonb)) AS x(order_id text, channel text, channel_order_id text,
    buyer_id text, currency text, status text, shipping_fee_minor bigint, total_minor bigint,
    shipping_address jsonb, placed_at timestamptz, created_at timestamptz, discounts jsonb,
    channel_status text, channel_modified_at timestamptz, paid_at timestamptz, buyer_note text,
    status_reason text, pii_sealed text, phone_hash text, step text, traceparent text, priority text)
  ON CONFLICT ON CONSTRAINT orders_channel_order_unique DO NOTHING
  RETURNING order_id
), l AS (
  INSERT INTO order_lines (order_id, line_no, sku, title, quantity, unit_price_minor, discount_minor,
    goods_minor, promotion_minor, coupon_minor, points_minor, shipping_minor, paid_minor)
  SELECT x.order_id, x.line_no, x.sku, x.title, x.quantity, x.unit_price_minor, x.discount_minor,
    x.goods_minor, x.promotion_minor, x.coupon_minor, x.points_minor, x.shipping_minor, x.paid_minor
  FROM jsonb_to_recordset(CAST(:lines AS jsonb)) AS x(order_id text, line_no int, sku text, title text,
    quantity int, unit_price_minor bigint, discount_minor bigint, goods_minor bigint, promotion_minor bigint,
    coupon_minor bigint, points_minor bigint, shipping_minor bigint, paid_minor bigint)
  JOIN o ON o.order_id = x.order_id
), t AS (
  INSERT INTO order_timeline (order_id, at, kind, actor_type, actor_id, source, from_status, to_status,
    detail, trace_id, linked_trace_id)
  SELECT x.order_id, x.at, x.kind, x.actor_type, x.actor_id, x.source, x.from_status, x.to_status,
    x.detail, x.trace_id, x.linked_trace_id
  FROM jsonb_to_recordset(CAST(:timeline AS jsonb)) AS x(order_id text, at timestamptz, kind text,
    actor_type text, actor_id text, source text, from_status text, to_status text, detail text,
    trace_id text, linked_trace_id text, position int)
  JOIN o ON o.order_id = x.order_id
  ORDER BY x.position
), p AS (
  INSERT INTO channel_payloads (order_id, sealed, size_bytes, received_at)
  SELECT x.order_id, x.sealed, x.size_bytes, x.received_at
  FROM jsonb_to_recordset(CAST(:payloads AS jsonb)) AS x(order_id text, sealed text, size_bytes int,
    received_at timestamptz)
  JOIN o ON o.order_id = x.order_id
), e AS (
  INSERT INTO outbox (event_id, subject, event_type, payload, traceparent, occurred_at)
  SELECT x.event_id, x.subject, x.event_type, decode(x.payload, 'base64'), x.traceparent, x.occurred_at
  FROM jsonb_to_recordset(CAST(:events AS jsonb)) AS x(order_id text, event_id text, subject text,
    event_type text, payload text, traceparent text, occurred_at timestamptz, position int)
  JOIN o ON o.order_id = x.order_id
  ORDER BY x.position
)
SELECT order_id FROM o
"""
)


# Writing back a changed order: the row (if nobody changed it since it was read), its timeline and
# its events, in one round trip.
_SAVE = text(
    """
WITH u AS (
  UPDATE orders SET status = :status, shipping_address = CAST(:shipping_address AS jsonb),
    pii_sealed = :pii_sealed, phone_hash = :phone_hash, updated_at = :updated_at,
    channel_status = :channel_status, channel_modified_at = :channel_modified_at, paid_at = :paid_at,
    buyer_note = :buyer_note, resume_status = :resume_status, status_reason = :status_reason,
    status_changed_at = COALESCE(CAST(:status_changed_at AS timestamptz), status_changed_at),
    warehouses = CAST(:warehouses AS varchar(64)[]), waybill_no = :waybill_no,
    scanned_out_at = :scanned_out_at, version = version + 1, stock_state = :stock_state,
    refused_decision_id = :refused_decision_id,
    step = CASE WHEN :set_step THEN CAST(:step AS varchar(16)) ELSE step END,
    step_due_at = CASE WHEN :set_step THEN CAST(:step_due_at AS timestamptz) ELSE step_due_at END,
    step_attempts = CASE WHEN :set_step THEN 0 ELSE step_attempts END,
    step_error = CASE WHEN :set_step THEN '' ELSE step_error END,
    step_dead = CASE WHEN :set_step THEN false ELSE step_dead END,
    step_paused_since = CASE WHEN :set_step THEN NULL ELSE step_paused_since END,
    step_pauses = CASE WHEN :set_step THEN 0 ELSE step_pauses END,
    step_waiting_for = CASE WHEN :set_step THEN NULL ELSE step_waiting_for END,
    step_traceparent = CASE WHEN :set_step THEN :step_traceparent ELSE step_traceparent END
  WHERE order_id = :order_id AND version = :expected_version
  RETURNING order_id
), t AS (
  INSERT INTO order_timeline (order_id, at, kind, actor_type, actor_id, source, from_status, to_status,
    detail, trace_id, linked_trace_id)
  SELECT u.order_id, x.at, x.kind, x.actor_type, x.actor_id, x.source, x.from_status, x.to_status,
    x.detail, x.trace_id, x.linked_trace_id
  FROM u, jsonb_to_recordset(CAST(:timeline AS jsonb)) AS x(at timestamptz, kind text, actor_type text,
    actor_id text, source text, from_status text, to_status text, detail text, trace_id text,
    linked_trace_id text, position int)
  ORDER BY x.position
), e AS (
  INSERT INTO outbox (event_id, subject, event_type, payload, traceparent, occurred_at)
  SELECT x.event_id, x.subject, x.event_type, decode(x.payload, 'base64'), x.traceparent, x.occurred_at
  FROM u, jsonb_to_recordset(CAST(:events AS jsonb)) AS x(event_id text, subject text, event_type text,
    payload text, traceparent text, occurred_at timestamptz, position int)
  ORDER BY x.position
)
SELECT order_id FROM u
"""
)


@dataclass
class Stored:
    """An order with the process manager's bookkeeping around it."""

    order: Order
    stock_state: str = "NONE"
    step: str | None = None
    step_attempts: int = 0
    step_dead: bool = False
    step_pauses: int = 0
    step_paused_since: datetime | None = None
    traceparent: str = ""  # the ingest's trace, continued by every step
    step_traceparent: str = ""  # the trace that made the current step due (a payment, a release, …)
    # the routing decision whose reservation inventory refused on the last attempt (its stock went to
    # another order): the next plan asks routing to decide again instead of repeating it; "" otherwise
    refused_decision_id: str = ""


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def dumps(value: object) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"), ensure_ascii=False)


def timeline_rows(
    order_id: str, entries: list[Entry], at: datetime, trace_id: str, linked_trace_id: str = ""
) -> list[dict[str, Any]]:
    return [
        {
            "order_id": order_id,
            "at": at,
            "kind": entry.kind,
            "actor_type": entry.actor.type.value,
            "actor_id": entry.actor.id[:128],
            "source": entry.source[:64],
            "from_status": entry.from_status.value if entry.from_status else None,
            "to_status": entry.to_status.value if entry.to_status else None,
            "detail": entry.detail,
            "trace_id": trace_id,
            "linked_trace_id": linked_trace_id if linked_trace_id != trace_id else "",
        }
        for entry in entries
    ]


class OrderRepository:
    def __init__(self, conn: AsyncConnection, keys: KeyRing) -> None:
        self.conn = conn
        self.keys = keys

    # ---- writing ------------------------------------------------------------------------------

    async def add_new(
        self,
        new: list[tuple[Order, list[dict[str, Any]], list[dict[str, Any]], str | None, bytes]],
        traceparent: str = "",
    ) -> set[str]:
        """Insert (order, timeline rows, event rows, first step, raw payload) for each new order;
        returns the ids actually inserted (the others' channel orders were already stored).
        `traceparent` is the ingest's trace: every process-manager step of these orders continues it."""
        orders: list[dict[str, Any]] = []
        lines: list[dict[str, Any]] = []
        timeline: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        payloads: list[dict[str, Any]] = []
        for order, order_timeline, order_events, step, raw in new:
            plain, sealed, phone_hash = self._seal_address(order.order_id, order.shipping_address)
            orders.append(
                {
                    "order_id": order.order_id,
                    "channel": order.channel.value,
                    "channel_order_id": order.channel_order_id,
                    "buyer_id": order.buyer_id,
                    "currency": order.currency,
                    "status": order.status.value,
                    "shipping_fee_minor": order.shipping_fee_minor,
                    "total_minor": order.payable_minor,
                    "shipping_address": plain,
                    "placed_at": order.placed_at,
                    "created_at": order.created_at,
                    "discounts": _discounts_json(order.discounts),
                    "channel_status": order.channel_status,
                    "channel_modified_at": order.channel_modified_at,
                    "paid_at": order.paid_at,
                    "buyer_note": order.buyer_note,
                    "status_reason": order.status_reason,
                    "pii_sealed": sealed,
                    "phone_hash": phone_hash,
                    "step": step,
                    "traceparent": traceparent,
                    "priority": order.priority.value,
                }
            )
            lines += _lines_json(order)
            # positions keep each order's history and events in the order they happened
            timeline += [{**row, "position": len(timeline) + n} for n, row in enumerate(order_timeline)]
            events += [
                {**event, "payload": base64.b64encode(event["payload"]).decode(), "position": len(events) + n}
                for n, event in enumerate(order_events)
            ]
            if raw:
                payloads.append(
                    {
                        "order_id": order.order_id,
                        "sealed": self.keys.seal(raw, order.order_id),
                        "size_bytes": len(raw),
                        "received_at": order.created_at,
                    }
                )
        rows = await self.conn.execute(
            _INSERT_NEW,
            {
                "orders": dumps(orders),
                "lines": dumps(lines),
                "timeline": dumps(timeline),
                "payloads": dumps(payloads),
                "events": dumps(events),
            },
        )
        return {row.order_id for row in rows}

    async def save(
        self,
        stored: Stored,
        expected_version: int,
        timeline: list[dict[str, Any]],
        events: list[dict[str, Any]],
        step: tuple[str | None, datetime | None] | None = None,
        step_traceparent: str = "",
    ) -> None:
        """Write back a loaded order with its timeline and events in one statement; `step` (next
        step, due time) replaces the process manager's step. The version check refuses a write
        based on a stale read."""
        order = stored.order
        plain, sealed, phone_hash = self._seal_address(order.order_id, order.shipping_address)
        next_step, due_at = step if step is not None else (None, None)
        row = (
            await self.conn.execute(
                _SAVE,
                {
                    "order_id": order.order_id,
                    "expected_version": expected_version,
                    "status": order.status.value,
                    "shipping_address": dumps(plain),
                    "pii_sealed": sealed,
                    "phone_hash": phone_hash,
                    "updated_at": order.updated_at,
                    "channel_status": order.channel_status,
                    "channel_modified_at": order.channel_modified_at,
                    "paid_at": order.paid_at,
                    "buyer_note": order.buyer_note,
                    "resume_status": order.resume_status.value if order.resume_status else None,
                    "status_reason": order.status_reason,
                    "status_changed_at": _changed_at(order),
                    "warehouses": list(order.warehouses),
                    "waybill_no": order.waybill_no,
                    "scanned_out_at": order.scanned_out_at,
                    "stock_state": stored.stock_state,
                    "refused_decision_id": stored.refused_decision_id,
                    "set_step": step is not None,
                    "step": next_step,
                    "step_due_at": due_at,
                    "step_traceparent": step_traceparent[:64],
                    "timeline": dumps([{**row, "position": n} for n, row in enumerate(timeline)]),
                    "events": dumps(
                        [
                            {**event, "payload": base64.b64encode(event["payload"]).decode(), "position": n}
                            for n, event in enumerate(events)
                        ]
                    ),
                },
            )
        ).first()
        if row is None:
            raise ConcurrentChange(order.order_id)
        order.version = expected_version + 1
        if step is not None:
            stored.step = next_step

    async def add_timeline(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.conn.execute(timeline_table.insert(), rows)

    async def add_events(self, rows: list[dict[str, Any]]) -> None:
        """Outbox rows as `handlers.history` builds them (their order id is not an outbox column)."""
        if rows:
            await self.conn.execute(
                outbox_table.insert(), [{k: v for k, v in row.items() if k != "order_id"} for row in rows]
            )

    async def step_failed(
        self, order_id: str, error: str, due_at: datetime | None, dead: bool, now: datetime
    ) -> None:
        await self.conn.execute(
            update(orders_table)
            .where(orders_table.c.order_id == order_id)
            .values(step_error=error[:2000], step_due_at=due_at, step_dead=dead, step_failed_at=now)
        )

    async def step_paused(
        self, order_id: str, peer: str, error: str, due_at: datetime, now: datetime
    ) -> None:
        """The step met an outage: it sleeps until `due_at` and gets back the attempt its claim took."""
        await self.conn.execute(
            update(orders_table)
            .where(orders_table.c.order_id == order_id)
            .values(
                step_error=error[:2000],
                step_due_at=due_at,
                step_attempts=func.greatest(orders_table.c.step_attempts - 1, 0),
                step_pauses=orders_table.c.step_pauses + 1,
                step_paused_since=func.coalesce(orders_table.c.step_paused_since, now),
                step_waiting_for=peer[:16],
            )
        )

    async def wake_paused(self, peers: list[str], now: datetime) -> int:
        """These peers answered again: every step sleeping through their outage is due now (a step
        being run has no `step_waiting_for`, so it is never claimed twice)."""
        result = await self.conn.execute(
            update(orders_table)
            .where(
                orders_table.c.step_waiting_for.in_(peers),
                orders_table.c.step.is_not(None),
                orders_table.c.step_dead.is_(False),
                orders_table.c.step_due_at > now,
            )
            .values(step_due_at=now)
        )
        return int(result.rowcount or 0)

    async def claim_due_steps(self, now: datetime, lease_until: datetime, limit: int) -> list[Stored]:
        """Take due steps for this worker until the lease ends, with the orders themselves; a worker
        that dies mid-step loses its lease and any worker picks the step up again (the recovery of
        a crash between two steps)."""
        rows = await self.conn.execute(_CLAIM, {"now": now, "lease_until": lease_until, "limit": limit})
        return [self.stored_from_row(row._mapping) for row in rows]

    # ---- orders nothing else would move -------------------------------------------------------

    async def held_for_stock(self, sku: str, limit: int) -> list[Stored]:
        """Orders held for stock that want `sku`, locked (in id order, so two consumers cannot deadlock)."""
        wants = (
            select(order_lines_table.c.order_id)
            .where(order_lines_table.c.order_id == orders_table.c.order_id, order_lines_table.c.sku == sku)
            .exists()
        )
        query = (
            _with_lines(select(orders_table))
            .where(_HELD_FOR_STOCK, wants)
            .order_by(orders_table.c.order_id)
            .limit(limit)
            .with_for_update(of=orders_table)
        )
        return [self.stored_from_row(row._mapping) for row in await self.conn.execute(query)]

    async def held_for_stock_since(self, before: datetime, limit: int) -> list[Stored]:
        """Orders held for stock since before `before` (skipping any another transaction holds)."""
        query = (
            _with_lines(select(orders_table))
            .where(_HELD_FOR_STOCK, orders_table.c.updated_at < before)
            .order_by(orders_table.c.updated_at)
            .limit(limit)
            .with_for_update(of=orders_table, skip_locked=True)
        )
        return [self.stored_from_row(row._mapping) for row in await self.conn.execute(query)]

    async def unowned(self, before: datetime, limit: int) -> list[Stored]:
        """Orders in a state that needs a process-manager step, with no step scheduled and none dead:
        nothing would ever move them."""
        o = orders_table.c
        needs_step = or_(
            and_(
                o.status.in_([OrderStatus.PENDING_PAYMENT.value, OrderStatus.PAID.value]),
                o.stock_state.in_(["NONE", "RELEASED"]),
            ),
            and_(o.status == OrderStatus.PAID.value, o.stock_state == "RESERVED"),
            and_(o.status == OrderStatus.CANCELLED.value, o.stock_state.in_(["RESERVED", "COMMITTED"])),
        )
        query = (
            _with_lines(select(orders_table))
            .where(needs_step, o.step.is_(None), o.step_dead.is_(False), o.updated_at < before)
            .order_by(o.updated_at)
            .limit(limit)
            .with_for_update(of=orders_table, skip_locked=True)
        )
        return [self.stored_from_row(row._mapping) for row in await self.conn.execute(query)]

    async def count_not_taken(self, before: datetime) -> int:
        """Steps due since before `before` that no worker claimed (a claimed step's due time is its lease)."""
        o = orders_table.c
        query = select(func.count()).where(
            o.step.is_not(None), o.step_dead.is_(False), o.step_waiting_for.is_(None), o.step_due_at < before
        )
        return int(await self.conn.scalar(query) or 0)

    # ---- reading ------------------------------------------------------------------------------

    async def get(self, order_id: str, lock: bool = False) -> Stored | None:
        query = _BY_ID_LOCKED if lock else _BY_ID
        row = (await self.conn.execute(query, {"order_id": order_id})).first()
        return None if row is None else self.stored_from_row(row._mapping)

    async def get_by_channel(
        self, channel: Channel, channel_order_id: str, lock: bool = False
    ) -> Stored | None:
        query = _BY_CHANNEL_LOCKED if lock else _BY_CHANNEL
        row = (
            await self.conn.execute(query, {"channel": channel.value, "channel_order_id": channel_order_id})
        ).first()
        return None if row is None else self.stored_from_row(row._mapping)

    async def list(self, where: list[Any], after: tuple[datetime, str] | None, limit: int) -> list[Stored]:
        query = _with_lines(select(orders_table)).where(*where)
        if after is not None:
            created_at, order_id = after
            query = query.where(
                or_(
                    orders_table.c.created_at < created_at,
                    and_(orders_table.c.created_at == created_at, orders_table.c.order_id < order_id),
                )
            )
        query = query.order_by(orders_table.c.created_at.desc(), orders_table.c.order_id.desc()).limit(limit)
        return [self.stored_from_row(row._mapping) for row in await self.conn.execute(query)]

    async def raw_payload(self, order_id: str) -> bytes | None:
        sealed = (
            await self.conn.execute(
                select(channel_payloads_table.c.sealed).where(channel_payloads_table.c.order_id == order_id)
            )
        ).scalar()
        return None if sealed is None else self.keys.open(sealed, order_id)

    def phone_hash(self, phone: str) -> str:
        return self.keys.lookup_hash(normalise_phone(phone))

    def stored_from_row(self, row: Any) -> Stored:
        order = Order(
            order_id=row["order_id"],
            channel=Channel(row["channel"]),
            channel_order_id=row["channel_order_id"],
            buyer_id=row["buyer_id"],
            currency=row["currency"],
            lines=tuple(
                OrderLine(
                    line["sku"],
                    line["title"],
                    line["quantity"],
                    line["unit_price_minor"],
                    line["discount_minor"],
                )
                for line in row["lines"]
            ),
            shares=tuple(
                LineShare(*(line[f"{bucket}_minor"] for bucket in _BUCKETS)) for line in row["lines"]
            ),
            discounts=tuple(
                Discount(DiscountKind(item["kind"]), item["amount_minor"], item.get("reference", ""))
                for item in row["discounts"]
            ),
            shipping_address=self._open_address(row["order_id"], row["shipping_address"], row["pii_sealed"]),
            shipping_fee_minor=row["shipping_fee_minor"],
            placed_at=row["placed_at"],
            status=OrderStatus(row["status"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            channel_status=row["channel_status"],
            channel_modified_at=row["channel_modified_at"],
            paid_at=row["paid_at"],
            buyer_note=row["buyer_note"],
            resume_status=OrderStatus(row["resume_status"]) if row["resume_status"] else None,
            status_reason=row["status_reason"],
            warehouses=tuple(row["warehouses"]),
            waybill_no=row["waybill_no"],
            scanned_out_at=row["scanned_out_at"],
            version=row["version"],
            priority=Priority(row["priority"]),
        )
        return Stored(
            order=order,
            stock_state=row["stock_state"],
            refused_decision_id=row["refused_decision_id"],
            step=None if row["step_dead"] else row["step"],
            step_attempts=row["step_attempts"],
            step_dead=row["step_dead"],
            step_pauses=row["step_pauses"],
            step_paused_since=row["step_paused_since"],
            traceparent=row["traceparent"],
            step_traceparent=row["step_traceparent"],
        )

    # ---- personal data ------------------------------------------------------------------------

    def _seal_address(self, order_id: str, address: Address) -> tuple[dict[str, str], str, str]:
        plain = {name: getattr(address, name) for name in _PLAIN_ADDRESS_FIELDS}
        private = {name: getattr(address, name) for name in _PII_FIELDS}
        sealed = self.keys.seal(dumps(private).encode(), order_id)
        return plain, sealed, self.phone_hash(address.phone)

    def _open_address(self, order_id: str, plain: dict[str, str], sealed: str | None) -> Address:
        if sealed is None:  # written before sealing existed; the re-seal job moves it
            return Address(**plain)
        private = json.loads(self.keys.open(sealed, order_id))
        return Address(**plain, **private)


class ConcurrentChange(Exception):
    """Someone else changed the order between our read and our write; read again and retry."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} changed concurrently")
        self.order_id = order_id


def _changed_at(order: Order) -> datetime | None:
    return order.updated_at if any(isinstance(e, StatusChanged) for e in order.events) else None


_LINE_FIELDS = (
    "sku",
    "title",
    "quantity",
    "unit_price_minor",
    "discount_minor",
    "goods_minor",
    "promotion_minor",
    "coupon_minor",
    "points_minor",
    "shipping_minor",
)


def _lines_of_order() -> Any:
    """The order's lines as one JSON array: one statement per read, not 1 + lines."""
    line = func.jsonb_build_object(
        *[item for name in _LINE_FIELDS for item in (name, order_lines_table.c[name])]
    )
    return (
        select(
            func.coalesce(
                func.jsonb_agg(aggregate_order_by(line, order_lines_table.c.line_no)), text("'[]'::jsonb")
            )
        )
        .where(order_lines_table.c.order_id == orders_table.c.order_id)
        .scalar_subquery()
        .label("lines")
    )


_LINES = _lines_of_order()


def _with_lines(query: Any) -> Any:
    return query.add_columns(_LINES)


# waiting for stock: held unpaid (the reservation was refused, or routing parked it as out of stock),
# or frozen paid with no stock left; the reasons are the ones the process manager writes
_HELD_FOR_STOCK = or_(
    and_(
        orders_table.c.status == OrderStatus.ON_HOLD.value,
        orders_table.c.status_reason.like("unroutable: out%"),
    ),
    and_(
        orders_table.c.status == OrderStatus.EXCEPTION.value,
        orders_table.c.status_reason.like("paid, out of stock (%"),
    ),
)


def dead_steps_where(reason_contains: str, failed_from: datetime | None, failed_to: datetime | None) -> Any:
    o = orders_table.c
    failed_at = func.coalesce(o.step_failed_at, o.updated_at)
    conditions: list[Any] = [o.step_dead.is_(True)]
    if reason_contains:
        # a plain substring, whatever characters it holds
        conditions.append(func.strpos(func.lower(o.step_error), reason_contains.lower()) > 0)
    if failed_from is not None:
        conditions.append(failed_at >= failed_from)
    if failed_to is not None:
        conditions.append(failed_at < failed_to)
    return and_(*conditions)


async def count_dead_steps(conn: AsyncConnection, where: Any) -> int:
    return int(await conn.scalar(select(func.count()).select_from(orders_table).where(where)) or 0)


async def replay_dead_steps_where(conn: AsyncConnection, where: Any, limit: int, now: datetime) -> list[str]:
    """Make up to `limit` matching dead steps due now with fresh attempts, oldest failure first."""
    chosen = (
        select(orders_table.c.order_id)
        .where(where)
        .order_by(orders_table.c.step_failed_at, orders_table.c.order_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    rows = await conn.execute(
        update(orders_table)
        .where(orders_table.c.order_id.in_(chosen))
        .values(
            step_dead=False,
            step_attempts=0,
            step_due_at=now,
            step_pauses=0,
            step_paused_since=None,
            step_waiting_for=None,
        )
        .returning(orders_table.c.order_id)
    )
    return [row.order_id for row in rows]


_BY_ID = _with_lines(select(orders_table)).where(orders_table.c.order_id == bindparam("order_id"))
_BY_ID_LOCKED = _BY_ID.with_for_update(of=orders_table)
_BY_CHANNEL = _with_lines(select(orders_table)).where(
    orders_table.c.channel == bindparam("channel"),
    orders_table.c.channel_order_id == bindparam("channel_order_id"),
)
_BY_CHANNEL_LOCKED = _BY_CHANNEL.with_for_update(of=orders_table)
_DUE = (
    select(orders_table.c.order_id)
    .where(
        orders_table.c.step.is_not(None),
        orders_table.c.step_dead.is_(False),
        orders_table.c.step_due_at <= bindparam("now"),
    )
    .order_by(orders_table.c.step_due_at)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
    .scalar_subquery()
)
_CLAIM = (
    update(orders_table)
    .where(orders_table.c.order_id.in_(_DUE))
    .values(
        step_due_at=bindparam("lease_until"),
        step_attempts=orders_table.c.step_attempts + 1,
        step_waiting_for=None,
    )
    .returning(*orders_table.c, _LINES)
)


def _lines_json(order: Order) -> list[dict[str, Any]]:
    return [
        {
            "order_id": order.order_id,
            "line_no": number,
            "sku": line.sku,
            "title": line.title,
            "quantity": line.quantity,
            "unit_price_minor": line.unit_price_minor,
            "discount_minor": line.discount_minor,
            "goods_minor": share.goods_minor,
            "promotion_minor": share.promotion_minor,
            "coupon_minor": share.coupon_minor,
            "points_minor": share.points_minor,
            "shipping_minor": share.shipping_minor,
            "paid_minor": share.paid_minor,
        }
        for number, (line, share) in enumerate(zip(order.lines, order.shares, strict=True))
    ]


def _discounts_json(discounts: tuple[Discount, ...]) -> list[dict[str, Any]]:
    return [
        {"kind": discount.kind.value, "amount_minor": discount.amount_minor, "reference": discount.reference}
        for discount in discounts
    ]


async def insert_quarantine(conn: AsyncConnection, row: dict[str, Any]) -> None:
    await conn.execute(insert(quarantine_table).values(**row))
