"""After-sales' event handlers (once each, through the kit's inbox): an exchange follows its
replacement order to the customer's door."""

from __future__ import annotations

from datetime import UTC

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from oms.orders.v1 import events_pb2 as orders_events
from oms.orders.v1 import orders_pb2
from services.aftersales import handlers, mappers
from services.aftersales.handlers.common import Policy
from services.aftersales.store import AftersalesUnitOfWork
from services.kit.clock import Clock
from services.kit.consumer import Envelope, Handler

# the ends of an order that decide an exchange: delivered closes it, cancelled needs a person
ENDS = {orders_pb2.ORDER_STATUS_DELIVERED: True, orders_pb2.ORDER_STATUS_CANCELLED: False}


def on_order_status_changed(policy: Policy, clock: Clock) -> Handler:
    """`oms.orders.status_changed`: a replacement order delivered or cancelled. Every other change is
    passed by without a read; a delivered or cancelled order costs one indexed lookup of its ticket."""

    async def handle(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
        if not isinstance(event, orders_events.OrderStatusChanged) or event.to_status not in ENDS:
            return
        uow = AftersalesUnitOfWork.joined(conn, clock, mappers.event_message)
        at = event.occurred_at.ToDatetime(tzinfo=UTC) if event.HasField("occurred_at") else clock.now()
        await handlers.replacement_ended(uow, policy, event.order_id, ENDS[event.to_status], event.reason, at)
        await uow.flush_events()

    return handle
