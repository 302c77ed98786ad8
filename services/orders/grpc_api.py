"""The thin gRPC servicer: proto in → command → handler → proto out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from oms.common.v1 import common_pb2
from oms.orders.v1 import orders_pb2, orders_pb2_grpc
from services.kit.db import UnitOfWork
from services.kit.errors import InvalidArgument
from services.orders import handlers
from services.orders.domain.model import Address, Channel, IngestOrder, Order, OrderLine, is_currency_code

SERVICE_NAME = orders_pb2.DESCRIPTOR.services_by_name["OrdersService"].full_name


class OrdersServicer(orders_pb2_grpc.OrdersServiceServicer):
    def __init__(self, uow_factory: Callable[[], UnitOfWork]) -> None:
        self.uow = uow_factory

    async def IngestOrder(
        self, request: orders_pb2.IngestOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.IngestOrderResponse:
        order, created = await handlers.ingest_order(self.uow(), ingest_command(request))
        return orders_pb2.IngestOrderResponse(order=order_message(order), created=created)

    async def GetOrder(
        self, request: orders_pb2.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.GetOrderResponse:
        order = await handlers.get_order(self.uow(), request.order_id)
        return orders_pb2.GetOrderResponse(order=order_message(order))


def ingest_command(request: orders_pb2.IngestOrderRequest) -> IngestOrder:
    currency = _order_currency(request)
    lines = []
    for index, line in enumerate(request.lines):
        _same_currency(f"lines[{index}].unit_price.currency_code", line.unit_price, currency)
        lines.append(
            OrderLine(
                sku=line.sku,
                title=line.title,
                quantity=line.quantity,
                unit_price_minor=line.unit_price.amount_minor,
            )
        )
    if request.HasField("shipping_fee"):
        _same_currency("shipping_fee.currency_code", request.shipping_fee, currency)
    return IngestOrder(
        channel=_channel(request.channel),
        channel_order_id=request.channel_order_id,
        buyer_id=request.buyer_id,
        currency=currency,
        lines=tuple(lines),
        shipping_address=_address(request.shipping_address) if request.HasField("shipping_address") else None,
        shipping_fee_minor=request.shipping_fee.amount_minor,
        placed_at=request.placed_at.ToDatetime(tzinfo=UTC) if request.HasField("placed_at") else None,
    )


def order_message(order: Order) -> orders_pb2.Order:
    def money(amount: int) -> common_pb2.Money:
        return common_pb2.Money(currency_code=order.currency, amount_minor=amount)

    address = order.shipping_address
    return orders_pb2.Order(
        order_id=order.order_id,
        channel=f"CHANNEL_{order.channel.value}",
        channel_order_id=order.channel_order_id,
        status=f"ORDER_STATUS_{order.status.value}",
        buyer_id=order.buyer_id,
        lines=[
            orders_pb2.OrderLine(
                sku=line.sku,
                title=line.title,
                quantity=line.quantity,
                unit_price=money(line.unit_price_minor),
            )
            for line in order.lines
        ],
        shipping_address=common_pb2.Address(
            recipient_name=address.recipient_name,
            phone=address.phone,
            country_code=address.country_code,
            province=address.province,
            city=address.city,
            district=address.district,
            detail=address.detail,
            postal_code=address.postal_code,
        ),
        shipping_fee=money(order.shipping_fee_minor),
        total=money(order.total_minor),
        placed_at=_timestamp(order.placed_at),
        created_at=_timestamp(order.created_at),
        updated_at=_timestamp(order.updated_at),
    )


def _order_currency(request: orders_pb2.IngestOrderRequest) -> str:
    """The order's currency is its first line's; every other amount must be in it."""
    field, currency = "lines[0].unit_price.currency_code", ""
    if request.lines:
        currency = request.lines[0].unit_price.currency_code
    elif request.shipping_fee.currency_code:
        field, currency = "shipping_fee.currency_code", request.shipping_fee.currency_code
    if not currency:
        raise InvalidArgument(field, "is required")
    if not is_currency_code(currency):
        raise InvalidArgument(field, "must be an ISO 4217 code such as CNY")
    return currency


def _same_currency(field: str, money: common_pb2.Money, currency: str) -> None:
    if money.currency_code != currency:
        raise InvalidArgument(field, f"must be {currency}, the currency of the order's first line")


def _channel(value: int) -> Channel | None:
    if value == orders_pb2.CHANNEL_UNSPECIFIED or value not in orders_pb2.Channel.values():
        return None
    return Channel(orders_pb2.Channel.Name(value).removeprefix("CHANNEL_"))


def _address(address: common_pb2.Address) -> Address:
    return Address(
        recipient_name=address.recipient_name,
        phone=address.phone,
        country_code=address.country_code,
        province=address.province,
        city=address.city,
        district=address.district,
        detail=address.detail,
        postal_code=address.postal_code,
    )


def _timestamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at.astimezone(UTC))
    return stamp
