"""The gateway's NATS handlers: every replica's live feed, and the one shared delivery of each alert."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from google.protobuf.message import Message
from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import AsyncConnection

from oms.alerts.v1 import events_pb2 as alert_events
from services.gateway.alerts import AlertHub, Dispatcher
from services.kit.consumer import Envelope


def to_hub(hub: AlertHub) -> Callable[[Msg], Awaitable[None]]:
    """A plain subscription's callback: every replica feeds its own watchers (WatchAlerts) from the bus."""

    async def publish(msg: Msg) -> None:
        with contextlib.suppress(Exception):  # a malformed alert must not stop the feed
            hub.publish(alert_events.AlertRaised.FromString(msg.data))

    return publish


def deliver(deliveries: Dispatcher) -> Callable[[AsyncConnection, Message, Envelope], Awaitable[None]]:
    """The durable consumer's handler: deliveries happen once, from whichever replica gets the alert."""

    async def handle(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
        await deliveries.handle(event)  # type: ignore[arg-type]

    return handle
