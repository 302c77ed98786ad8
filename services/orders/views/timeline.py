"""One order's history, oldest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import literal, select

from services.kit.errors import InvalidArgument, NotFound
from services.kit.ids import is_id
from services.orders.domain.lifecycle import OrderStatus
from services.orders.store import OrdersUnitOfWork, orders_table, timeline_table


@dataclass(frozen=True)
class TimelineRow:
    sequence: int
    at: datetime
    kind: str
    actor_type: str
    actor_id: str
    source: str
    from_status: OrderStatus | None
    to_status: OrderStatus | None
    detail: str
    trace_id: str
    linked_trace_id: str = ""


async def timeline(uow: OrdersUnitOfWork, order_id: str) -> list[TimelineRow]:
    """The order's history, oldest first."""
    if not is_id(order_id):
        raise InvalidArgument("order_id", "must be an order id as returned by IngestOrder")
    t = timeline_table.c
    async with uow:
        rows = list(
            await uow.conn.execute(
                select(timeline_table)
                .where(t.order_id == order_id)
                .order_by(t.at, (t.kind != "created"), t.sequence)
            )
        )
        if not rows:
            exists = await uow.conn.scalar(select(literal(True)).where(orders_table.c.order_id == order_id))
            if not exists:
                raise NotFound(f"order {order_id} not found")
    return [
        TimelineRow(
            sequence=row.sequence,
            at=row.at,
            kind=row.kind,
            actor_type=row.actor_type,
            actor_id=row.actor_id,
            source=row.source,
            from_status=OrderStatus(row.from_status) if row.from_status else None,
            to_status=OrderStatus(row.to_status) if row.to_status else None,
            detail=row.detail,
            trace_id=row.trace_id,
            linked_trace_id=row.linked_trace_id,
        )
        for row in rows
    ]
