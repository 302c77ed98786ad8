"""SLA timers on a real Postgres through the orders API: a fresh order paid and not out of the
warehouse in 45 minutes turns amber then red, tells its owner, escalates to the backup with an alert
and `oms.orders.sla_breached`, and is listed by queue and level (an injected clock moves time)."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from oms.orders.v1 import orders_pb2
from services.inventory import handlers as stock
from services.kit.ids import new_id
from services.orders import jobs
from tests.conftest import random_ref
from tests.integration.orders.conftest import Stack
from tests.integration.orders.test_lifecycle import canonical, money, stamp

M = timedelta(minutes=1)


async def paid(stack: Stack, sku: str) -> orders_pb2.Order:
    request = canonical(random_ref("tb"), paid_at=stamp(stack.clock.now()))
    del request.lines[:]
    request.lines.add(sku=sku, title=sku, quantity=1, unit_price=money(1200))
    request.ClearField("discounts")
    return (await stack.orders.IngestOrder(request)).order


async def check(stack: Stack) -> int:
    return await jobs.check_sla(stack.uow, lambda changes: None)


async def outbox(stack: Stack, order_id: str) -> list[str]:
    return [
        str(subject)
        for subject in await stack.column(
            "SELECT subject FROM outbox WHERE event_type LIKE '%Sla%' OR payload LIKE :pattern ORDER BY id",
            pattern=f"%{order_id}%".encode(),
        )
    ]


async def test_a_fresh_order_not_out_in_45_minutes_turns_red_and_escalates(stack: Stack) -> None:
    await stock.put_sku(stack.inventory_uow(), "FRESH-MILK", "Milk")
    await stack.receive("WH-SH", "FRESH-MILK", 10)
    await stack.receive("WH-SH", "TEA", 10)
    fresh, normal = await paid(stack, "FRESH-MILK"), await paid(stack, "TEA")
    await stack.drive()
    owners = orders_pb2.SlaOwners(queue="fulfilment/fresh", owner="warehouse_supervisor", backup="ops_lead")
    await stack.orders.SetSlaOwners(orders_pb2.SetSlaOwnersRequest(owners=owners))

    got = (await stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=fresh.order_id))).order
    assert got.status == orders_pb2.ORDER_STATUS_ALLOCATED
    assert (got.sla.queue, got.sla.level) == ("fulfilment/fresh", orders_pb2.SLA_LEVEL_GREEN)
    assert got.sla.deadline.ToDatetime() - got.paid_at.ToDatetime() == 45 * M
    due = await stack.column("SELECT sla_due_at FROM orders WHERE order_id = :o", o=fresh.order_id)
    assert due == [got.paid_at.ToDatetime().replace(tzinfo=due[0].tzinfo) + 30 * M]  # type: ignore[union-attr]

    stack.clock.advance(31 * M)
    assert await check(stack) == 1
    listed = await stack.orders.ListSlaTimers(orders_pb2.ListSlaTimersRequest())
    assert [(t.order_id, t.level, t.owner) for t in listed.timers] == [
        (fresh.order_id, orders_pb2.SLA_LEVEL_AMBER, "")
    ]
    assert [(c.queue, c.level, c.count) for c in listed.counts] == [
        ("fulfilment/fresh", orders_pb2.SLA_LEVEL_AMBER, 1)
    ]

    stack.clock.advance(15 * M)  # 46 minutes after payment, still not out of the warehouse
    assert await check(stack) == 1
    red = await stack.orders.ListSlaTimers(
        orders_pb2.ListSlaTimersRequest(min_level=orders_pb2.SLA_LEVEL_RED)
    )
    [timer] = red.timers
    assert (timer.order_id, timer.escalated_to, timer.stage, timer.category) == (
        fresh.order_id,
        "ops_lead",
        "fulfilment",
        "fresh",
    )
    assert timer.overdue_seconds >= 60
    timeline = await stack.orders.GetTimeline(orders_pb2.GetTimelineRequest(order_id=fresh.order_id))
    assert [e.kind for e in timeline.entries if e.kind.startswith("sla_")] == ["sla_amber", "sla_red"]
    subjects = await outbox(stack, fresh.order_id)
    assert subjects.count("orders.sla_breached") == 1
    assert subjects.count("alerts.raised") >= 2  # the warning to the owner, the breach to the backup
    # the normal order has two hours; nothing happened to it, and nothing is due twice
    normal_level = await stack.column("SELECT sla_level FROM orders WHERE order_id = :o", o=normal.order_id)
    assert normal_level == [0]
    assert await check(stack) == 0


async def test_bad_sla_requests_are_refused_naming_the_field(stack: Stack) -> None:
    cases = [
        (orders_pb2.ListSlaTimersRequest(queue="packing/fresh"), "queue"),
        (orders_pb2.ListSlaTimersRequest(min_level=orders_pb2.SLA_LEVEL_GREEN), "min_level"),
    ]
    for request, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stack.orders.ListSlaTimers(request)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (refused.value.details() or "")
    request = orders_pb2.ListSlaTimersRequest()
    request.page.page_token = "not-a-token"
    with pytest.raises(grpc.aio.AioRpcError) as token:
        await stack.orders.ListSlaTimers(request)
    assert token.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stack.orders.SetOrderSlaOwners(
            orders_pb2.SetOrderSlaOwnersRequest(order_id=new_id(), owner="a")
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as no_owner:
        await stack.orders.SetSlaOwners(
            orders_pb2.SetSlaOwnersRequest(owners=orders_pb2.SlaOwners(queue="fulfilment/fresh"))
        )
    assert no_owner.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await stack.orders.ListSlaOwners(orders_pb2.ListSlaOwnersRequest())).owners == []


async def test_an_orders_own_owner_is_kept_and_shown(stack: Stack) -> None:
    await stack.receive("WH-SH", "TEA", 10)
    order = await paid(stack, "TEA")
    await stack.drive()
    reply = await stack.orders.SetOrderSlaOwners(
        orders_pb2.SetOrderSlaOwnersRequest(order_id=order.order_id, owner="li.wei", backup="zhang.min")
    )
    assert (reply.sla.owner, reply.sla.queue) == ("li.wei", "fulfilment/normal")
    stack.clock.advance(121 * M)
    assert await check(stack) == 1
    got = (await stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order.order_id))).order
    assert (got.sla.level, got.sla.escalated_to) == (orders_pb2.SLA_LEVEL_RED, "zhang.min")
