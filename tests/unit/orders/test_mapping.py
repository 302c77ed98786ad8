from __future__ import annotations

from datetime import UTC, datetime

import pytest

from oms.common.v1 import common_pb2
from oms.orders.v1 import orders_pb2
from oms.routing.v1 import routing_pb2
from services.kit.errors import InvalidArgument
from services.orders.domain.model import Channel, OrderStatus, Priority, accept
from services.orders.mappers import ingest_command, order_message
from services.orders.peers import PRIORITIES


def request() -> orders_pb2.IngestOrderRequest:
    return orders_pb2.IngestOrderRequest(
        channel=orders_pb2.CHANNEL_SHOPEE,
        channel_order_id="SP-77",
        lines=[
            orders_pb2.OrderLine(
                sku="A", quantity=1, unit_price=common_pb2.Money(currency_code="SGD", amount_minor=5)
            )
        ],
        shipping_address=common_pb2.Address(
            recipient_name="Tan",
            phone="1",
            country_code="SG",
            province="SG",
            city="Singapore",
            detail="1 Orchard Rd",
        ),
    )


def test_every_proto_channel_and_status_maps_to_the_domain_and_back() -> None:
    for value in orders_pb2.Channel.values():
        if value != orders_pb2.CHANNEL_UNSPECIFIED:
            proto = request()
            proto.channel = value
            assert ingest_command(proto).channel is Channel(
                orders_pb2.Channel.Name(value).removeprefix("CHANNEL_")
            )
    statuses = {
        orders_pb2.OrderStatus.Name(v).removeprefix("ORDER_STATUS_") for v in orders_pb2.OrderStatus.values()
    }
    assert statuses - {"UNSPECIFIED"} == {s.value for s in OrderStatus}


def test_a_round_trip_keeps_the_order() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    order = accept(ingest_command(request()), "id-1", now)
    message = order_message(order)
    assert message.total == common_pb2.Money(currency_code="SGD", amount_minor=5)
    assert message.created_at.ToDatetime(tzinfo=UTC) == now
    assert (
        ingest_command(
            orders_pb2.IngestOrderRequest(
                channel=message.channel,
                channel_order_id=message.channel_order_id,
                lines=message.lines,
                shipping_address=message.shipping_address,
                shipping_fee=message.shipping_fee,
            )
        ).lines
        == order.lines
    )


def test_a_shipping_fee_in_another_currency_is_refused() -> None:
    proto = request()
    proto.shipping_fee.CopyFrom(common_pb2.Money(currency_code="CNY", amount_minor=100))
    with pytest.raises(InvalidArgument) as refused:
        ingest_command(proto)
    assert refused.value.field == "shipping_fee.currency_code"


def test_every_proto_priority_maps_to_the_domain_and_back_and_unspecified_is_standard() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    for value in orders_pb2.OrderPriority.values():
        proto = request()
        proto.priority = value  # type: ignore[assignment]
        order = accept(ingest_command(proto), "id-1", now)
        expected = (
            orders_pb2.ORDER_PRIORITY_STANDARD if value == orders_pb2.ORDER_PRIORITY_UNSPECIFIED else value
        )
        assert order_message(order).priority == expected
    assert {
        Priority(orders_pb2.OrderPriority.Name(v).removeprefix("ORDER_PRIORITY_")) for v in (1, 2, 3)
    } == set(Priority)


def test_an_unknown_priority_number_is_refused_by_name() -> None:
    proto = request()
    proto.priority = 9  # type: ignore[assignment]
    with pytest.raises(InvalidArgument) as refused:
        ingest_command(proto)
    assert (refused.value.field, refused.value.problem) == ("priority", "unknown value 9")


def test_routing_is_sent_the_same_priority_in_its_own_enum() -> None:
    assert {
        priority.value: routing_pb2.Priority.Name(value).removeprefix("PRIORITY_")
        for priority, value in PRIORITIES.items()
    } == {priority.value: priority.value for priority in Priority}
