"""Routing's event handlers (idempotent through the kit's inbox)."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from oms.inventory.v1 import events_pb2 as inventory_events  # noqa: F401 - the events decoded here
from services.kit.consumer import Envelope
from services.routing import handlers


async def on_stock_arrived(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
    """`back_in_stock`, or on hand going up (receipt, count, restock): parked orders waiting for the SKU
    become due; the retry job plans them outside this transaction."""
    if getattr(event, "on_hand_delta", 1) > 0:
        await handlers.mark_parked_due(conn, event.sku, datetime.now(UTC))  # type: ignore[attr-defined]
