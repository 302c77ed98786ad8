"""Logistics' event handlers (once each, through the kit's inbox)."""

from __future__ import annotations

from datetime import UTC, datetime

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


def on_order_held(keys: KeyRing, clock: Clock) -> Handler:
    """`oms.orders.held` / `oms.orders.exception`: the warehouse stops on the order's shipments."""

    async def handle(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
        uow = LogisticsUnitOfWork.joined(conn, keys, clock, mappers.event_message)
        reason = getattr(event, "reason", "") or "the order is frozen"
        at = _occurred(event)
        await shipments.hold_in_transaction(uow, event.order_id, reason, at)  # type: ignore[attr-defined]
        await uow.flush_events()

    return handle


def on_order_released(keys: KeyRing, clock: Clock) -> Handler:
    """`oms.orders.released`: the warehouse takes the order's shipments again."""

    async def handle(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
        uow = LogisticsUnitOfWork.joined(conn, keys, clock, mappers.event_message)
        await shipments.release_in_transaction(uow, event.order_id, _occurred(event))  # type: ignore[attr-defined]
        await uow.flush_events()

    return handle


def _occurred(event: Message) -> datetime | None:
    stamp = getattr(event, "occurred_at", None)
    if stamp is None or not (stamp.seconds or stamp.nanos):
        return None
    return stamp.ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]
