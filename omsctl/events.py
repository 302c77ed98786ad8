"""`omsctl events`: the order events in the running stack's JetStream, one line each
(`<subject>  <event type>  order <id>`), from the first one kept, then as they arrive."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from google.protobuf import symbol_database
from google.protobuf.json_format import MessageToDict

from services.kit import bus


def describe(subject: str, headers: dict[str, str] | None, data: bytes) -> tuple[str, dict[str, Any]]:
    """The event type (from the Oms-Event-Type header) and the decoded payload when the type is known."""
    event_type = (headers or {}).get(bus.EVENT_TYPE, "")
    try:
        message = symbol_database.Default().GetSymbol(event_type)()
        message.ParseFromString(data)
        return event_type, MessageToDict(message)
    except (KeyError, TypeError, ValueError):
        return event_type or "?", {}


async def follow(nats_url: str, prefix: str, order_id: str, seconds: float, domain: str = "orders") -> int:
    from nats.js.api import DeliverPolicy

    import oms.orders.v1.events_pb2  # noqa: F401 - registers the event types for decoding

    client = await bus.connect(nats_url, "omsctl-events")
    js = client.jetstream()
    printed = 0
    last = time.monotonic()
    try:
        subscription = await js.subscribe(
            f"{prefix}.{domain}.>", ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        while seconds <= 0 or time.monotonic() - last < seconds:
            try:
                msg = await subscription.next_msg(timeout=0.5)
            except TimeoutError:
                continue
            event_type, payload = describe(msg.subject, msg.headers, msg.data)
            about = str(payload.get("orderId", ""))
            if order_id and about != order_id:
                continue
            last = time.monotonic()
            print(f"{msg.subject}  {event_type}  order {about}", flush=True)
            printed += 1
    finally:
        await client.close()
    return 0 if printed or not order_id else 1


def run(nats_url: str, prefix: str, order_id: str, seconds: float) -> int:
    try:
        return asyncio.run(follow(nats_url, prefix, order_id, seconds))
    except KeyboardInterrupt:
        return 0
