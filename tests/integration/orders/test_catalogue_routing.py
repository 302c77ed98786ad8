"""Real orders routed by the SKUs' own catalogue entries, through live inventory and routing servers."""

from __future__ import annotations

import json

from oms.common.v1 import common_pb2
from oms.orders.v1 import orders_pb2
from services.inventory import handlers as stock
from services.inventory.domain.model import GoodsType
from tests.conftest import random_ref
from tests.fixtures.channels.builders import load
from tests.integration.orders.conftest import Stack


def fish_order(ref: str) -> orders_pb2.IngestOrderRequest:
    return orders_pb2.IngestOrderRequest(
        channel=orders_pb2.CHANNEL_OWN_SHOP,
        channel_order_id=ref,
        buyer_id="buyer-9",
        lines=[
            orders_pb2.OrderLine(
                sku="FISH",
                title="Chilled salmon",
                quantity=2,
                unit_price=common_pb2.Money(currency_code="CNY", amount_minor=8800),
            )
        ],
        shipping_address=common_pb2.Address(
            recipient_name="李雷",
            phone="13800001111",
            country_code="CN",
            province="Zhejiang",
            city="Hangzhou",
            detail="1 Wensan Road",
        ),
    )


async def test_a_cold_chain_order_stocked_only_without_cold_chain_is_held_not_reserved_there(
    stack: Stack,
) -> None:
    await stock.put_sku(
        stack.inventory_uow(), "FISH", "Chilled salmon", GoodsType.COLD_CHAIN, "seafood", 1200
    )
    await stack.receive("WH-BJ", "FISH", 20)
    order = (await stack.orders.IngestOrder(fish_order(random_ref("own")))).order
    await stack.drive()

    held = (await stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order.order_id))).order
    assert held.status == orders_pb2.ORDER_STATUS_ON_HOLD
    assert "cold_chain_impossible" in held.status_reason and "FISH" in held.status_reason
    assert await stack.stock_of("WH-BJ", "FISH") == (20, 0)


async def test_a_cold_chain_order_is_reserved_at_the_cold_chain_warehouse_that_holds_it(stack: Stack) -> None:
    await stock.put_sku(
        stack.inventory_uow(), "FISH", "Chilled salmon", GoodsType.COLD_CHAIN, "seafood", 1200
    )
    await stack.receive("WH-BJ", "FISH", 20)
    await stack.receive("WH-SH", "FISH", 5)
    order = (await stack.orders.IngestOrder(fish_order(random_ref("own")))).order
    await stack.drive()

    reserved = (await stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order.order_id))).order
    assert reserved.status == orders_pb2.ORDER_STATUS_PENDING_PAYMENT
    assert (await stack.stock_of("WH-SH", "FISH"), await stack.stock_of("WH-BJ", "FISH")) == ((5, 2), (20, 0))


async def test_the_shopee_singapore_order_is_allocated_at_the_cross_border_warehouse(stack: Stack) -> None:
    for sku in ("BOTTLE-750", "LUNCH-GRN"):
        await stock.put_sku(stack.inventory_uow(), sku, sku, weight_g=450)
        await stack.receive("WH-XB", sku, 10)
        await stack.receive("WH-SH", sku, 10)
    reply = await stack.orders.IngestChannelOrder(
        orders_pb2.IngestChannelOrderRequest(
            channel=orders_pb2.CHANNEL_SHOPEE, payload_json=json.dumps(load("shopee", "paid"))
        )
    )
    await stack.drive()

    order = (await stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=reply.order.order_id))).order
    assert order.status == orders_pb2.ORDER_STATUS_ALLOCATED, order.status_reason
    assert await stack.scalar("SELECT warehouses FROM orders WHERE order_id = :o", o=order.order_id) == [
        "WH-XB"
    ]
    assert await stack.stock_of("WH-XB", "BOTTLE-750") == (8, 0)
    assert await stack.stock_of("WH-SH", "BOTTLE-750") == (10, 0)
