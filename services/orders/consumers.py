"""Orders' event handlers (idempotent through the kit's inbox)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from oms.inventory.v1 import events_pb2 as inventory_events  # noqa: F401 - the events decoded here
from oms.routing.v1 import events_pb2 as routing_events  # noqa: F401 - the events decoded here
from services.kit.consumer import Envelope
from services.kit.db import UnitOfWork
from services.orders import handlers

Handler = Callable[[AsyncConnection, Message, Envelope], Awaitable[None]]


def on_reservation_expired(policy: handlers.Policy, poke: Callable[[handlers.Changes], None]) -> Handler:
    async def handle(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
        uow = UnitOfWork.joined(conn)
        changes = await handlers.reservation_expired(uow, policy, event.order_id)  # type: ignore[attr-defined]
        await uow.flush_events()
        poke(changes)

    return handle


def on_route_found(policy: handlers.Policy, poke: Callable[[handlers.Changes], None]) -> Handler:
    async def handle(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
        uow = UnitOfWork.joined(conn)
        changes = await handlers.route_found(uow, policy, event.order_id)  # type: ignore[attr-defined]
        await uow.flush_events()
        poke(changes)

    return handle
