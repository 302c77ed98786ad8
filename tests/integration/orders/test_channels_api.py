"""Channel payloads through the orders API: each channel's own format, the oversized Shopee push,
repeats and later versions, and the trace id on the timeline."""

from __future__ import annotations

import json

import pytest
from google.protobuf import struct_pb2

from oms.orders.v1 import orders_pb2
from services.orders.domain import channels
from services.orders.domain.model import Channel
from tests.fixtures.channels.builders import big_shopee_payload, load
from tests.identity import as_gateway
from tests.integration.orders.conftest import Stack

CHANNELS = ["taobao", "jd", "pinduoduo", "douyin", "shopee", "own_shop", "pos"]


def payload_request(channel: str, payload: dict[str, object]) -> orders_pb2.IngestChannelOrderRequest:
    """As text: marketplace ids (Taobao's 19-digit tid) do not survive a Struct's doubles."""
    return orders_pb2.IngestChannelOrderRequest(
        channel=orders_pb2.Channel.Value(f"CHANNEL_{channel.upper()}"),
        payload_json=json.dumps(payload, ensure_ascii=False),
    )


async def test_a_struct_payload_keeps_whole_numbers_whole(stack: Stack) -> None:
    body = struct_pb2.Struct()
    body.update(load("douyin", "paid"))
    reply = await stack.orders.IngestChannelOrder(
        orders_pb2.IngestChannelOrderRequest(channel=orders_pb2.CHANNEL_DOUYIN, payload=body)
    )
    assert reply.outcome == orders_pb2.INGEST_OUTCOME_CREATED
    expected = channels.parse(Channel.DOUYIN, load("douyin", "paid"))
    assert reply.order.channel_order_id == expected.channel_order_id
    assert [line.quantity for line in reply.order.lines] == [line.quantity for line in expected.lines]
    assert [line.unit_price.amount_minor for line in reply.order.lines] == [
        line.unit_price_minor for line in expected.lines
    ]


@pytest.mark.parametrize("channel", CHANNELS)
async def test_each_channels_own_payload_is_ingested_once_and_a_later_version_updates_it(
    stack: Stack, channel: str
) -> None:
    paid = load(channel, "paid")
    expected = channels.parse(Channel(channel.upper()), paid)
    first = await stack.orders.IngestChannelOrder(payload_request(channel, paid))
    assert first.outcome == orders_pb2.INGEST_OUTCOME_CREATED
    assert first.order.channel_order_id == expected.channel_order_id
    goods = sum(line.quantity * line.unit_price_minor - line.discount_minor for line in expected.lines)
    payable = goods - sum(d.amount_minor for d in expected.discounts) + expected.shipping_fee_minor
    assert first.order.total.amount_minor == payable
    assert sum(line.amounts.paid.amount_minor for line in first.order.lines) == payable
    again = await stack.orders.IngestChannelOrder(payload_request(channel, paid))
    assert again.outcome == orders_pb2.INGEST_OUTCOME_UNCHANGED
    assert again.order.order_id == first.order.order_id
    later = await stack.orders.IngestChannelOrder(payload_request(channel, load(channel, "paid_later")))
    assert later.order.order_id == first.order.order_id
    assert later.outcome in (orders_pb2.INGEST_OUTCOME_UPDATED, orders_pb2.INGEST_OUTCOME_UNCHANGED)
    assert await stack.scalar("SELECT count(*) FROM orders") == 1


async def test_the_2_1_mb_shopee_push_is_accepted_whole(stack: Stack) -> None:
    payload = big_shopee_payload(2_500_000)
    size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    assert size >= 2_100_000
    reply = await stack.orders.IngestChannelOrder(payload_request("shopee", payload))
    assert reply.outcome == orders_pb2.INGEST_OUTCOME_CREATED
    stored = await stack.scalar(
        "SELECT size_bytes FROM channel_payloads WHERE order_id = :o", o=reply.order.order_id
    )
    assert stored == size


async def test_a_malformed_payload_is_refused_naming_the_field_and_quarantined(stack: Stack) -> None:
    import grpc

    broken = load("taobao", "paid")
    broken["orders"]["order"][0]["price"] = "12.345"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.orders.IngestChannelOrder(payload_request("taobao", broken))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "orders.order[0].price" in (refused.value.details() or "")
    assert await stack.scalar("SELECT count(*) FROM orders") == 0
    listed = await stack.orders.ListQuarantine(
        orders_pb2.ListQuarantineRequest(channel=orders_pb2.CHANNEL_TAOBAO)
    )
    assert [p.error_field for p in listed.payloads] == ["orders.order[0].price"]
    assert listed.payloads[0].channel_order_id == str(broken["tid"])
    revealed = await stack.orders.ListQuarantine(
        orders_pb2.ListQuarantineRequest(), metadata=as_gateway("admin")
    )
    assert json.loads(revealed.payloads[0].payload_json)["orders"]["order"][0]["price"] == "12.345"


async def test_the_callers_trace_id_is_on_the_timeline_and_the_actor_is_recorded(stack: Stack) -> None:
    call = stack.orders.IngestChannelOrder(
        payload_request("own_shop", load("own_shop", "unpaid")),
        metadata=as_gateway(subject="agent-7", actor_type="user"),
    )
    reply = await call
    trace_id = dict(await call.initial_metadata())["x-trace-id"]
    timeline = await stack.orders.GetTimeline(orders_pb2.GetTimelineRequest(order_id=reply.order.order_id))
    created = timeline.entries[0]
    assert (created.kind, created.trace_id, created.actor_type, created.actor_id) == (
        "created",
        trace_id,
        "user",
        "agent-7",
    )
