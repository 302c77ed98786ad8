"""Orders use cases: one function per command, each inside one unit of work."""

from __future__ import annotations

from oms.common.v1 import common_pb2
from oms.orders.v1 import events_pb2
from services.kit.db import UnitOfWork
from services.kit.errors import InvalidArgument, NotFound
from services.kit.ids import is_id, new_id
from services.orders.domain.model import IngestOrder, Order, OrderCreated, accept
from services.orders.store import OrderRepository

CREATED_SUBJECT = "orders.created"


async def ingest_order(uow: UnitOfWork, command: IngestOrder) -> tuple[Order, bool]:
    """Store a channel order once; a repeat delivery returns the stored order and created=False."""
    order = accept(command, new_id(), uow.clock.now())
    async with uow:
        orders = OrderRepository(uow.conn)
        if await orders.add_if_absent(order):
            for event in order.events:
                if isinstance(event, OrderCreated):
                    uow.publish(CREATED_SUBJECT, _order_created_message(event))
            await uow.commit()
            return order, True
        existing = await orders.get_by_channel(order.channel, order.channel_order_id)
        if existing is None:
            raise RuntimeError("channel order conflicted but cannot be read back")
        return existing, False


async def get_order(uow: UnitOfWork, order_id: str) -> Order:
    if not is_id(order_id):
        raise InvalidArgument("order_id", "must be an order id as returned by IngestOrder")
    async with uow:
        order = await OrderRepository(uow.conn).get(order_id)
    if order is None:
        raise NotFound(f"order {order_id} not found")
    return order


def _order_created_message(event: OrderCreated) -> events_pb2.OrderCreated:
    return events_pb2.OrderCreated(
        order_id=event.order_id,
        channel=f"CHANNEL_{event.channel.value}",
        channel_order_id=event.channel_order_id,
        status=f"ORDER_STATUS_{event.status.value}",
        buyer_id=event.buyer_id,
        total=common_pb2.Money(currency_code=event.currency, amount_minor=event.total_minor),
        line_count=event.line_count,
    )
