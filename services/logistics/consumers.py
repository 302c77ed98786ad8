"""Logistics' event handlers (once each, through the kit's inbox)."""

from __future__ import annotations

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from oms.orders.v1 import events_pb2 as orders_events  # noqa: F401 - the events decoded here
from services.kit.clock import Clock
from services.kit.consumer import Envelope, Handler
from services.kit.sealing import KeyRing
from services.logistics import mappers
from services.logistics.handlers import shipments
from services.logistics.store import LogisticsUnitOfWork


def on_order_cancelled(keys: KeyRing, clock: Clock) -> Handler:
    """`oms.orders.cancelled`: the order's shipments still in the warehouse get no waybill and no scan."""

    async def handle(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
        uow = LogisticsUnitOfWork.joined(conn, keys, clock, mappers.event_message)
        await shipments.cancel_in_transaction(uow, event.order_id)  # type: ignore[attr-defined]
        await uow.flush_events()

    return handle
