"""Row-level scope, enforced by the orders service from the gateway's signed assertion."""

from __future__ import annotations

import grpc
import pytest

from oms.orders.v1 import orders_pb2
from services.kit.ids import new_id
from tests.conftest import random_ref
from tests.identity import as_gateway
from tests.integration.orders.conftest import Stack
from tests.integration.orders.test_lifecycle import canonical


async def refusal(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call  # type: ignore[misc]
    return refused.value.code(), refused.value.details() or ""


async def test_an_agent_sees_only_their_customers_orders_and_cannot_tell_other_ids_from_unknown_ones(
    stack: Stack,
) -> None:
    mine = (await stack.orders.IngestOrder(canonical(random_ref("own"), buyer_id="alice"))).order
    theirs = (await stack.orders.IngestOrder(canonical(random_ref("own"), buyer_id="bob"))).order
    await stack.orders.AssignCustomers(
        orders_pb2.AssignCustomersRequest(agent_id="agent-1", buyer_ids=["alice"])
    )
    agent = as_gateway("cs_agent", subject="agent-1", agent="agent-1")
    listed_customers = await stack.orders.ListAgentCustomers(
        orders_pb2.ListAgentCustomersRequest(agent_id="agent-1")
    )
    assert list(listed_customers.buyer_ids) == ["alice"]
    nobody = await stack.orders.ListAgentCustomers(orders_pb2.ListAgentCustomersRequest(agent_id="agent-9"))
    assert list(nobody.buyer_ids) == []
    assert (await refusal(stack.orders.ListAgentCustomers(orders_pb2.ListAgentCustomersRequest())))[
        0
    ] == grpc.StatusCode.INVALID_ARGUMENT

    read = await stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=mine.order_id), metadata=agent)
    assert read.order.order_id == mine.order_id
    other = await refusal(
        stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=theirs.order_id), metadata=agent)
    )
    unknown_id = new_id()
    unknown = await refusal(
        stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=unknown_id), metadata=agent)
    )
    assert other[0] == unknown[0] == grpc.StatusCode.NOT_FOUND
    assert other[1].replace(theirs.order_id, "<id>") == unknown[1].replace(unknown_id, "<id>")

    listed = await stack.orders.ListOrders(orders_pb2.ListOrdersRequest(), metadata=agent)
    assert [o.order_id for o in listed.orders] == [mine.order_id]
    timeline = await refusal(
        stack.orders.GetTimeline(orders_pb2.GetTimelineRequest(order_id=theirs.order_id), metadata=agent)
    )
    assert timeline[0] == grpc.StatusCode.NOT_FOUND
    hold = await refusal(
        stack.orders.HoldOrder(
            orders_pb2.HoldOrderRequest(order_id=theirs.order_id, reason="x"), metadata=agent
        )
    )
    assert hold[0] == grpc.StatusCode.NOT_FOUND


async def test_a_customer_sees_only_their_own_orders(stack: Stack) -> None:
    mine = (await stack.orders.IngestOrder(canonical(random_ref("own"), buyer_id="carol"))).order
    theirs = (await stack.orders.IngestOrder(canonical(random_ref("own"), buyer_id="dave"))).order
    customer = as_gateway("customer", subject="carol", customer="carol")
    listed = await stack.orders.ListOrders(orders_pb2.ListOrdersRequest(), metadata=customer)
    assert [o.order_id for o in listed.orders] == [mine.order_id]
    code, _ = await refusal(
        stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=theirs.order_id), metadata=customer)
    )
    assert code == grpc.StatusCode.NOT_FOUND


async def test_a_channel_key_ingests_only_for_its_own_channel(stack: Stack) -> None:
    taobao_key = as_gateway("channel", subject="demo-taobao", actor_type="channel", channel="TAOBAO")
    code, details = await refusal(stack.orders.IngestOrder(canonical(random_ref("own")), metadata=taobao_key))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "TAOBAO" in details
    request = canonical(random_ref("tb"))
    request.channel = orders_pb2.CHANNEL_TAOBAO
    created = await stack.orders.IngestOrder(request, metadata=taobao_key)
    assert created.order.channel == orders_pb2.CHANNEL_TAOBAO
    assert await stack.scalar("SELECT count(*) FROM orders") == 1
