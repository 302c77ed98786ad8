"""Routing's event handlers (idempotent through the kit's inbox)."""

from __future__ import annotations

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from oms.inventory.v1 import events_pb2 as inventory_events  # noqa: F401 - the events decoded here
from services.kit.clock import Clock
from services.kit.consumer import Envelope, Handler
from services.routing.handlers import parked
from services.routing.store import RoutingUnitOfWork


def on_stock_arrived(clock: Clock) -> Handler:
    """`back_in_stock`, or on hand going up (receipt, count, restock): parked orders waiting for the SKU
    become due; the retry job plans them outside this transaction."""

    async def handle(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
        if getattr(event, "on_hand_delta", 1) > 0:
            await parked.mark_parked_due(RoutingUnitOfWork.joined(conn, clock), event.sku)  # type: ignore[attr-defined]

    return handle
