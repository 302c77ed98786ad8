from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from oms.common.v1 import common_pb2
from oms.orders.v1 import events_pb2
from services.kit import bus


def sample_event(n: int) -> events_pb2.OrderCreated:
    return events_pb2.OrderCreated(
        order_id=f"order-{n}",
        channel_order_id=f"C{n}",
        total=common_pb2.Money(currency_code="CNY", amount_minor=n),
    )


async def stream_messages(js: JetStreamContext, prefix: str, domain: str) -> list[RawStreamMsg]:
    name = bus.stream_name(prefix, domain)
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        return []
    return [await js.get_msg(name, seq) for seq in range(info.state.first_seq, info.state.last_seq + 1)]


async def stream_count(js: JetStreamContext, prefix: str, domain: str) -> int:
    try:
        return (await js.stream_info(bus.stream_name(prefix, domain))).state.messages
    except NotFoundError:
        return 0
