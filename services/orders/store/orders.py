"""The order repository: orders with their lines, timeline and events, and the process manager's steps."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Text, and_, bindparam, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kit import tracing
from services.kit.schema import outbox_table
from services.kit.sealing import KeyRing
from services.orders.domain import risk
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import Address, Channel, HoldCause, Order
from services.orders.domain.orchestration import SHIPPABLE, DeadSteps, StockState, Stored
from services.orders.domain.timeline import Entry
from services.orders.store import sql
from services.orders.store.risk import EVALUATION_COLUMNS, evaluation_rows
from services.orders.store.rows import (
    LINE_READ,
    PII_FIELDS,
    dumps,
    line_rows,
    order_row,
    seal_private,
    stored_from_row,
    timeline_rows,
)
from services.orders.store.tables import (
    STEP,
    channel_payloads_table,
    order_lines_table,
    orders_table,
    risk_evaluations_table,
    timeline_table,
)

# an order's domain events → their outbox rows (the unit of work's one path for integration events)
OutboxRows = Callable[[Order, Sequence[object]], list[dict[str, Any]]]

_ALL = [column.name for column in orders_table.c]
_SAVED = [column.name for column in orders_table.c if column.info == {}]
_SCHEDULED = [column.name for column in orders_table.c if column.info in ({}, STEP)]
_TIMELINE = [column.name for column in timeline_table.c if column.name != "sequence"]
_EVENTS = ["event_id", "subject", "event_type", "payload", "traceparent", "occurred_at"]


def _history(parent: str) -> str:
    """The CTEs that write the timeline and the events of the orders `parent` wrote."""
    timeline = sql.insert_from(timeline_table, _TIMELINE, "timeline", join=parent, ordered=True)
    events = sql.insert_from(
        outbox_table, _EVENTS, "events", join=parent, extra=["order_id text"], ordered=True
    )
    return f"t AS ({timeline}), e AS ({events})"


# One round trip for a whole batch of new orders: the orders, their lines, timelines, raw payloads
# and events. The unique constraint on (channel, channel order id) decides inside the statement
# which are new; children join on the orders actually inserted, so a repeat writes nothing.
_LINE_COLUMNS = [column.name for column in order_lines_table.c]
_PAYLOAD_COLUMNS = [column.name for column in channel_payloads_table.c]
_INSERT_NEW = text(
    f"WITH o AS ({sql.insert_from(orders_table, _ALL, 'orders')} "
    "ON CONFLICT ON CONSTRAINT orders_channel_order_unique DO NOTHING RETURNING order_id), "
    f"l AS ({sql.insert_from(order_lines_table, _LINE_COLUMNS, 'lines', join='o')}), "
    f"p AS ({sql.insert_from(channel_payloads_table, _PAYLOAD_COLUMNS, 'payloads', join='o')}), "
    # the risk evaluations of the orders inserted (a repeat's is dropped with it)
    f"r AS ({sql.insert_from(risk_evaluations_table, EVALUATION_COLUMNS, 'risk', join='o')}), "
    f"{_history('o')} SELECT order_id FROM o"
)


def _save(names: list[str]) -> Any:
    """Writing back a changed order: the row (if nobody changed it since it was read), its timeline and
    its events, in one round trip."""
    where = "orders.order_id = :order_id AND orders.version = :expected_version"
    return text(
        f"WITH u AS ({sql.update_from(orders_table, names, 'order', where)} RETURNING orders.order_id), "
        f"{_history('u')} SELECT order_id FROM u"
    )


_SAVE = _save(_SAVED)
_SAVE_SCHEDULED = _save(_SCHEDULED)


_STORED_REFS = text(
    "SELECT o.channel, o.channel_order_id FROM orders o "
    "JOIN unnest(CAST(:channels AS text[]), CAST(:refs AS text[])) AS r(channel, ref) "
    "ON o.channel = r.channel AND o.channel_order_id = r.ref"
)


class ConcurrentChange(Exception):
    """Someone else changed the order between our read and our write; read again and retry."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} changed concurrently")
        self.order_id = order_id


class OrderRepository:
    def __init__(self, conn: AsyncConnection, keys: KeyRing, outbox_rows: OutboxRows) -> None:
        self.conn = conn
        self.keys = keys
        self._outbox_rows = outbox_rows
        # order id → (the address as read, its sealed personal data, its phone hash), for `save`
        self._seals: dict[str, tuple[Address, str, str]] = {}

    # ---- writing ------------------------------------------------------------------------------

    async def add_new(
        self,
        new: Sequence[tuple[Stored, Sequence[Entry], bytes]],
        at: datetime,
        evaluations: Sequence[tuple[str, risk.Evaluation, Mapping[str, Any]]] = (),
    ) -> set[str]:
        """Insert each (order, its timeline, its raw channel payload) with the order's recorded events;
        returns the ids actually inserted (the others' channel orders were already stored). Every
        process-manager step of these orders continues the current trace, or the order's own when it
        was given one (`stored.traceparent`)."""
        traceparent, trace_id = tracing.current_traceparent(), tracing.current_trace_id()
        orders: list[dict[str, Any]] = []
        lines: list[dict[str, Any]] = []
        timeline: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        payloads: list[dict[str, Any]] = []
        for stored, entries, raw in new:
            order = stored.order
            # an order that came with a trace of its own (single calls gathered into one batch) keeps it
            own = stored.traceparent
            stored.traceparent = stored.step_traceparent = own or traceparent
            orders.append(order_row(stored, self.keys))
            lines += line_rows(order)
            # positions keep each order's history and events in the order they happened
            timeline += _positioned(
                timeline_rows(order.order_id, entries, at, tracing.trace_id_of(own) if own else trace_id),
                len(timeline),
            )
            with tracing.attached(own):
                events += _positioned(self._events(order), len(events))
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
                "risk": dumps(evaluation_rows(self.keys, evaluations, at)),
            },
        )
        return {row.order_id for row in rows}

    async def save(
        self,
        stored: Stored,
        entries: Sequence[Entry],
        at: datetime,
        *,
        scheduled: bool = False,
        linked_trace_id: str = "",
    ) -> None:
        """Write back a loaded order with its timeline and recorded events in one statement;
        `scheduled` says its step was scheduled anew (`Stored.schedule`), by the current trace. The
        version check refuses a write based on a stale read."""
        order = stored.order
        if scheduled:
            stored.step_traceparent = tracing.current_traceparent()
        trace_id = tracing.current_trace_id()
        row = {**order_row(stored, self.keys, self._kept_seal(order)), "version": order.version + 1}
        timeline = timeline_rows(order.order_id, entries, at, trace_id, linked_trace_id)
        written = (
            await self.conn.execute(
                _SAVE_SCHEDULED if scheduled else _SAVE,
                {
                    "order_id": order.order_id,
                    "expected_version": order.version,
                    "order": dumps([row]),
                    "timeline": dumps(_positioned(timeline, 0)),
                    "events": dumps(_positioned(self._events(order), 0)),
                },
            )
        ).first()
        if written is None:
            raise ConcurrentChange(order.order_id)
        order.version += 1

    async def add_timeline(
        self, order_id: str, entries: Sequence[Entry], at: datetime, linked_trace_id: str = ""
    ) -> None:
        rows = timeline_rows(order_id, entries, at, tracing.current_trace_id(), linked_trace_id)
        if rows:
            await self.conn.execute(timeline_table.insert(), rows)

    def _events(self, order: Order) -> list[dict[str, Any]]:
        """The order's recorded events as outbox rows (they leave the aggregate with them)."""
        rows = self._outbox_rows(order, order.events)
        order.events.clear()
        return [
            {**row, "order_id": order.order_id, "payload": base64.b64encode(row["payload"]).decode()}
            for row in rows
        ]

    # ---- the process manager's steps -----------------------------------------------------------

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
        return [self._stored(row) for row in rows]

    async def replay_step(self, order_id: str, now: datetime) -> bool:
        """A dead-lettered step runs again now; False when the order has none."""
        result = await self.conn.execute(
            update(orders_table)
            .where(and_(orders_table.c.order_id == order_id, orders_table.c.step_dead.is_(True)))
            .values(**_REPLAYED, step_due_at=now)
            .returning(orders_table.c.order_id)
        )
        return result.first() is not None

    async def count_dead_steps(self, which: DeadSteps) -> int:
        where = _dead_steps_where(which)
        return int(await self.conn.scalar(select(func.count()).select_from(orders_table).where(where)) or 0)

    async def replay_dead_steps(self, which: DeadSteps, limit: int, now: datetime) -> list[str]:
        """Make up to `limit` matching dead steps due now with fresh attempts, oldest failure first."""
        chosen = (
            select(orders_table.c.order_id)
            .where(_dead_steps_where(which))
            .order_by(orders_table.c.step_failed_at, orders_table.c.order_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        rows = await self.conn.execute(
            update(orders_table)
            .where(orders_table.c.order_id.in_(chosen))
            .values(**_REPLAYED, step_due_at=now)
            .returning(orders_table.c.order_id)
        )
        return [row.order_id for row in rows]

    # ---- orders nothing else would move -------------------------------------------------------

    async def held_for_stock(self, sku: str, limit: int) -> list[Stored]:
        """Orders held for stock that want `sku`, locked (in id order, so two consumers cannot deadlock)."""
        wants = (
            select(order_lines_table.c.order_id)
            .where(order_lines_table.c.order_id == orders_table.c.order_id, order_lines_table.c.sku == sku)
            .exists()
        )
        query = (
            with_lines(select(orders_table))
            .where(_HELD_FOR_STOCK, wants)
            .order_by(orders_table.c.order_id)
            .limit(limit)
            .with_for_update(of=orders_table)
        )
        return [self._stored(row) for row in await self.conn.execute(query)]

    async def held_for_stock_since(self, before: datetime, limit: int) -> list[Stored]:
        """Orders held for stock since before `before` (skipping any another transaction holds)."""
        query = (
            with_lines(select(orders_table))
            .where(_HELD_FOR_STOCK, orders_table.c.updated_at < before)
            .order_by(orders_table.c.updated_at)
            .limit(limit)
            .with_for_update(of=orders_table, skip_locked=True)
        )
        return [self._stored(row) for row in await self.conn.execute(query)]

    async def unowned(self, before: datetime, limit: int) -> list[Stored]:
        """Orders in a state that needs a process-manager step, with no step scheduled and none dead:
        nothing would ever move them."""
        o = orders_table.c
        none, released = StockState.NONE.value, StockState.RELEASED.value
        reserved, committed = StockState.RESERVED.value, StockState.COMMITTED.value
        needs_step = or_(
            and_(
                o.status.in_([OrderStatus.PENDING_PAYMENT.value, OrderStatus.PAID.value]),
                o.stock_state.in_([none, released]),
            ),
            and_(o.status == OrderStatus.PAID.value, o.stock_state == reserved),
            and_(
                o.status == OrderStatus.CANCELLED.value,
                or_(o.stock_state.in_([reserved, committed]), o.shipping["in_warehouse"].as_boolean()),
            ),
            # allocated with routing's parcels kept, and logistics' shipments not known yet
            and_(
                o.status.in_([status.value for status in SHIPPABLE]),
                func.jsonb_typeof(o.shipping["plan"]) == "object",
                o.shipping["listed"].as_boolean().is_(False),
            ),
        )
        query = (
            with_lines(select(orders_table))
            .where(needs_step, o.step.is_(None), o.step_dead.is_(False), o.updated_at < before)
            .order_by(o.updated_at)
            .limit(limit)
            .with_for_update(of=orders_table, skip_locked=True)
        )
        return [self._stored(row) for row in await self.conn.execute(query)]

    async def count_not_taken(self, before: datetime) -> int:
        """Steps due since before `before` that no worker claimed (a claimed step's due time is its lease)."""
        o = orders_table.c
        query = select(func.count()).where(
            o.step.is_not(None), o.step_dead.is_(False), o.step_waiting_for.is_(None), o.step_due_at < before
        )
        return int(await self.conn.scalar(query) or 0)

    async def sla_due(self, now: datetime, limit: int) -> list[Stored]:
        """Orders whose SLA timer is due (by its index: only those), locked, skipping any another
        transaction holds; the most overdue first."""
        o = orders_table.c
        query = (
            with_lines(select(orders_table))
            .where(o.sla_due_at.is_not(None), o.sla_due_at <= now)
            .order_by(o.sla_due_at)
            .limit(limit)
            .with_for_update(of=orders_table, skip_locked=True)
        )
        return [self._stored(row) for row in await self.conn.execute(query)]

    # ---- reading ------------------------------------------------------------------------------

    async def get(self, order_id: str, lock: bool = False) -> Stored | None:
        query = _BY_ID_LOCKED if lock else _BY_ID
        row = (await self.conn.execute(query, {"order_id": order_id})).first()
        return None if row is None else self._stored(row)

    async def get_many_locked(self, order_ids: Sequence[str]) -> dict[str, Stored]:
        """The orders (those that exist), each row locked, in order-id order (two batches that share
        orders lock them in the same order)."""
        rows = (await self.conn.execute(_BY_IDS_LOCKED, {"order_ids": sorted(set(order_ids))})).all()
        return {row.order_id: self._stored(row) for row in rows}

    async def stored_refs(self, refs: Sequence[tuple[Channel, str]]) -> set[tuple[Channel, str]]:
        """Which of these channel orders are stored already (one indexed read, nothing locked)."""
        if not refs:
            return set()
        rows = await self.conn.execute(
            _STORED_REFS,
            {"channels": [c.value for c, _ in refs], "refs": [ref for _, ref in refs]},
        )
        return {(Channel(row.channel), row.channel_order_id) for row in rows}

    async def get_by_channel(
        self, channel: Channel, channel_order_id: str, lock: bool = False
    ) -> Stored | None:
        query = _BY_CHANNEL_LOCKED if lock else _BY_CHANNEL
        row = (
            await self.conn.execute(query, {"channel": channel.value, "channel_order_id": channel_order_id})
        ).first()
        return None if row is None else self._stored(row)

    def _stored(self, row: Any) -> Stored:
        stored = stored_from_row(row._mapping, self.keys)
        if row.pii_sealed is not None:
            self._seals[row.order_id] = (stored.order.shipping_address, row.pii_sealed, row.phone_hash)
        return stored

    def _kept_seal(self, order: Order) -> tuple[str, str] | None:
        """The sealed personal data and phone hash read with the order, while its address is the one
        they seal: a save writes them back instead of sealing again (a new key reaches the row through
        `reseal`, as it reaches every row)."""
        kept = self._seals.get(order.order_id)
        if kept is None or kept[0] != order.shipping_address:
            return None
        return kept[1], kept[2]

    # ---- key rotation -------------------------------------------------------------------------

    async def reseal(self, batch: int) -> int:
        """Move up to `batch` orders' personal data to the active key (and seal rows from before sealing)."""
        keys = self.keys
        active_prefix = f"v1.{keys.active_key_id}.%"
        o = orders_table.c
        rows = (
            await self.conn.execute(
                select(o.order_id, o.pii_sealed, o.shipping_address)
                .where(or_(o.pii_sealed.is_(None), o.pii_sealed.not_like(active_prefix)))
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for row in rows:
            address = dict(row.shipping_address)
            values: dict[str, Any]
            if row.pii_sealed is None:
                private = {name: address.pop(name, "") for name in PII_FIELDS}
                values = {
                    "pii_sealed": seal_private(keys, row.order_id, private),
                    "shipping_address": address,
                }
            else:
                values = {"pii_sealed": keys.reseal(row.pii_sealed, row.order_id) or row.pii_sealed}
            await self.conn.execute(update(orders_table).where(o.order_id == row.order_id).values(**values))
        return len(rows)


def _positioned(rows: list[dict[str, Any]], start: int) -> list[dict[str, Any]]:
    return [{**row, "position": start + n} for n, row in enumerate(rows)]


def _lines_of_order() -> Any:
    """The order's lines as one JSON array: one statement per read, not 1 + lines."""
    line = func.jsonb_build_object(
        *[item for name in LINE_READ for item in (name, order_lines_table.c[name])]
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


def with_lines(query: Any) -> Any:
    """An orders query that brings each order's lines along (what `stored_from_row` reads)."""
    return query.add_columns(_LINES)


# waiting for stock: held unpaid (the reservation was refused, or routing parked it as out of stock),
# or frozen paid with no stock left
_HELD_FOR_STOCK = or_(
    and_(
        orders_table.c.status == OrderStatus.ON_HOLD.value,
        orders_table.c.hold_cause == HoldCause.OUT_OF_STOCK.value,
    ),
    and_(
        orders_table.c.status == OrderStatus.EXCEPTION.value,
        orders_table.c.hold_cause == HoldCause.PAID_OUT_OF_STOCK.value,
    ),
)

# a replayed step starts a fresh wait: the patience counts from the next outage, not the last
_REPLAYED: dict[str, Any] = {
    "step_dead": False,
    "step_attempts": 0,
    "step_pauses": 0,
    "step_paused_since": None,
    "step_waiting_for": None,
}


def _dead_steps_where(which: DeadSteps) -> Any:
    o = orders_table.c
    failed_at = func.coalesce(o.step_failed_at, o.updated_at)
    conditions: list[Any] = [o.step_dead.is_(True)]
    if which.reason_contains:
        # a plain substring, whatever characters it holds
        conditions.append(func.strpos(func.lower(o.step_error), which.reason_contains.lower()) > 0)
    if which.failed_from is not None:
        conditions.append(failed_at >= which.failed_from)
    if which.failed_to is not None:
        conditions.append(failed_at < which.failed_to)
    return and_(*conditions)


_BY_ID = with_lines(select(orders_table)).where(orders_table.c.order_id == bindparam("order_id"))
_BY_ID_LOCKED = _BY_ID.with_for_update(of=orders_table)
_BY_IDS_LOCKED = (
    with_lines(select(orders_table))
    .where(orders_table.c.order_id == func.any(bindparam("order_ids", type_=ARRAY(Text))))
    .order_by(orders_table.c.order_id)
    .with_for_update(of=orders_table)
)
_BY_CHANNEL = with_lines(select(orders_table)).where(
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
