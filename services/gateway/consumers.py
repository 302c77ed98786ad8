"""The gateway's NATS handlers: every replica's live feed, and the one shared recording of each alert
(folded into its record; a new record's assignee is told)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from google.protobuf.message import Message
from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import AsyncConnection

from oms.alerts.v1 import events_pb2 as alert_events
from services.gateway import mappers, metrics
from services.gateway.alerts import AlertHub
from services.gateway.handlers.alert_desk import AlertDesk
from services.kit.consumer import Envelope
from services.kit.ids import new_id


def to_hub(hub: AlertHub) -> Callable[[Msg], Awaitable[None]]:
    """A plain subscription's callback: every replica feeds its own watchers (WatchAlerts) from the bus."""

    async def publish(msg: Msg) -> None:
        with contextlib.suppress(Exception):  # a malformed alert must not stop the feed
            hub.publish(alert_events.AlertRaised.FromString(msg.data))

    return publish


def record(
    desk: AlertDesk, wall: Callable[[], float]
) -> Callable[[AsyncConnection, Message, Envelope], Awaitable[None]]:
    """The durable consumer's handler: each alert is recorded (and delivered) once, from whichever replica
    gets it. The record commits in its own transaction and delivery follows it: no sink is called while
    the record's row is locked."""

    async def handle(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
        assert isinstance(event, alert_events.AlertRaised)
        # the bus's message id stands in for an event id its producer left out
        event.event_id = event.event_id or envelope.event_id or new_id()
        await desk.raised(mappers.raised_of(event, datetime.fromtimestamp(wall(), UTC)))
        # counted once the inbox has it: a retried delivery is not a second alert
        envelope.on_commit(lambda: metrics.count_alert(event.kind, int(event.severity)))

    return handle
