"""The order's priority reaches routing, and an order held because its plan's stock went to another
order is planned again on live stock: real orders, routing and inventory servers."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from oms.orders.v1 import orders_pb2
from services.inventory import handlers as stock
from services.inventory.domain.model import Line
from services.inventory.handlers import Policy as StockPolicy
from services.orders import handlers
from services.orders.domain.model import Order
from services.orders.peers import Plan
from tests.conftest import random_ref
from tests.fixtures.channels.builders import load
from tests.integration.orders.conftest import Stack
from tests.integration.orders.test_lifecycle import canonical, money, stamp


def tea_order(
    ref: str, priority: int = orders_pb2.ORDER_PRIORITY_UNSPECIFIED, **overrides: object
) -> orders_pb2.IngestOrderRequest:
    request = canonical(ref, **overrides)  # to Hangzhou, East China
    del request.lines[:]
    request.lines.append(orders_pb2.OrderLine(sku="TEA", title="Tea", quantity=2, unit_price=money(4500)))
    request.priority = priority  # type: ignore[assignment]
    return request


async def get(stack: Stack, order_id: str) -> orders_pb2.Order:
    return (await stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id))).order


async def test_an_expedited_order_is_planned_by_routing_as_expedited_and_ships_by_express(
    stack: Stack,
) -> None:
    await stack.receive("WH-SH", "TEA", 20)
    expedited = (
        await stack.orders.IngestOrder(tea_order(random_ref("own"), orders_pb2.ORDER_PRIORITY_EXPEDITED))
    ).order
    standard = (await stack.orders.IngestOrder(tea_order(random_ref("own")))).order
    assert (expedited.priority, standard.priority) == (
        orders_pb2.ORDER_PRIORITY_EXPEDITED,
        orders_pb2.ORDER_PRIORITY_STANDARD,
    )
    await stack.drive()

    assert (await get(stack, expedited.order_id)).priority == orders_pb2.ORDER_PRIORITY_EXPEDITED  # stored
    # routing's rules: expedited orders by SF express; East China otherwise by SF economy
    assert [d[1:3] for d in await stack.decisions(expedited.order_id)] == [(["WH-SH"], "SF/express")]
    assert [d[1:3] for d in await stack.decisions(standard.order_id)] == [(["WH-SH"], "SF/economy")]


async def test_a_members_own_shop_order_is_stored_and_returned_as_a_members_order(stack: Stack) -> None:
    # the own shop's fixture: buyer.member_level "gold"
    payload = load("own_shop", "paid")
    payload["order_no"] = random_ref("WX")
    reply = await stack.orders.IngestChannelOrder(
        orders_pb2.IngestChannelOrderRequest(
            channel=orders_pb2.CHANNEL_OWN_SHOP, payload_json=json.dumps(payload)
        )
    )
    assert (await get(stack, reply.order.order_id)).priority == orders_pb2.ORDER_PRIORITY_MEMBER


async def test_an_unknown_priority_number_is_refused_naming_the_field(stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.orders.IngestOrder(tea_order(random_ref("own"), 7))
    assert (refused.value.code(), refused.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "priority: unknown value 7",
    )


async def lose_the_planned_stock(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between routing's first plan and our reservation, another order reserves Shanghai's stock."""
    peers = stack.orchestrator.peers
    plan = peers.plan

    async def planned_then_taken(planned: Order, *args: Any) -> Plan:
        answer = await plan(planned, *args)
        if not (await stack.stock_of("WH-SH", "TEA"))[1]:
            rival = [Line("TEA", "WH-SH", 19)]  # all the 95 % cap lets be reserved of 20
            assert (
                await stock.reserve(stack.inventory_uow, StockPolicy(), random_ref("rival"), rival)
            ).reserved
        return answer

    monkeypatch.setattr(peers, "plan", planned_then_taken)


async def stock_arrives_only_in_wuhan(stack: Stack) -> None:
    await stack.receive("WH-WH", "TEA", 10)
    uow = stack.uow()
    async with uow:
        await handlers.stock_arrived(uow, stack.policy, "TEA")  # as the stock_changed consumer does
        await uow.commit()
    await stack.drive()


async def test_an_order_whose_planned_stock_went_to_another_order_is_reserved_where_stock_arrives(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    await stack.receive("WH-SH", "TEA", 20)
    order = (await stack.orders.IngestOrder(tea_order(random_ref("own")))).order
    await lose_the_planned_stock(stack, monkeypatch)
    await stack.drive()
    held = await get(stack, order.order_id)
    assert (status_name(held), held.status_reason) == (
        "ON_HOLD",
        "unroutable: out of stock at the planned warehouses",
    )
    [(refused_id, warehouses, _, _)] = await stack.decisions(order.order_id)
    assert warehouses == ["WH-SH"]
    assert await stack.scalar(
        "SELECT refused_decision_id FROM orders WHERE order_id = :o", o=order.order_id
    ) == (refused_id)

    await stock_arrives_only_in_wuhan(stack)

    resumed = await get(stack, order.order_id)
    assert status_name(resumed) == "PENDING_PAYMENT", resumed.status_reason
    assert list(resumed.warehouse_ids) == ["WH-WH"]
    assert await stack.stock_of("WH-WH", "TEA") == (10, 2)
    decisions = await stack.decisions(order.order_id)
    assert [(d[0], d[1], d[3]) for d in decisions] == [
        (refused_id, ["WH-SH"], decisions[1][0]),
        (decisions[1][0], ["WH-WH"], ""),
    ]
    assert (
        await stack.scalar("SELECT refused_decision_id FROM orders WHERE order_id = :o", o=order.order_id)
        == ""
    )


async def test_a_paid_order_frozen_out_of_stock_after_its_plan_is_allocated_where_stock_arrives(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    await stack.receive("WH-SH", "TEA", 20)
    request = tea_order(random_ref("own"), paid_at=stamp(stack.clock.now()))
    order = (await stack.orders.IngestOrder(request)).order
    await lose_the_planned_stock(stack, monkeypatch)
    await stack.drive()
    frozen = await get(stack, order.order_id)
    assert status_name(frozen) == "EXCEPTION" and "paid, out of stock" in frozen.status_reason

    await stock_arrives_only_in_wuhan(stack)

    allocated = await get(stack, order.order_id)
    assert status_name(allocated) == "ALLOCATED", allocated.status_reason
    assert list(allocated.warehouse_ids) == ["WH-WH"]
    assert await stack.stock_of("WH-WH", "TEA") == (8, 0)
    assert [d[1] for d in await stack.decisions(order.order_id)] == [["WH-SH"], ["WH-WH"]]


def status_name(order: orders_pb2.Order) -> str:
    return orders_pb2.OrderStatus.Name(order.status).removeprefix("ORDER_STATUS_")
